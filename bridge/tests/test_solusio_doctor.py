"""`manage.py solusio_doctor` and `manage.py check --tag solusio` on a fresh simulator:
failing, then passing after --fix."""

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from bridge.testing import run_command
from pricing.models import Plan
from solusio.testing import SimulatorInfo, running_simulator
from users.models import SolusioDefaults

pytestmark = pytest.mark.django_db
PUBLIC = "https://billing.example.com"


@pytest.fixture
def fresh(settings: Any) -> Any:
    with running_simulator(users=0) as info:
        settings.SOLUSIO_API_URL = info.url
        settings.SOLUSIO_API_TOKEN = info.token
        settings.SOLUSIO_VERIFY_TLS = False
        settings.SOLUSIO_RETRY_MAX_ATTEMPTS = 1
        settings.BRIDGE_PUBLIC_URL = PUBLIC
        settings.PRICING_API_TOKEN = "shared-secret"
        yield info


def doctor(*args: str) -> tuple[bool, str]:
    return run_command("solusio_doctor", *args)


def test_doctor_fails_on_a_fresh_solusio_then_passes_after_fix(
    fresh: SimulatorInfo, settings: Any
) -> None:
    # The price book has plan 1 at another price than SolusIO.
    Plan.objects.create(id=1, name="1 Core, 1 GB RAM", tokens_per_hour=8, tokens_per_month=5500)

    ok, out = doctor()

    assert not ok
    lines = out.strip().splitlines()
    assert len(lines) == 8
    assert lines[-1] == "CommandError: 4 of 6 checks failed"
    assert lines[0].startswith("[PASS] API (Step 8)")
    assert lines[1].startswith("[FAIL] registration disabled (Step 4)")
    assert lines[2].startswith("[FAIL] billing integration (Step 7)")
    assert lines[3].startswith("[FAIL] default limit group (Step 5)")
    assert lines[4].startswith("[FAIL] plan prices (Step 3)")
    assert "plan 1: SolusIO 7/5000, price book 8/5500" in lines[4]
    assert lines[5] == (
        "[PASS] API shapes (probe): settings, users, plans, limit groups carry every field "
        "the bridge reads"
    )
    assert "shared-secret" not in out
    settings.SOLUSIO_CHECKS_ALWAYS = True
    with pytest.raises(SystemCheckError) as failed:
        call_command("check", "--tag", "solusio", stdout=StringIO(), stderr=StringIO())
    assert "bridge.E102" in str(failed.value)

    ok, out = doctor("--fix")

    assert ok, out
    assert out.count("[PASS]") == 7
    assert (
        "[PASS] billing integration written (--fix): SolusIO kept type 'custom' and driver "
        "'whmcs' as written" in out
    )
    remote = fresh.control.simulator.state.settings  # type: ignore[union-attr]
    assert remote["features"]["allow_registration"] is False
    assert remote["billing_integration"]["type"] == "custom"
    assert remote["billing_integration"]["drivers"]["whmcs"] == {
        "url": f"{PUBLIC}/api/solusio",
        "token": "shared-secret",
    }
    assert SolusioDefaults.load().default_limit_group_id == 1
    plans = fresh.control.simulator.state.plans  # type: ignore[union-attr]
    assert (plans[1]["tokens_per_hour"], plans[1]["tokens_per_month"]) == (8, 5500)
    assert Plan.objects.count() == 7
    call_command("check", "--tag", "solusio", stdout=StringIO(), stderr=StringIO())


def test_fix_writes_the_type_and_driver_the_settings_name(
    fresh: SimulatorInfo, settings: Any
) -> None:
    settings.SOLUSIO_BILLING_INTEGRATION_TYPE = "whmcs"
    ok, out = doctor("--fix")
    assert ok, out
    assert "SolusIO kept type 'whmcs' and driver 'whmcs' as written" in out
    remote = fresh.control.simulator.state.settings  # type: ignore[union-attr]
    assert remote["billing_integration"]["type"] == "whmcs"


