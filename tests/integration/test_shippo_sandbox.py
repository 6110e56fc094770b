"""The Shippo sandbox on its own, over loopback: answers checked against Shippo's OpenAPI document."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from storebridge.embedded import serve_in_thread
from storebridge.sandbox.shippo import ShippoSandbox

SPEC = Path(__file__).parents[1] / "provider_specs" / "shippo" / "public-api.yaml"
KEY = "shippo_test_0123456789abcdef"
AUTH = {"Authorization": f"ShippoToken {KEY}"}
ADDRESS_FROM = {
    "name": "Shop",
    "street1": "215 Clayton St.",
    "city": "San Francisco",
    "state": "CA",
    "zip": "94117",
    "country": "US",
}
ADDRESS_TO = {
    "name": "Ada",
    "street1": "1 Main St",
    "city": "Springfield",
    "state": "IL",
    "zip": "62701",
    "country": "US",
}
PARCEL = {"length": "10", "width": "8", "height": "4", "distance_unit": "in", "weight": "2", "mass_unit": "lb"}


@functools.cache
def _spec() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    return data


def check_schema(name: str, instance: Any) -> None:
    """Validate `instance` against `#/components/schemas/<name>` of Shippo's published OpenAPI document."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": _spec()["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


def check_request_body(path: str, instance: Any) -> None:
    """Validate a request body against the operation's requestBody schema (POST)."""
    schema = _spec()["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    full = {**schema, "components": _spec()["components"]}
    errors = list(Draft202012Validator(full).iter_errors(instance))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


@pytest.fixture
def sandbox() -> Iterator[tuple[ShippoSandbox, httpx.Client]]:
    """A standalone sandbox on a loopback port (no webhooks)."""
    box = ShippoSandbox(webhook_url=None)
    with serve_in_thread(box.app) as base, httpx.Client(base_url=base, headers=AUTH, timeout=10) as client:
        yield box, client


def _shipment(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
    body = {"address_from": ADDRESS_FROM, "address_to": ADDRESS_TO, "parcels": [PARCEL], "async": False, **overrides}
    check_request_body("/shipments", body)
    response = client.post("/shipments", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_shipment_has_rates_from_several_carriers_and_matches_the_spec(
    sandbox: tuple[ShippoSandbox, httpx.Client],
) -> None:
    """A shipment answers rates from USPS, UPS and FedEx, one CHEAPEST and one FASTEST, valid per the spec."""
    _, client = sandbox
    shipment = _shipment(client)
    check_schema("Shipment", shipment)
    assert {r["provider"] for r in shipment["rates"]} == {"USPS", "UPS", "FedEx"}
    assert sum("CHEAPEST" in r["attributes"] for r in shipment["rates"]) == 1
    assert sum("FASTEST" in r["attributes"] for r in shipment["rates"]) == 1
    rates = client.get(f"/shipments/{shipment['object_id']}/rates").json()
    check_schema("RatePaginatedList", rates)
    assert len(rates["results"]) == len(shipment["rates"])


def test_transaction_makes_a_pdf_label_and_a_track_that_advances(sandbox: tuple[ShippoSandbox, httpx.Client]) -> None:
    """Buying a rate gives a SUCCESS transaction, a PDF label, and a track that advances to DELIVERED."""
    _, client = sandbox
    rate = _shipment(client)["rates"][0]
    body = {"rate": rate["object_id"], "label_file_type": "PDF", "async": False, "metadata": "storebridge:lbl_1"}
    check_request_body("/transactions", body)
    created = client.post("/transactions", json=body)
    assert created.status_code == 201, created.text
    transaction = created.json()
    check_schema("Transaction", transaction)
    assert transaction["status"] == "SUCCESS" and transaction["tracking_number"]
    pdf = httpx.get(transaction["label_url"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    listed = client.get("/transactions", params={"rate": rate["object_id"]}).json()
    check_schema("TransactionPaginatedList", listed)
    assert [t["metadata"] for t in listed["results"]] == ["storebridge:lbl_1"]
    number, carrier = transaction["tracking_number"], rate["provider"].lower()
    statuses = []
    for _ in range(2):
        assert client.post(f"/advance/{number}").status_code == 200
        track = client.get(f"/tracks/{carrier}/{number}").json()
        check_schema("Track", track)
        statuses.append(track["tracking_status"]["status"])
    assert statuses == ["TRANSIT", "DELIVERED"]
    assert client.post(f"/advance/{number}").status_code == 409


def test_register_track_matches_the_spec(sandbox: tuple[ShippoSandbox, httpx.Client]) -> None:
    """POST /tracks registers a number and answers a Track valid per the spec."""
    _, client = sandbox
    body = {"carrier": "usps", "tracking_number": "9205590164917312751089", "metadata": "Order 1"}
    check_request_body("/tracks", body)
    response = client.post("/tracks", json=body)
    assert response.status_code == 201, response.text
    check_schema("Track", response.json())
    assert response.json()["tracking_status"]["status"] == "UNKNOWN"


def test_missing_address_fields_are_field_errors(sandbox: tuple[ShippoSandbox, httpx.Client]) -> None:
    """A shipment without a street or parcels is a 400 naming the fields, in Shippo's error shape."""
    _, client = sandbox
    response = client.post("/shipments", json={"address_from": ADDRESS_FROM, "address_to": {"name": "Ada"}})
    assert response.status_code == 400
    body = response.json()
    assert body["address_to.street1"] == ["This field is required."]
    assert "parcels" in body


def test_unknown_rate_and_unknown_objects(sandbox: tuple[ShippoSandbox, httpx.Client]) -> None:
    """An unknown rate is a 400 on `rate`; unknown shipments, tracks and paths are 404 with a detail."""
    _, client = sandbox
    assert client.post("/transactions", json={"rate": "nope"}).json()["rate"][0].startswith("Rate with")
    assert client.get("/shipments/nope").json() == {"detail": "Shipment not found."}
    assert client.get("/tracks/usps/nope").status_code == 404
    assert client.get("/nothing/here").status_code == 404
    assert client.post("/advance/nope").status_code == 404


def test_authentication_errors(sandbox: tuple[ShippoSandbox, httpx.Client]) -> None:
    """No token, a Bearer token or a token that is not shippo_… is a 401 with Shippo's detail."""
    _, client = sandbox
    assert httpx.get(f"{client.base_url}/shipments/x").json()["detail"].startswith("Authentication credentials")
    bad = client.get("/shipments/x", headers={"Authorization": "ShippoToken sk_test_123"})
    assert bad.status_code == 401 and bad.json() == {"detail": "Invalid token."}


def test_injected_429_has_rate_limit_headers(sandbox: tuple[ShippoSandbox, httpx.Client]) -> None:
    """A 429 fault answers Retry-After and X-RateLimit-* headers, once, then the API works again."""
    _, client = sandbox
    fault = client.post("/_control/faults", json={"path_prefix": "/shipments", "status": 429, "retry_after": 2})
    assert fault.status_code == 200
    throttled = client.post("/shipments", json={})
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "2"
    assert throttled.headers["x-ratelimit-remaining"] == "0"
    assert "throttled" in throttled.json()["detail"]
    assert client.post("/shipments", json={}).status_code == 400
    assert client.get("/_control/faults").json() == {"faults": []}


def test_fault_after_the_work_and_delays(sandbox: tuple[ShippoSandbox, httpx.Client]) -> None:
    """An `after` fault does the work and then fails; a delay holds the answer; bad fault specs are 400."""
    box, client = sandbox
    rate = _shipment(client)["rates"][0]
    client.post("/_control/faults", json={"path_prefix": "/transactions", "status": 504, "after": True})
    assert client.post("/transactions", json={"rate": rate["object_id"]}).status_code == 504
    assert len(box.transactions) == 1
    client.post("/_control/faults", json={"path_prefix": "/carrier", "status": None, "delay": 0.3})
    started = time.monotonic()
    assert client.get("/carrier_accounts").status_code == 200
    assert time.monotonic() - started >= 0.3
    assert client.post("/_control/faults", json={"status": 200}).status_code == 400
    assert client.post("/_control/faults", json={"count": 0}).status_code == 400
    assert client.delete("/_control/faults").json() == {"faults": []}


def test_advance_to_a_named_status_and_bad_targets(sandbox: tuple[ShippoSandbox, httpx.Client]) -> None:
    """`?to=RETURNED` jumps to that status; an unknown target is a 400."""
    _, client = sandbox
    rate = _shipment(client)["rates"][0]
    number = client.post("/transactions", json={"rate": rate["object_id"]}).json()["tracking_number"]
    assert client.post(f"/advance/{number}", params={"to": "LOST"}).status_code == 400
    returned = client.post(f"/advance/{number}", params={"to": "RETURNED"}).json()
    assert returned["tracking_status"]["status"] == "RETURNED"


def test_malformed_json_body(sandbox: tuple[ShippoSandbox, httpx.Client]) -> None:
    """A body that is not a JSON object is a 400 with a detail."""
    _, client = sandbox
    assert client.post("/shipments", content=b"{nope").status_code == 400
    assert client.post("/shipments", json=[1]).status_code == 400


def test_webhooks_it_sends_match_the_spec() -> None:
    """transaction_created and track_updated bodies validate as Shippo webhook payloads and reach the URL."""
    received: list[dict[str, Any]] = []

    async def receive(request: Request) -> Response:
        received.append({"query": request.url.query, "body": json.loads(await request.body())})
        return Response(status_code=200)

    receiver = Starlette(routes=[Route("/hook", receive, methods=["POST"])])
    with serve_in_thread(receiver) as hook_base:
        box = ShippoSandbox(webhook_url=f"{hook_base}/hook?token=t0ken")
        with serve_in_thread(box.app) as base, httpx.Client(base_url=base, headers=AUTH, timeout=10) as client:
            rate = _shipment(client)["rates"][0]
            number = client.post("/transactions", json={"rate": rate["object_id"]}).json()["tracking_number"]
            client.post(f"/advance/{number}")
            deadline = time.monotonic() + 10

            def statuses() -> list[int]:
                return [d["status"] for d in client.get("/_control/deliveries").json()["data"]]

            # The receiver sees a call before the sandbox records its outcome: wait for both records.
            while (len(received) < 2 or len(statuses()) < 2) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert statuses() == [200, 200]
    assert [r["body"]["event"] for r in received] == ["transaction_created", "track_updated"]
    assert {r["query"] for r in received} == {"token=t0ken"}
    check_schema("WebhookPayloadTransaction", received[0]["body"])
    check_schema("WebhookPayloadTrack", received[1]["body"])
    assert received[1]["body"]["data"]["tracking_status"]["status"] == "TRANSIT"
