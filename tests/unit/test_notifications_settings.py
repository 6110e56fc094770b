"""E-mail settings: prefixes, conflicts and defaults, with errors that name the variable."""

from __future__ import annotations

import pytest

from storebridge.bootstrap import bootstrap
from storebridge.config import Settings
from storebridge.errors import ConfigError
from storebridge.notifications.settings import load_notification_settings
from storebridge.providers.sendgrid.settings import load_sendgrid_settings
from storebridge.providers.smtp.settings import load_smtp_settings


def test_defaults_point_at_the_sendgrid_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without SENDGRID_API_KEY, SendGrid is enabled in sandbox mode with the en locale."""
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    cfg, sendgrid = load_notification_settings(), load_sendgrid_settings()
    assert cfg.provider == "sendgrid" and sendgrid.enabled and sendgrid.sandbox and cfg.locale == "en"


def test_api_key_needs_the_sg_prefix_and_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key without SG. stops start-up naming SENDGRID_API_KEY, without printing the value."""
    monkeypatch.setenv("SENDGRID_API_KEY", "sk_secret_value")
    with pytest.raises(ConfigError) as exc:
        load_sendgrid_settings()
    assert "SENDGRID_API_KEY" in str(exc.value) and "sk_secret_value" not in str(exc.value)
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.abc")
    assert not load_sendgrid_settings().sandbox


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"SMTP_PORT": "0"}, "SMTP_PORT"),
        ({"NOTIFICATIONS_PROVIDER": "mailgun"}, "NOTIFICATIONS_PROVIDER"),
        ({"DEFAULT_FROM_EMAIL": "nobody"}, "DEFAULT_FROM_EMAIL"),
        ({"NOTIFICATIONS_LOCALE": "xx_NOPE"}, "NOTIFICATIONS_LOCALE"),
        ({"SMTP_TLS": "true", "SMTP_STARTTLS": "true"}, "SMTP_STARTTLS"),
    ],
)
def test_bad_values_name_their_variable(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], name: str) -> None:
    """Each malformed setting is a ConfigError that names it (read where the hub reads it: building the hub)."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("NOTIFICATIONS_PROVIDER", env.get("NOTIFICATIONS_PROVIDER", "smtp"))
    with pytest.raises(ConfigError) as exc:
        bootstrap(Settings(database_url="sqlite:///:memory:"))
    assert name in str(exc.value)


def test_each_settings_model_names_its_own_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """SMTP_* are the smtp provider's settings, DEFAULT_FROM_EMAIL the capability's."""
    monkeypatch.setenv("SMTP_PORT", "0")
    with pytest.raises(ConfigError, match="SMTP_PORT"):
        load_smtp_settings()
    monkeypatch.setenv("DEFAULT_FROM_EMAIL", "nobody")
    with pytest.raises(ConfigError, match="DEFAULT_FROM_EMAIL"):
        load_notification_settings()
