"""An emulator of the guide's external inventory API (an ERP or warehouse system).

    GET    /stores/{store}/health
    POST   /stores/{store}/inventory/sync          {variants: [{sku, quantity, location_id}]}
    POST   /stores/{store}/inventory               {sku, quantity, location_id}  (one level)
    GET    /stores/{store}/inventory?cursor=&limit= levels, paginated
    POST   /stores/{store}/inventory/reserve       {sku, quantity, location_id?, order_id?}
    DELETE /stores/{store}/inventory/release/{id}

`Idempotency-Key` is honoured on POSTs (the stored answer is replayed; the same key with another body
is a 422). Built on the sandbox kit: `latency`, `error_rate` and `rate_limit_rate` are standing fault rules
(`/_control/faults` adds others), webhooks go through the kit's sender (no retries: `send_update` reports the
one answer). Its own controls: POST `/_control/levels` {sku, quantity, location_id} (sets a level and sends a
signed `inventory.updated` webhook), POST `/_control/rejections` {skus} (syncs naming them are refused),
GET `/_control/state`. Mount `.app` anywhere or serve it alone; all state is in memory.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from storebridge.webhooks.verify import sign_plain, sign_standard

from .kit import ApiRoute, ControlError, Emulator, Fault, RouteTable, control_error, read_json_object

__all__ = ["InventorySandbox"]

Handler = Callable[[Request], Awaitable[Response]]


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status, headers=headers, media_type="application/json")


def _error(status: int, code: str, message: str, **extra: Any) -> Response:
    return _json(status, {"error": {"code": code, "message": message, **extra}})


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


class InventorySandbox(Emulator):
    """The emulator: `app` answers the guide's API; `inventory.updated` webhooks go to `webhook_url`."""

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_scheme: str = "standard",
        api_key: str | None = None,
        latency: float = 0.0,
    ) -> None:
        super().__init__(webhook_url=webhook_url, retry_delays=())
        self.webhook_secret = webhook_secret
        self.webhook_scheme = webhook_scheme
        self.api_key = api_key
        # Standing rules, in this order: one roll per call, so a 429 and a 503 never hit the same call.
        self._rate_limit_rule = self.faults.add(Fault(status=429, count=None, probability=0.0, retry_after=0))
        self._error_rule = self.faults.add(Fault(status=503, count=None, probability=0.0))
        self._latency_rule = self.faults.add(Fault(status=None, count=None, delay=latency))
        self.fail_skus: set[str] = set()
        self.levels: dict[str, dict[tuple[str, str], int]] = {}  # store -> (sku, location) -> quantity
        self.reservations: dict[str, dict[str, Any]] = {}
        self.applied: Counter[str] = Counter()  # sku -> times a sync actually applied it
        self.replays = 0  # requests answered from the idempotency store
        self._idempotent: dict[str, tuple[str, int, str]] = {}  # key -> (body hash, status, answer)

    # -- the standing faults, as attributes (tests and the benchmark set them) -----------------

    def _standing(self, rule: Fault) -> Fault:
        if not any(live is rule for live in self.faults.rules):  # cleared through /_control/faults
            self.faults.add(rule)
        return rule

    @property
    def latency(self) -> float:
        return self._latency_rule.delay

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._standing(self._latency_rule).delay = seconds

    @property
    def error_rate(self) -> float:
        return self._error_rule.probability

    @error_rate.setter
    def error_rate(self, rate: float) -> None:
        self._standing(self._error_rule).probability = rate

    @property
    def rate_limit_rate(self) -> float:
        return self._rate_limit_rule.probability

    @rate_limit_rate.setter
    def rate_limit_rate(self, rate: float) -> None:
        self._standing(self._rate_limit_rule).probability = rate

    @property
    def rng(self) -> random.Random:
        return self.faults.rng

    @rng.setter
    def rng(self, rng: random.Random) -> None:
        self.faults.rng = rng

    @property
    def requests(self) -> int:
        """API calls received, faulted ones included."""
        return self.calls

    @property
    def faults_served(self) -> int:
        return self.faults.served

    def to_dict(self) -> dict[str, Any]:
        """Stock levels per store, reservations and applied-sync counts, JSON-ready."""
        return {
            "levels": {store: [[sku, loc, qty] for (sku, loc), qty in by.items()] for store, by in self.levels.items()},
            "reservations": self.reservations,
            "applied": dict(self.applied),
        }

    def from_dict(self, data: dict[str, Any]) -> None:
        self.levels = {
            store: {(sku, loc): int(qty) for sku, loc, qty in rows} for store, rows in data.get("levels", {}).items()
        }
        self.reservations = dict(data.get("reservations", {}))
        self.applied = Counter(data.get("applied", {}))

    def route_table(self) -> RouteTable:
        api: list[tuple[str, str, Handler]] = [
            ("GET", "/stores/{store}/health", self._health),
            ("POST", "/stores/{store}/inventory/sync", self._sync),
            ("POST", "/stores/{store}/inventory/reserve", self._reserve),
            ("DELETE", "/stores/{store}/inventory/release/{id}", self._release),
            ("POST", "/stores/{store}/inventory", self._set_level),
            ("GET", "/stores/{store}/inventory", self._list_levels),
        ]
        return RouteTable(
            api=[ApiRoute(method, path, self._guard(handler)) for method, path, handler in api],
            controls=[
                Route("/_control/levels", self._control_levels, methods=["POST"]),
                Route("/_control/rejections", self._control_rejections, methods=["GET", "POST"]),
                Route("/_control/state", self._control_state, methods=["GET"]),
            ],
        )

    def fault_response(self, fault: Fault, request: Request) -> Response:
        """An injected error in the inventory API's shape: 429 rate_limited, 503 unavailable, or the status."""
        assert fault.status is not None
        if fault.status == 429:
            retry_after = f"{fault.retry_after:g}" if fault.retry_after is not None else "0"
            body = {"error": {"code": "rate_limited", "message": "too many requests"}}
            return _json(429, body, headers={"Retry-After": retry_after})
        if fault.status == 503:
            return _error(503, "unavailable", "the inventory system is temporarily unavailable")
        return _error(fault.status, "injected_fault", f"Injected fault: HTTP {fault.status}")

    # -- the request path (after the kit's faults): auth, idempotency ------------------------

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
                return _error(401, "unauthorized", "send Authorization: Bearer <INVENTORY_API_KEY>")
            key = request.headers.get("idempotency-key")
            if request.method != "POST" or not key:
                return await self._answer(handler, request)
            body_hash = hashlib.sha256(await request.body()).hexdigest()
            stored = self._idempotent.get(key)
            if stored is not None:
                if stored[0] != body_hash:
                    return _error(422, "idempotency_key_reused", "this Idempotency-Key was used with another body")
                self.replays += 1
                return Response(
                    stored[2], stored[1], media_type="application/json", headers={"Idempotent-Replayed": "true"}
                )
            response = await self._answer(handler, request)
            if response.status_code < 500:
                self._idempotent[key] = (body_hash, response.status_code, bytes(response.body).decode())
            return response

        return guarded

    @staticmethod
    async def _answer(handler: Handler, request: Request) -> Response:
        try:
            return await handler(request)
        except _Refused as exc:
            return exc.response

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        try:
            data = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            raise _Refused(_error(400, "invalid_json", "the body is not JSON")) from None
        if not isinstance(data, dict):
            raise _Refused(_error(400, "invalid_json", "the body must be a JSON object"))
        return data

    @staticmethod
    def _variant(v: Any) -> tuple[str, str, int]:
        if not isinstance(v, dict) or not isinstance(v.get("sku"), str) or not v["sku"]:
            raise _Refused(_error(422, "invalid_variant", "each variant needs a string sku"))
        quantity = v.get("quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
            raise _Refused(_error(422, "invalid_quantity", f"quantity for {v['sku']!r} must be a whole number >= 0"))
        return v["sku"], str(v.get("location_id") or "default"), quantity

    def _store(self, request: Request) -> dict[tuple[str, str], int]:
        return self.levels.setdefault(request.path_params["store"], {})

    # -- the API ---------------------------------------------------------------------------

    async def _health(self, request: Request) -> Response:
        return _json(200, {"status": "ok", "store_id": request.path_params["store"], "time": time.time()})

    async def _sync(self, request: Request) -> Response:
        body = await self._body(request)
        variants = body.get("variants")
        if not isinstance(variants, list) or not variants:
            return _error(422, "invalid_variants", "variants must be a non-empty list")
        parsed = [self._variant(v) for v in variants]
        bad = sorted({sku for sku, _, _ in parsed if sku in self.fail_skus})
        if bad:
            return _error(422, "sku_rejected", f"the inventory system rejected SKU(s) {', '.join(bad)}", skus=bad)
        store = self._store(request)
        for sku, location, quantity in parsed:
            store[(sku, location)] = quantity
            self.applied[sku] += 1
        return _json(200, {"synced": len(parsed), "store_id": request.path_params["store"]})

    async def _set_level(self, request: Request) -> Response:
        sku, location, quantity = self._variant(await self._body(request))
        self._store(request)[(sku, location)] = quantity
        return _json(200, {"sku": sku, "location_id": location, "quantity": quantity})

    async def _list_levels(self, request: Request) -> Response:
        store = self._store(request)
        cursor = request.query_params.get("cursor") or ""
        limit = min(int(request.query_params.get("limit") or 500), 1000)
        keys = sorted(k for k in store if f"{k[0]}\x00{k[1]}" > cursor)[:limit]
        levels = [{"sku": s, "location_id": loc, "quantity": store[(s, loc)]} for s, loc in keys]
        more = len(keys) == limit
        return _json(200, {"levels": levels, "next_cursor": f"{keys[-1][0]}\x00{keys[-1][1]}" if more else None})

    async def _reserve(self, request: Request) -> Response:
        body = await self._body(request)
        sku, location, quantity = self._variant(body)
        store = self._store(request)
        held = sum(r["quantity"] for r in self.reservations.values() if (r["sku"], r["location_id"]) == (sku, location))
        available = store.get((sku, location), 0) - held
        if quantity > available:
            return _error(409, "insufficient_stock", f"{available} of {sku!r} available", available=available)
        rid = "rsv_" + secrets.token_hex(8)
        self.reservations[rid] = {
            "id": rid,
            "sku": sku,
            "location_id": location,
            "quantity": quantity,
            "order_id": body.get("order_id"),
        }
        return _json(201, self.reservations[rid])

    async def _release(self, request: Request) -> Response:
        reservation = self.reservations.pop(request.path_params["id"], None)
        if reservation is None:
            return _error(404, "not_found", f"no reservation {request.path_params['id']!r}")
        return _json(200, {**reservation, "released": True})

    # -- test controls and webhooks ------------------------------------------------------------

    async def _control_rejections(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                skus = (await read_json_object(request)).get("skus", [])
                if not isinstance(skus, list) or not all(isinstance(sku, str) for sku in skus):
                    raise ControlError("skus must be a list of strings.", "skus")
            except ControlError as exc:
                return control_error(exc)
            self.fail_skus = set(skus)
        return _json(200, {"skus": sorted(self.fail_skus)})

    async def _control_levels(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        store_id = str(body.get("store_id") or "store_default")
        try:
            sku, location, quantity = self._variant(body)
        except _Refused as exc:
            return exc.response
        self.levels.setdefault(store_id, {})[(sku, location)] = quantity
        status = await self.send_update(sku, quantity, location, store_id=store_id)
        return _json(200, {"sku": sku, "quantity": quantity, "webhook_status": status})

    async def _control_state(self, request: Request) -> Response:
        return _json(
            200,
            {
                "requests": self.requests,
                "faults_served": self.faults_served,
                "skus": sum(len(s) for s in self.levels.values()),
                "deliveries": len(self.deliveries),
            },
        )

    def signed_update(
        self, sku: str, quantity: int, location: str, *, store_id: str = "store_default"
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of an `inventory.updated` webhook, signed with the configured scheme."""
        msg_id = "msg_" + secrets.token_hex(12)
        ts = int(time.time())
        body = json.dumps(
            {
                "id": msg_id,
                "type": "inventory.updated",
                "timestamp": ts,
                "data": {"sku": sku, "quantity": quantity, "location_id": location, "store_id": store_id},
            }
        ).encode()
        headers = {"content-type": "application/json"}
        if self.webhook_secret and self.webhook_scheme == "standard":
            headers |= {
                "webhook-id": msg_id,
                "webhook-timestamp": str(ts),
                "webhook-signature": sign_standard(body, secret=self.webhook_secret, msg_id=msg_id, timestamp=ts),
            }
        elif self.webhook_secret:
            headers["x-webhook-signature"] = sign_plain(body, secret=self.webhook_secret)
        return body, headers

    async def send_update(
        self, sku: str, quantity: int, location: str, *, store_id: str = "store_default"
    ) -> int | None:
        """Send a signed `inventory.updated` to the hub; returns its HTTP status (None: not sent or no answer)."""
        body, headers = self.signed_update(sku, quantity, location, store_id=store_id)
        event_id = headers.get("webhook-id") or str(orjson.loads(body)["id"])
        delivery = self.deliver(
            body, sign=lambda _body: headers, event_id=event_id, event_type="inventory.updated", extra={"sku": sku}
        )
        return None if delivery is None else await self.sender.outcome(delivery)
