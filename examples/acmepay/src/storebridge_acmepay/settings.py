"""AcmePay's settings, read from ACMEPAY_* environment variables.

AcmePay is off until ACMEPAY_ENABLED=true: `make install-dev` installs this example into every
development environment, and an installed example must change no hub that did not ask for it (nor
make a production hub refuse to start for want of its credentials). With no API key it talks to its
sandbox emulator, mounted on the hub at /_sandbox/acmepay (development only: in production a missing
key is a start-up error naming ACMEPAY_API_KEY).
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from storebridge.providers.plugin import ProviderSettings

__all__ = ["AcmePaySettings", "LIVE_API_BASE", "API_KEY_PREFIXES", "WEBHOOK_SECRET_PREFIX"]

LIVE_API_BASE = "https://api.acmepay.example"
API_KEY_PREFIXES = ("acme_test_", "acme_live_")
WEBHOOK_SECRET_PREFIX = "acme_whsec_"


def _blank_is_none(value: SecretStr | None) -> SecretStr | None:
    return None if value is None or value.get_secret_value() == "" else value


class AcmePaySettings(ProviderSettings):
    """ACMEPAY_*: each field names its variable (validation_alias), so an error about it names it too."""

    enabled: bool = Field(False, validation_alias="ACMEPAY_ENABLED")  # opt-in: see the module docstring
    api_key: SecretStr | None = Field(None, validation_alias="ACMEPAY_API_KEY")
    webhook_secret: SecretStr | None = Field(None, validation_alias="ACMEPAY_WEBHOOK_SECRET")
    webhook_tolerance_seconds: int = Field(300, ge=0, validation_alias="ACMEPAY_WEBHOOK_TOLERANCE")
    api_base: str | None = Field(None, validation_alias="ACMEPAY_API_BASE")

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: SecretStr | None) -> SecretStr | None:
        value = _blank_is_none(value)
        if value is not None and not value.get_secret_value().startswith(API_KEY_PREFIXES):
            raise ValueError("must start with 'acme_test_' or 'acme_live_' (the key from the AcmePay dashboard)")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        value = _blank_is_none(value)
        if value is not None and not value.get_secret_value().startswith(WEBHOOK_SECRET_PREFIX):
            raise ValueError("must start with 'acme_whsec_' (the endpoint's signing secret from the AcmePay dashboard)")
        return value

    @model_validator(mode="after")
    def _real_key_needs_webhook_secret(self) -> AcmePaySettings:
        if self.enabled and self.api_key is not None and self.webhook_secret is None:
            raise ValueError(
                "ACMEPAY_WEBHOOK_SECRET is required when ACMEPAY_API_KEY is set: copy the endpoint's "
                "signing secret (acme_whsec_...) from the AcmePay dashboard"
            )
        return self

    @property
    def sandbox(self) -> bool:
        """True when no API key is set: calls go to the built-in emulator."""
        return self.api_key is None

    @property
    def base_url(self) -> str:
        return (self.api_base or LIVE_API_BASE).rstrip("/")
