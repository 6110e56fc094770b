"""A provider configured by settings alone receives verified webhooks and reaches subscribers."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks import Webhook

from storebridge.config import load_settings
from storebridge.errors import ConfigError
from storebridge.providers.registry import load_registry
from storebridge.webhooks.custom import CustomProvider, parse_custom_providers
from storebridge.webhooks.verify import sign_plain
from tests.support.hub import RunningHub, make_settings, running_hub, wait_for

ACME_SECRET = "whsec_" + base64.b64encode(b"acme-secret-0123456789abcdef").decode()
ACME_OLD_SECRET = "whsec_" + base64.b64encode(b"acme-old-secret-0123456789ab").decode()


@pytest.fixture
def custom_hub(sqlite_url: str) -> Iterator[RunningHub]:
    providers = (
        CustomProvider("acme", "standard", (ACME_SECRET, ACME_OLD_SECRET)),
        CustomProvider("legacy", "plain", ("legacy-shared-secret",)),
    )
    with running_hub(make_settings(sqlite_url, custom_webhooks=providers)) as hub:
        yield hub


def _standard(secret: str, msg_id: str, body: bytes, ts: int | None = None) -> dict[str, str]:
    when = datetime.fromtimestamp(ts or int(time.time()), tz=UTC)
    signature = Webhook(secret).sign(msg_id, when, body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())), "webhook-signature": signature}


def test_standard_webhooks_provider_by_settings(custom_hub: RunningHub) -> None:
    """Signed by the reference library: stored, deduplicated on webhook-id, published as webhook.acme.<type>."""
    body = json.dumps({"type": "stock.changed", "timestamp": "2026-01-01T00:00:00Z", "data": {"sku": "A-1"}}).encode()
    url = f"{custom_hub.base_url}/webhooks/acme"
    first = httpx.post(url, content=body, headers=_standard(ACME_SECRET, "msg_1", body))
    assert first.status_code == 200, first.text
    again = httpx.post(url, content=body, headers=_standard(ACME_SECRET, "msg_1", body))
    assert again.json()["duplicate"] is True
    rotated = httpx.post(url, content=body, headers=_standard(ACME_OLD_SECRET, "msg_2", body))
    assert rotated.status_code == 200, "a signature with the previous secret is accepted during rotation"
    events = wait_for(
        lambda: (
            len(custom_hub.events_of("webhook.acme.stock.changed")) == 2
            and custom_hub.events_of("webhook.acme.stock.changed")
        ),
        what="two webhook.acme events",
    )
    assert {e.payload["event_id"] for e in events} == {"msg_1", "msg_2"}
    assert events[0].payload["body"]["data"] == {"sku": "A-1"}


def test_standard_webhooks_failures_are_4xx_and_counted(custom_hub: RunningHub) -> None:
    """Wrong secret, stale timestamp, missing headers: 400 each, counted per provider."""
    body = b'{"type": "x"}'
    url = f"{custom_hub.base_url}/webhooks/acme"
    wrong = "whsec_" + base64.b64encode(b"another-secret-0123456789abc").decode()
    assert httpx.post(url, content=body, headers=_standard(wrong, "m", body)).status_code == 400
    stale = httpx.post(url, content=body, headers=_standard(ACME_SECRET, "m", body, ts=int(time.time()) - 3600))
    assert stale.status_code == 400 and stale.json()["error"]["code"] == "timestamp_outside_tolerance"
    assert httpx.post(url, content=body).json()["error"]["code"] == "missing_signature"
    assert custom_hub.hub.stats.rejected_by_provider()["acme"] == 3


def test_plain_scheme_provider_dedupes_on_body_hash_without_an_id(custom_hub: RunningHub) -> None:
    """The guide's plain HMAC: verified on raw bytes; no id means the body hash is the dedupe key."""
    body = b'{"event": "inventory.updated", "data": {"sku": "B-2", "available_quantity": 5}}'
    url = f"{custom_hub.base_url}/webhooks/legacy"
    headers = {"x-webhook-signature": sign_plain(body, secret="legacy-shared-secret")}
    assert httpx.post(url, content=body, headers=headers).json()["duplicate"] is False
    assert httpx.post(url, content=body, headers=headers).json()["duplicate"] is True
    assert httpx.post(url, content=body, headers={"x-webhook-signature": "00" * 32}).status_code == 400
    wait_for(lambda: custom_hub.events_of("webhook.legacy.inventory.updated"), what="webhook.legacy event")
    integrations = {i["name"]: i for i in custom_hub.client.get("/integrations").json()["data"]}
    assert integrations["legacy"]["mode"] == "custom"


def test_custom_provider_settings_errors_name_the_variable() -> None:
    """A missing secret, a bad scheme, a reserved name: start-up errors naming what to fix."""
    with pytest.raises(ConfigError, match="ACME_WEBHOOK_SECRET is required"):
        parse_custom_providers("acme:standard", {})
    with pytest.raises(ConfigError, match="scheme"):
        parse_custom_providers("acme:rot13", {"ACME_WEBHOOK_SECRET": "x"})
    with pytest.raises(ConfigError, match="reserved"):
        parse_custom_providers(
            "stripe:plain", {"STRIPE_WEBHOOK_SECRET": "x"}, reserved=load_registry().reserved_names()
        )
    with pytest.raises(ConfigError, match="whsec_"):
        parse_custom_providers("acme:standard", {"ACME_WEBHOOK_SECRET": "not base64!"})
    parsed = parse_custom_providers(
        "acme:standard, legacy:plain", {"ACME_WEBHOOK_SECRET": ACME_SECRET, "LEGACY_WEBHOOK_SECRET": "s"}
    )
    assert [(p.name, p.scheme) for p in parsed] == [("acme", "standard"), ("legacy", "plain")]
    assert ACME_SECRET not in repr(parsed)


def test_custom_providers_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """STOREBRIDGE_WEBHOOK_PROVIDERS plus <NAME>_WEBHOOK_SECRET is all it takes."""
    monkeypatch.setenv("STOREBRIDGE_WEBHOOK_PROVIDERS", "acme:standard")
    monkeypatch.setenv("ACME_WEBHOOK_SECRET", ACME_SECRET)
    assert [p.name for p in load_settings().custom_webhooks] == ["acme"]
    monkeypatch.delenv("ACME_WEBHOOK_SECRET")
    with pytest.raises(ConfigError, match="ACME_WEBHOOK_SECRET"):
        load_settings()
