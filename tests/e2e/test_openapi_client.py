"""A client generated from the hub's own /openapi.json (openapi-python-client, offline, into tmp_path)
places an order, pays it and reads it back from a running hub, with typed models all the way."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.hub import API_TOKEN, RunningHub

PACKAGE = "storebridge_client"


def _generator() -> str:
    found = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
    assert found, "openapi-python-client is in the dev extra: `make install-dev`"
    return found


@pytest.fixture
def client_package(sqlite_hub: RunningHub, tmp_path: Path) -> Iterator[ModuleType]:
    """The generated client package, importable (and forgotten again afterwards)."""
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(sqlite_hub.client.get("/openapi.json").raise_for_status().json()))
    config = tmp_path / "config.yaml"
    config.write_text(f"post_hooks: []\npackage_name_override: {PACKAGE}\nproject_name_override: storebridge-client\n")
    out = tmp_path / "generated"
    command = [_generator(), "generate", "--path", str(document), "--config", str(config), "--meta", "none"]
    result = subprocess.run(
        [*command, "--output-path", str(out / PACKAGE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout, result.stdout  # every operation and schema was understood
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _api(name: str) -> Any:
    """An operation's module of the generated client (by operationId, under whichever tag holds it)."""
    for tag in ("default", "orders", "payments"):
        try:
            return importlib.import_module(f"{PACKAGE}.api.{tag}.{name}")
        except ModuleNotFoundError:
            continue
    raise AssertionError(f"the generated client has no operation {name}")


def test_a_generated_client_places_pays_and_reads_back_an_order(
    client_package: ModuleType, sqlite_hub: RunningHub
) -> None:
    """The generated client places an order, pays it with Stripe and reads it back, typed."""
    models = importlib.import_module(f"{PACKAGE}.models")
    client = client_package.AuthenticatedClient(base_url=sqlite_hub.base_url, token=API_TOKEN)
    item = models.LineItemIn(sku="SKU-1", title="Widget", quantity=2, unit_price=1250)
    currency = models.OrderInCurrency("USD")  # the document lists the ISO 4217 codes: an enum here
    body = models.OrderIn(email="ada@example.com", currency=currency, items=[item])
    order = _api("place_order").sync(client=client, body=body)
    assert isinstance(order, models.NewOrderOut), order
    assert (order.total, order.payment_status, order.items[0].total) == (2500, "not_paid", 2500)

    payment_body = models.PaymentIn(provider="stripe", payment_method="pm_card_visa")
    payment = _api("create_payment").sync(order.id, client=client, body=payment_body)
    assert isinstance(payment, models.PaymentOut), payment
    # An explicit (empty) body: the generator sends its UNSET marker for a body left out.
    confirmed = _api("confirm_payment").sync(payment.id, client=client, body=models.ConfirmIn())
    assert isinstance(confirmed, models.PaymentOut), confirmed
    assert (confirmed.amount_captured, confirmed.currency) == (2500, "USD")

    read = _api("get_order").sync(order.id, client=client)
    assert isinstance(read, models.OrderDetailOut), read
    assert read.payment_status == "captured"
    assert [(p.id, p.amount_captured, p.disputes) for p in read.payments] == [(payment.id, 2500, [])]
    assert any(entry.type_ == "payment.captured" for entry in read.timeline)  # `type` is `type_` there


def test_a_generated_client_reads_the_error_envelope(client_package: ModuleType, sqlite_hub: RunningHub) -> None:
    """An unknown order is a typed ErrorResponse (404); a missing token a typed 401."""
    models = importlib.import_module(f"{PACKAGE}.models")
    client = client_package.AuthenticatedClient(base_url=sqlite_hub.base_url, token=API_TOKEN)
    missing = _api("get_order").sync_detailed("ord_missing", client=client)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.ErrorResponse)
    assert missing.parsed.error.code == "order_not_found"
    anonymous = client_package.Client(base_url=sqlite_hub.base_url)
    refused = _api("get_order").sync_detailed("ord_missing", client=anonymous)
    assert refused.status_code == 401 and refused.parsed.error.code == "unauthorized"
