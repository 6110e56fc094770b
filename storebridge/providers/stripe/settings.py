"""Stripe settings (STRIPE_*), read from the environment; a bad value is a ConfigError naming the variable."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from storebridge.providers.plugin import ProviderSettings

__all__ = ["StripeSettings"]


def _check_prefix(value: SecretStr | None, prefixes: tuple[str, ...], what: str) -> SecretStr | None:
    if value is None or value.get_secret_value() == "":
        return None
    if not value.get_secret_value().startswith(prefixes):
        wanted = " or ".join(f"'{p}'" for p in prefixes)
        raise ValueError(f"must start with {wanted} ({what})")
    return value


class StripeSettings(ProviderSettings):
    enabled: bool = Field(True, validation_alias="STRIPE_ENABLED")
    secret_key: SecretStr | None = Field(None, validation_alias="STRIPE_SECRET_KEY")
    publishable_key: SecretStr | None = Field(None, validation_alias="STRIPE_PUBLISHABLE_KEY")
    webhook_secret: SecretStr | None = Field(None, validation_alias="STRIPE_WEBHOOK_SECRET")
    webhook_tolerance_seconds: int = Field(300, ge=0, validation_alias="STRIPE_WEBHOOK_TOLERANCE")
    api_base: str | None = Field(None, validation_alias="STRIPE_API_BASE")
    max_network_retries: int = Field(2, ge=0, le=10, validation_alias="STRIPE_MAX_NETWORK_RETRIES")

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, v: SecretStr | None) -> SecretStr | None:
        return _check_prefix(v, ("sk_", "rk_"), "a secret or restricted key from the Stripe Dashboard")

    @field_validator("publishable_key")
    @classmethod
    def _publishable_key(cls, v: SecretStr | None) -> SecretStr | None:
        return _check_prefix(v, ("pk_",), "a publishable key from the Stripe Dashboard")

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, v: SecretStr | None) -> SecretStr | None:
        return _check_prefix(v, ("whsec_",), "the endpoint's signing secret from the Stripe Dashboard")

    @model_validator(mode="after")
    def _live_needs_webhook_secret(self) -> StripeSettings:
        if self.enabled and self.secret_key is not None and self.webhook_secret is None:
            raise ValueError(
                "STRIPE_WEBHOOK_SECRET is required when STRIPE_SECRET_KEY is set: "
                "copy the endpoint's signing secret (whsec_...) from the Stripe Dashboard"
            )
        return self

    @property
    def sandbox(self) -> bool:
        """True when no key is set: Stripe calls go to the built-in emulator."""
        return self.secret_key is None
