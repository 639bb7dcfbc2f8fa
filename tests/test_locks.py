"""The lock files (requirements.txt, requirements-dev.txt, compiled by bin/lock) pin, with
hashes, every package their .in files name, at the version the .in file pins."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(?:==\s*([^\s;#\\]+))?")


def normalized(name: str) -> str:
    # PEP 503: pip-compile writes names lower-case with dashes; the .in files keep PyPI's spelling.
    return re.sub(r"[-_.]+", "-", name).lower()


def direct_pins(in_file: str) -> dict[str, str | None]:
    """Package -> pinned version (None when unpinned) named by an .in file and the .in files it
    includes with -r."""
    pins: dict[str, str | None] = {}
    for line in (ROOT / in_file).read_text().splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#") or line.startswith("-c "):
            continue
        if line.startswith("-r "):
            pins.update(direct_pins(line[3:].strip()))
            continue
        match = PIN.match(line)
        assert match, f"{in_file}: cannot read {line!r}"
        pins[normalized(match[1])] = match[2]
    return pins


def locked(lock_file: str) -> dict[str, tuple[str, int]]:
    """Package -> (version, number of hashes) in a lock file."""
    entries: dict[str, tuple[str, int]] = {}
    current = ""
    for line in (ROOT / lock_file).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith((" ", "\t")):
            if "--hash=sha256:" in line and current:
                version, hashes = entries[current]
                entries[current] = (version, hashes + 1)
            continue
        match = PIN.match(line)
        assert match, f"{lock_file}: cannot read {line!r}"
        assert match[2], f"{lock_file}: {line!r} is not a name==version pin"
        current = normalized(match[1])
        entries[current] = (match[2], 0)
    return entries


@pytest.mark.parametrize(
    ("in_file", "lock_file"),
    [("requirements.in", "requirements.txt"), ("requirements-dev.in", "requirements-dev.txt")],
)
def test_the_lock_pins_every_package_its_in_file_names(in_file: str, lock_file: str) -> None:
    pins = direct_pins(in_file)
    lock = locked(lock_file)
    assert pins, f"{in_file} names no package"
    missing = sorted(set(pins) - set(lock))
    assert not missing, f"{lock_file} does not pin {missing}: run bin/lock"
    moved = {
        name: (version, lock[name][0])
        for name, version in pins.items()
        if version is not None and lock[name][0] != version
    }
    assert not moved, f"{in_file} pins differ from {lock_file} (in, lock): {moved}: run bin/lock"


@pytest.mark.parametrize("lock_file", ["requirements.txt", "requirements-dev.txt"])
def test_every_locked_package_has_hashes(lock_file: str) -> None:
    # A line added by hand (no hash) would make pip refuse the whole file in --require-hashes mode.
    unhashed = sorted(name for name, (_, hashes) in locked(lock_file).items() if hashes == 0)
    assert not unhashed, (
        f"{lock_file}: no hashes for {unhashed}: add them to the .in file, run bin/lock"
    )


def test_the_dev_lock_keeps_the_runtime_versions() -> None:
    runtime = locked("requirements.txt")
    dev = locked("requirements-dev.txt")
    assert set(runtime) <= set(dev), f"dev lock lacks {sorted(set(runtime) - set(dev))}"
    differ = {
        name: (version, dev[name][0])
        for name, (version, _) in runtime.items()
        if dev[name][0] != version
    }
    assert not differ, f"runtime and dev locks disagree (runtime, dev): {differ}: run bin/lock"


def test_the_readme_documents_the_lock_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "bin/lock" in readme
    assert (ROOT / "bin" / "lock").stat().st_mode & 0o111
