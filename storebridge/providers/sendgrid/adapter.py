"""The SendGrid adapter on httpx: `POST /v3/mail/send`, keeping the `X-Message-Id` it answers with.

Mail Send is not idempotent, so a request is sent once per attempt (no automatic HTTP retry that
could deliver a message twice); the notification service retries with backoff. A 429 carries
`X-RateLimit-Reset` (unix seconds): the retry waits until then.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import httpx

from storebridge.errors import IntegrationError
from storebridge.integration import ExternalIntegration, HealthStatus, RetryPolicy, retry_after_seconds
from storebridge.notifications.provider import MailRejected, MailUnavailable, OutgoingMail, SentMail

__all__ = ["SendGridClient", "SENDGRID_API_BASE", "mail_send_body"]

SENDGRID_API_BASE = "https://api.sendgrid.com"


def mail_send_body(mail: OutgoingMail) -> dict[str, Any]:
    """The v3 Mail Send request for one message: a dynamic template when one is set, else our content."""
    sender: dict[str, Any] = {"email": mail.from_email}
    if mail.from_name:
        sender["name"] = mail.from_name
    # custom_args are echoed back on every Event Webhook event: how delivery events find their notification.
    # (Per-personalization: the spec types the message-level custom_args as a string.)
    personalization: dict[str, Any] = {
        "to": [{"email": mail.to}],
        "custom_args": {"notification_id": mail.notification_id, "order_id": mail.order_id},
    }
    body: dict[str, Any] = {
        "personalizations": [personalization],
        "from": sender,
        "subject": mail.subject,
        "categories": [mail.kind],
    }
    if mail.template_id:
        body["template_id"] = mail.template_id
        personalization["dynamic_template_data"] = mail.template_data
    else:
        body["content"] = [{"type": "text/plain", "value": mail.text}, {"type": "text/html", "value": mail.html}]
    return body


class SendGridClient(ExternalIntegration):
    provider: ClassVar[str] = "sendgrid"
    name = "sendgrid"

    def __init__(
        self,
        *,
        api_key: str,
        api_base: str | None = None,
        sandbox: bool = False,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url=api_base or SENDGRID_API_BASE,
            timeout=timeout,
            retry=RetryPolicy(attempts=3, wait_initial=0.2, wait_max=5.0, timeout=30.0),
            transport=transport,
            headers={"Content-Type": "application/json"},
        )
        self._api_key = api_key
        self._sandbox = sandbox

    @property
    def mode(self) -> str:
        return "sandbox" if self._sandbox else "live"

    async def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def request_id_of(self, response: httpx.Response) -> str | None:
        value = response.headers.get("x-message-id") or response.headers.get("x-request-id")
        return str(value) if value else None

    def error_from_response(self, response: httpx.Response) -> IntegrationError:
        """SendGrid errors are `{"errors": [{"message", "field", "help"}]}`; 429 says when to come back."""
        messages: list[str] = []
        field = None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("errors"), list):
            for err in body["errors"]:
                if isinstance(err, dict):
                    messages.append(str(err.get("message") or "error"))
                    field = field or err.get("field")
        message = "; ".join(messages) or response.reason_phrase or "request failed"
        kw: dict[str, Any] = {
            "status": response.status_code,
            "code": str(field) if field else None,
            "request_id": self.request_id_of(response),
            "details": messages,
        }
        if response.status_code == 429 or response.status_code >= 500:
            return MailUnavailable(self.provider, message, retry_at=_retry_at(response), **kw)
        return MailRejected(self.provider, message, **kw)

    def validate_config(self) -> list[str]:
        if not self._sandbox and not self._api_key.startswith("SG."):
            return ["SENDGRID_API_KEY must start with 'SG.'"]
        return []

    async def send(self, mail: OutgoingMail) -> SentMail:
        response = await self.request("POST", "/v3/mail/send", json=mail_send_body(mail))
        message_id = response.headers.get("x-message-id")
        if response.status_code != 202 or not message_id:
            raise MailUnavailable(
                self.provider,
                f"unexpected answer {response.status_code} without X-Message-Id",
                status=response.status_code,
            )
        return SentMail(message_id)

    async def health_check(self) -> HealthStatus:
        started = time.monotonic()
        try:
            await self.request("GET", "/v3/scopes")
        except IntegrationError as exc:
            return HealthStatus(self.provider, False, self.mode, detail=str(exc))
        return HealthStatus(self.provider, True, self.mode, latency_ms=(time.monotonic() - started) * 1000)


def _retry_at(response: httpx.Response) -> float | None:
    reset = response.headers.get("x-ratelimit-reset")
    if reset:
        try:
            return float(reset)
        except ValueError:
            pass
    wait = retry_after_seconds(response)
    return None if wait is None else time.time() + wait
