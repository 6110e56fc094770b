"""The console's guards over loopback with plain httpx: sessions, CSRF, cookie flags, no token in URLs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from storebridge.admin.auth import LOGIN_COOKIE, SESSION_COOKIE
from tests.support.hub import API_TOKEN, RunningHub, make_settings, running_hub

PAGES = [
    "/admin/",
    "/admin/integrations",
    "/admin/webhooks",
    "/admin/webhooks?status=dead",
    "/admin/webhooks/whk_x",
    "/admin/events",
    "/admin/events/evt_x",
    "/admin/subscriptions",
    "/admin/subscriptions/we_x",
    "/admin/deliveries",
    "/admin/orders",
    "/admin/orders?q=ada@example.com",
    "/admin/orders/ord_x",
]
ACTIONS = [
    "/admin/logout",
    "/admin/integrations/check",
    "/admin/webhooks/whk_x/replay",
    "/admin/webhooks/replay",
    "/admin/subscriptions/we_x/deliveries/whd_x/resend",
    "/admin/subscriptions/we_x/disable",
    "/admin/subscriptions/we_x/enable",
    "/admin/subscriptions/we_x/rotate-secret",
]


@pytest.fixture(scope="module")
def console_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    path: Path = tmp_path_factory.mktemp("admin") / "storebridge.db"
    # As behind a TLS-terminating proxy on this host: forwarded headers are believed from loopback.
    with running_hub(make_settings(f"sqlite+aiosqlite:///{path}", trusted_proxies="127.0.0.1")) as running:
        yield running


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


@contextmanager
def _signed_in(hub: RunningHub, **headers: str) -> Iterator[tuple[httpx.Client, httpx.Response]]:
    with httpx.Client(base_url=hub.base_url, timeout=30, headers=headers) as client:
        form = client.get("/admin/login")
        data = {"csrf": _csrf(form.text), "token": API_TOKEN, "next": "/admin/"}
        response = client.post("/admin/login", data=data)
        assert response.status_code == 303, response.text
        yield client, response


def _session_csrf(client: httpx.Client) -> str:
    return _csrf(client.get("/admin/").text)


def _subscription(hub: RunningHub) -> str:
    created = hub.client.post("/subscriptions", json={"url": f"{hub.base_url}/healthz", "event_types": ["x.y"]})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_every_page_redirects_to_sign_in_without_a_session(console_hub: RunningHub) -> None:
    """Each console page answers 303 to /admin/login (with the page to come back to), never the page."""
    with httpx.Client(base_url=console_hub.base_url) as anonymous:
        for path in PAGES:
            response = anonymous.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/admin/login?next=%2Fadmin"), path


def test_every_action_is_401_without_a_session(console_hub: RunningHub) -> None:
    """Each console action refuses a POST without a session, whatever the form carries."""
    with httpx.Client(base_url=console_hub.base_url) as anonymous:
        for path in ACTIONS:
            response = anonymous.post(path, data={"csrf": "anything", "status": "dead"})
            assert response.status_code == 401, path
            assert "sign in" in response.text.lower()


def test_the_bearer_token_does_not_open_the_console(console_hub: RunningHub) -> None:
    """The API's Authorization header is not a console session: pages redirect, actions are 401."""
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    with httpx.Client(base_url=console_hub.base_url, headers=headers) as client:
        assert client.get("/admin/").status_code == 303
        assert client.post("/admin/integrations/check").status_code == 401


def test_a_token_in_the_query_string_is_refused(console_hub: RunningHub) -> None:
    """?token= is refused (400) on sign-in, pages and actions, signed in or not, and never signs anyone in."""
    with httpx.Client(base_url=console_hub.base_url) as anonymous:
        for path in ("/admin/login", "/admin/", "/admin/webhooks"):
            response = anonymous.get(path, params={"token": API_TOKEN})
            assert response.status_code == 400, path
            assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
        login = anonymous.post("/admin/login", params={"token": API_TOKEN})
        assert login.status_code == 400 and SESSION_COOKIE not in login.headers.get("set-cookie", "")
    with _signed_in(console_hub) as (client, _):
        assert client.get("/admin/", params={"token": API_TOKEN}).status_code == 400
        csrf = _session_csrf(client)
        assert client.post("/admin/integrations/check", params={"token": "x"}, data={"csrf": csrf}).status_code == 400


