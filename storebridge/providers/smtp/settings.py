"""SMTP settings (SMTP_*), read from the environment; a bad value is a ConfigError naming it."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, model_validator

from storebridge.config import read_settings
from storebridge.providers.plugin import ProviderSettings

__all__ = ["SmtpSettings", "load_smtp_settings"]


class SmtpSettings(ProviderSettings):
    host: str = Field("localhost", validation_alias="SMTP_HOST")
    """SMTP server (NOTIFICATIONS_PROVIDER=smtp)."""
    port: int = Field(25, gt=0, lt=65536, validation_alias="SMTP_PORT")
    """SMTP server port."""
    user: str | None = Field(None, validation_alias="SMTP_USER")
    """SMTP login. Unset: no authentication."""
    password: SecretStr | None = Field(None, validation_alias="SMTP_PASSWORD")
    """SMTP password."""
    starttls: bool = Field(False, validation_alias="SMTP_STARTTLS")
    """Upgrade the connection with STARTTLS (set this or SMTP_TLS, not both)."""
    tls: bool = Field(False, validation_alias="SMTP_TLS")
    """Connect over TLS from the start (implicit TLS, usually port 465)."""
    timeout_seconds: float = Field(30.0, gt=0, validation_alias="SMTP_TIMEOUT")
    """Timeout of an SMTP exchange."""

    @model_validator(mode="after")
    def _one_kind_of_tls(self) -> SmtpSettings:
        if self.tls and self.starttls:
            raise ValueError("SMTP_TLS and SMTP_STARTTLS: set one of them, not both")
        return self


def load_smtp_settings(**overrides: Any) -> SmtpSettings:
    """Read SMTP_*; raise ConfigError naming each bad variable (never echoing a value)."""
    return read_settings(SmtpSettings, what="smtp settings", **overrides)
