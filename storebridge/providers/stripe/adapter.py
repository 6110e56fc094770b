"""Stripe adapter on the official SDK: StripeClient with its async HTTPX client.

Idempotency keys are derived from our own ids (`storebridge:<payment id>:<operation>`), so a
retried call can never charge twice; metadata carries our order and payment ids; answers
that say the work is already done (captured, canceled) count as success. Every HTTP attempt
the SDK makes (retries included) is recorded in the hub's call log.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import stripe

from storebridge.errors import (
    IntegrationError,
    PaymentDeclined,
    ProviderRejected,
    ProviderUnavailable,
    WebhookRejected,
)
from storebridge.integration import HealthStatus
from storebridge.observability.calls import CallLog
from storebridge.observability.http import short_error
from storebridge.payments.provider import (
    PaymentRequest,
    PaymentUpdate,
    ProviderPayment,
    ProviderRefund,
)
from storebridge.providers.stripe.currency import from_stripe, stripe_amount_problem, to_stripe
from storebridge.providers.stripe.disputes import dispute_from_stripe
from storebridge.providers.stripe.mentions import mention_in
from storebridge.webhooks.sources import Identified, parse_json_object

__all__ = [
    "StripeProvider",
    "payment_from_intent",
    "payment_from_charge",
    "identify_stripe_event",
]

_Answer = TypeVar("_Answer", bound=tuple[Any, int, Any])  # (content, HTTP status, headers)

_API_VERSION = "2024-06-20"


def _as_dict(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _iso(obj: Mapping[str, Any], key: str) -> int:
    """An amount field of a Stripe object, converted from Stripe's units by the object's currency."""
    return from_stripe(int(obj.get(key) or 0), str(obj.get("currency") or "usd"))


def _requires_action(status: str, failed: bool) -> bool | None:
    """requires_action (3-D Secure pending): True; any status past it, or a failure: False; before it: None."""
    if status in ("requires_action", "requires_source_action"):  # the second is the pre-2019 API's name
        return True
    if failed or status in ("processing", "requires_capture", "succeeded", "canceled"):
        return False
    return None


def payment_from_intent(pi: Mapping[str, Any]) -> ProviderPayment:
    status = str(pi.get("status") or "")
    captured = _iso(pi, "amount_received")
    capturable = _iso(pi, "amount_capturable")
    authorized = captured + capturable if status in ("requires_capture", "succeeded") else 0
    error = pi.get("last_payment_error") or None
    metadata = pi.get("metadata") or {}
    next_action = pi.get("next_action") or {}
    redirect = (next_action.get("redirect_to_url") or {}).get("url") if isinstance(next_action, Mapping) else None
    failed = error is not None and status == "requires_payment_method"
    return ProviderPayment(
        provider_ref=str(pi["id"]),
        provider_status=status,
        amount_authorized=authorized,
        amount_captured=captured,
        failed=failed,
        canceled=status == "canceled",
        failure_code=(error.get("decline_code") or error.get("code")) if error else None,
        failure_message=error.get("message") if error else None,
        client_secret=pi.get("client_secret"),
        action_url=redirect,
        requires_action=_requires_action(status, failed),
        payment_id=metadata.get("payment_id"),
        order_id=metadata.get("order_id"),
    )


def payment_from_charge(charge: Mapping[str, Any]) -> ProviderPayment | None:
    intent = charge.get("payment_intent")
    if not intent:
        return None
    metadata = charge.get("metadata") or {}
    captured = _iso(charge, "amount_captured")
    return ProviderPayment(
        provider_ref=str(intent),
        provider_status="succeeded" if charge.get("captured") else str(charge.get("status") or ""),
        amount_authorized=captured,
        amount_captured=captured,
        amount_refunded=_iso(charge, "amount_refunded"),
        payment_id=metadata.get("payment_id"),
        order_id=metadata.get("order_id"),
    )


class _RecordingHTTPXClient(stripe.HTTPXClient):
    """The SDK's HTTPX client, recording each attempt. `request_async` is the SDK's documented
    per-attempt hook for custom clients; `sleep_async` runs exactly once before each retry."""

    def __init__(self, calls: CallLog | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls = calls

    def _record(self, method: str, status: int | None, started: float, error: BaseException | None) -> None:
        if self.calls is not None:
            cause = (error.__cause__ or error) if error is not None else None
            detail = short_error(cause) if cause is not None else None
            self.calls.record("stripe", method, status, time.perf_counter() - started, detail)

    async def _timed(self, method: str, call: Awaitable[_Answer]) -> _Answer:
        started = time.perf_counter()
        try:
            answer = await call
        except stripe.APIConnectionError as exc:
            self._record(method, None, started, exc)
            raise
        self._record(method, answer[1], started, None)
        return answer

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        return await self._timed(method, super().request_async(method, url, headers, post_data))

    async def request_stream_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[AsyncIterable[bytes], int, Mapping[str, str]]:
        return await self._timed(method, super().request_stream_async(method, url, headers, post_data))

    def sleep_async(self, secs: float) -> Awaitable[None]:
        if self.calls is not None:
            self.calls.retried("stripe")
        return super().sleep_async(secs)  # type: ignore[no-untyped-call,no-any-return]


class StripeProvider:
    name = "stripe"

    def __init__(
        self,
        *,
        secret_key: str,
        api_base: str | None = None,
        sandbox: bool = False,
        max_network_retries: int = 2,
        timeout: float = 30.0,
        calls: CallLog | None = None,
    ) -> None:
        self._secret_key = secret_key
        self.api_base = api_base
        self.sandbox = sandbox
        self._http = _RecordingHTTPXClient(calls, timeout=timeout)
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=self._http,
            max_network_retries=max_network_retries,
            stripe_version=_API_VERSION,
        )

    @property
    def mode(self) -> str:
        if self.sandbox:
            return "sandbox"
        return "test" if self._secret_key.startswith(("sk_test_", "rk_test_")) else "live"

    # -- errors -----------------------------------------------------------------------------

    def _translate(self, exc: stripe.StripeError) -> IntegrationError:
        kwargs: dict[str, Any] = {"status": exc.http_status, "code": exc.code, "request_id": exc.request_id}
        message = exc.user_message or type(exc).__name__
        if isinstance(exc, stripe.CardError):
            intent = getattr(exc.error, "payment_intent", None)
            state = payment_from_intent(_as_dict(intent)) if intent else None
            decline = getattr(exc.error, "decline_code", None)
            return PaymentDeclined(self.name, message, payment_state=state, **{**kwargs, "code": decline or exc.code})
        if isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError)) or (exc.http_status or 0) >= 500:
            return ProviderUnavailable(self.name, message, **kwargs)
        if isinstance(exc, stripe.InvalidRequestError) and exc.code != "idempotency_error":
            # Stripe refused the request itself (a parameter, an unknown payment method): the caller's to fix.
            return ProviderRejected(self.name, message, **kwargs)
        return IntegrationError(self.name, message, **kwargs)

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except stripe.StripeError as exc:
            raise self._translate(exc) from exc

    # -- payment provider interface -------------------------------------------------------

    async def initiate(self, request: PaymentRequest) -> ProviderPayment:
        self._check_amount(request.amount, request.currency, charge=True)
        params: dict[str, Any] = {
            "amount": to_stripe(request.amount, request.currency),
            "currency": request.currency.lower(),
            "capture_method": request.capture_method,
            "metadata": {"order_id": request.order_id, "payment_id": request.payment_id},
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        }
        if request.payment_method:
            params["payment_method"] = request.payment_method
        if request.description:
            params["description"] = request.description
        if request.email:
            params["receipt_email"] = request.email
        pi = await self._call(
            self._client.v1.payment_intents.create_async,
            params=params,
            options={"idempotency_key": f"storebridge:{request.payment_id}:create"},
        )
        return payment_from_intent(_as_dict(pi))

    def _check_amount(self, amount: int, currency: str, *, charge: bool) -> None:
        """Refuse, before any call, an amount Stripe cannot take exactly or at all (it would answer 400)."""
        problem = stripe_amount_problem(amount, currency, charge=charge)
        if problem is not None:
            raise ProviderRejected(self.name, problem[1], code=problem[0])

    async def _currency_of(self, provider_ref: str, currency: str | None) -> str:
        if currency is not None:
            return currency
        pi = await self._call(self._client.v1.payment_intents.retrieve_async, provider_ref)
        return str(_as_dict(pi)["currency"])

    async def _intent_op(
        self, fn: Any, provider_ref: str, params: dict[str, Any], key: str, done: Callable[[ProviderPayment], bool]
    ) -> ProviderPayment:
        """Call a PaymentIntent operation; "unexpected state" counts as success when `done(state)` holds."""
        try:
            pi = await self._call(fn, provider_ref, params=params, options={"idempotency_key": key})
        except IntegrationError as exc:
            if exc.code == "payment_intent_unexpected_state":
                state = await self.retrieve(provider_ref)
                if done(state):
                    return state
            raise
        return payment_from_intent(_as_dict(pi))

    async def confirm(
        self,
        provider_ref: str,
        *,
        payment_id: str,
        payment_method: str | None,
        attempt: int,
        return_url: str | None = None,
    ) -> ProviderPayment:
        """Confirm the PaymentIntent. A card that needs 3-D Secure answers requires_action: with `return_url`
        its next_action is redirect_to_url (the buyer's browser goes to the bank's page, then back to
        return_url), without it use_stripe_sdk (Stripe.js runs the challenge with the client secret)."""
        params: dict[str, Any] = {"payment_method": payment_method} if payment_method else {}
        if return_url:
            params["return_url"] = return_url
        key = f"storebridge:{payment_id}:confirm:{attempt}"
        # Already confirmed (e.g. by the buyer's browser): report where it stands.
        return await self._intent_op(
            self._client.v1.payment_intents.confirm_async, provider_ref, params, key, lambda _: True
        )

    async def capture(
        self, provider_ref: str, *, payment_id: str, amount: int | None, currency: str | None = None
    ) -> ProviderPayment:
        params: dict[str, Any] = {}
        if amount is not None:
            currency = await self._currency_of(provider_ref, currency)
            self._check_amount(amount, currency, charge=False)
            params["amount_to_capture"] = to_stripe(amount, currency)
        return await self._intent_op(
            self._client.v1.payment_intents.capture_async,
            provider_ref,
            params,
            f"storebridge:{payment_id}:capture",
            lambda state: state.provider_status == "succeeded",
        )

    async def refund(
        self,
        provider_ref: str,
        *,
        payment_id: str,
        refund_id: str,
        amount: int | None,
        reason: str | None,
        currency: str | None = None,
    ) -> ProviderRefund:
        params: dict[str, Any] = {
            "payment_intent": provider_ref,
            "metadata": {"payment_id": payment_id, "refund_id": refund_id},
        }
        if amount is not None:
            currency = await self._currency_of(provider_ref, currency)
            self._check_amount(amount, currency, charge=False)
            params["amount"] = to_stripe(amount, currency)
        if reason in ("duplicate", "fraudulent", "requested_by_customer"):
            params["reason"] = reason
        try:
            refund = await self._call(
                self._client.v1.refunds.create_async,
                params=params,
                options={"idempotency_key": f"storebridge:{refund_id}:refund"},
            )
        except IntegrationError as exc:
            if exc.code == "charge_already_refunded":
                return ProviderRefund(provider_ref="", amount=0, status="already_refunded")
            raise
        data = _as_dict(refund)
        return ProviderRefund(provider_ref=str(data["id"]), amount=_iso(data, "amount"), status=str(data["status"]))

    async def cancel(self, provider_ref: str, *, payment_id: str) -> ProviderPayment:
        return await self._intent_op(
            self._client.v1.payment_intents.cancel_async,
            provider_ref,
            {},
            f"storebridge:{payment_id}:cancel",
            lambda state: state.canceled,
        )

    async def retrieve(self, provider_ref: str) -> ProviderPayment:
        pi = await self._call(self._client.v1.payment_intents.retrieve_async, provider_ref)
        return payment_from_intent(_as_dict(pi))

    async def events_page(
        self, *, created_since: int, starting_after: str | None = None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of events created at or after `created_since`, newest first as Stripe lists them,
        older than `starting_after` when given; and whether older pages remain."""
        params: dict[str, Any] = {"limit": limit, "created": {"gte": created_since}}
        if starting_after is not None:
            params["starting_after"] = starting_after
        page = await self._call(self._client.v1.events.list_async, params=params)
        return [_as_dict(e) for e in page.data], bool(page.has_more)

    def parse_webhook(self, raw: bytes, headers: Mapping[str, str]) -> PaymentUpdate:
        try:
            event = json.loads(raw)
            event_type = str(event["type"])
            obj = event["data"]["object"]
        except (ValueError, KeyError, TypeError):
            raise WebhookRejected("not a Stripe event: expected JSON with type and data.object") from None
        if event_type.startswith("payment_intent."):
            return PaymentUpdate(event_type, payment_from_intent(obj))
        if event_type in ("charge.succeeded", "charge.captured", "charge.refunded", "charge.refund.updated"):
            return PaymentUpdate(event_type, payment_from_charge(obj))
        if event_type.startswith("charge.dispute."):
            return PaymentUpdate(event_type, None, dispute_from_stripe(event_type, obj))
        return PaymentUpdate(event_type, None, mention=mention_in(obj))

    def validate_config(self) -> list[str]:
        problems = []
        if not self._secret_key.startswith(("sk_", "rk_")):
            problems.append("STRIPE_SECRET_KEY must start with sk_ or rk_")
        return problems

    async def health_check(self) -> HealthStatus:
        started = time.perf_counter()
        try:
            await self._call(self._client.v1.balance.retrieve_async)
        except IntegrationError as exc:
            return HealthStatus(self.name, False, self.mode, detail=str(exc))
        return HealthStatus(self.name, True, self.mode, latency_ms=round((time.perf_counter() - started) * 1000, 1))

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]


def identify_stripe_event(raw: bytes, headers: Mapping[str, str] | None = None) -> Identified:
    """Event id, type, time and the PaymentIntent it concerns, read without building models."""
    event = parse_json_object(raw)
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not isinstance(event_type, str):
        raise WebhookRejected("a Stripe event needs string 'id' and 'type'", code="malformed_event")
    obj = (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
    aggregate = None
    if isinstance(obj, dict):
        aggregate = obj.get("id") if obj.get("object") == "payment_intent" else obj.get("payment_intent")
    created = event.get("created")
    return Identified(event_id, event_type, float(created) if isinstance(created, int | float) else None, aggregate)
