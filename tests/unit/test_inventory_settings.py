"""Inventory settings: defaults, the guide's variable names, and errors that name the variable."""

from __future__ import annotations

import pytest

from storebridge.errors import ConfigError
from storebridge.inventory.commands import InsufficientStock
from storebridge.providers.inventory_http.settings import load_inventory_settings

SECRET = "whsec_c2VjcmV0LWZvci10ZXN0cw=="


def test_defaults_are_sandbox_batches_of_50_and_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without credentials: enabled, sandbox mode, batches of 50, the standard webhook scheme."""
    for name in ("INVENTORY_API_KEY", "INVENTORY_BASE_URL", "INVENTORY_WEBHOOK_SECRET", "INVENTORY_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    cfg = load_inventory_settings()
    assert cfg.enabled and cfg.sandbox and cfg.batch_size == 50 and cfg.webhook_scheme == "standard"
    assert cfg.reservation_ttl_seconds > 0 and cfg.concurrency > 1


def test_guide_variables_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """INVENTORY_API_KEY, _BASE_URL, _STORE_ID, _WEBHOOK_SECRET and the sync knobs come from the environment."""
    monkeypatch.setenv("INVENTORY_API_KEY", "inv_live_123")
    monkeypatch.setenv("INVENTORY_BASE_URL", "https://erp.example.com/api/")
    monkeypatch.setenv("INVENTORY_STORE_ID", "store_42")
    monkeypatch.setenv("INVENTORY_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("INVENTORY_SYNC_BATCH_SIZE", "100")
    monkeypatch.setenv("INVENTORY_SYNC_CONCURRENCY", "8")
    cfg = load_inventory_settings()
    assert not cfg.sandbox and cfg.base_url == "https://erp.example.com/api" and cfg.store_id == "store_42"
    assert (cfg.batch_size, cfg.concurrency) == (100, 8)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"INVENTORY_API_KEY": "k"}, "INVENTORY_BASE_URL"),
        ({"INVENTORY_API_KEY": "k", "INVENTORY_BASE_URL": "https://x.example"}, "INVENTORY_WEBHOOK_SECRET"),
        ({"INVENTORY_WEBHOOK_SECRET": "not base64!"}, "INVENTORY_WEBHOOK_SECRET"),
        ({"INVENTORY_BASE_URL": "ftp://x"}, "INVENTORY_BASE_URL"),
        ({"INVENTORY_SYNC_BATCH_SIZE": "0"}, "INVENTORY_SYNC_BATCH_SIZE"),
        ({"INVENTORY_WEBHOOK_SCHEME": "hmac"}, "INVENTORY_WEBHOOK_SCHEME"),
    ],
)
def test_malformed_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str) -> None:
    """A wrong or missing value is a ConfigError whose message names the variable."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_inventory_settings()
    assert named in str(caught.value)


def test_a_plain_scheme_secret_need_not_be_base64(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guide's plain HMAC scheme takes any shared secret."""
    monkeypatch.setenv("INVENTORY_WEBHOOK_SCHEME", "plain")
    monkeypatch.setenv("INVENTORY_WEBHOOK_SECRET", "any shared secret")
    assert load_inventory_settings().webhook_scheme == "plain"


def test_a_shortage_names_the_sku_and_what_is_available() -> None:
    """InsufficientStock is a 409 whose message and fields name the SKU, the request and the availability."""
    exc = InsufficientStock("MUG", "default", 3, -2)
    assert exc.status == 409 and exc.code == "insufficient_stock"
    assert "'MUG'" in str(exc) and "0 available" in str(exc) and "3 requested" in str(exc)
    assert exc.to_dict() == {"sku": "MUG", "location": "default", "requested": 3, "available": 0}