def test_a_post_without_or_with_a_wrong_csrf_token_is_403_and_does_nothing(console_hub: RunningHub) -> None:
    """Missing, wrong, or another session's CSRF token: 403 with a clear message, and no change is made."""
    endpoint_id = _subscription(console_hub)
    disable = f"/admin/subscriptions/{endpoint_id}/disable"
    with _signed_in(console_hub) as (client, _), _signed_in(console_hub) as (other, _):
        missing = client.post(disable)
        assert missing.status_code == 403
        assert "CSRF token is missing or wrong" in missing.text
        assert client.post(disable, data={"csrf": "not-the-token"}).status_code == 403
        assert client.post(disable, data={"csrf": _session_csrf(other)}).status_code == 403
        json_body = client.post(disable, json={"csrf": _session_csrf(client)})  # only form fields count
        assert json_body.status_code == 403
        for path in ACTIONS:
            assert client.post(path.replace("we_x", endpoint_id)).status_code == 403, path
        assert console_hub.client.get(f"/subscriptions/{endpoint_id}").json()["enabled"] is True
        done = client.post(disable, data={"csrf": _session_csrf(client)})
        assert done.status_code == 303
        assert console_hub.client.get(f"/subscriptions/{endpoint_id}").json()["enabled"] is False


def test_the_session_cookie_is_httponly_samesite_strict_scoped_and_expiring(console_hub: RunningHub) -> None:
    """Set-Cookie carries HttpOnly, SameSite=Strict, Path=/admin and Max-Age; Secure only over https."""
    with _signed_in(console_hub) as (_, response):
        pass
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert "httponly" in flags
    assert flags["samesite"].lower() == "samesite=strict"
    assert flags["path"] == "Path=/admin"
    assert int(flags["max-age"].split("=")[1]) > 0
    assert "secure" not in flags  # plain http on loopback: a browser would drop a Secure cookie
    # Behind a TLS-terminating proxy on this host (STOREBRIDGE_TRUSTED_PROXIES=127.0.0.1): Secure.
    proxied = {"X-Forwarded-Proto": "https"}
    with httpx.Client(base_url=console_hub.base_url, headers=proxied) as client:
        form = client.get("/admin/login")
        assert "secure" in form.headers["set-cookie"].lower()
        # httpx (rightly) keeps a Secure cookie off plain http; the test hands the nonce back itself.
        nonce = re.search(LOGIN_COOKIE + r"=([^;]+)", form.headers["set-cookie"])
        assert nonce is not None
        https = client.post(
            "/admin/login",
            data={"csrf": _csrf(form.text), "token": API_TOKEN},
            headers={"Cookie": f"{LOGIN_COOKIE}={nonce.group(1)}"},
        )
        assert https.status_code == 303
    cookie = next(c for c in https.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    assert "secure" in cookie.lower().replace(" ", "").split(";")


def test_a_wrong_token_is_refused_and_sets_no_session(console_hub: RunningHub) -> None:
    """Sign-in with a wrong token (or without the form's CSRF value) gets no session cookie."""
    with httpx.Client(base_url=console_hub.base_url) as client:
        form = client.get("/admin/login")
        assert LOGIN_COOKIE in form.headers["set-cookie"]
        for token in ("wrong-token", API_TOKEN[:-1], API_TOKEN + "x", ""):
            response = client.post("/admin/login", data={"csrf": _csrf(form.text), "token": token})
            assert response.status_code == 401
            assert SESSION_COOKIE + "=" not in response.headers.get("set-cookie", "")
            assert "not the API token" in response.text
            form = response  # the refusal is a fresh form with a fresh CSRF value
        no_csrf = client.post("/admin/login", data={"token": API_TOKEN})
        assert no_csrf.status_code == 403 and SESSION_COOKIE + "=" not in no_csrf.headers.get("set-cookie", "")
        assert client.get("/admin/").status_code == 303


def test_sign_out_invalidates_the_session_even_if_the_cookie_is_kept(console_hub: RunningHub) -> None:
    """After sign-out, the old cookie value no longer opens any page."""
    with _signed_in(console_hub) as (client, _):
        value = client.cookies[SESSION_COOKIE]
        assert client.get("/admin/").status_code == 200
        out = client.post("/admin/logout", data={"csrf": _session_csrf(client)})
        assert out.status_code == 303 and out.headers["location"].startswith("/admin/login")
    with httpx.Client(base_url=console_hub.base_url, cookies={SESSION_COOKIE: value}) as replay:
        assert replay.get("/admin/").status_code == 303
        assert replay.post("/admin/integrations/check", data={"csrf": "x"}).status_code == 401


def test_a_tampered_or_forged_cookie_is_refused(console_hub: RunningHub) -> None:
    """A session cookie whose signature or expiry was changed opens nothing."""
    with _signed_in(console_hub) as (client, _):
        version, sid, expires, mac = client.cookies[SESSION_COOKIE].split(".")
    for value in (
        f"{version}.{sid}.{int(expires) + 3600}.{mac}",
        f"{version}.{sid}x.{expires}.{mac}",
        f"{version}.{sid}.{expires}.{mac[:-2]}AA",
        "v1.abc.9999999999.xyz",
        "garbage",
    ):
        with httpx.Client(base_url=console_hub.base_url, cookies={SESSION_COOKIE: value}) as forged:
            assert forged.get("/admin/").status_code == 303, value


def test_sign_in_only_returns_to_console_pages(console_hub: RunningHub) -> None:
    """`next` pointing outside the console (open redirect) is replaced by the console's home."""
    for target in ("https://evil.example/", "//evil.example/admin/", "/orders", "/admin\\..\\x"):
        with httpx.Client(base_url=console_hub.base_url) as client:
            form = client.get("/admin/login")
            data = {"csrf": _csrf(form.text), "token": API_TOKEN, "next": target}
            response = client.post("/admin/login", data=data)
            assert response.headers["location"] == "/admin/", target


def test_pages_send_protective_headers_and_escape_stored_content(console_hub: RunningHub) -> None:
    """CSP, no framing, no-store; a webhook carrying markup is shown escaped, never as markup."""
    from storebridge.db import now
    from storebridge.webhooks.model import WebhookEvent

    async def store() -> None:
        async with console_hub.hub.db.write() as session:
            session.add(
                WebhookEvent(
                    id="whk_markup",
                    provider="stripe",
                    event_id="evt_<b>x</b>",
                    event_type="<script>alert(1)</script>",
                    status="dead",
                    headers={"x-evil": "<img src=x onerror=alert(2)>"},
                    body=b'{"note": "</pre><script>alert(3)</script>"}',
                    received_at=now(),
                    next_attempt_at=now(),
                    last_error="<svg onload=alert(4)>",
                )
            )

    console_hub.run(store())
    with _signed_in(console_hub) as (client, _):
        for path in ("/admin/webhooks/whk_markup", "/admin/webhooks?status=dead"):
            page = client.get(path)
            assert page.status_code == 200
            assert "<script>alert" not in page.text and "<img src=x" not in page.text and "<svg onload" not in page.text
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
            assert "default-src 'self'" in page.headers["content-security-policy"]
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["cache-control"] == "no-store"


def test_wrong_tokens_are_limited_per_client_address(console_hub: RunningHub) -> None:
    """Ten wrong tokens from one address: the next attempt, even with the right token, is a 429
    that says how long to wait; another address still signs in. (Own source addresses on the
    loopback, so the other tests' sign-ins from 127.0.0.1 are not affected.)"""

    def attempt(source: str, token: str) -> httpx.Response:
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(base_url=console_hub.base_url, transport=transport) as client:
            form = client.get("/admin/login")
            return client.post("/admin/login", data={"csrf": _csrf(form.text), "token": token, "next": "/admin/"})

    for _ in range(10):
        assert attempt("127.0.0.3", "sbk_guess").status_code == 401
    refused = attempt("127.0.0.3", API_TOKEN)
    assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 300
    assert "Too many wrong tokens from your address" in refused.text
    assert attempt("127.0.0.4", API_TOKEN).status_code == 303


def _sign_in(hub: RunningHub, token: str, *, source: str = "127.0.0.1", forwarded_for: str | None = None) -> int:
    """One console sign-in attempt from `source`, optionally claiming another client address."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=hub.base_url, transport=transport, headers=headers) as client:
        form = client.get("/admin/login")
        data = {"csrf": _csrf(form.text), "token": token, "next": "/admin/"}
        return client.post("/admin/login", data=data).status_code


def test_a_forwarded_for_header_does_not_reset_the_sign_in_count(tmp_path: Path) -> None:
    """No trusted proxies (the default): after ten wrong tokens from 127.0.0.1, claiming another
    address in X-Forwarded-For changes nothing; the throttle counts the real peer."""
    with running_hub(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")) as hub:
        for _ in range(10):
            assert _sign_in(hub, "sbk_guess") == 401
        assert _sign_in(hub, API_TOKEN, forwarded_for="198.51.100.7") == 429
        assert _sign_in(hub, "sbk_guess", forwarded_for="198.51.100.8") == 429


def test_behind_a_trusted_proxy_the_forwarded_address_is_counted(tmp_path: Path) -> None:
    """STOREBRIDGE_TRUSTED_PROXIES=127.0.0.1: the proxy's X-Forwarded-For names the client that is
    counted, so one client's wrong tokens do not lock out another behind the same proxy; a peer not
    listed (127.0.0.9) is counted by its own address whatever it claims."""
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", trusted_proxies="127.0.0.1")
    with running_hub(settings) as hub:
        for _ in range(10):
            assert _sign_in(hub, "sbk_guess", forwarded_for="198.51.100.7") == 401
        assert _sign_in(hub, API_TOKEN, forwarded_for="198.51.100.7") == 429
        assert _sign_in(hub, API_TOKEN, forwarded_for="198.51.100.8") == 303
        for n in range(10):
            assert _sign_in(hub, "sbk_guess", source="127.0.0.9", forwarded_for=f"198.51.100.{20 + n}") == 401
        assert _sign_in(hub, API_TOKEN, source="127.0.0.9", forwarded_for="198.51.100.99") == 429
