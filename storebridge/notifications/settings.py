"""Settings for transactional e-mail as a capability: which mail provider sends, the sender, the
templates and retries. Each mail provider's own settings (SENDGRID_*, SMTP_*) live with the provider."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storebridge.config import read_settings

__all__ = ["NotificationSettings", "load_notification_settings"]


class NotificationSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, case_sensitive=True)

    # The name of an installed mail provider plugin (sendgrid, smtp, ...); the composition root checks it.
    provider: str = Field("sendgrid", validation_alias="NOTIFICATIONS_PROVIDER")
    from_email: str = Field("orders@storebridge.local", validation_alias="DEFAULT_FROM_EMAIL")
    from_name: str | None = Field(None, validation_alias="DEFAULT_FROM_NAME")
    templates_dir: str | None = Field(None, validation_alias="NOTIFICATIONS_TEMPLATES_DIR")
    locale: str = Field("en", validation_alias="NOTIFICATIONS_LOCALE")
    max_attempts: int = Field(8, ge=1, validation_alias="NOTIFICATIONS_MAX_ATTEMPTS")

    @field_validator("provider")
    @classmethod
    def _provider(cls, v: str) -> str:
        return v.strip().lower()

    @field_validator("from_email")
    @classmethod
    def _from_email(cls, v: str) -> str:
        if "@" not in v or v != v.strip():
            raise ValueError("must be an e-mail address such as orders@example.com")
        return v

    @field_validator("locale")
    @classmethod
    def _locale(cls, v: str) -> str:
        from babel import Locale, UnknownLocaleError

        try:
            Locale.parse(v)
        except (UnknownLocaleError, ValueError):
            raise ValueError("must be a locale such as en, en_US or de_DE") from None
        return v


def load_notification_settings(**overrides: Any) -> NotificationSettings:
    """Read the e-mail settings; raise ConfigError naming each bad variable (never echoing a value)."""
    return read_settings(NotificationSettings, **overrides)
