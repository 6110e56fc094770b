"""storebridge's own errors. Provider and library errors are translated where they enter.

StorebridgeError
├── ConfigError                    a setting is missing or malformed (start-up stops)
├── NotFound                       a record we were asked about does not exist
├── InvalidRequest                 the caller's input breaks a rule (maps to 409/422)
│   └── InsufficientStock          (reserved for inventory)
├── IntegrationError               a provider answered with an error, or could not be reached
│   ├── ProviderUnavailable        connection error, timeout, 429 or 5xx: worth retrying
│   ├── PaymentDeclined            the provider refused the payment method (card_error)
│   └── ProviderRejected           the provider refused the request itself: the caller must change it (422)
└── WebhookRejected                an incoming webhook failed verification or parsing
"""

from __future__ import annotations

__all__ = [
    "StorebridgeError",
    "ConfigError",
    "NotFound",
    "InvalidRequest",
    "IntegrationError",
    "ProviderUnavailable",
    "PaymentDeclined",
    "ProviderRejected",
    "WebhookRejected",
]


class StorebridgeError(Exception):
    """Base of every error storebridge raises on purpose."""


class ConfigError(StorebridgeError):
    """A setting is missing or malformed; the message names the variable and the fix."""


class NotFound(StorebridgeError):
    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind
        self.ident = ident


class InvalidRequest(StorebridgeError):
    """The request is well-formed but breaks a rule; `status` is the HTTP status to answer.

    Without a `code` the body's code follows the status ("conflict" for 409, "invalid_request"
    otherwise), so a client can tell "not now, in this state" from "never, as sent" by code alone."""

    def __init__(
        self, message: str, *, code: str | None = None, status: int = 409, details: dict[str, object] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code or ("conflict" if status == 409 else "invalid_request")
        self.status = status
        self.details = details or {}  # extra fields of the error body (e.g. the SKU and what is available)


class IntegrationError(StorebridgeError):
    """A provider call failed. Carries what an operator needs to chase it with the provider."""

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        details: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.details = details or []

    def __str__(self) -> str:
        parts = [f"{self.provider}: {self.message}"]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.code:
            parts.append(f"code={self.code}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "message": self.message,
            "status": self.status,
            "code": self.code,
            "request_id": self.request_id,
            "details": self.details,
        }


class ProviderUnavailable(IntegrationError):
    """The provider could not answer (network, timeout, 429, 5xx). Safe calls are retried."""


class PaymentDeclined(IntegrationError):
    """The provider declined the payment method; the payment records the failure."""

    def __init__(self, provider: str, message: str, *, payment_state: object = None, **kw: object) -> None:
        super().__init__(provider, message, **kw)  # type: ignore[arg-type]
        self.payment_state = payment_state


class ProviderRejected(IntegrationError):
    """The provider refused the request itself (amount too small/large, unknown payment method,
    invalid currency): the caller must change the request. `code` carries the provider's own code."""


class WebhookRejected(StorebridgeError):
    """An incoming webhook is refused; `status` is the 4xx to answer, the message says why."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_webhook") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
