"""A Stripe API emulator that the official `stripe` SDK can talk to over HTTP (PaymentIntents, refunds, charges,
balance, events, signed webhooks), on the sandbox kit: the kit's `/_control` API injects faults and shows
deliveries; disputes add their own controls. Mount `StripeSandbox(...).app` anywhere (the SDK's base address
is the mount point) or serve it on its own port. All state lives on the instance, in memory.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import stripe as stripe_sdk
from starlette.requests import Request
from starlette.responses import Response

from . import stripe_disputes, stripe_state
from .forms import FormError, decode_form
from .kit import ApiRoute, Emulator, Endpoint, Fault, RouteTable, path_in_mount
from .stripe_3ds import authentication_routes
from .stripe_objects import ApiError, event_object, new_id

__all__ = ["StripeSandbox"]

logger = logging.getLogger(__name__)


@dataclass
class _Stored:
    fingerprint: str
    status: int
    body: bytes
    request_id: str


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


class StripeSandbox(Emulator):
    """The emulator: `app` answers the Stripe v1 API subset storebridge uses; events go to `webhook_url`, signed."""

    def __init__(
        self,
        *,
        webhook_url: str | None,
        webhook_secret: str,
        api_key: str | None = None,
        delivery_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
    ) -> None:
        super().__init__(
            webhook_url=webhook_url,
            retry_delays=delivery_retry_delays,
            user_agent="Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        )
        self.webhook_secret = webhook_secret
        self.api_key = api_key
        self.disputes = stripe_disputes.StripeDisputes(self._emit)  # watches events: pm_card_createDispute
        self.state = stripe_state.StripeState(self.disputes.emit)
        self.disputes.attach(self.state)
        self._idempotency: dict[tuple[str, str], _Stored] = {}

    # ----------------------------------------------------------------- state
    def to_dict(self) -> dict[str, Any]:
        """The account's resources (payment intents, charges, refunds, events, disputes), JSON-ready."""
        return {"state": self.state.to_dict(), "disputes": self.disputes.to_dict()}

    def from_dict(self, data: dict[str, Any]) -> None:
        """Take back what `to_dict` exported; until then, and without it, the account starts empty."""
        self.state.from_dict(data.get("state", {}))
        self.disputes.from_dict(data.get("disputes", {}))

    # ---------------------------------------------------------------- routes
    def route_table(self) -> RouteTable:
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
        return RouteTable(
            api=[ApiRoute(method, path, self._api(handler)) for method, path, handler in api],
            pages=authentication_routes(state),  # the 3-D Secure challenge page
            controls=self.disputes.routes(),
            fallback=self._api(state.unknown_url),
        )

    def fault_response(self, fault: Fault, request: Request) -> Response:
        """An injected error as Stripe answers one: its error object, a Request-Id, Retry-After if asked."""
        assert fault.status is not None
        headers = {"Request-Id": new_id("req", 14)}
        idem = request.headers.get("idempotency-key") if request.method == "POST" else None
        if idem is not None:
            headers["Idempotency-Key"] = idem
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        message = f"Injected fault: HTTP {fault.status} for {request.method} {path_in_mount(request)}."
        if fault.status == 429:
            return self._error(ApiError(429, message, code="rate_limit"), headers)
        type_ = "api_error" if fault.status >= 500 else "invalid_request_error"
        return self._error(ApiError(fault.status, message, type_=type_), headers)

    # ------------------------------------------------------- request pipeline
    def _api(self, handler: stripe_state.Handler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            return await self._handle(request, handler)

        return endpoint

    async def _handle(self, request: Request, handler: stripe_state.Handler) -> Response:
        """Auth, form decoding, idempotency, then the handler; every answer has a Request-Id (faults came first)."""
        request_id = new_id("req", 14)
        headers = {"Request-Id": request_id}
        path, method = path_in_mount(request), request.method
        idem = request.headers.get("idempotency-key") if method == "POST" else None
        if idem is not None:
            headers["Idempotency-Key"] = idem
        try:
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

    # --------------------------------------------------------------- webhooks
    def _emit(self, type_: str, obj: dict[str, Any], chain_key: str, ctx: stripe_state.Ctx) -> dict[str, Any]:
        """Record an event (with a snapshot of `obj`) and queue its delivery, in order per `chain_key`."""
        event = event_object(
            new_id("evt"),
            type_,
            copy.deepcopy(obj),
            int(time.time()),
            api_version=ctx.api_version,
            pending_webhooks=1 if self.webhooks.current() else 0,
            request_id=ctx.request_id,
            idempotency_key=ctx.idempotency_key,
        )
        self.deliver(
            json.dumps(event, indent=2).encode("utf-8"),
            sign=self._signed_headers,
            event_id=event["id"],
            event_type=type_,
            chain_key=chain_key,
            on_delivered=lambda: self._delivered(event["id"]),
        )
        return event

    def _delivered(self, event_id: str) -> None:
        stored = self.state.events_by_id.get(event_id)
        if stored is not None:
            stored["pending_webhooks"] = max(0, int(stored["pending_webhooks"]) - 1)

    def _signed_headers(self, body: bytes) -> dict[str, str]:
        timestamp = int(time.time())
        mac = hmac.new(self.webhook_secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
        return {"Stripe-Signature": f"t={timestamp},v1={mac.hexdigest()}"}
