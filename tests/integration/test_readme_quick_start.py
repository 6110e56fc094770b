"""The README's quick start: the console in one step, every sandbox test payment method, what a restart keeps."""

from __future__ import annotations

from pathlib import Path

from storebridge.sandbox.stripe_objects import TEST_CARDS

README = Path(__file__).resolve().parents[2] / "README.md"


def _quick_start() -> str:
    text = README.read_text()
    start = text.index("## Quick start")
    return text[start : text.index("\n## ", start + 1)]


def test_the_quick_start_reaches_the_console_after_make_serve() -> None:
    """Right after `make serve`, the quick start gives the console's address and how to sign in."""
    quick = _quick_start()
    serve = quick.index("make serve")
    console = quick.index("http://127.0.0.1:8000/admin")
    assert serve < console < quick.index("### ")
    assert "token" in quick[console : console + 300]


def test_the_quick_start_lists_every_test_payment_method_of_the_sandbox() -> None:
    """Each test payment method and card number the Stripe sandbox knows is named in the quick start."""
    quick = _quick_start()
    missing = [method for method in TEST_CARDS if f"`{method}`" not in quick]
    assert missing == []


def test_the_quick_start_says_what_survives_a_restart() -> None:
    """The token file beside the database and the sandboxes' state kept in the database."""
    quick = _quick_start()
    assert "`<database>.token`" in quick and "What survives a restart" in quick
    assert "sandbox_state" in quick
