"""The SMTP adapter against a local aiosmtpd server, and a hub sending through SMTP while the server is down."""

from __future__ import annotations

import asyncio
import email
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from storebridge.embedded import free_port
from storebridge.notifications.provider import MailUnavailable, OutgoingMail
from storebridge.providers.smtp.adapter import SmtpMailer
from tests.support.hub import make_settings, running_hub, wait_for


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        message = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append((envelope, message))
        return "250 Message accepted for delivery"


def _authenticate(server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == b"shop" and data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _mail(**overrides: Any) -> OutgoingMail:
    values: dict[str, Any] = {
        "notification_id": "ntf_1",
        "order_id": "ord_1",
        "kind": "order_confirmation",
        "to": "ada@example.com",
        "from_email": "orders@shop.example",
        "from_name": "Shop",
        "subject": "Order confirmation: ord_1",
        "html": "<h1>Thank you</h1><p>¥2,000</p>",
        "text": "Thank you\n¥2,000\n",
        **overrides,
    }
    return OutgoingMail(**values)


def test_sends_multipart_text_and_html(smtp_server: tuple[Inbox, int]) -> None:
    """A message arrives as multipart/alternative with a text and an HTML part and our Message-ID."""
    inbox, port = smtp_server
    sent = asyncio.run(SmtpMailer(host="127.0.0.1", port=port).send(_mail()))
    [(envelope, message)] = inbox.messages
    assert envelope.rcpt_tos == ["ada@example.com"] and envelope.mail_from == "orders@shop.example"
    assert message["Message-ID"] == sent.message_id and message["Subject"] == "Order confirmation: ord_1"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and "¥2,000" in text.get_content()
    assert html is not None and "<h1>Thank you</h1>" in html.get_content()


def test_authenticates_with_user_and_password() -> None:
    """SMTP_USER / SMTP_PASSWORD log in before sending."""
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=_authenticate, auth_require_tls=False)
    controller.start()
    try:
        asyncio.run(SmtpMailer(host="127.0.0.1", port=port, username="shop", password="s3cret").send(_mail()))
        assert len(inbox.messages) == 1
    finally:
        controller.stop()


def test_server_down_is_a_retryable_error() -> None:
    """No server listening: the adapter raises MailUnavailable (the service retries it)."""
    with pytest.raises(MailUnavailable):
        asyncio.run(SmtpMailer(host="127.0.0.1", port=free_port(), timeout=2).send(_mail()))


def test_hub_retries_until_the_smtp_server_is_up(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With NOTIFICATIONS_PROVIDER=smtp and the server down, the confirmation retries and is sent once it is up."""
    port = free_port()
    monkeypatch.setenv("NOTIFICATIONS_PROVIDER", "smtp")
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(port))
    monkeypatch.setenv("DEFAULT_FROM_EMAIL", "orders@shop.example")
    with running_hub(make_settings(db_url)) as hub:
        assert "sendgrid" not in hub.hub.webhook_sources
        order = hub.place_order()
        payment = hub.pay(order["id"], payment_method="pm_card_visa")
        hub.client.post(f"/payments/{payment['id']}/confirm").raise_for_status()

        def notification() -> dict[str, Any]:
            rows = hub.client.get(f"/orders/{order['id']}/notifications").json()["data"]
            return dict(rows[0]) if rows else {}

        failed: dict[str, Any] = wait_for(
            lambda: notification() if notification().get("attempts", 0) >= 2 else {}, what="failed attempts"
        )
        assert failed["status"] == "pending" and "could not deliver" in failed["last_error"]
        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            sent: dict[str, Any] = wait_for(
                lambda: notification() if notification().get("status") == "sent" else {}, what="sent"
            )
            assert sent["provider_message_id"] and sent["last_error"] is None
            assert len(inbox.messages) == 1
            body = inbox.messages[0][1].get_body(("plain",))
            assert body is not None and "$20.00" in body.get_content()
        finally:
            controller.stop()
        wait_for(lambda: hub.events_of("notification.sent", order_id=order["id"]), what="notification.sent")
