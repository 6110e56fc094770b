"""Settings for transactional e-mail, read from the environment with the guide's variable names."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storebridge.config import read_settings
from storebridge.errors import ConfigError

__all__ = ["NotificationSettings", "load_notification_settings"]


class NotificationSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, case_sensitive=True)

    provider: Literal["sendgrid", "smtp"] = Field("sendgrid", validation_alias="NOTIFICATIONS_PROVIDER")
    enabled: bool = Field(True, validation_alias="SENDGRID_ENABLED")
    api_key: SecretStr | None = Field(None, validation_alias="SENDGRID_API_KEY")
    api_base: str | None = Field(None, validation_alias="SENDGRID_API_BASE")
    from_email: str = Field("orders@storebridge.local", validation_alias="DEFAULT_FROM_EMAIL")
    from_name: str | None = Field(None, validation_alias="DEFAULT_FROM_NAME")
    order_confirmation_template: str | None = Field(None, validation_alias="SENDGRID_ORDER_CONFIRMATION_TEMPLATE")
    shipping_template: str | None = Field(None, validation_alias="SENDGRID_SHIPPING_TEMPLATE")
    refund_template: str | None = Field(None, validation_alias="SENDGRID_REFUND_TEMPLATE")
    webhook_public_key: SecretStr | None = Field(None, validation_alias="SENDGRID_WEBHOOK_PUBLIC_KEY")
    webhook_tolerance_seconds: int = Field(300, ge=0, validation_alias="SENDGRID_WEBHOOK_TOLERANCE")
    smtp_host: str = Field("localhost", validation_alias="SMTP_HOST")
    smtp_port: int = Field(25, gt=0, lt=65536, validation_alias="SMTP_PORT")
    smtp_user: str | None = Field(None, validation_alias="SMTP_USER")
    smtp_password: SecretStr | None = Field(None, validation_alias="SMTP_PASSWORD")
    smtp_starttls: bool = Field(False, validation_alias="SMTP_STARTTLS")
    smtp_tls: bool = Field(False, validation_alias="SMTP_TLS")
    smtp_timeout_seconds: float = Field(30.0, gt=0, validation_alias="SMTP_TIMEOUT")
    templates_dir: str | None = Field(None, validation_alias="NOTIFICATIONS_TEMPLATES_DIR")
    locale: str = Field("en", validation_alias="NOTIFICATIONS_LOCALE")
    max_attempts: int = Field(8, ge=1, validation_alias="NOTIFICATIONS_MAX_ATTEMPTS")

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None or v.get_secret_value() == "":
            return None
        if not v.get_secret_value().startswith("SG."):
            raise ValueError("must start with 'SG.' (an API key from the SendGrid console)")
        return v

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

    @property
    def sandbox(self) -> bool:
        """True when SendGrid is the provider and no API key is set: mail goes to the built-in emulator."""
        return self.api_key is None


def load_notification_settings(**overrides: Any) -> NotificationSettings:
    """Read the e-mail settings; raise ConfigError naming each bad variable (never echoing a value)."""
    settings = read_settings(NotificationSettings, **overrides)
    if settings.smtp_tls and settings.smtp_starttls:
        raise ConfigError("SMTP_TLS and SMTP_STARTTLS: set one of them, not both")
    return settings
