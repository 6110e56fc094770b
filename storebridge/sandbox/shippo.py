"""A Shippo API emulator (shipments with rates from several carriers, transactions with real PDF labels,
tracks that advance on request and send `track_updated` webhooks), with Shippo's error shapes and 429s.

Mount `ShippoSandbox(...).app` anywhere (the client's base address is the mount point) or serve it alone.
Built on the sandbox kit: `/_control/faults` injects an error (a 429 comes with Shippo's rate-limit headers),
a delay or a dropped connection, before or after the work; `/_control/deliveries` shows the webhooks sent.
The carrier's part: POST `/advance/{tracking_number}` (PRE_TRANSIT -> TRANSIT -> DELIVERED, or `?to=RETURNED`).
All state lives on the instance, in memory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .kit import ApiRoute, Emulator, Endpoint, Fault, RouteTable
from .shippo_label import (
    SERVICES,
    TRACKING_DETAILS,
    ShippoError,
    address_lines,
    new_object_id,
    now_iso,
    render_label,
    shipment_object,
    track_object,
    transaction_object,
)

__all__ = ["ShippoSandbox", "ShippoError", "SERVICES"]

logger = logging.getLogger(__name__)

_NEXT = {"UNKNOWN": "PRE_TRANSIT", "PRE_TRANSIT": "TRANSIT", "TRANSIT": "DELIVERED"}


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status, headers=headers, media_type="application/json")


def _page(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"count": len(items), "results": items}  # no next/previous: everything fits on one page


class ShippoSandbox(Emulator):
    """The emulator: `app` answers the Shippo API subset storebridge uses; webhooks go to `webhook_url`."""

    def __init__(
        self,
        *,
        webhook_url: str | None,
        api_key: str | None = None,
        hmac_secret: str | None = None,
        delivery_retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0),
    ) -> None:
        super().__init__(webhook_url=webhook_url, retry_delays=delivery_retry_delays, user_agent="Shippo/1.0 (sandbox)")
        self.api_key = api_key
        self.hmac_secret = hmac_secret
        self.shipments: dict[str, dict[str, Any]] = {}
        self.rates: dict[str, dict[str, Any]] = {}
        self.transactions: dict[str, dict[str, Any]] = {}
        self.tracks: dict[str, dict[str, Any]] = {}
        self.labels: dict[str, bytes] = {}

    def to_dict(self) -> dict[str, Any]:
        """Shipments, rates, transactions, tracks and the label PDFs (base64), JSON-ready."""
        return {
            "shipments": self.shipments,
            "rates": self.rates,
            "transactions": self.transactions,
            "tracks": self.tracks,
            "labels": {k: base64.b64encode(v).decode("ascii") for k, v in self.labels.items()},
        }

    def from_dict(self, data: dict[str, Any]) -> None:
        """Take back what `to_dict` exported (a restarted hub's sandbox): its labels download again."""
        self.shipments = dict(data.get("shipments", {}))
        self.rates = dict(data.get("rates", {}))
        self.transactions = dict(data.get("transactions", {}))
        self.tracks = dict(data.get("tracks", {}))
        self.labels = {k: base64.b64decode(v) for k, v in data.get("labels", {}).items()}

    def route_table(self) -> RouteTable:
        api: list[tuple[str, str, Callable[[Request], Awaitable[Any]]]] = [
            ("POST", "/shipments", self._create_shipment),
            ("GET", "/shipments/{id}", self._get_shipment),
            ("GET", "/shipments/{id}/rates", self._shipment_rates),
            ("GET", "/rates/{id}", self._get_rate),
            ("POST", "/transactions", self._create_transaction),
            ("GET", "/transactions", self._list_transactions),
            ("GET", "/transactions/{id}", self._get_transaction),
            ("POST", "/tracks", self._register_track),
            ("GET", "/tracks/{carrier}/{number}", self._get_track),
            ("GET", "/carrier_accounts", self._carrier_accounts),
        ]
        return RouteTable(
            api=[ApiRoute(method, path, self._api(handler)) for method, path, handler in api],
            pages=[
                Route("/labels/{id}.pdf", self._label_pdf, methods=["GET"]),
                Route("/advance/{number}", self._advance_route, methods=["POST", "GET"]),
            ],
            fallback=self._api(self._not_found),
        )

    def fault_response(self, fault: Fault, request: Request) -> Response:
        """An injected error as Shippo answers: `{"detail": ...}`; a 429 with its rate-limit headers."""
        assert fault.status is not None
        headers = {"X-Request-Id": secrets.token_hex(8)}
        if fault.status == 429:
            wait = fault.retry_after if fault.retry_after is not None else 1
            headers |= {
                "Retry-After": f"{wait:g}",
                "X-RateLimit-Limit": "50",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time() + wait)),
            }
            return _json(429, {"detail": f"Request was throttled. Expected available in {wait:g} seconds."}, headers)
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        return _json(fault.status, {"detail": f"Injected fault: HTTP {fault.status}."}, headers)

    # ------------------------------------------------------------------ pipeline
    def _api(self, handler: Callable[[Request], Awaitable[Any]]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            headers = {"X-Request-Id": secrets.token_hex(8)}
            try:
                self._authenticate(request)
                status, payload = await handler(request)
            except ShippoError as exc:
                return _json(exc.status, exc.body, {**headers, **exc.headers})
            return _json(status, payload, headers)

        return endpoint

    def _authenticate(self, request: Request) -> None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme != "ShippoToken" or not key:
            raise ShippoError(401, {"detail": "Authentication credentials were not provided."})
        wrong = key != self.api_key if self.api_key else not key.startswith(("shippo_test_", "shippo_live_"))
        if wrong:
            raise ShippoError(401, {"detail": "Invalid token."})

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        try:
            data = json.loads(await request.body() or b"{}")
        except ValueError:
            raise ShippoError(400, {"detail": "JSON parse error - request body is not valid JSON."}) from None
        if not isinstance(data, dict):
            raise ShippoError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
        return data

    # ----------------------------------------------------------------- shipments
    async def _create_shipment(self, request: Request) -> tuple[int, dict[str, Any]]:
        shipment = shipment_object(await self._body(request))
        self.rates.update((rate["object_id"], rate) for rate in shipment["rates"])
        self.shipments[shipment["object_id"]] = shipment
        return 201, self._public(shipment)

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def _find(self, store: dict[str, dict[str, Any]], request: Request, what: str) -> dict[str, Any]:
        obj = store.get(str(request.path_params["id"]))
        if obj is None:
            raise ShippoError(404, {"detail": f"{what} not found."})
        return obj

    async def _get_shipment(self, request: Request) -> tuple[int, dict[str, Any]]:
        return 200, self._public(self._find(self.shipments, request, "Shipment"))

    async def _shipment_rates(self, request: Request) -> tuple[int, dict[str, Any]]:
        return 200, _page(self._find(self.shipments, request, "Shipment")["rates"])

    async def _get_rate(self, request: Request) -> tuple[int, dict[str, Any]]:
        return 200, self._find(self.rates, request, "Rate")

    async def _carrier_accounts(self, request: Request) -> tuple[int, dict[str, Any]]:
        carriers = sorted({s[0] for s in SERVICES})
        accounts = [
            {"object_id": hashlib.md5(c.encode()).hexdigest(), "carrier": c.lower(), "active": True} for c in carriers
        ]
        return 200, _page(accounts)

    # -------------------------------------------------------------- transactions
    async def _create_transaction(self, request: Request) -> tuple[int, dict[str, Any]]:
        body = await self._body(request)
        rate = self.rates.get(str(body.get("rate") or ""))
        if rate is None:
            raise ShippoError(400, {"rate": [f"Rate with object_id {body.get('rate')!r} does not exist."]})
        shipment = self.shipments[rate["shipment"]]
        transaction = transaction_object(body, rate, _mount_url(request))
        object_id, number = transaction["object_id"], transaction["tracking_number"]
        to, sender = shipment["address_to"], shipment["address_from"]
        self.labels[object_id] = render_label(
            sender=address_lines(sender),
            recipient=address_lines(to),
            carrier=rate["provider"],
            service=rate["servicelevel"]["name"],
            tracking_number=number,
            weight=shipment["_weight"],
        )
        self.transactions[object_id] = transaction
        self.tracks[number] = track_object(rate["provider"].lower(), number, object_id, to, sender)
        self._advance(number, "PRE_TRANSIT", send=False)
        self._emit("transaction_created", transaction)
        return 201, transaction

    async def _list_transactions(self, request: Request) -> tuple[int, dict[str, Any]]:
        rate, status = request.query_params.get("rate"), request.query_params.get("object_status")
        items = [t for t in self.transactions.values() if rate in (None, t["rate"]) and status in (None, t["status"])]
        return 200, _page(items)

    async def _get_transaction(self, request: Request) -> tuple[int, dict[str, Any]]:
        return 200, self._find(self.transactions, request, "Transaction")

    async def _label_pdf(self, request: Request) -> Response:
        pdf = self.labels.get(str(request.path_params["id"]))
        if pdf is None:
            return _json(404, {"detail": "Not found."})
        return Response(pdf, 200, media_type="application/pdf")

    async def _not_found(self, request: Request) -> tuple[int, dict[str, Any]]:
        raise ShippoError(404, {"detail": "Not found."})

    # -------------------------------------------------------------------- tracks
    async def _register_track(self, request: Request) -> tuple[int, dict[str, Any]]:
        body = await self._body(request)
        errors = {f: ["This field is required."] for f in ("carrier", "tracking_number") if not body.get(f)}
        if errors:
            raise ShippoError(400, errors)
        number = str(body["tracking_number"])
        track = self.tracks.setdefault(number, track_object(str(body["carrier"]), number, None, None, None))
        if track["tracking_status"] is None:
            self._advance(number, "UNKNOWN", send=False)
        if body.get("metadata"):
            track["metadata"] = str(body["metadata"])[:100]
        return 201, track

    async def _get_track(self, request: Request) -> tuple[int, dict[str, Any]]:
        track = self.tracks.get(str(request.path_params["number"]))
        if track is None or track["carrier"] != str(request.path_params["carrier"]).lower():
            raise ShippoError(404, {"detail": "Not found."})
        return 200, track

    def _advance(self, number: str, to: str | None = None, *, send: bool = True) -> dict[str, Any]:
        track = self.tracks[number]
        current = track["tracking_status"]["status"] if track["tracking_status"] else "UNKNOWN"
        target = to or _NEXT.get(current)
        if target is None:
            raise ShippoError(409, {"detail": f"Tracking {number} is {current}: it does not advance further."})
        now = now_iso()
        status = {
            "object_id": new_object_id(),
            "object_created": now,
            "object_updated": now,
            "status": target,
            "status_details": TRACKING_DETAILS.get(target, "Tracking information is not available yet."),
            "status_date": now,
            "location": track["address_to"] if target == "DELIVERED" else track["address_from"],
        }
        track["tracking_status"] = status
        track["tracking_history"].append(status)
        transaction = self.transactions.get(track.get("transaction") or "")
        if transaction is not None:
            transaction["tracking_status"], transaction["object_updated"] = target, now
        if send:
            self._emit("track_updated", track)
        return track

    async def _advance_route(self, request: Request) -> Response:
        number = str(request.path_params["number"])
        target = request.query_params.get("to")
        if number not in self.tracks:
            return _json(404, {"detail": f"No tracking number {number} in this sandbox."})
        if target is not None and target not in TRACKING_DETAILS:
            return _json(400, {"to": [f"must be one of {', '.join(TRACKING_DETAILS)}"]})
        try:
            track = self._advance(number, target)
        except ShippoError as exc:
            return _json(exc.status, exc.body)
        return _json(200, track)

    # ------------------------------------------------------------------ webhooks
    def _emit(self, event: str, data: dict[str, Any]) -> None:
        body = json.dumps({"event": event, "test": True, "data": data}).encode()
        event_id = str(data.get("object_id") or data.get("tracking_number") or "")
        self.deliver(body, sign=self._signed_headers, event_id=event_id, event_type=event, extra={"event": event})

    def _signed_headers(self, body: bytes) -> dict[str, str]:
        if not self.hmac_secret:
            return {}
        ts = int(time.time())
        mac = hmac.new(self.hmac_secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        return {"Shippo-Auth-Signature": f"t={ts},v1={mac}"}


def _mount_url(request: Request) -> str:
    """The URL this app is mounted at, whatever the mount point (labels are served from here)."""
    path, root = request.scope["path"], request.scope.get("root_path", "")
    inner = path[len(root) :] if root and path.startswith(root) else path
    url = str(request.url.replace(query=None))
    return url[: len(url) - len(inner)] if inner and url.endswith(inner) else url.rstrip("/")
