"""What the storebridge command prints: the hub's own start-up lines, help without type names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from storebridge.cli import command
from tests.e2e.test_cli import _serving

ROOT = Path(__file__).resolve().parents[2]
TYPE_NAMES = re.compile(r"<(str|int|float|bool|path|text|integer|boolean)>", re.I)


def _leaves(cmd: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    commands = getattr(cmd, "commands", None)
    if not commands:
        return [path]
    return [path] + [leaf for name, sub in commands.items() for leaf in _leaves(sub, (*path, name))]


def test_help_names_no_python_types(capsys: pytest.CaptureFixture[str]) -> None:
    """Every command's --help explains its options without `<str>`, `<int>`, `<float>` or `<bool>`."""
    root = command()
    paths = _leaves(root)
    assert ("webhooks", "show") in paths and ("serve",) in paths
    for path in paths:
        try:
            root([*path, "--help"], prog_name="storebridge", standalone_mode=False)
        except SystemExit:
            pass
        shown = capsys.readouterr().out
        assert "--help" in shown, path
        assert not TYPE_NAMES.search(shown), (path, TYPE_NAMES.findall(shown))


def test_serve_opens_with_its_own_lines_and_the_console_address(tmp_path: Path) -> None:
    """serve prints the token, each provider's mode once (no log line repeats it) and where the console is."""
    with _serving(tmp_path) as (base, _token, proc):
        pass  # it answered /healthz; leaving the block stops it
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    assert f"console at {base}/admin (sign in with the API token)" in out
    assert re.search(r"stripe\s+sandbox\s+webhooks at", out)
    assert "provider_in_sandbox" not in out + err


def test_make_serve_and_demo_hide_the_installers_output() -> None:
    """`make serve`/`make demo`: pip's and setuptools' output goes to a log (shown if the install fails)
    and make echoes no command, so the hub's lines come first."""
    makefile = (ROOT / "Makefile").read_text()
    installed = re.search(r"^\$\(VENV\)/\.installed:.*?\n((?:\t.*\n)+)", makefile, re.M)
    assert installed is not None
    for line in installed.group(1).splitlines():
        assert line.startswith("\t@"), line
        if "pip install" in line:
            assert line.endswith("$(QUIET_INSTALL)"), line
    assert "QUIET_INSTALL = >>$(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }" in makefile
    for target in ("serve", "demo"):
        recipe = re.search(rf"^{target}: .*\n\t(.*)\n", makefile, re.M)
        assert recipe is not None and recipe.group(1).startswith("@$(BIN)/storebridge"), target
