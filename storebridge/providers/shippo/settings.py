"""Shippo settings, read from the environment; a malformed value is a ConfigError naming the variable."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from storebridge.config import read_settings
from storebridge.providers.plugin import ProviderSettings

__all__ = ["ShippoSettings", "load_shippo_settings"]

_KEY_PREFIXES = ("shippo_live_", "shippo_test_")


class ShippoSettings(ProviderSettings):
    enabled: bool = Field(True, validation_alias="SHIPPO_ENABLED")
    api_key: SecretStr | None = Field(None, validation_alias="SHIPPO_API_KEY")
    webhook_token: SecretStr | None = Field(None, validation_alias="SHIPPO_WEBHOOK_TOKEN")
    webhook_hmac_secret: SecretStr | None = Field(None, validation_alias="SHIPPO_WEBHOOK_HMAC_SECRET")
    webhook_tolerance_seconds: int = Field(300, ge=0, validation_alias="SHIPPO_WEBHOOK_TOLERANCE")
    api_base: str | None = Field(None, validation_alias="SHIPPO_API_BASE")
    carriers: str = Field("", validation_alias="SHIPPO_CARRIERS")  # carrier account object_ids, comma-separated
    label_file_type: str = Field("PDF", validation_alias="SHIPPO_LABEL_FILE_TYPE")
    from_name: str = Field("storebridge warehouse", validation_alias="SHIPPO_FROM_NAME")
    from_company: str | None = Field(None, validation_alias="SHIPPO_FROM_COMPANY")
    from_street1: str = Field("215 Clayton St.", validation_alias="SHIPPO_FROM_STREET1")
    from_street2: str | None = Field(None, validation_alias="SHIPPO_FROM_STREET2")
    from_city: str = Field("San Francisco", validation_alias="SHIPPO_FROM_CITY")
    from_state: str | None = Field("CA", validation_alias="SHIPPO_FROM_STATE")
    from_zip: str = Field("94117", validation_alias="SHIPPO_FROM_ZIP")
    from_country: str = Field("US", validation_alias="SHIPPO_FROM_COUNTRY")
    from_phone: str | None = Field(None, validation_alias="SHIPPO_FROM_PHONE")
    from_email: str | None = Field(None, validation_alias="SHIPPO_FROM_EMAIL")

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None or v.get_secret_value() == "":
            return None
        if not v.get_secret_value().startswith(_KEY_PREFIXES):
            raise ValueError("must start with 'shippo_live_' or 'shippo_test_' (an API token from the Shippo app)")
        return v

    @field_validator("webhook_token", "webhook_hmac_secret")
    @classmethod
    def _optional_secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None or v.get_secret_value() == "":
            return None
        if len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (generate one: python -c 'import secrets; ...')")
        return v

    @field_validator("label_file_type")
    @classmethod
    def _label_file_type(cls, v: str) -> str:
        if v not in ("PDF", "PDF_4x6", "PDF_4x8", "PDF_A4", "PDF_A5", "PDF_A6", "PNG", "ZPLII"):
            raise ValueError("must be a Shippo label file type such as PDF or PDF_4x6")
        return v

    @field_validator("from_country")
    @classmethod
    def _country(cls, v: str) -> str:
        if len(v) != 2 or not v.isalpha():
            raise ValueError("must be an ISO 3166-1 alpha-2 country code such as US")
        return v.upper()

    @model_validator(mode="after")
    def _real_key_needs_token(self) -> ShippoSettings:
        if self.enabled and self.api_key is not None and self.webhook_token is None:
            raise ValueError(
                "SHIPPO_WEBHOOK_TOKEN is required when SHIPPO_API_KEY is set: generate a random token and add "
                "it to the webhook URL in the Shippo app as ?token=<token>"
            )
        return self

    @property
    def sandbox(self) -> bool:
        return self.api_key is None

    @property
    def carrier_accounts(self) -> list[str]:
        return [c.strip() for c in self.carriers.split(",") if c.strip()]

    def from_address(self) -> dict[str, Any]:
        fields = ("name", "company", "street1", "street2", "city", "state", "zip", "country", "phone", "email")
        values = {f: getattr(self, f"from_{f}") for f in fields}
        return {k: v for k, v in values.items() if v is not None}


def load_shippo_settings(**values: Any) -> ShippoSettings:
    """Read SHIPPO_* from the environment (or `values`); ConfigError names the variable that is wrong."""
    return read_settings(ShippoSettings, **values)
