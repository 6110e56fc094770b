"""PayPal settings, read from the environment. A malformed value is a ConfigError naming the variable."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from storebridge.config import read_settings
from storebridge.providers.plugin import ProviderSettings

__all__ = ["PayPalSettings", "load_paypal_settings", "API_BASES"]

API_BASES = {"sandbox": "https://api-m.sandbox.paypal.com", "live": "https://api-m.paypal.com"}


class PayPalSettings(ProviderSettings):
    enabled: bool = Field(True, validation_alias="PAYPAL_ENABLED")
    client_id: str | None = Field(None, validation_alias="PAYPAL_CLIENT_ID")
    client_secret: SecretStr | None = Field(None, validation_alias="PAYPAL_CLIENT_SECRET")
    environment: Literal["sandbox", "live"] = Field("sandbox", validation_alias="PAYPAL_ENVIRONMENT")
    webhook_id: str | None = Field(None, validation_alias="PAYPAL_WEBHOOK_ID")
    verify_mode: Literal["offline", "api"] = Field("offline", validation_alias="PAYPAL_VERIFY_MODE")
    webhook_tolerance_seconds: int = Field(300, ge=0, validation_alias="PAYPAL_WEBHOOK_TOLERANCE")
    api_base: str | None = Field(None, validation_alias="PAYPAL_API_BASE")

    @model_validator(mode="after")
    def _credentials_come_together(self) -> PayPalSettings:
        if self.client_id == "":
            self.client_id = None
        if self.client_secret is not None and self.client_secret.get_secret_value() == "":
            self.client_secret = None
        if not self.enabled:
            return self
        if self.client_id is not None and self.client_secret is None:
            raise ValueError("PAYPAL_CLIENT_SECRET is required when PAYPAL_CLIENT_ID is set")
        if self.client_id is None and self.client_secret is not None:
            raise ValueError("PAYPAL_CLIENT_ID is required when PAYPAL_CLIENT_SECRET is set")
        if self.client_id is not None and not self.webhook_id:
            raise ValueError(
                "PAYPAL_WEBHOOK_ID is required when PAYPAL_CLIENT_ID is set: copy the webhook's id "
                "from the PayPal developer dashboard (it is part of what PayPal signs)"
            )
        return self

    @property
    def sandbox(self) -> bool:
        """True when no credentials are set: PayPal calls go to the built-in emulator."""
        return self.client_id is None

    @property
    def base_url(self) -> str:
        return (self.api_base or API_BASES[self.environment]).rstrip("/")


def load_paypal_settings() -> PayPalSettings:
    """Read PAYPAL_* from the environment; raise ConfigError naming each bad variable (never its value)."""
    return read_settings(PayPalSettings, what="PAYPAL settings")
