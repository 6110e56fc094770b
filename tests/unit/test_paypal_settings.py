"""PayPal settings: sandbox by default, environments pick the API host, malformed values name the variable."""

from __future__ import annotations

import pytest

from storebridge.errors import ConfigError
from storebridge.providers.paypal.settings import load_paypal_settings

_NAMES = (
    "PAYPAL_ENABLED",
    "PAYPAL_CLIENT_ID",
    "PAYPAL_CLIENT_SECRET",
    "PAYPAL_ENVIRONMENT",
    "PAYPAL_WEBHOOK_ID",
    "PAYPAL_VERIFY_MODE",
    "PAYPAL_API_BASE",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _NAMES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_enabled_sandbox_with_offline_verification() -> None:
    """No settings: PayPal is enabled, talks to its sandbox and verifies webhooks offline."""
    cfg = load_paypal_settings()
    assert cfg.enabled and cfg.sandbox and cfg.verify_mode == "offline"
    assert cfg.base_url == "https://api-m.sandbox.paypal.com"


def test_live_environment_picks_the_live_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """PAYPAL_ENVIRONMENT=live with credentials points at api-m.paypal.com."""
    monkeypatch.setenv("PAYPAL_CLIENT_ID", "AbC")
    monkeypatch.setenv("PAYPAL_CLIENT_SECRET", "s3cret-value")
    monkeypatch.setenv("PAYPAL_WEBHOOK_ID", "8PT597110X687430LKGECATA")
    monkeypatch.setenv("PAYPAL_ENVIRONMENT", "live")
    cfg = load_paypal_settings()
    assert not cfg.sandbox and cfg.base_url == "https://api-m.paypal.com"


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("PAYPAL_ENVIRONMENT", "production", "PAYPAL_ENVIRONMENT"),
        ("PAYPAL_VERIFY_MODE", "trust-me", "PAYPAL_VERIFY_MODE"),
        ("PAYPAL_ENABLED", "perhaps", "PAYPAL_ENABLED"),
    ],
)
def test_malformed_values_are_config_errors_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, named: str
) -> None:
    """A malformed value stops start-up with a ConfigError that names the variable."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=named):
        load_paypal_settings()


def test_credentials_without_webhook_id_or_secret_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client id needs its secret and the webhook id; the secret never appears in the message."""
    monkeypatch.setenv("PAYPAL_CLIENT_ID", "AbC")
    with pytest.raises(ConfigError, match="PAYPAL_CLIENT_SECRET"):
        load_paypal_settings()
    monkeypatch.setenv("PAYPAL_CLIENT_SECRET", "s3cret-value")
    with pytest.raises(ConfigError, match="PAYPAL_WEBHOOK_ID") as caught:
        load_paypal_settings()
    assert "s3cret-value" not in str(caught.value)


def test_disabled_paypal_needs_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    """PAYPAL_ENABLED=false with a half-set configuration is accepted."""
    monkeypatch.setenv("PAYPAL_ENABLED", "false")
    monkeypatch.setenv("PAYPAL_CLIENT_ID", "AbC")
    assert not load_paypal_settings().enabled
