"""A Stripe API emulator that the official `stripe` SDK can talk to over HTTP (PaymentIntents, refunds, charges,
balance, events, signed webhooks), with test-only control endpoints under `/_control` for fault injection and
webhook inspection. Mount `StripeSandbox(...).app` anywhere (the SDK's base address is the mount point) or serve it
on its own port. All state lives on the instance, in memory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import stripe as stripe_sdk
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import stripe_disputes, stripe_state
from .forms import FormError, decode_form
from .stripe_3ds import authentication_routes
from .stripe_objects import ApiError, event_object, new_id

__all__ = ["StripeSandbox"]

logger = logging.getLogger(__name__)

_ALL_METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH"]


@dataclass
class _Stored:
    fingerprint: str
    status: int
    body: bytes
    request_id: str


@dataclass
class _Fault:
    path_prefix: str
    status: int
    count: int
    retry_after: float | None
    method: str | None


def _route_path(request: Request) -> str:
    """The path inside this app, whatever it is mounted under."""
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload, indent=2), status, headers=headers, media_type="application/json")


def _idempotency_mismatch(key: str | None) -> ApiError:
    message = (
        "Keys for idempotent requests can only be used with the same parameters they were first used with. "
        f"Try using a key other than '{key}' if you meant to execute a different request."
    )
    return ApiError(400, message, type_="idempotency_error")


def _from_form_error(exc: FormError) -> ApiError:
    """Bad parameters: a 400 that is not kept for idempotent replay (the request never started executing)."""
    return ApiError(400, str(exc), code=exc.code, param=exc.param, replayable=False)


def _mask(key: str) -> str:
    return key[:8] + "*" * max(len(key) - 12, 0) + key[-4:] if len(key) > 12 else key


class StripeSandbox:
    """The emulator: `app` answers the Stripe v1 API subset storebridge uses; events go to `webhook_url`, signed."""

    def __init__(
        self,
        *,
        webhook_url: str | None,
        webhook_secret: str,
        api_key: str | None = None,
        delivery_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
    ) -> None:
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.api_key = api_key
        self.delivery_retry_delays = delivery_retry_delays
        self.webhooks_enabled = True
        self.disputes = stripe_disputes.StripeDisputes(self._emit)  # watches events: pm_card_createDispute
        self.state = stripe_state.StripeState(self.disputes.emit)
        self.disputes.attach(self.state)
        self._app: Starlette | None = None
        self._idempotency: dict[tuple[str, str], _Stored] = {}
        self._faults: list[_Fault] = []
        self._deliveries: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._chains: dict[str, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None

    # ----------------------------------------------------------------- state
    def to_dict(self) -> dict[str, Any]:
        """The account's resources (payment intents, charges, refunds, events, disputes), JSON-ready."""
        return {"state": self.state.to_dict(), "disputes": self.disputes.to_dict()}

    def from_dict(self, data: dict[str, Any]) -> None:
        """Take back what `to_dict` exported; until then, and without it, the account starts empty."""
        self.state.from_dict(data.get("state", {}))
        self.disputes.from_dict(data.get("disputes", {}))

    # ----------------------------------------------------------------- app
    @property
    def app(self) -> Starlette:
        if self._app is None:
            self._app = self._build_app()
        return self._app

    def _build_app(self) -> Starlette:
        state = self.state
        api: list[tuple[str, str, stripe_state.Handler]] = [
            ("POST", "/v1/payment_intents", state.create_payment_intent),
            ("GET", "/v1/payment_intents/{id}", state.get_payment_intent),
            ("POST", "/v1/payment_intents/{id}/confirm", state.confirm_payment_intent),
            ("POST", "/v1/payment_intents/{id}/capture", state.capture_payment_intent),
            ("POST", "/v1/payment_intents/{id}/cancel", state.cancel_payment_intent),
            ("POST", "/v1/refunds", state.create_refund),
            ("GET", "/v1/refunds/{id}", state.get_refund),
            ("GET", "/v1/charges/{id}", state.get_charge),
            ("GET", "/v1/balance", state.get_balance),
            ("GET", "/v1/events", state.list_events),
            ("GET", "/v1/events/{id}", state.get_event),
            ("GET", "/v1/disputes/{id}", self.disputes.get_dispute),
        ]
        routes = [Route(path, self._api(handler), methods=[method]) for method, path, handler in api]
        routes += authentication_routes(state)  # the 3-D Secure challenge page
        routes += [
            Route("/_control/faults", self._control_faults, methods=["GET", "POST", "DELETE"]),
            Route("/_control/webhooks", self._control_webhooks, methods=["GET", "POST"]),
            Route("/_control/deliveries", self._control_deliveries, methods=["GET"]),
            Route("/_control/deliveries/wait", self._control_wait, methods=["POST"]),
            *self.disputes.routes(),
            Route("/{path:path}", self._api(state.unknown_url), methods=_ALL_METHODS),
        ]

        @asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            yield
            await self.aclose()

        return Starlette(routes=routes, lifespan=lifespan)

    # ------------------------------------------------------- request pipeline
    def _api(self, handler: stripe_state.Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._handle(request, handler)

        return endpoint

    async def _handle(self, request: Request, handler: stripe_state.Handler) -> Response:
        """Fault injection, auth, form decoding, idempotency, then the handler; every answer has a Request-Id."""
        request_id = new_id("req", 14)
        headers = {"Request-Id": request_id}
        path, method = _route_path(request), request.method
        idem = request.headers.get("idempotency-key") if method == "POST" else None
        if idem is not None:
            headers["Idempotency-Key"] = idem
        try:
            self._check_fault(method, path)
            api_key = self._authenticate(request)
            raw = await request.body() if method == "POST" else bytes(request.scope.get("query_string", b""))
            params = decode_form(raw)
            if idem is not None and len(idem) > 255:
                raise ApiError(400, "Idempotency-Key must be at most 255 characters long.", type_="idempotency_error")
        except FormError as exc:
            return self._error(_from_form_error(exc), headers)
        except ApiError as exc:
            return self._error(exc, headers)
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        stored = self._idempotency.get((api_key, idem)) if idem is not None else None
        if stored is not None:
            if stored.fingerprint != fingerprint:
                return self._error(_idempotency_mismatch(idem), headers)
            headers.update({"Idempotent-Replayed": "true", "Original-Request": stored.request_id})
            return Response(stored.body, stored.status, headers=headers, media_type="application/json")
        path_params = {k: str(v) for k, v in request.path_params.items()}
        version = request.headers.get("stripe-version") or stripe_sdk.api_version
        base = (
            f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"  # where we are mounted
        )
        ctx = stripe_state.Ctx(params, path_params, request_id, idem, method, path, version, base)
        try:
            status, payload = handler(ctx)
            replayable = True
        except (ApiError, FormError) as exc:
            error = _from_form_error(exc) if isinstance(exc, FormError) else exc
            status, payload, replayable = error.status, self._error_payload(error, request_id), error.replayable
        except Exception:  # a bug in the emulator: answer as Stripe would, keep serving
            logger.exception("stripe sandbox: unhandled error on %s %s", method, path)
            error = ApiError(500, "An unknown error occurred.", type_="api_error")
            status, payload, replayable = 500, self._error_payload(error, request_id), False
        body = json.dumps(payload, indent=2).encode()
        if idem is not None and replayable and status < 500:
            self._idempotency[(api_key, idem)] = _Stored(fingerprint, status, body, request_id)
        return Response(body, status, headers=headers, media_type="application/json")

    @staticmethod
    def _error_payload(exc: ApiError, request_id: str) -> dict[str, Any]:
        error = exc.error_object()
        error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        return {"error": error}

    def _error(self, exc: ApiError, headers: dict[str, str]) -> Response:
        return _json(exc.status, self._error_payload(exc, headers["Request-Id"]), {**headers, **exc.headers})

    def _authenticate(self, request: Request) -> str:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = credentials.strip()
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(credentials.strip()).decode("utf-8").partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                key = ""
        www = {"WWW-Authenticate": 'Bearer realm="Stripe"'}
        if not key:
            raise ApiError(
                401,
                (
                    "You did not provide an API key. You need to provide your API key in the Authorization header, "
                    "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api"
                    "#authentication for details, or we can help at https://support.stripe.com/."
                ),
                headers=www,
            )
        wrong = key != self.api_key if self.api_key is not None else not key.startswith(("sk_", "rk_"))
        if wrong:
            raise ApiError(401, f"Invalid API Key provided: {_mask(key)}", code="api_key_invalid", headers=www)
        return key

    def _check_fault(self, method: str, path: str) -> None:
        for fault in self._faults:
            if fault.count > 0 and path.startswith(fault.path_prefix) and fault.method in (None, method):
                fault.count -= 1
                headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
                message = f"Injected fault: HTTP {fault.status} for {method} {path}."
                if fault.status == 429:
                    raise ApiError(429, message, code="rate_limit", headers=headers)
                type_ = "api_error" if fault.status >= 500 else "invalid_request_error"
                raise ApiError(fault.status, message, type_=type_, headers=headers)

    # ------------------------------------------------------ control endpoints
    @staticmethod
    async def _control_json(request: Request) -> dict[str, Any]:
        try:
            data = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            raise ApiError(400, f"Body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "Body must be a JSON object.")
        return data

    async def _control_faults(self, request: Request) -> Response:
        headers = {"Request-Id": new_id("req", 14)}
        if request.method == "DELETE":
            self._faults.clear()
        elif request.method == "POST":
            try:
                data = await self._control_json(request)
                prefix, status, count = data.get("path_prefix", "/"), data.get("status", 503), data.get("count", 1)
                retry_after, method = data.get("retry_after"), data.get("method")
                if not isinstance(prefix, str) or not isinstance(status, int) or not 400 <= status <= 599:
                    raise ApiError(400, "path_prefix must be a string and status an HTTP error status (400-599).")
                if not isinstance(count, int) or count < 1:
                    raise ApiError(400, "count must be a positive integer.", param="count")
                if retry_after is not None and not isinstance(retry_after, int | float):
                    raise ApiError(400, "retry_after must be a number of seconds.", param="retry_after")
                if method is not None and not isinstance(method, str):
                    raise ApiError(400, "method must be a string.", param="method")
            except ApiError as exc:
                return self._error(exc, headers)
            self._faults.append(_Fault(prefix, status, count, retry_after, method.upper() if method else None))
        self._faults = [f for f in self._faults if f.count > 0]
        return _json(200, {"faults": [asdict(f) for f in self._faults]}, headers)

    async def _control_webhooks(self, request: Request) -> Response:
        headers = {"Request-Id": new_id("req", 14)}
        if request.method == "POST":
            try:
                data = await self._control_json(request)
                enabled, url = data.get("enabled", self.webhooks_enabled), data.get("url", self.webhook_url)
                if not isinstance(enabled, bool) or not (url is None or isinstance(url, str)):
                    raise ApiError(400, "enabled must be a boolean and url a string or null.")
            except ApiError as exc:
                return self._error(exc, headers)
            self.webhooks_enabled, self.webhook_url = enabled, url
        state = {"enabled": self.webhooks_enabled, "url": self.webhook_url, "in_flight": len(self._tasks)}
        return _json(200, state, headers)

    async def _control_deliveries(self, request: Request) -> Response:
        payload = {"object": "list", "data": list(self._deliveries), "in_flight": len(self._tasks)}
        return _json(200, payload, {"Request-Id": new_id("req", 14)})

    async def _control_wait(self, request: Request) -> Response:
        headers = {"Request-Id": new_id("req", 14)}
        try:
            timeout = (await self._control_json(request)).get("timeout", 10.0)
            if not isinstance(timeout, int | float):
                raise ApiError(400, "timeout must be a number of seconds.", param="timeout")
        except ApiError as exc:
            return self._error(exc, headers)
        try:
            await self.wait_for_deliveries(float(timeout))
        except TimeoutError:
            return _json(504, {"in_flight": len(self._tasks)}, headers)
        return _json(200, {"in_flight": 0}, headers)

    # --------------------------------------------------------------- webhooks
    def _emit(self, type_: str, obj: dict[str, Any], chain_key: str, ctx: stripe_state.Ctx) -> dict[str, Any]:
        """Record an event (with a snapshot of `obj`) and queue its delivery; never waits for it."""
        url = self.webhook_url if self.webhooks_enabled else None
        event = event_object(
            new_id("evt"),
            type_,
            copy.deepcopy(obj),
            int(time.time()),
            api_version=ctx.api_version,
            pending_webhooks=1 if url else 0,
            request_id=ctx.request_id,
            idempotency_key=ctx.idempotency_key,
        )
        if url:
            body = json.dumps(event, indent=2)
            previous = self._chains.get(chain_key)
            task = asyncio.get_running_loop().create_task(self._deliver(event, body, url, previous))
            self._chains[chain_key] = task
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._delivery_done(chain_key, t))
        return event

    def _delivery_done(self, chain_key: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._chains.get(chain_key) is task:
            del self._chains[chain_key]
        if not task.cancelled() and task.exception() is not None:
            logger.error("stripe sandbox: delivery task failed", exc_info=task.exception())

    def _signature(self, body: str, timestamp: int) -> str:
        mac = hmac.new(self.webhook_secret.encode("utf-8"), f"{timestamp}.{body}".encode(), hashlib.sha256)
        return f"t={timestamp},v1={mac.hexdigest()}"

    async def _deliver(self, event: dict[str, Any], body: str, url: str, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # keep per-PaymentIntent order; the previous one's fate does not matter
        delays = self.delivery_retry_delays
        for attempt in range(1, len(delays) + 2):
            if await self._attempt(event, body, url, attempt):
                stored = self.state.events_by_id.get(event["id"])
                if stored is not None:
                    stored["pending_webhooks"] = max(0, int(stored["pending_webhooks"]) - 1)
                return
            if attempt <= len(delays):
                await asyncio.sleep(delays[attempt - 1])

    async def _attempt(self, event: dict[str, Any], body: str, url: str, attempt: int) -> bool:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10.0)
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": self._signature(body, int(time.time())),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        record: dict[str, Any] = {
            "event_id": event["id"],
            "type": event["type"],
            "attempt": attempt,
            "url": url,
            "status": None,
            "error": None,
            "at": time.time(),
        }
        try:
            response = await self._client.post(url, content=body.encode("utf-8"), headers=headers)
            record["status"] = response.status_code
            ok = 200 <= response.status_code < 300
        except httpx.HTTPError as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
            ok = False
        self._deliveries.append(record)
        return ok

    async def wait_for_deliveries(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (the brief's signature)
        """Wait until no delivery is in flight (including retries); TimeoutError after `timeout` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._tasks:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"{len(self._tasks)} webhook deliveries still in flight after {timeout} s")
            await asyncio.wait(set(self._tasks), timeout=remaining)

    async def aclose(self) -> None:
        """Cancel pending deliveries and close the HTTP client. The sandbox stays usable (a new client is lazy)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._chains.clear()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
