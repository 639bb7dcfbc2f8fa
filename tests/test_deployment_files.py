"""The files that start the daemon stay consistent with the code they start."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


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
        if not name.startswith("GUNICORN_"):
            assert f'"{name}"' in settings_source, f"{name} is not read by bridge/settings.py"


def test_procfile_and_ci_use_the_readme_commands() -> None:
    procfile = (ROOT / "Procfile").read_text()
    for process in ("web:", "worker:", "beat:"):
        assert process in procfile
    readme = (ROOT / "README.md").read_text()
    assert "bin/run" in readme
    assert "bin/test" in readme
    assert "bin/test" in (ROOT / ".ci" / "run").read_text()
