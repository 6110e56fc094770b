"""The AcmePay sandbox: an emulator of AcmePay's API that the hub mounts at /_sandbox/acmepay.

Routes answer from the AcmeAccount state machine; `Authorization: Bearer <key>` must carry the
sandbox's key; a repeated `Acme-Idempotency-Key` replays the first answer (and the same key with a
different request is a 409). Every event is POSTed to `webhook_url`, signed with AcmePay's scheme
(signature.py), and retried on failure. GET /_control/deliveries lists what was sent and how it went.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from storebridge_acmepay.account import AcmeAccount, AcmeError, Charge
from storebridge_acmepay.signature import SIGNATURE_HEADER, signature_header

__all__ = ["AcmePaySandbox"]

log = logging.getLogger(__name__)

Operation = Callable[[Request, dict[str, Any]], tuple[Any, Charge, list[str]]]


@dataclass(frozen=True, slots=True)
class _Stored:
    fingerprint: str
    status: int
    body: Any


class AcmePaySandbox:
    """`app` is the emulator; events go to `webhook_url` signed with `webhook_secret`."""

    def __init__(
        self,
        *,
        webhook_url: str | None,
        webhook_secret: str,
        api_key: str,
        settle_seconds: float = 0.05,
        retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0),
    ) -> None:
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.api_key = api_key
        self.settle_seconds = settle_seconds
        self.retry_delays = retry_delays
        self.account = AcmeAccount()
        self.deliveries: list[dict[str, Any]] = []
        self._idempotency: dict[str, _Stored] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._app: Starlette | None = None

    # The hub keeps an emulator's state in its database when it offers these two (sandbox persistence).
    def to_dict(self) -> dict[str, Any]:
        return self.account.to_dict()

    def from_dict(self, data: dict[str, Any]) -> None:
        self.account.from_dict(data)

    @property
    def app(self) -> Starlette:
        if self._app is None:
            self._app = Starlette(routes=self._routes())
        return self._app

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- routes -----------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        account = self.account

        def charge_op(fn: Callable[[str, dict[str, Any]], tuple[Charge, list[str]]]) -> Operation:
            def run(request: Request, body: dict[str, Any]) -> tuple[Any, Charge, list[str]]:
                charge, events = fn(request.path_params["id"], body)
                return charge, charge, events

            return run

        def create(request: Request, body: dict[str, Any]) -> tuple[Any, Charge, list[str]]:
            charge, events = account.create(body)
            return charge, charge, events

        def refund(request: Request, body: dict[str, Any]) -> tuple[Any, Charge, list[str]]:
            return account.refund(request.path_params["id"], body)

        return [
            Route("/v1/account", self._account, methods=["GET"]),
            Route("/v1/charges", self._endpoint(create, 201), methods=["POST"]),
            Route("/v1/charges/{id}", self._get_charge, methods=["GET"]),
            Route("/v1/charges/{id}/confirm", self._endpoint(charge_op(self._confirm)), methods=["POST"]),
            Route("/v1/charges/{id}/capture", self._endpoint(charge_op(account.capture)), methods=["POST"]),
            Route("/v1/charges/{id}/void", self._endpoint(charge_op(lambda i, _: account.void(i))), methods=["POST"]),
            Route("/v1/charges/{id}/refunds", self._endpoint(refund, 201), methods=["POST"]),
            Route("/_control/deliveries", self._list_deliveries, methods=["GET"]),
        ]

    def _confirm(self, charge_id: str, body: dict[str, Any]) -> tuple[Charge, list[str]]:
        charge, events = self.account.confirm(charge_id, body)
        if charge["status"] == "processing":
            self._spawn(self._settle_later(charge_id))
        return charge, events

    def _refuse(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse(AcmeError(401, "unauthorized", "invalid API key").body(), 401)
        return None

    async def _account(self, request: Request) -> Response:
        return self._refuse(request) or JSONResponse({"object": "account", "id": "acct_sandbox", "mode": "sandbox"})

    async def _get_charge(self, request: Request) -> Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        try:
            return JSONResponse(self.account.charge(request.path_params["id"]))
        except AcmeError as exc:
            return JSONResponse(exc.body(), exc.status)

    async def _list_deliveries(self, request: Request) -> Response:
        return JSONResponse({"data": self.deliveries})

    def _endpoint(self, operation: Operation, ok_status: int = 200) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            refused = self._refuse(request)
            if refused is not None:
                return refused
            raw = await request.body()
            key = request.headers.get("acme-idempotency-key")
            fingerprint = hashlib.sha256(request.url.path.encode() + b"\n" + raw).hexdigest()
            stored = self._idempotency.get(key) if key else None
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    error = AcmeError(409, "idempotency_mismatch", f"key {key!r} was used with another request")
                    return JSONResponse(error.body(), 409)
                return JSONResponse(stored.body, stored.status, headers={"Acme-Idempotent-Replayed": "true"})
            try:
                body = json.loads(raw) if raw else {}
                if not isinstance(body, dict):
                    raise AcmeError(400, "invalid_json", "the body must be a JSON object")
                answer, charge, events = operation(request, body)
                status, payload = ok_status, answer
            except json.JSONDecodeError:
                status, payload = 400, AcmeError(400, "invalid_json", "the body is not JSON").body()
            except AcmeError as exc:
                status, payload = exc.status, exc.body()
                for event_type in exc.events:  # a decline is an event too
                    assert exc.charge is not None
                    self._emit(exc.charge, event_type)
            else:
                for event_type in events:
                    self._emit(charge, event_type)
            if key:
                self._idempotency[key] = _Stored(fingerprint, status, payload)
            return JSONResponse(payload, status)

        return endpoint

    # -- events and signed deliveries -------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle_later(self, charge_id: str) -> None:
        await asyncio.sleep(self.settle_seconds)
        charge, events = self.account.settle(charge_id)
        for event_type in events:
            self._emit(charge, event_type)

    def _emit(self, charge: Charge, event_type: str) -> None:
        event = {
            "id": "evt_" + secrets.token_hex(12),
            "type": event_type,
            "created": int(time.time()),
            "data": {"charge": dict(charge)},  # a snapshot: later changes must not alter what was sent
        }
        delivery: dict[str, Any] = {"event": event["id"], "type": event_type, "charge": charge["id"], "attempts": []}
        self.deliveries.append(delivery)
        if self.webhook_url is not None:
            self._spawn(self._deliver(json.dumps(event).encode(), delivery))

    async def _deliver(self, raw: bytes, delivery: dict[str, Any]) -> None:
        """POST one event until the hub answers 2xx, waiting `retry_delays` between attempts."""
        assert self.webhook_url is not None
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10.0)
        for delay in (0.0, *self.retry_delays):
            await asyncio.sleep(delay)
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: signature_header(raw, secret=self.webhook_secret, timestamp=int(time.time())),
            }
            try:
                response = await self._client.post(self.webhook_url, content=raw, headers=headers)
            except httpx.HTTPError as exc:
                delivery["attempts"].append({"error": type(exc).__name__})
                continue
            delivery["attempts"].append({"status": response.status_code})
            if response.is_success:
                return
        log.warning("acmepay sandbox gave up delivering %s", delivery["event"])
