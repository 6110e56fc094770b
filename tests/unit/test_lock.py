"""The install is reproducible: requirements/*.lock pins every dependency, and this environment has
exactly the locked versions (`make test` installs from requirements/dev.lock)."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;\\]+)(?:\s*;\s*([^\\\n]+))?", re.MULTILINE)


def _pins(lock: str, *, here_only: bool = False) -> dict[str, str]:
    """name -> version; with `here_only`, only the pins whose environment marker holds on this Python."""
    text = (ROOT / "requirements" / lock).read_text()
    return {
        canonicalize_name(name): version
        for name, version, marker in _PIN.findall(text)
        if not (here_only and marker and not Marker(marker.strip()).evaluate())
    }


def _declared(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])
    return [Requirement(r) for r in names]


def test_every_locked_line_is_hashed() -> None:
    """pip installs the locks with --require-hashes: every pin carries its hashes."""
    for lock in ("main.lock", "dev.lock"):
        text = (ROOT / "requirements" / lock).read_text()
        for block in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2]):
            if "==" in block:
                assert "--hash=sha256:" in block, f"{lock}: no hash for {block.splitlines()[0]}"


def test_the_locks_pin_every_declared_dependency_within_its_range() -> None:
    """A dependency added to pyproject.toml without `make lock` fails here, as does a lock outside a range."""
    for lock, extra in (("main.lock", None), ("dev.lock", "dev")):
        pins = _pins(lock)
        for requirement in _declared(extra):
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{requirement.name} is declared but not in requirements/{lock}: run `make lock`"
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"requirements/{lock} pins {name}=={pins[name]}, outside {requirement}: run `make lock`"
            )


def test_this_environment_has_exactly_the_locked_versions() -> None:
    """What `make test` installed is what the dev lock says, package by package."""
    wrong = {}
    for name, version in _pins("dev.lock", here_only=True).items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"installed versions differ from requirements/dev.lock (locked, installed): {wrong}"
