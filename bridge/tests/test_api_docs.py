"""The staff API documents itself (issue 12 §4): Swagger UI and Redoc under /api/v1/docs/
with no CDN, every route without an id at the API root, an example for every operation."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, reverse

from bridge import api_urls
from pricing.models import TaxRule
from pricing.tests.api_helpers import make_user

pytestmark = pytest.mark.django_db

DOCS = ["/api/v1/docs/", "/api/v1/docs/redoc/"]


def routes_without_an_id(patterns: list[Any], namespace: str = "") -> set[str]:
    """URL names of the API's routes that take no argument (format suffixes aside)."""
    names: set[str] = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            names |= routes_without_an_id(pattern.url_patterns)
        elif (
            isinstance(pattern, URLPattern)
            and not pattern.pattern.regex.groupindex
            and pattern.name not in (None, "api-root")
        ):
            names.add(pattern.name)
    return names


def test_the_root_links_every_route_that_takes_no_id(admin_client: Client) -> None:
    response = admin_client.get("/api/v1/")
    assert response.status_code == 200
    linked = {url.removeprefix("http://testserver") for url in response.json().values()}
    expected = {reverse(name) for name in routes_without_an_id(api_urls.urlpatterns)}
    expected.add(reverse("api-schema"))  # routed beside the API (bridge/urls.py)
    assert "/api/v1/pricing-settings/" in expected
    assert "/api/v1/invoices/upcoming/" in expected
    assert linked == expected
    for url in linked - {"/api/v1/invoices/upcoming/"}:  # upcoming needs ?customer=
        assert admin_client.get(url).status_code == 200, url


@pytest.fixture(scope="module")
def schema(django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The schema as `manage.py spectacular --fail-on-warn` writes it (fails on a warning)."""
    path = Path(tmp_path_factory.mktemp("schema")) / "schema.yaml"
    with django_db_blocker.unblock():
        call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(path))
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def operations(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
    ]


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def assert_fits(
    schema: dict[str, Any], node: dict[str, Any], value: Any, where: str, request: bool
) -> None:
    """An example's objects have the schema's fields: no unknown ones, none required missing
    (nested objects and list items included), a request none read-only: so examples follow
    the serializers."""
    node = resolve(schema, node)
    if value is None:
        return
    if "properties" in node and isinstance(value, dict):
        fields = node["properties"]
        assert set(value) <= set(fields), (where, set(value) - set(fields))
        required = set(node.get("required", ()))
        if request:
            read_only = {name for name, field in fields.items() if field.get("readOnly")}
            assert not set(value) & read_only, (where, set(value) & read_only)
            required -= read_only
        assert required <= set(value), (where, required - set(value))
        for key, item in value.items():
            assert_fits(schema, fields[key], item, f"{where}.{key}", request)
    elif node.get("type") == "array" and isinstance(value, list):
        for item in value:
            assert_fits(schema, node["items"], item, f"{where}[]", request)
    for option in node.get("allOf", ()):
        assert_fits(schema, option, value, where, request)


def test_every_operation_has_examples_that_fit_their_schemas(schema: dict[str, Any]) -> None:
    ops = operations(schema)
    assert len(ops) > 50
    for where, op in ops:
        bodies = [("request", op.get("requestBody", {}).get("content", {}))]
        bodies += [(code, r.get("content", {})) for code, r in op["responses"].items()]
        examples = 0
        for part, content in bodies:
            json_body = content.get("application/json")
            if json_body is None:
                continue
            assert json_body.get("examples"), f"{where} {part}: no example"
            for name, example in json_body["examples"].items():
                value, request = example["value"], part == "request"
                assert_fits(schema, json_body["schema"], value, f"{where} {name}", request)
                examples += 1
        assert examples, where
        assert op["responses"].keys() >= {"401", "403", "503"}, where


def test_the_schema_documents_the_error_shape(schema: dict[str, Any]) -> None:
    op = schema["paths"]["/api/v1/tax-rules/"]["post"]
    example = op["responses"]["400"]["content"]["application/json"]["examples"]
    assert [e["value"] for e in example.values()] == [
        {
            "message": "label: This field is required.",
            "errors": {"label": ["This field is required."]},
        }
    ]


@pytest.mark.parametrize("url", DOCS)
def test_the_docs_are_for_whoever_may_read_the_schema(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302  # to the admin's login, and back
    assert response["Location"] == f"{reverse('admin:login')}?next={url}"
    client.force_login(make_user("waiting-for-grants"))
    assert client.get(url).status_code == 403
    client.force_login(make_user("tax-reader", models=[TaxRule], actions=["view"]))
    response = client.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/" in page
    assert "cdn" not in page.lower()
    assert "https://" not in page  # nothing loaded from elsewhere
    assert reverse("api-schema") in page
