"""An emulator of the guide's external inventory API (an ERP or warehouse system).

    GET    /stores/{store}/health
    POST   /stores/{store}/inventory/sync          {variants: [{sku, quantity, location_id}]}
    POST   /stores/{store}/inventory               {sku, quantity, location_id}  (one level)
    GET    /stores/{store}/inventory?cursor=&limit= levels, paginated
    POST   /stores/{store}/inventory/reserve       {sku, quantity, location_id?, order_id?}
    DELETE /stores/{store}/inventory/release/{id}

`Idempotency-Key` is honoured on POSTs (the stored answer is replayed; the same key with another body
is a 422). Test controls: POST `/_control/faults` {latency, error_rate, rate_limit_rate, fail_skus, seed},
POST `/_control/levels` {sku, quantity, location_id} (sets a level and sends a signed `inventory.updated`
webhook), GET `/_control/state`. Mount `.app` anywhere or serve it alone; all state is in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from storebridge.webhooks.verify import sign_plain, sign_standard

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


class InventorySandbox:
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
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.webhook_scheme = webhook_scheme
        self.api_key = api_key
        self.latency = latency
        self.error_rate = 0.0
        self.rate_limit_rate = 0.0
        self.fail_skus: set[str] = set()
        self.rng = random.Random(0)
        self.levels: dict[str, dict[tuple[str, str], int]] = {}  # store -> (sku, location) -> quantity
        self.reservations: dict[str, dict[str, Any]] = {}
        self.applied: Counter[str] = Counter()  # sku -> times a sync actually applied it
        self.requests = 0
        self.faults_served = 0
        self.replays = 0  # requests answered from the idempotency store
        self.deliveries: list[dict[str, Any]] = []
        self._idempotent: dict[str, tuple[str, int, str]] = {}  # key -> (body hash, status, answer)
        self._client: httpx.AsyncClient | None = None
        self._app: Starlette | None = None

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

    @property
    def app(self) -> Starlette:
        if self._app is None:
            self._app = self._build()
        return self._app

    def _build(self) -> Starlette:
        api: list[tuple[str, str, Handler]] = [
            ("GET", "/stores/{store}/health", self._health),
            ("POST", "/stores/{store}/inventory/sync", self._sync),
            ("POST", "/stores/{store}/inventory/reserve", self._reserve),
            ("DELETE", "/stores/{store}/inventory/release/{id}", self._release),
            ("POST", "/stores/{store}/inventory", self._set_level),
            ("GET", "/stores/{store}/inventory", self._list_levels),
        ]
        routes = [Route(path, self._guard(handler), methods=[method]) for method, path, handler in api]
        routes += [
            Route("/_control/faults", self._control_faults, methods=["POST"]),
            Route("/_control/levels", self._control_levels, methods=["POST"]),
            Route("/_control/state", self._control_state, methods=["GET"]),
        ]
        return Starlette(routes=routes)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- the request path: auth, latency, faults, idempotency --------------------------------

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            self.requests += 1
            if self.latency:
                await asyncio.sleep(self.latency)
            if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
                return _error(401, "unauthorized", "send Authorization: Bearer <INVENTORY_API_KEY>")
            roll = self.rng.random()
            if roll < self.rate_limit_rate:
                self.faults_served += 1
                body = {"error": {"code": "rate_limited", "message": "too many requests"}}
                return _json(429, body, headers={"Retry-After": "0"})
            if roll < self.rate_limit_rate + self.error_rate:
                self.faults_served += 1
                return _error(503, "unavailable", "the inventory system is temporarily unavailable")
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

    async def _control_faults(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        self.latency = float(body.get("latency", self.latency))
        self.error_rate = float(body.get("error_rate", self.error_rate))
        self.rate_limit_rate = float(body.get("rate_limit_rate", self.rate_limit_rate))
        self.fail_skus = set(body.get("fail_skus", self.fail_skus))
        if "seed" in body:
            self.rng = random.Random(body["seed"])
        return _json(200, {"latency": self.latency, "error_rate": self.error_rate, "fail_skus": sorted(self.fail_skus)})

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
        """Send a signed `inventory.updated` to the hub; returns its HTTP status (None: not sent)."""
        if not self.webhook_url:
            return None
        body, headers = self.signed_update(sku, quantity, location, store_id=store_id)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10)
        try:
            response = await self._client.post(self.webhook_url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self.deliveries.append({"sku": sku, "status": None, "error": repr(exc)})
            return None
        self.deliveries.append({"sku": sku, "status": response.status_code})
        return response.status_code
