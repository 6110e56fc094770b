"""The library example (docs/library.md, linked from the README) runs as written against the Stripe sandbox (so it
cannot drift)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from storebridge.sandbox.stripe import StripeSandbox
from tests.support.servers import serve_in_thread

LIBRARY_DOC = Path(__file__).resolve().parents[2] / "docs" / "library.md"


def library_example() -> str:
    """The first ```python block after the "# Library use" heading."""
    text = LIBRARY_DOC.read_text(encoding="utf-8")
    section = text[text.index("# Library use") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "docs/library.md's Library use section has no python block"
    return match.group(1)


def test_the_readme_library_example_runs_against_the_sandbox() -> None:
    """The block, run by a fresh interpreter with STRIPE_API_BASE at a sandbox, creates a PaymentIntent."""
    emulator = StripeSandbox(webhook_url=None, webhook_secret="whsec_unused")
    with serve_in_thread(emulator.app) as base:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "STOREBRIDGE_"))}
        env["STRIPE_API_BASE"] = base
        result = subprocess.run(
            [sys.executable, "-c", library_example()], env=env, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 0, result.stderr
    ref, status = result.stdout.split()
    assert status == "requires_payment_method" and ref in emulator.state.payment_intents
    assert emulator.state.payment_intents[ref]["amount"] == 2000
