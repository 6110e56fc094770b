"""Settings: the guide's variable names, sandbox by default, clear errors that never echo a secret."""

from __future__ import annotations

import pytest

from storebridge.config import load_settings
from storebridge.errors import ConfigError
from storebridge.providers.stripe.plugin import plugin as stripe_plugin


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "STRIPE_ENABLED",
        "STRIPE_SECRET_KEY",
        "STRIPE_PUBLISHABLE_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "STOREBRIDGE_DATABASE_URL",
        "STOREBRIDGE_LOG_LEVEL",
        "STOREBRIDGE_API_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_embedded_hub_with_stripe_in_sandbox() -> None:
    """No settings at all: SQLite at ./storebridge.db and Stripe enabled against its sandbox."""
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///./storebridge.db"
    stripe = stripe_plugin.read_settings()
    assert stripe.enabled and stripe.sandbox


def test_stripe_key_without_sk_prefix_stops_start_up_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Stripe key that does not start sk_/rk_ is refused; the message names STRIPE_SECRET_KEY, not the value."""
    monkeypatch.setenv("STRIPE_SECRET_KEY", "pk_live_supersecretvalue")
    with pytest.raises(ConfigError) as info:
        stripe_plugin.read_settings()
    assert "STRIPE_SECRET_KEY" in str(info.value)
    assert "supersecretvalue" not in str(info.value)


def test_webhook_secret_without_whsec_prefix_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A webhook secret that does not start whsec_ is refused, naming STRIPE_WEBHOOK_SECRET."""
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "hunter2hunter2")
    with pytest.raises(ConfigError) as info:
        stripe_plugin.read_settings()
    assert "STRIPE_WEBHOOK_SECRET" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_real_key_without_webhook_secret_is_a_missing_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real Stripe (a key is set) needs STRIPE_WEBHOOK_SECRET too; the error says where to get it."""
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_abcdef123456")
    with pytest.raises(ConfigError) as info:
        stripe_plugin.read_settings()
    assert "STRIPE_WEBHOOK_SECRET is required" in str(info.value)
    assert "sk_test_abcdef123456" not in str(info.value)


def test_real_key_and_secret_select_test_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a key and a webhook secret, Stripe is no longer in sandbox mode and secrets stay hidden in repr."""
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_abcdef123456")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_abc123")
    settings = stripe_plugin.read_settings()
    assert not settings.sandbox
    assert "sk_test_abcdef123456" not in repr(settings)
    assert "whsec_abc123" not in repr(settings)


def test_database_urls_are_mapped_to_async_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    """postgres:// and sqlite:/// URLs are accepted and mapped to asyncpg / aiosqlite; others are refused."""
    monkeypatch.setenv("STOREBRIDGE_DATABASE_URL", "postgres://u@h/db")
    assert load_settings().database_url == "postgresql+asyncpg://u@h/db"
    monkeypatch.setenv("STOREBRIDGE_DATABASE_URL", "mysql://u@h/db")
    with pytest.raises(ConfigError, match="STOREBRIDGE_DATABASE_URL"):
        load_settings()


def test_bad_log_level_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """STOREBRIDGE_LOG_LEVEL must be a real level."""
    monkeypatch.setenv("STOREBRIDGE_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError, match="STOREBRIDGE_LOG_LEVEL"):
        load_settings()


def test_stripe_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """STRIPE_ENABLED=false turns Stripe off."""
    monkeypatch.setenv("STRIPE_ENABLED", "false")
    assert not stripe_plugin.read_settings().enabled


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STOREBRIDGE_HTTP_HEADER_TIMEOUT", "0"),
        ("STOREBRIDGE_HTTP_BODY_TIMEOUT", "soon"),
        ("STOREBRIDGE_HTTP_MAX_HEADER_BYTES", "100"),
        ("STOREBRIDGE_HTTP_MAX_CONNECTIONS", "0"),
        ("STOREBRIDGE_TRUSTED_PROXIES", "10.0.0.5,proxy.internal"),
    ],
)
def test_bad_http_limits_and_proxies_stop_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """The HTTP server's timeouts, caps and trusted proxies are checked at start-up."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert name in str(info.value)


def test_http_limits_default_and_trusted_proxies_are_read_as_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults: 20 s for a head and between body reads, 64 KiB heads, 2048 connections, no proxy."""
    settings = load_settings()
    assert (settings.http_header_timeout_seconds, settings.http_body_timeout_seconds) == (20.0, 20.0)
    assert (settings.http_max_header_bytes, settings.http_max_connections) == (64 * 1024, 2048)
    assert settings.trusted_proxy_list == []
    monkeypatch.setenv("STOREBRIDGE_TRUSTED_PROXIES", " 10.0.0.5, 10.1.0.0/16 ")
    assert load_settings().trusted_proxy_list == ["10.0.0.5", "10.1.0.0/16"]
