"""The setup doctor: is SolusIO set up for this bridge (seed Steps 3, 4, 5, 7)?

One `Finding` per step, pass or fail with what to do. `manage.py solusio_doctor [--fix]`
prints them; `manage.py check --tag solusio` runs the same checks as system checks.
`fix=True` applies what the API can apply (settings patch, plan prices, the limit group
SolusIO calls "Default") and checks again.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from pricing import plan_sync
from solusio import probe
from solusio.connect import is_configured, solusio_client
from solusio.errors import SolusIOError, Unauthorized
from solusio.records import Settings
from users import services as user_services
from users.models import LimitGroup, SolusioDefaults

STEPS = (
    "API (Step 8)",
    "registration disabled (Step 4)",
    "billing integration (Step 7)",
    "default limit group (Step 5)",
    "plan prices (Step 3)",
    "API shapes (probe)",
)


@dataclass(frozen=True)
class Finding:
    step: str
    ok: bool
    message: str
    hint: str = ""
    fixable: bool = False

    @property
    def code(self) -> str:
        """A stable number per step, for system-check ids (bridge.E101 …)."""
        return str(101 + STEPS.index(self.step)) if self.step in STEPS else "100"

    def line(self) -> str:
        text = f"[{'PASS' if self.ok else 'FAIL'}] {self.step}: {self.message}"
        return f"{text} — {self.hint}" if self.hint and not self.ok else text


def endpoint_url() -> str:
    """The GetTokenPricing URL SolusIO must call, from BRIDGE_PUBLIC_URL."""
    base = settings.BRIDGE_PUBLIC_URL.rstrip("/")
    return f"{base}/api/solusio" if base else ""


def _check_api() -> tuple[Finding, Settings | None]:
    step = "API (Step 8)"
    if not is_configured():
        return Finding(
            step,
            False,
            "SOLUSIO_API_URL / SOLUSIO_API_TOKEN are not set",
            "set them to SolusIO's https://HOST/api/v1 and an admin user's API token",
        ), None
    try:
        with solusio_client() as client:
            remote = client.get_settings()
    except Unauthorized as exc:
        return Finding(
            step, False, f"SolusIO refuses the token ({exc.status})", "use an admin's API token"
        ), None
    except SolusIOError as exc:
        return Finding(
            step, False, f"SolusIO is not reachable: {exc}", "check SOLUSIO_API_URL"
        ), None
    return Finding(step, True, f"{settings.SOLUSIO_API_URL} answers with an admin token"), remote


def _check_registration(remote: Settings) -> Finding:
    step = "registration disabled (Step 4)"
    if remote.allow_registration:
        return Finding(
            step,
            False,
            "user-area registration is enabled, so users can bypass billing",
            "Settings > User Area: clear 'Enable Registration' (or run with --fix)",
            fixable=True,
        )
    return Finding(step, True, "user-area registration is disabled")


def _check_billing(remote: Settings) -> Finding:
    step = "billing integration (Step 7)"
    wanted = endpoint_url()
    if not wanted:
        return Finding(
            step,
            False,
            "BRIDGE_PUBLIC_URL is not set, so the endpoint SolusIO must call is unknown",
            "set BRIDGE_PUBLIC_URL to the bridge's public https address",
        )
    problems = []
    if remote.billing_integration_type != settings.SOLUSIO_BILLING_INTEGRATION_TYPE:
        problems.append(f"type is {remote.billing_integration_type!r}")
    driver = settings.SOLUSIO_BILLING_DRIVER
    found = remote.driver(driver)
    url, token = found or ("", "")
    if found is None:
        problems.append(f"there is no driver {driver!r}")
    elif url != wanted:
        problems.append(f"URL is {url!r}, not {wanted!r}")
    # Compared in constant time and never printed: it is the GetTokenPricing secret.
    if not hmac.compare_digest(token.encode(), settings.PRICING_API_TOKEN.encode()):
        problems.append("token differs from PRICING_API_TOKEN")
    if problems:
        return Finding(
            step,
            False,
            "; ".join(problems),
            "Settings > Billing Integration: Custom billing, this URL, PRICING_API_TOKEN "
            "(or run with --fix; SOLUSIO_BILLING_INTEGRATION_TYPE and SOLUSIO_BILLING_DRIVER "
            "say what is written)",
            fixable=True,
        )
    return Finding(step, True, f"custom billing points at {wanted} with the bridge's token")


def billing_written() -> dict[str, object]:
    """What `--fix` writes to `billing_integration`, from the settings."""
    return {
        "type": settings.SOLUSIO_BILLING_INTEGRATION_TYPE,
        "drivers": {
            settings.SOLUSIO_BILLING_DRIVER: {
                "url": endpoint_url(),
                "token": settings.PRICING_API_TOKEN,
            }
        },
    }


def billing_kept(kept: Settings) -> Finding:
    """What SolusIO kept of `billing_written()`, read back after the write: a real SolusIO
    may refuse, drop or rename a type or driver it does not know, without an error."""
    step = "billing integration written (--fix)"
    wanted_type, driver = settings.SOLUSIO_BILLING_INTEGRATION_TYPE, settings.SOLUSIO_BILLING_DRIVER
    differences = []
    if kept.billing_integration_type != wanted_type:
        what = repr(kept.billing_integration_type) if kept.billing_integration_type else "none"
        differences.append(f"wrote type {wanted_type!r}, SolusIO kept {what}")
    found = kept.driver(driver)
    if found is None:
        differences.append(f"wrote driver {driver!r}, SolusIO kept no such driver")
    else:
        if found[0] != endpoint_url():
            differences.append(f"wrote URL {endpoint_url()!r}, SolusIO kept {found[0]!r}")
        if not hmac.compare_digest(found[1].encode(), settings.PRICING_API_TOKEN.encode()):
            differences.append("wrote PRICING_API_TOKEN, SolusIO kept another token")
    if differences:
        return Finding(
            step,
            False,
            "; ".join(differences),
            "see what SolusIO's UI offers under Settings > Billing Integration and set "
            "SOLUSIO_BILLING_INTEGRATION_TYPE / SOLUSIO_BILLING_DRIVER to match",
        )
    return Finding(
        step, True, f"SolusIO kept type {wanted_type!r} and driver {driver!r} as written"
    )


def _check_limit_group() -> Finding:
    step = "default limit group (Step 5)"
    try:
        with solusio_client() as client:
            groups = {g.id: g for g in client.iter_limit_groups()}
    except SolusIOError as exc:
        return Finding(step, False, f"cannot list limit groups: {exc}")
    default = SolusioDefaults.load().default_limit_group
    if default is None:
        return Finding(
            step,
            False,
            "no default limit group chosen for new customers",
            "choose one in the admin (SolusIO defaults); --fix picks SolusIO's 'Default'",
            fixable=any(g.name.lower() == "default" for g in groups.values()),
        )
    if default.id not in groups:
        return Finding(
            step, False, f"the default limit group {default} is gone from SolusIO", "choose another"
        )
    return Finding(step, True, f"new customers get limit group {groups[default.id].name!r}")


def _check_plans() -> Finding:
    step = "plan prices (Step 3)"
    try:
        with solusio_client() as client:
            remote = client.list_plans()
    except SolusIOError as exc:
        return Finding(step, False, f"cannot list plans: {exc}")
    from pricing.models import Plan

    ours = {p.id: p for p in Plan.objects.filter(pk__in=[r.id for r in remote])}
    problems = []
    for plan in remote:
        mine = ours.get(plan.id)
        if mine is None:
            problems.append(f"plan {plan.id} {plan.name!r} is not in the price book")
        elif (mine.tokens_per_hour, mine.tokens_per_month) != (
            plan.tokens_per_hour,
            plan.tokens_per_month,
        ):
            problems.append(
                f"plan {plan.id}: SolusIO {plan.tokens_per_hour}/{plan.tokens_per_month}, "
                f"price book {mine.tokens_per_hour}/{mine.tokens_per_month}"
            )
    if problems:
        return Finding(
            step,
            False,
            "; ".join(problems),
            "mirror the plans and push the price book (admin or --fix)",
            fixable=True,
        )
    return Finding(step, True, f"all {len(remote)} plans priced as in the price book")


def run_probe(
    date_from: str = "",
    date_to: str = "",
    *,
    sso_email: str | None = None,
    cheap_only: bool = False,
) -> list[probe.EndpointReport]:
    """The first-day probe with the bridge's settings (the usage settings when they are set);
    `cheap_only` skips servers, usage and the login token (no period needed then)."""
    options = probe.ProbeOptions(
        date_from=date_from,
        date_to=date_to,
        usage_path=getattr(settings, probe.USAGE_PATH_SETTING, "") or "/usage",
        usage_from_param=getattr(settings, probe.USAGE_FROM_SETTING, "") or "filter[date_from]",
        usage_to_param=getattr(settings, probe.USAGE_TO_SETTING, "") or "filter[date_to]",
        billing_type=settings.SOLUSIO_BILLING_INTEGRATION_TYPE,
        billing_driver=settings.SOLUSIO_BILLING_DRIVER,
        sso_email=sso_email,
        login_url_template=settings.SOLUSIO_LOGIN_URL_TEMPLATE,
    )
    with solusio_client(max_attempts=1) as client:
        return probe.probe(client, options, cheap_only=cheap_only)


def _check_shapes() -> Finding:
    """The probe's cheap part: do settings, users, plans and limit groups carry what the
    bridge reads?"""
    step = "API shapes (probe)"
    reports = run_probe(cheap_only=True)
    bad = [r for r in reports if not r.ok or r.needed_missing]
    if bad:
        return Finding(
            step,
            False,
            "; ".join(f"{r.endpoint.name}: {_shape_problem(r)}" for r in bad),
            "run `manage.py solusio_probe` for field-by-field detail and the settings to change",
        )
    names = ", ".join(r.endpoint.name for r in reports)
    return Finding(step, True, f"{names} carry every field the bridge reads")


def _shape_problem(report: probe.EndpointReport) -> str:
    if report.error or report.parse_error:
        return report.error or report.parse_error
    return "missing " + ", ".join(report.needed_missing)


def run(*, fix: bool = False) -> list[Finding]:
    findings = _run_once()
    if fix and any(not f.ok and f.fixable for f in findings):
        written = _fix(findings)
        findings = [*_run_once(), *written]
    return findings


def _run_once() -> list[Finding]:
    api, remote = _check_api()
    if remote is None:
        return [api]
    checks: list[Callable[[], Finding]] = [
        lambda: _check_registration(remote),
        lambda: _check_billing(remote),
        _check_limit_group,
        _check_plans,
        _check_shapes,
    ]
    return [api, *(check() for check in checks)]


def _fix(findings: list[Finding]) -> list[Finding]:
    """Apply the fixable findings; returns what the writes left, as read back."""
    failing = {f.step for f in findings if not f.ok and f.fixable}
    reports: list[Finding] = []
    patch: dict[str, object] = {}
    if "registration disabled (Step 4)" in failing:
        patch["features"] = {"allow_registration": False}
    if "billing integration (Step 7)" in failing:
        patch["billing_integration"] = billing_written()
    if patch:
        try:
            with solusio_client() as client:
                client.patch_settings(patch)
                if "billing_integration" in patch:
                    reports.append(billing_kept(client.get_settings()))
        except SolusIOError as exc:
            # A SolusIO that refuses a type it does not know may answer 422: say so, plainly.
            reports.append(
                Finding(
                    "settings written (--fix)",
                    False,
                    f"SolusIO refused the settings change: {exc}",
                    "check SOLUSIO_BILLING_INTEGRATION_TYPE / SOLUSIO_BILLING_DRIVER against "
                    "what SolusIO's UI offers",
                )
            )
    if "default limit group (Step 5)" in failing:
        groups = user_services.mirror_limit_groups()
        default = next((g for g in groups if g.name.lower() == "default"), None)
        if default is not None:
            user_services.set_default_limit_group(limit_group=LimitGroup.objects.get(pk=default.pk))
    if "plan prices (Step 3)" in failing:
        try:
            plan_sync.mirror_plans()
            plan_sync.push_plan_prices()
        except SolusIOError as exc:
            reports.append(Finding("plan prices pushed (--fix)", False, str(exc)))
    return reports
