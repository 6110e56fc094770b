"""The SMTP adapter on aiosmtplib: multipart/alternative (text + HTML) for any relay, with STARTTLS/TLS and auth."""

from __future__ import annotations

import time
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

import aiosmtplib

from storebridge.integration import HealthStatus
from storebridge.notifications.provider import MailRejected, MailUnavailable, OutgoingMail, SentMail

__all__ = ["SmtpMailer", "build_message"]


def build_message(mail: OutgoingMail) -> EmailMessage:
    """A MIME message with a text part and an HTML alternative, and a fresh Message-ID."""
    message = EmailMessage()
    domain = mail.from_email.rpartition("@")[2] or None
    message["Message-ID"] = make_msgid(idstring=mail.notification_id, domain=domain)
    message["Date"] = formatdate(localtime=False)
    message["From"] = formataddr((mail.from_name or "", mail.from_email))
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["X-Storebridge-Notification"] = mail.notification_id
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message


class SmtpMailer:
    name = "smtp"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        use_tls: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.starttls = starttls
        self.use_tls = use_tls
        self.timeout = timeout

    @property
    def mode(self) -> str:
        return "live"

    def _options(self) -> dict[str, object]:
        return {
            "hostname": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "use_tls": self.use_tls,
            # False means "never"; None lets aiosmtplib upgrade when the server offers it.
            "start_tls": True if self.starttls else (None if not self.use_tls else False),
            "timeout": self.timeout,
        }

    async def send(self, mail: OutgoingMail) -> SentMail:
        message = build_message(mail)
        try:
            await aiosmtplib.send(message, **self._options())  # type: ignore[arg-type]
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise MailRejected("smtp", f"recipient refused: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            cls = MailRejected if 500 <= exc.code < 600 else MailUnavailable
            raise cls("smtp", f"{exc.code} {exc.message}", status=exc.code) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailUnavailable("smtp", f"could not deliver to {self.host}:{self.port}: {exc!r}") from exc
        return SentMail(str(message["Message-ID"]))

    def validate_config(self) -> list[str]:
        problems = []
        if self.username and not self.password:
            problems.append("SMTP_PASSWORD is required when SMTP_USER is set")
        return problems

    async def health_check(self) -> HealthStatus:
        started = time.monotonic()
        client = aiosmtplib.SMTP(hostname=self.host, port=self.port, use_tls=self.use_tls, timeout=self.timeout)
        try:
            await client.connect()
            await client.noop()
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return HealthStatus("smtp", False, self.mode, detail=repr(exc))
        return HealthStatus("smtp", True, self.mode, latency_ms=(time.monotonic() - started) * 1000)

    async def aclose(self) -> None:
        return None
