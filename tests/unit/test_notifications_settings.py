"""E-mail settings: prefixes, conflicts and defaults, with errors that name the variable."""

from __future__ import annotations

import pytest

from storebridge.errors import ConfigError
from storebridge.notifications.settings import load_notification_settings


def test_defaults_point_at_the_sendgrid_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without SENDGRID_API_KEY, SendGrid is enabled in sandbox mode with the en locale."""
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    cfg = load_notification_settings()
    assert cfg.provider == "sendgrid" and cfg.enabled and cfg.sandbox and cfg.locale == "en"


def test_api_key_needs_the_sg_prefix_and_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key without SG. stops start-up naming SENDGRID_API_KEY, without printing the value."""
    monkeypatch.setenv("SENDGRID_API_KEY", "sk_secret_value")
    with pytest.raises(ConfigError) as exc:
        load_notification_settings()
    assert "SENDGRID_API_KEY" in str(exc.value) and "sk_secret_value" not in str(exc.value)
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.abc")
    assert not load_notification_settings().sandbox


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
    """Each malformed setting is a ConfigError that names it."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as exc:
        load_notification_settings()
    assert name in str(exc.value)
