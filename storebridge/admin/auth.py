"""Console sign-in: a signed, expiring session cookie and a per-session CSRF token.

The operator signs in with the API token (compared in constant time). The session cookie is
`v1.<session id>.<expires>.<signature>`, the signature an HMAC-SHA256 keyed with a key derived
from the API token, so changing the token signs every session out. The CSRF token of a session
is another HMAC of its id, sent in a hidden field of every form and checked on every POST.
Signing out revokes the session id in this process (kept until it would have expired anyway).
Wrong tokens are counted per client address (storebridge.admin.throttle).

The cookie is HttpOnly, SameSite=Strict, Path=/admin, and Secure when the request came over
https or the hub's public URL is https (browsers drop Secure cookies on plain-http loopback).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from storebridge.admin.throttle import SignInThrottle

__all__ = [
    "SESSION_COOKIE",
    "LOGIN_COOKIE",
    "SESSION_SECONDS",
    "LOGIN_FORM_SECONDS",
    "ConsoleAuth",
    "Session",
    "LoginRequired",
    "CsrfRejected",
    "TokenInUrl",
    "read_form",
]

SESSION_COOKIE = "storebridge_console"
LOGIN_COOKIE = "storebridge_console_login"
SESSION_SECONDS = 8 * 3600
LOGIN_FORM_SECONDS = 3600
COOKIE_PATH = "/admin"
MAX_FORM_BYTES = 64 * 1024


class LoginRequired(Exception):
    """No valid session: a page redirects to the sign-in page, an action answers 401."""


class CsrfRejected(Exception):
    """A POST without the session's CSRF token, or with another one: 403."""


class TokenInUrl(Exception):
    """`?token=` in a console URL: refused, never used (URLs end up in logs and histories)."""


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    expires: int
    csrf: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class ConsoleAuth:
    api_token: str
    public_https: bool = False
    session_seconds: int = SESSION_SECONDS
    sign_ins: SignInThrottle = field(default_factory=SignInThrottle)
    _revoked: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._key = hmac.new(self.api_token.encode(), b"storebridge console session v1", hashlib.sha256).digest()

    def _mac(self, purpose: bytes, message: str) -> str:
        return _b64(hmac.new(self._key, purpose + b"\x00" + message.encode(), hashlib.sha256).digest())

    # -- the API token -------------------------------------------------------------------

    def token_matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.strip().encode(), self.api_token.encode())

    # -- sessions ------------------------------------------------------------------------

    def new_session(self) -> tuple[Session, str]:
        """A fresh session and its cookie value."""
        sid = secrets.token_urlsafe(18)
        expires = int(time.time()) + self.session_seconds
        value = f"v1.{sid}.{expires}.{self._mac(b'session', f'{sid}.{expires}')}"
        return Session(sid, expires, self._mac(b"csrf", sid)), value

    def session_of(self, request: Request) -> Session | None:
        value = request.cookies.get(SESSION_COOKIE, "")
        parts = value.split(".")
        if len(parts) != 4 or parts[0] != "v1" or not parts[2].isdigit():
            return None
        _, sid, expires_s, mac = parts
        if not hmac.compare_digest(mac.encode(), self._mac(b"session", f"{sid}.{expires_s}").encode()):
            return None
        expires = int(expires_s)
        if expires <= time.time() or sid in self._revoked:
            return None
        return Session(sid, expires, self._mac(b"csrf", sid))

    def revoke(self, session: Session) -> None:
        t = time.time()
        self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp > t}
        self._revoked[session.id] = session.expires

    def check_csrf(self, session: Session, submitted: str | None) -> None:
        if not submitted or not hmac.compare_digest(submitted.encode(), session.csrf.encode()):
            raise CsrfRejected

    # -- the sign-in form (no session yet: a double-submit cookie) --------------------------

    def new_login_nonce(self) -> str:
        return secrets.token_urlsafe(18)

    def check_login_csrf(self, request: Request, submitted: str | None) -> None:
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not cookie or not submitted or not hmac.compare_digest(cookie.encode(), submitted.encode()):
            raise CsrfRejected

    # -- cookies -------------------------------------------------------------------------

    def secure(self, request: Request) -> bool:
        return self.public_https or request.url.scheme == "https"

    def set_cookie(self, response: Response, request: Request, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=COOKIE_PATH,
            secure=self.secure(request),
            httponly=True,
            samesite="strict",
        )

    def clear_cookie(self, response: Response, request: Request, name: str) -> None:
        response.delete_cookie(name, path=COOKIE_PATH, secure=self.secure(request), httponly=True, samesite="strict")

    @staticmethod
    def refuse_token_in_url(request: Request) -> None:
        if any(key.lower() in ("token", "api_token", "access_token") for key in request.query_params):
            raise TokenInUrl


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the console's forms), first value per field; anything else is empty."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    form: dict[str, str] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(key, value)
    return form
