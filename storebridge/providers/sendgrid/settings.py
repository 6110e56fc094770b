"""SendGrid settings (SENDGRID_*), read from the environment; a bad value is a ConfigError naming it."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator

from storebridge.config import read_settings
from storebridge.providers.plugin import ProviderSettings

__all__ = ["SendGridSettings", "load_sendgrid_settings"]


class SendGridSettings(ProviderSettings):
    enabled: bool = Field(True, validation_alias="SENDGRID_ENABLED")
    api_key: SecretStr | None = Field(None, validation_alias="SENDGRID_API_KEY")
    api_base: str | None = Field(None, validation_alias="SENDGRID_API_BASE")
    order_confirmation_template: str | None = Field(None, validation_alias="SENDGRID_ORDER_CONFIRMATION_TEMPLATE")
    shipping_template: str | None = Field(None, validation_alias="SENDGRID_SHIPPING_TEMPLATE")
    refund_template: str | None = Field(None, validation_alias="SENDGRID_REFUND_TEMPLATE")
    webhook_public_key: SecretStr | None = Field(None, validation_alias="SENDGRID_WEBHOOK_PUBLIC_KEY")
    webhook_tolerance_seconds: int = Field(300, ge=0, validation_alias="SENDGRID_WEBHOOK_TOLERANCE")

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None or v.get_secret_value() == "":
            return None
        if not v.get_secret_value().startswith("SG."):
            raise ValueError("must start with 'SG.' (an API key from the SendGrid console)")
        return v

    @property
    def sandbox(self) -> bool:
        """True when no API key is set: mail goes to the built-in emulator."""
        return self.api_key is None


def load_sendgrid_settings(**overrides: Any) -> SendGridSettings:
    """Read SENDGRID_*; raise ConfigError naming each bad variable (never echoing a value)."""
    return read_settings(SendGridSettings, **overrides)
