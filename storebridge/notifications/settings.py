"""Settings for transactional e-mail, read from the environment with the guide's variable names."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storebridge.config import read_settings
from storebridge.errors import ConfigError

__all__ = ["NotificationSettings", "load_notification_settings"]


class NotificationSettings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, case_sensitive=True, use_attribute_docstrings=True
    )

    provider: Literal["sendgrid", "smtp"] = Field("sendgrid", validation_alias="NOTIFICATIONS_PROVIDER")
    """`sendgrid` (without an API key: the sandbox mailbox at /_sandbox/sendgrid/messages) or `smtp`."""
    enabled: bool = Field(True, validation_alias="SENDGRID_ENABLED")
    """`false`: no e-mail through SendGrid (and no SendGrid sandbox)."""
    api_key: SecretStr | None = Field(None, validation_alias="SENDGRID_API_KEY")
    """`SG.…` from the SendGrid console. Unset: mail goes to the built-in sandbox."""
    api_base: str | None = Field(None, validation_alias="SENDGRID_API_BASE")
    """Point the adapter at another API base. Unset: SendGrid's own (or the mounted sandbox without a key)."""
    from_email: str = Field("orders@storebridge.local", validation_alias="DEFAULT_FROM_EMAIL")
    """The sender address of every e-mail."""
    from_name: str | None = Field(None, validation_alias="DEFAULT_FROM_NAME")
    """The sender's display name."""
    order_confirmation_template: str | None = Field(None, validation_alias="SENDGRID_ORDER_CONFIRMATION_TEMPLATE")
    """A SendGrid dynamic template id for the order confirmation. Unset: the built-in template."""
    shipping_template: str | None = Field(None, validation_alias="SENDGRID_SHIPPING_TEMPLATE")
    """A SendGrid dynamic template id for the shipping notice. Unset: the built-in template."""
    refund_template: str | None = Field(None, validation_alias="SENDGRID_REFUND_TEMPLATE")
    """A SendGrid dynamic template id for the refund notice. Unset: the built-in template."""
    webhook_public_key: SecretStr | None = Field(None, validation_alias="SENDGRID_WEBHOOK_PUBLIC_KEY")
    """The Event Webhook's ECDSA verification key; POST /webhooks/sendgrid then records delivered, bounce, dropped,
    deferred and spam reports."""
    webhook_tolerance_seconds: int = Field(300, ge=0, validation_alias="SENDGRID_WEBHOOK_TOLERANCE")
    """Seconds an Event Webhook's timestamp may be off."""
    smtp_host: str = Field("localhost", validation_alias="SMTP_HOST")
    """SMTP server (NOTIFICATIONS_PROVIDER=smtp)."""
    smtp_port: int = Field(25, gt=0, lt=65536, validation_alias="SMTP_PORT")
    """SMTP server port."""
    smtp_user: str | None = Field(None, validation_alias="SMTP_USER")
    """SMTP login. Unset: no authentication."""
    smtp_password: SecretStr | None = Field(None, validation_alias="SMTP_PASSWORD")
    """SMTP password."""
    smtp_starttls: bool = Field(False, validation_alias="SMTP_STARTTLS")
    """Upgrade the connection with STARTTLS (set this or SMTP_TLS, not both)."""
    smtp_tls: bool = Field(False, validation_alias="SMTP_TLS")
    """Connect over TLS from the start (implicit TLS, usually port 465)."""
    smtp_timeout_seconds: float = Field(30.0, gt=0, validation_alias="SMTP_TIMEOUT")
    """Timeout of an SMTP exchange."""
    templates_dir: str | None = Field(None, validation_alias="NOTIFICATIONS_TEMPLATES_DIR")
    """A folder of Jinja2 templates (HTML and text) that override the built-in ones in
    storebridge/notifications/templates/."""
    locale: str = Field("en", validation_alias="NOTIFICATIONS_LOCALE")
    """Locale for amounts in e-mails (Babel; always exactly the currency's ISO digits), e.g. `en`, `en_US`, `de_DE`."""
    max_attempts: int = Field(8, ge=1, validation_alias="NOTIFICATIONS_MAX_ATTEMPTS")
    """Send attempts per e-mail before it is failed."""

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