def test_fix_reports_a_driver_solusio_did_not_keep(fresh: SimulatorInfo, settings: Any) -> None:
    # SolusIO (and the simulator) ignore a settings key they do not know.
    settings.SOLUSIO_BILLING_DRIVER = "custom"
    ok, out = doctor("--fix")
    assert not ok
    assert (
        "[FAIL] billing integration written (--fix): wrote driver 'custom', SolusIO kept no "
        "such driver — see what SolusIO's UI offers" in out
    )
    assert "[FAIL] billing integration (Step 7): there is no driver 'custom'" in out
    assert "shared-secret" not in out


@pytest.mark.parametrize(("kept", "said"), [("whmcs", "'whmcs'"), (None, "none")])
def test_fix_reports_a_type_solusio_renamed_or_dropped(
    fresh: SimulatorInfo, kept: str | None, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SolusIO that knows no "custom" type: keeps another instead, or none at all."""
    state = fresh.control.simulator.state  # type: ignore[union-attr]
    patch_settings = state.patch_settings

    def strict(body: dict[str, Any]) -> dict[str, Any]:
        patch_settings(body)
        billing = state.settings["billing_integration"]
        if kept is None:
            billing.pop("type", None)
        else:
            billing["type"] = kept
        return state.get_settings()

    monkeypatch.setattr(state, "patch_settings", strict)
    ok, out = doctor("--fix")
    assert not ok
    assert f"wrote type 'custom', SolusIO kept {said}" in out
    assert "wrote URL" not in out  # the driver was kept as written
    assert "Traceback" not in out


def test_fix_reports_writes_solusio_refuses(fresh: SimulatorInfo) -> None:
    Plan.objects.create(id=1, name="1 Core, 1 GB RAM", tokens_per_hour=8, tokens_per_month=5500)
    fresh.control.fail_next("error", method="PATCH", path="/settings", status=422)
    fresh.control.fail_next("error", method="PUT", path="/plans/1", status=422)
    ok, out = doctor("--fix")
    assert not ok
    assert (
        "[FAIL] settings written (--fix): SolusIO refused the settings change: PATCH "
        "/settings: HTTP 422: Server Error — check SOLUSIO_BILLING_INTEGRATION_TYPE" in out
    )
    assert "[FAIL] plan prices pushed (--fix): PUT /plans/1: HTTP 422" in out
    assert "Traceback" not in out


def test_doctor_reports_a_wrong_token_and_an_unreachable_solusio(
    fresh: SimulatorInfo, settings: Any
) -> None:
    settings.SOLUSIO_API_TOKEN = "wrong"
    ok, out = doctor("--fix")
    assert not ok
    assert "[FAIL] API (Step 8): SolusIO refuses the token" in out
    settings.SOLUSIO_API_URL = "http://127.0.0.1:9/api/v1"
    ok, out = doctor()
    assert "SolusIO is not reachable" in out


def test_doctor_needs_the_bridge_public_url_for_step_7(fresh: SimulatorInfo, settings: Any) -> None:
    settings.BRIDGE_PUBLIC_URL = ""
    ok, out = doctor("--fix")
    assert not ok
    assert "BRIDGE_PUBLIC_URL is not set" in out


def test_solusio_checks_stay_out_of_plain_checks(fresh: SimulatorInfo) -> None:
    # migrate and runserver run the checks too: a SolusIO outage must not block them.
    call_command("check", stdout=StringIO(), stderr=StringIO())
    assert not fresh.control.calls()


@pytest.mark.parametrize(
    ("argv", "requested"),
    [
        (["manage.py", "check", "--tag", "solusio"], True),
        (["manage.py", "check", "-t", "solusio"], True),
        (["manage.py", "check", "--tag=solusio"], True),
        (["manage.py", "check"], False),
        (["manage.py", "migrate"], False),
        (["manage.py", "check", "--tag", "security"], False),
    ],
)
def test_the_solusio_tag_is_what_asks_for_the_live_checks(
    argv: list[str], requested: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge import checks

    monkeypatch.setattr("sys.argv", argv)
    assert checks._solusio_checks_requested() is requested
