"""The mail provider interface. Adapters (providers/sendgrid, providers/smtp) implement it; the service
sees only these types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from storebridge.errors import IntegrationError, ProviderUnavailable
from storebridge.integration import HealthStatus

__all__ = ["OutgoingMail", "SentMail", "MailProvider", "MailRejected", "MailUnavailable"]


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    """One e-mail to one recipient: rendered content, and optionally a provider template to use instead."""

    notification_id: str
    order_id: str
    kind: str
    to: str
    from_email: str
    subject: str
    html: str
    text: str
    from_name: str | None = None
    template_id: str | None = None
    template_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SentMail:
    message_id: str


class MailRejected(IntegrationError):
    """The provider refused the message (bad address, bad request, wrong key): retrying will not help."""


class MailUnavailable(ProviderUnavailable):
    """The provider could not take the message now (down, 5xx, rate limited); `retry_at` when it said so."""

    def __init__(self, provider: str, message: str, *, retry_at: float | None = None, **kw: Any) -> None:
        super().__init__(provider, message, **kw)
        self.retry_at = retry_at


@runtime_checkable
class MailProvider(Protocol):
    name: str

    @property
    def mode(self) -> str: ...

    async def send(self, mail: OutgoingMail) -> SentMail: ...

    def validate_config(self) -> list[str]: ...

    async def health_check(self) -> HealthStatus: ...

    async def aclose(self) -> None: ...
