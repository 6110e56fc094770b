"""What the Shippo sandbox makes: shipments with rates, transactions, tracks, Shippo-shaped errors, and a
real, minimal PDF label (4x6 in) written by hand (no PDF library).

The label is one page, Helvetica text (sender, recipient, carrier, service, tracking number) and a
barcode-like row of bars derived from the tracking number, so a person can open and read it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "ShippoError",
    "shipment_object",
    "transaction_object",
    "SERVICES",
    "TRACKING_DETAILS",
    "address_lines",
    "new_object_id",
    "now_iso",
    "rate_object",
    "render_label",
    "track_object",
]

_WIDTH, _HEIGHT = 288, 432  # 4 x 6 inches in points
_OWNER = "sandbox@storebridge.invalid"


class ShippoError(Exception):
    """An answer in Shippo's error shape: `{"detail": ...}` or field errors `{"field": ["message"]}`."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(json.dumps(body))
        self.status, self.body, self.headers = status, body, headers or {}


_TO_LB = {"lb": Decimal(1), "oz": Decimal(1) / 16, "kg": Decimal("2.20462"), "g": Decimal("0.00220462")}
_ADDRESS_REQUIRED = ("name", "street1", "city", "zip", "country")
_PARCEL_REQUIRED = ("length", "width", "height", "distance_unit", "weight", "mass_unit")


def _field_errors(data: Any, required: tuple[str, ...], prefix: str) -> dict[str, list[str]]:
    if not isinstance(data, dict):
        return {prefix: ["This field is required."]}
    return {f"{prefix}.{f}": ["This field is required."] for f in required if not str(data.get(f) or "").strip()}


def shipment_object(body: dict[str, Any]) -> dict[str, Any]:
    """A Shipment (with its rates, CHEAPEST and FASTEST marked) from a create request; 400 field errors if bad."""
    errors = {**_field_errors(body.get("address_from"), _ADDRESS_REQUIRED, "address_from")}
    errors.update(_field_errors(body.get("address_to"), _ADDRESS_REQUIRED, "address_to"))
    parcels: list[Any] = body["parcels"] if isinstance(body.get("parcels"), list) else []
    if not parcels:
        errors["parcels"] = ["This field is required."]
    for n, parcel in enumerate(parcels):
        errors.update(_field_errors(parcel, _PARCEL_REQUIRED, f"parcels.{n}"))
    if errors:
        raise ShippoError(400, errors)
    try:
        weight_lb = sum((Decimal(str(p["weight"])) * _TO_LB[str(p["mass_unit"])] for p in parcels), Decimal(0))
    except (ArithmeticError, KeyError, ValueError):
        raise ShippoError(400, {"parcels": ["weight must be a number and mass_unit one of g, kg, lb, oz."]}) from None
    now, shipment_id = now_iso(), new_object_id()
    far = str(body["address_from"].get("zip", "0"))[:1] != str(body["address_to"].get("zip", "0"))[:1]
    rates = [rate_object(shipment_id, s, weight_lb, far, now) for s in SERVICES]
    min(rates, key=lambda r: Decimal(r["amount"]))["attributes"].append("CHEAPEST")
    min(rates, key=lambda r: (r["estimated_days"], Decimal(r["amount"])))["attributes"].append("FASTEST")
    return {
        "object_id": shipment_id,
        "object_created": now,
        "object_updated": now,
        "object_owner": _OWNER,
        "status": "SUCCESS",
        "address_from": {**body["address_from"], "object_id": new_object_id(), "is_complete": True},
        "address_to": {**body["address_to"], "object_id": new_object_id(), "is_complete": True},
        "parcels": [{**p, "object_id": new_object_id(), "object_state": "VALID", "test": True} for p in parcels],
        "rates": rates,
        "carrier_accounts": list(body.get("carrier_accounts") or []),
        "messages": [],
        "metadata": str(body.get("metadata") or ""),
        "extra": {},
        "test": True,
        "_weight": f"{weight_lb:.2f} lb",  # for the label; not part of the answer
    }


def transaction_object(body: dict[str, Any], rate: dict[str, Any], base_url: str) -> dict[str, Any]:
    """A successful Transaction for `rate`: a new tracking number and a label served under `base_url`."""
    now, object_id = now_iso(), new_object_id()
    number = f"SB{rate['provider'][:2].upper()}{secrets.randbelow(10**16):016d}"
    return {
        "object_id": object_id,
        "object_created": now,
        "object_updated": now,
        "object_owner": _OWNER,
        "object_state": "VALID",
        "status": "SUCCESS",
        "rate": rate["object_id"],
        "metadata": str(body.get("metadata") or ""),
        "label_file_type": str(body.get("label_file_type") or "PDF"),
        "label_url": f"{base_url}/labels/{object_id}.pdf",
        "tracking_number": number,
        "tracking_status": "PRE_TRANSIT",
        "tracking_url_provider": f"{base_url}/tracks/{rate['provider'].lower()}/{number}",
        "eta": "",
        "messages": [],
        "test": True,
    }


