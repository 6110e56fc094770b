"""A PayPal REST emulator (OAuth tokens, Orders v2, Payments v2, verify-webhook-signature) that
storebridge's PayPal client talks to over HTTP, mounted at `/_sandbox/paypal` or served alone.

`GET|POST /approve/{order_id}` plays the buyer clicking Pay (`?outcome=decline|pending` decides what the
capture does; `?outcome=payer_action` leaves the order in PAYER_ACTION_REQUIRED, as a card that needs 3-D
Secure does, until the buyer opens its payer-action link). Webhooks go to `webhook_url`, signed
SHA256withRSA with the sandbox's own key; its self-signed certificate is served at `/certs/{cert_id}`.
Control endpoints under `/_control`: `POST /_control/tokens/expire`, `GET /_control/stats`,
`POST /_control/deliveries/wait`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from storebridge.providers.paypal.verify import signed_message

from .paypal_state import Ctx, PayPalError, PayPalState, iso_now, new_id

__all__ = ["PayPalSandbox", "Exchange"]

logger = logging.getLogger(__name__)

_AUTH_FAILURE = {
    "name": "AUTHENTICATION_FAILURE",
    "message": "Authentication failed due to missing authorization header, or invalid authentication credentials.",
}
Handler = Callable[[Ctx], tuple[int, dict[str, Any]]]


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status, headers=headers, media_type="application/json")


@dataclass
class Exchange:
    method: str
    path: str  # inside the sandbox, whatever it is mounted under
    request: dict[str, Any] | None
    status: int
    response: dict[str, Any] | None


@dataclass
class _Stored:
    fingerprint: str
    body: bytes


class PayPalSandbox:
    def __init__(
        self,
        *,
        base_url: str,
        webhook_url: str | None,
        webhook_id: str,
        client_id: str,
        client_secret: str,
        token_ttl: int = 32400,
        delivery_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0),
        delivery_delay: float = 0.2,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.webhook_url = webhook_url
        self.webhook_id = webhook_id
        self.client_id, self.client_secret = client_id, client_secret
        self.token_ttl = token_ttl
        self.delivery_retry_delays = delivery_retry_delays
        self.delivery_delay = delivery_delay  # PayPal sends webhooks after the API answer, never before
        self.webhooks_enabled = True
        self.state = PayPalState(self._emit)
        self.tokens: dict[str, float] = {}  # access token -> expiry (epoch seconds)
        self.token_requests = 0
        self.exchanges: list[Exchange] = []  # every API call, for spec checks in tests
        self.deliveries: list[dict[str, Any]] = []
        self.cert_id = "CERT-" + uuid.uuid4().hex[:24]
        self._key: rsa.RSAPrivateKey | None = None
        self._cert: x509.Certificate | None = None
        self._idempotency: dict[str, _Stored] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._app: Starlette | None = None

    # -- keys -------------------------------------------------------------------------------

    @property
    def certificate(self) -> x509.Certificate:
        """The sandbox's self-signed signing certificate (made on first use)."""
        if self._cert is None:
            self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.sandbox.storebridge")])
            now = dt.datetime.now(dt.UTC)
            self._cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(self._key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=365))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self._key, hashes.SHA256())
            )
        return self._cert

    @property
    def cert_url(self) -> str:
        return f"{self.base_url}/certs/{self.cert_id}"

    def sign(self, transmission_id: str, transmission_time: str, raw: bytes, webhook_id: str | None = None) -> str:
        self.certificate  # noqa: B018 - makes the key
        assert self._key is not None
        message = signed_message(transmission_id, transmission_time, webhook_id or self.webhook_id, raw)
        return base64.b64encode(self._key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()

    def signed_headers(self, raw: bytes, *, transmission_time: str | None = None) -> dict[str, str]:
        """The headers PayPal sends with a webhook, signed for `raw`."""
        transmission_id, sent = str(uuid.uuid4()), transmission_time or iso_now()
        return {
            "Content-Type": "application/json",
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": sent,
            "PAYPAL-TRANSMISSION-SIG": self.sign(transmission_id, sent, raw),
            "PAYPAL-CERT-URL": self.cert_url,
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
            "PAYPAL-AUTH-VERSION": "v2",
        }

    # -- state ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return self.state.to_dict()

    def from_dict(self, data: dict[str, Any]) -> None:
        self.state.from_dict(data)

    # -- app --------------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        if self._app is None:
            self._app = self._build_app()
        return self._app

    def _build_app(self) -> Starlette:
        s = self.state
        api: list[tuple[str, str, Handler]] = [
            ("POST", "/v2/checkout/orders", s.create_order),
            ("GET", "/v2/checkout/orders/{id}", s.get_order),
            ("POST", "/v2/checkout/orders/{id}/capture", s.capture_order),
            ("POST", "/v2/checkout/orders/{id}/authorize", s.authorize_order),
            ("GET", "/v2/payments/authorizations/{id}", s.get_authorization),
            ("POST", "/v2/payments/authorizations/{id}/capture", s.capture_authorization),
            ("POST", "/v2/payments/authorizations/{id}/void", s.void_authorization),
            ("GET", "/v2/payments/captures/{id}", s.get_capture),
            ("POST", "/v2/payments/captures/{id}/refund", s.refund_capture),
            ("GET", "/v2/payments/refunds/{id}", s.get_refund),
            ("POST", "/v1/notifications/verify-webhook-signature", self._verify_signature),
        ]
        routes = [Route(path, self._endpoint(handler), methods=[method]) for method, path, handler in api]
        routes += [
            Route("/v1/oauth2/token", self._token, methods=["POST"]),
            Route("/approve/{id}", self._approve, methods=["GET", "POST"]),
            Route("/certs/{cert_id}", self._cert_pem, methods=["GET"]),
            Route("/_control/tokens/expire", self._expire_tokens, methods=["POST"]),
            Route("/_control/stats", self._stats, methods=["GET"]),
            Route("/_control/deliveries/wait", self._wait, methods=["POST"]),
        ]

        @asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            yield
            await self.aclose()

        return Starlette(routes=routes, lifespan=lifespan)

    def _endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._handle(request, handler)

        return endpoint

    async def _handle(self, request: Request, handler: Handler) -> Response:
        response = await self._answer(request, handler)
        root: str = request.scope.get("root_path", "")
        path = request.url.path[len(root) :] if root and request.url.path.startswith(root) else request.url.path
        try:
            sent = json.loads(await request.body()) if request.method == "POST" else None
        except ValueError:
            sent = None
        answer = json.loads(bytes(response.body)) if response.body else None
        self.exchanges.append(Exchange(request.method, path, sent, response.status_code, answer))
        return response

    async def _answer(self, request: Request, handler: Handler) -> Response:
        """Bearer token, JSON body, PayPal-Request-Id replay (a replay answers 200), then the handler."""
        debug_id = secrets.token_hex(7)
        headers = {"Paypal-Debug-Id": debug_id}
        if not self._authorized(request):
            return _json(401, {**_AUTH_FAILURE, "debug_id": debug_id, "links": []}, headers)
        body: dict[str, Any] = {}
        raw = await request.body()
        if request.method == "POST" and raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                error = PayPalError(400, "MALFORMED_REQUEST_JSON", "The request JSON is not well formed.")
                return _json(400, error.body(debug_id), headers)
            body = parsed
        path = request.url.path
        request_id = request.headers.get("paypal-request-id") if request.method == "POST" else None
        fingerprint = json.dumps([path, body], sort_keys=True)
        if request_id is not None and request_id in self._idempotency:
            stored = self._idempotency[request_id]
            if stored.fingerprint == fingerprint:
                return Response(stored.body, 200, headers=headers, media_type="application/json")
        ctx = Ctx(body, {k: str(v) for k, v in request.path_params.items()}, self.base_url)
        try:
            status, payload = handler(ctx)
        except PayPalError as exc:
            return _json(exc.status, exc.body(debug_id), headers)
        except Exception:  # a bug in the emulator: answer as PayPal would, keep serving
            logger.exception("paypal sandbox: unhandled error on %s %s", request.method, path)
            return _json(
                500,
                {
                    "name": "INTERNAL_SERVER_ERROR",
                    "message": "An internal server error occurred.",
                    "debug_id": debug_id,
                },
                headers,
            )
        encoded = json.dumps(payload).encode()
        if request_id is not None and 200 <= status < 300:  # only successes are kept for replay
            self._idempotency[request_id] = _Stored(fingerprint, encoded)
        return Response(encoded, status, headers=headers, media_type="application/json")

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expiry = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        return expiry is not None and time.time() < expiry

    async def _token(self, request: Request) -> Response:
        self.token_requests += 1
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(credentials.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        form = (await request.body()).decode(errors="replace")
        if scheme.lower() != "basic" or (user, password) != (self.client_id, self.client_secret):
            return _json(401, {"error": "invalid_client", "error_description": "Client Authentication failed"})
        if "grant_type=client_credentials" not in form:
            return _json(400, {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"})
        token = "A21AA" + secrets.token_urlsafe(32)
        self.tokens[token] = time.time() + self.token_ttl
        return _json(
            200,
            {
                "scope": "https://uri.paypal.com/services/payments/payment",
                "access_token": token,
                "token_type": "Bearer",
                "app_id": "APP-SANDBOX",
                "expires_in": self.token_ttl,
                "nonce": f"{iso_now()}{secrets.token_hex(8)}",
            },
        )

    async def _approve(self, request: Request) -> Response:
        outcome = request.query_params.get("outcome")
        try:
            order = self.state.approve(request.path_params["id"], outcome)
        except PayPalError as exc:
            return _json(exc.status, exc.body(secrets.token_hex(7)))
        return _json(200, {"id": order["id"], "status": order["status"], "message": "The buyer approved the payment."})

    async def _cert_pem(self, request: Request) -> Response:
        if request.path_params["cert_id"] != self.cert_id:
            return _json(404, PayPalError(404, "INVALID_RESOURCE_ID").body(secrets.token_hex(7)))
        pem = self.certificate.public_bytes(serialization.Encoding.PEM)
        return Response(pem, 200, media_type="application/x-pem-file")

    def _verify_signature(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        body = ctx.body
        for name in ("auth_algo", "cert_url", "transmission_id", "transmission_sig", "transmission_time", "webhook_id"):
            if not isinstance(body.get(name), str):
                raise PayPalError(400, "MISSING_REQUIRED_PARAMETER", f"{name} is required.", field_=f"/{name}")
        if not isinstance(body.get("webhook_event"), dict):
            raise PayPalError(400, "MISSING_REQUIRED_PARAMETER", "webhook_event is required.", field_="/webhook_event")
        # The event is re-serialized the way the sandbox serialized it for delivery.
        raw = json.dumps(body["webhook_event"]).encode()
        message = signed_message(body["transmission_id"], body["transmission_time"], body["webhook_id"], raw)
        ok = body["cert_url"] == self.cert_url and body["webhook_id"] == self.webhook_id
        try:
            signature = base64.b64decode(body["transmission_sig"], validate=True)
            key = self.certificate.public_key()
            assert isinstance(key, rsa.RSAPublicKey)
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except (binascii.Error, ValueError, InvalidSignature):
            ok = False
        return 200, {"verification_status": "SUCCESS" if ok else "FAILURE"}

    async def _expire_tokens(self, request: Request) -> Response:
        self.expire_tokens()
        return _json(200, {"expired": True})

    def expire_tokens(self) -> None:
        """Every token issued so far is now expired (the next call with one gets a 401)."""
        for token in self.tokens:
            self.tokens[token] = 0.0

    async def _stats(self, request: Request) -> Response:
        return _json(200, {"token_requests": self.token_requests, "deliveries": self.deliveries})

    async def _wait(self, request: Request) -> Response:
        try:
            await self.wait_for_deliveries(10.0)
        except TimeoutError:
            return _json(504, {"in_flight": len(self._tasks)})
        return _json(200, {"in_flight": 0})

    # -- webhooks ---------------------------------------------------------------------------

    def _emit(self, event_type: str, resource_type: str, resource: dict[str, Any]) -> None:
        if not self.webhooks_enabled or not self.webhook_url:
            return
        event = {
            "id": "WH-" + new_id(17) + "-" + new_id(17),
            "event_version": "1.0",
            "create_time": iso_now(),
            "resource_type": resource_type,
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": f"{event_type} (storebridge sandbox)",
            "resource": resource,
        }
        task = asyncio.get_running_loop().create_task(
            self._deliver(json.dumps(event).encode(), event, self.webhook_url)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, raw: bytes, event: dict[str, Any], url: str) -> None:
        await asyncio.sleep(self.delivery_delay)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10.0)
        for attempt, delay in enumerate((*self.delivery_retry_delays, None), start=1):
            record: dict[str, Any] = {"event_id": event["id"], "type": event["event_type"], "attempt": attempt}
            try:
                response = await self._client.post(url, content=raw, headers=self.signed_headers(raw))
                record["status"] = response.status_code
                ok = response.status_code < 300
            except httpx.HTTPError as exc:
                record["error"], ok = repr(exc), False
            self.deliveries.append(record)
            if ok or delay is None:
                return
            await asyncio.sleep(delay)

    async def wait_for_deliveries(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while self._tasks:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self._tasks)} PayPal webhook deliveries still in flight")
            await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - time.monotonic()))

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
