"""SMTP settings (SMTP_*), read from the environment; a bad value is a ConfigError naming it."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr

from storebridge.config import read_settings
from storebridge.errors import ConfigError
from storebridge.providers.plugin import ProviderSettings

__all__ = ["SmtpSettings", "load_smtp_settings"]


class SmtpSettings(ProviderSettings):
    host: str = Field("localhost", validation_alias="SMTP_HOST")
    port: int = Field(25, gt=0, lt=65536, validation_alias="SMTP_PORT")
    user: str | None = Field(None, validation_alias="SMTP_USER")
    password: SecretStr | None = Field(None, validation_alias="SMTP_PASSWORD")
    starttls: bool = Field(False, validation_alias="SMTP_STARTTLS")
    tls: bool = Field(False, validation_alias="SMTP_TLS")
    timeout_seconds: float = Field(30.0, gt=0, validation_alias="SMTP_TIMEOUT")


def load_smtp_settings(**overrides: Any) -> SmtpSettings:
    """Read SMTP_*; raise ConfigError naming each bad variable (never echoing a value)."""
    settings = read_settings(SmtpSettings, **overrides)
    if settings.tls and settings.starttls:
        raise ConfigError("SMTP_TLS and SMTP_STARTTLS: set one of them, not both")
    return settings
