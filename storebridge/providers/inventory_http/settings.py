"""Inventory settings, read from the environment with the guide's names; ConfigError names the variable."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from storebridge.config import read_settings
from storebridge.providers.plugin import ProviderSettings

__all__ = ["InventorySettings", "load_inventory_settings"]


class InventorySettings(ProviderSettings):
    enabled: bool = Field(True, validation_alias="INVENTORY_ENABLED")
    api_key: SecretStr | None = Field(None, validation_alias="INVENTORY_API_KEY")
    base_url: str | None = Field(None, validation_alias="INVENTORY_BASE_URL")
    store_id: str = Field("store_default", min_length=1, validation_alias="INVENTORY_STORE_ID")
    webhook_secret: SecretStr | None = Field(None, validation_alias="INVENTORY_WEBHOOK_SECRET")
    webhook_scheme: Literal["standard", "plain"] = Field("standard", validation_alias="INVENTORY_WEBHOOK_SCHEME")
    webhook_tolerance_seconds: int = Field(300, ge=0, validation_alias="INVENTORY_WEBHOOK_TOLERANCE")
    batch_size: int = Field(50, ge=1, le=1000, validation_alias="INVENTORY_SYNC_BATCH_SIZE")
    concurrency: int = Field(16, ge=1, le=256, validation_alias="INVENTORY_SYNC_CONCURRENCY")
    sync_retry_rounds: int = Field(2, ge=0, le=20, validation_alias="INVENTORY_SYNC_RETRY_ROUNDS")
    reservation_ttl_seconds: float = Field(1800.0, ge=0, validation_alias="INVENTORY_RESERVATION_TTL")
    default_location: str = Field("default", min_length=1, validation_alias="INVENTORY_DEFAULT_LOCATION")

    @field_validator("api_key", "webhook_secret")
    @classmethod
    def _blank_is_unset(cls, v: SecretStr | None) -> SecretStr | None:
        return None if v is None or v.get_secret_value() == "" else v

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if not v:
            return None
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _check(self) -> InventorySettings:
        if self.enabled and self.api_key is not None:
            if self.base_url is None:
                raise ValueError("INVENTORY_BASE_URL is required when INVENTORY_API_KEY is set")
            if self.webhook_secret is None:
                raise ValueError("INVENTORY_WEBHOOK_SECRET is required when INVENTORY_API_KEY is set")
        if self.webhook_secret is not None and self.webhook_scheme == "standard":
            try:
                base64.b64decode(self.webhook_secret.get_secret_value().removeprefix("whsec_"), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("INVENTORY_WEBHOOK_SECRET must be whsec_<base64> for the standard scheme") from None
        return self

    @property
    def sandbox(self) -> bool:
        return self.api_key is None


def load_inventory_settings(**values: Any) -> InventorySettings:
    """Read INVENTORY_* from the environment (or `values`); ConfigError names the variable that is wrong."""
    return read_settings(InventorySettings, **values)
