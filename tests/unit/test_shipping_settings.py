"""Shippo settings: sandbox by default, key prefixes checked, errors that name the variable, never the secret."""

from __future__ import annotations

import pytest

from storebridge.errors import ConfigError
from storebridge.providers.shippo.settings import load_shippo_settings

_NAMES = (
    "SHIPPO_ENABLED",
    "SHIPPO_API_KEY",
    "SHIPPO_WEBHOOK_TOKEN",
    "SHIPPO_WEBHOOK_HMAC_SECRET",
    "SHIPPO_CARRIERS",
    "SHIPPO_FROM_COUNTRY",
    "SHIPPO_LABEL_FILE_TYPE",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _NAMES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_enabled_in_sandbox_with_a_from_address() -> None:
    """No settings: Shippo enabled, pointed at the sandbox, with a complete default from-address."""
    cfg = load_shippo_settings()
    assert cfg.enabled and cfg.sandbox
    assert cfg.carrier_accounts == []
    address = cfg.from_address()
    assert {"name", "street1", "city", "zip", "country"} <= set(address)


def test_live_and_test_keys_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """shippo_live_ and shippo_test_ keys are accepted with a webhook token; carriers are split on commas."""
    monkeypatch.setenv("SHIPPO_WEBHOOK_TOKEN", "a-long-enough-token-123")
    monkeypatch.setenv("SHIPPO_CARRIERS", "abc, def,")
    for key in ("shippo_live_123", "shippo_test_123"):
        monkeypatch.setenv("SHIPPO_API_KEY", key)
        cfg = load_shippo_settings()
        assert not cfg.sandbox and cfg.carrier_accounts == ["abc", "def"]


def test_wrong_key_prefix_names_the_variable_not_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key without the shippo_live_/shippo_test_ prefix is a ConfigError naming SHIPPO_API_KEY."""
    monkeypatch.setenv("SHIPPO_API_KEY", "sk_live_supersecretvalue")
    with pytest.raises(ConfigError) as info:
        load_shippo_settings()
    assert "SHIPPO_API_KEY" in str(info.value) and "supersecretvalue" not in str(info.value)


def test_real_key_needs_a_webhook_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real key without SHIPPO_WEBHOOK_TOKEN stops start-up, naming the missing variable."""
    monkeypatch.setenv("SHIPPO_API_KEY", "shippo_test_123")
    with pytest.raises(ConfigError) as info:
        load_shippo_settings()
    assert "SHIPPO_WEBHOOK_TOKEN" in str(info.value)


def test_short_token_bad_country_and_file_type_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short webhook token, a three-letter country and an unknown label type each name their variable."""
    for name, value in (
        ("SHIPPO_WEBHOOK_TOKEN", "short"),
        ("SHIPPO_WEBHOOK_HMAC_SECRET", "short"),
        ("SHIPPO_FROM_COUNTRY", "USA"),
        ("SHIPPO_LABEL_FILE_TYPE", "GIF"),
    ):
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError) as info:
            load_shippo_settings()
        assert name in str(info.value)
        monkeypatch.delenv(name)


def test_disabled_needs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """SHIPPO_ENABLED=false with a real key and no token is fine: nothing will be wired."""
    monkeypatch.setenv("SHIPPO_ENABLED", "false")
    monkeypatch.setenv("SHIPPO_API_KEY", "shippo_test_123")
    assert not load_shippo_settings().enabled
