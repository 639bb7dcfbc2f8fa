"""The files that start the daemon stay consistent with the code they start."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# What docker-compose.yml requires (`${VAR:?message}`): a production stack has no defaults
# for these.
REQUIRED = {
    "POSTGRES_PASSWORD": "pg-secret",
    "REDIS_PASSWORD": "redis-secret",
    "DJANGO_SECRET_KEY": "k" * 50,
    "BRIDGE_DOMAIN": "billing.example.net",
    "PRICING_API_TOKEN": "pricing-token",
    "METRICS_TOKEN": "metrics-token",
    "SOLUSIO_API_URL": "https://solusio.example.net/api/v1",
    "SOLUSIO_API_TOKEN": "solusio-token",
    "SOLUSIO_LOGIN_URL_TEMPLATE": "https://solusio.example.net/auth/by_token?token={token}",
    "EMAIL_URL": "smtp+tls://bridge:mail-secret@mail.example.net:587",
    "DEFAULT_FROM_EMAIL": "billing@example.net",
    "DJANGO_SUPERUSER_USERNAME": "admin",
    "DJANGO_SUPERUSER_PASSWORD": "admin-secret",
    "DJANGO_SUPERUSER_EMAIL": "admin@example.net",
}


def test_compose_runs_web_worker_beat_on_postgres_and_redis() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "web", "worker", "beat"} <= set(services)
    web = services["web"]["command"]
    assert web[:3] == ["gunicorn", "-c", "bridge/gunicorn.conf.py"]
    assert (ROOT / web[2]).is_file()
    assert services["worker"]["command"][:4] == ["celery", "-A", "bridge", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "bridge", "beat"]
    env = services["web"]["environment"]
    assert env["DATABASE_URL"].startswith("postgres://")
    assert env["REDIS_URL"].startswith("redis://")
    settings_source = (ROOT / "bridge" / "settings.py").read_text()
    for name in env:
        if not name.startswith("GUNICORN_"):  # read by bridge/gunicorn.conf.py
            assert f'"{name}"' in settings_source, f"{name} is not read by bridge/settings.py"


def test_procfile_and_ci_use_the_readme_commands() -> None:
    procfile = (ROOT / "Procfile").read_text()
    for process in ("web:", "worker:", "beat:"):
        assert process in procfile
    readme = (ROOT / "README.md").read_text()
    assert "bin/run" in readme
    assert "bin/test" in readme
    assert "bin/test" in (ROOT / ".ci" / "run").read_text()


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    docker_compose = shutil.which("docker-compose")
    if docker_compose is None:
        pytest.skip("Debian's docker-compose is not installed (bin/test installs it with apt-get)")
    return subprocess.run(
        [docker_compose, "-f", "docker-compose.yml", "config"],
        cwd=ROOT,
        # Nothing from this machine's environment fills in a variable by accident.
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_docker_compose_validates_the_production_file() -> None:
    done = compose_config(REQUIRED)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    web = services["web"]["environment"]
    assert web["DATABASE_URL"] == "postgres://bridge:pg-secret@postgres:5432/bridge"
    assert web["REDIS_URL"] == "redis://:redis-secret@redis:6379/0"
    assert web["DJANGO_CSRF_TRUSTED_ORIGINS"] == "https://billing.example.net"
    assert web["BRIDGE_PUBLIC_URL"] == "https://billing.example.net"
    assert web["EMAIL_URL"] == REQUIRED["EMAIL_URL"]
    assert services["caddy"]["environment"]["BRIDGE_DOMAIN"] == "billing.example.net"


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_docker_compose_refuses_to_start_without_each_required_variable(name: str) -> None:
    done = compose_config({k: v for k, v in REQUIRED.items() if k != name})
    assert done.returncode != 0
    assert f"set {name}" in done.stderr


def test_compose_has_no_default_for_a_secret() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    defaults = re.findall(r"\$\{(\w+):?-", text)
    secrets = [n for n in defaults if re.search("PASSWORD|SECRET|TOKEN|EMAIL|DOMAIN", n)]
    assert secrets == []


def test_caddy_terminates_tls_in_front_of_gunicorn() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    caddy = services["caddy"]
    assert caddy["image"].startswith("caddy:")
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert {"80:80", "443:443"} <= set(caddy["ports"])
    caddyfile = (ROOT / "Caddyfile").read_text()
    assert re.search(r"^\{\$BRIDGE_DOMAIN\} \{$", caddyfile, re.M)
    assert re.search(r"^\s+reverse_proxy web:8000$", caddyfile, re.M)
    # Gunicorn is reached only through the proxy.
    assert "ports" not in services["web"]
    assert services["web"]["expose"] == ["8000"]


def test_worker_scales_and_every_long_running_process_has_a_healthcheck() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    worker = services["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "inspect ping" in worker["healthcheck"]["test"][1]
    # Every replica builds a share of a month's close (usage/workflow.py).
    command = worker["command"]
    queues = command[command.index("-Q") + 1].split(",")
    assert {"celery", "close"} <= set(queues)
    readme = (ROOT / "README.md").read_text()
    assert "--scale worker=" in readme
    assert "celery -A bridge worker --loglevel INFO --concurrency 2 -Q celery,close" in readme
    assert "celerybeat-schedule" in services["beat"]["healthcheck"]["test"][1]
    for name in ("web", "postgres", "redis", "backup"):
        assert services[name]["healthcheck"]["test"], name
    # Beat and worker write their metric counts where web's /metrics reads them.
    for name in ("web", "worker", "beat"):
        assert "metrics:/var/lib/bridge-metrics" in services[name]["volumes"], name
    assert "PROMETHEUS_MULTIPROC_DIR=/var/lib/bridge-metrics" in (ROOT / "Dockerfile").read_text()


def test_one_shot_admin_bootstrap_and_database_backups() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    bootstrap = services["bootstrap"]
    assert bootstrap["command"] == ["python", "manage.py", "bootstrap_admin"]
    assert bootstrap["restart"] == "no"
    assert "DJANGO_SUPERUSER_PASSWORD" in bootstrap["environment"]
    assert (ROOT / "bridge" / "management" / "commands" / "bootstrap_admin.py").is_file()
    backup = services["backup"]
    script = backup["command"][0]
    assert "pg_dump --format=custom" in script
    assert "-delete" in script  # retention
    assert "backups:/backups" in backup["volumes"]


def test_readme_documents_the_production_settings() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in (
        "DJANGO_CSRF_TRUSTED_ORIGINS",
        "METRICS_TOKEN",
        "METRICS_INTERNAL_ONLY",
        "Caddyfile",
    ):
        assert name in readme, name