# carrier, service name, token, estimated days, base price, price per lb (USD)
SERVICES: tuple[tuple[str, str, str, int, str, str], ...] = (
    ("USPS", "Ground Advantage", "usps_ground_advantage", 4, "5.40", "0.55"),
    ("USPS", "Priority Mail", "usps_priority", 2, "8.70", "0.90"),
    ("USPS", "Priority Mail Express", "usps_priority_express", 1, "28.75", "1.60"),
    ("UPS", "Ground", "ups_ground", 5, "9.15", "0.70"),
    ("UPS", "2nd Day Air", "ups_second_day_air", 2, "19.80", "1.95"),
    ("FedEx", "Home Delivery", "fedex_home_delivery", 4, "9.60", "0.72"),
    ("FedEx", "Standard Overnight", "fedex_standard_overnight", 1, "41.20", "2.80"),
)

TRACKING_DETAILS = {
    "PRE_TRANSIT": "Shipping label created, awaiting item.",
    "TRANSIT": "Your shipment has departed from the origin facility.",
    "DELIVERED": "Your shipment has been delivered.",
    "RETURNED": "Your shipment is being returned to the sender.",
    "FAILURE": "The carrier could not deliver your shipment.",
}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_object_id() -> str:
    return secrets.token_hex(16)


def rate_object(
    shipment_id: str, service: tuple[str, str, str, int, str, str], lb: Decimal, far: bool, now: str
) -> Any:
    """A Shippo Rate for one service level: priced by weight, dearer (and a day slower) across the country."""
    carrier, name, token, days, base, per_lb = service
    amount = (Decimal(base) + Decimal(per_lb) * lb) * (Decimal("1.18") if far else 1)
    amount_text = f"{amount.quantize(Decimal('0.01'))}"
    return {
        "object_id": new_object_id(),
        "object_created": now,
        "object_owner": _OWNER,
        "shipment": shipment_id,
        "attributes": [],
        "amount": amount_text,
        "currency": "USD",
        "amount_local": amount_text,
        "currency_local": "USD",
        "provider": carrier,
        "servicelevel": {"name": name, "token": token, "terms": ""},
        "carrier_account": hashlib.md5(carrier.encode()).hexdigest(),
        "estimated_days": days + (1 if far and days > 1 else 0),
        "duration_terms": f"Delivery in {days} business day{'s' if days > 1 else ''}.",
        "test": True,
    }


def track_object(carrier: str, number: str, transaction: str | None, to: Any, sender: Any) -> dict[str, Any]:
    """A Shippo Track with no status yet."""

    def place(a: Any) -> dict[str, Any]:
        a = a if isinstance(a, dict) else {}
        return {k: str(a.get(k) or "") for k in ("city", "state", "zip", "country")}

    track: dict[str, Any] = {
        "carrier": carrier,
        "tracking_number": number,
        "address_from": place(sender),
        "address_to": place(to),
        "metadata": "",
        "messages": [],
        "tracking_status": None,
        "tracking_history": [],
        "servicelevel": {"name": "", "token": ""},
    }
    if transaction is not None:
        track["transaction"] = transaction
    return track


def address_lines(address: dict[str, Any]) -> list[str]:
    city = " ".join(str(address.get(k) or "") for k in ("city", "state", "zip")).strip()
    lines = [address.get("name"), address.get("company"), address.get("street1"), address.get("street2")]
    return [str(x) for x in lines if x] + [city, str(address.get("country") or "")]


def _escape(text: str) -> str:
    safe = text.encode("latin-1", "replace").decode("latin-1")
    return safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _text(x: float, y: float, size: int, text: str, *, bold: bool = False) -> str:
    font = "/F2" if bold else "/F1"
    return f"BT {font} {size} Tf {x:.1f} {y:.1f} Td ({_escape(text)}) Tj ET\n"


def _bars(tracking_number: str, x: float, y: float, width: float, height: float) -> str:
    digest = hashlib.sha256(tracking_number.encode()).digest() * 2
    ops, pos, i = [], x, 0
    while pos < x + width - 3:
        bar = 1 + digest[i] % 3
        gap = 1 + digest[i + 1] % 2
        ops.append(f"{pos:.1f} {y:.1f} {bar} {height:.1f} re")
        pos += bar + gap
        i = (i + 2) % (len(digest) - 1)
    return "0 g\n" + "\n".join(ops) + "\nf\n"


def render_label(
    *,
    sender: list[str],
    recipient: list[str],
    carrier: str,
    service: str,
    tracking_number: str,
    weight: str,
) -> bytes:
    """A one-page PDF label; every string given appears on it as text."""
    content = "0.8 w 10 10 268 412 re S\n"
    content += _text(18, 400, 16, carrier.upper(), bold=True) + _text(18, 384, 10, service)
    content += _text(200, 400, 9, f"WT {weight}")
    content += "18 372 m 270 372 l S\n" + _text(18, 358, 8, "FROM:", bold=True)
    y = 346.0
    for line in sender:
        content += _text(18, y, 9, line)
        y -= 11
    content += _text(18, y - 8, 8, "SHIP TO:", bold=True)
    y -= 24
    for line in recipient:
        content += _text(30, y, 13, line, bold=True)
        y -= 16
    content += f"18 {y - 4:.1f} m 270 {y - 4:.1f} l S\n"
    content += _bars(tracking_number, 24, 70, 240, 60)
    content += _text(18, 50, 9, "TRACKING #", bold=True) + _text(18, 34, 14, tracking_number, bold=True)
    content += _text(18, 18, 6, "SANDBOX LABEL - NOT VALID FOR SHIPPING")
    stream = content.encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_WIDTH} {_HEIGHT}] "
        "/Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
