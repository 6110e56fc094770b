"""Inventory plugs into the hub here: settings, the external API client (or its sandbox), the service,
bus subscribers, the expiry job, the `/webhooks/inventory` source and the routes."""

from __future__ import annotations

import base64
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storebridge.capabilities import Wiring

__all__ = ["install", "SANDBOX_INVENTORY_KEY"]

SANDBOX_INVENTORY_KEY = "inv_sandbox_storebridge"


def install(wiring: Wiring) -> None:
    from storebridge.bootstrap import Integration
    from storebridge.inventory.api import build_router
    from storebridge.inventory.http_sync import InventoryClient
    from storebridge.inventory.service import InventoryService
    from storebridge.inventory.settings import load_inventory_settings
    from storebridge.inventory.webhooks import inventory_source, inventory_webhook_handler

    cfg = load_inventory_settings()
    integration = Integration("inventory", "inventory", cfg.enabled, "disabled")
    wiring.integrations["inventory"] = integration
    if not cfg.enabled:
        return
    variables = ("INVENTORY_API_KEY", "INVENTORY_BASE_URL", "INVENTORY_WEBHOOK_SECRET")
    if cfg.sandbox and not wiring.may_use_sandbox("inventory", variables, "INVENTORY_ENABLED=false"):
        return
    integration.webhook_url = f"{wiring.public_url}/webhooks/inventory"
    if cfg.webhook_secret is not None:
        webhook_secret = cfg.webhook_secret.get_secret_value()
    else:
        webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    if cfg.sandbox:
        from storebridge.sandbox.inventory import InventorySandbox

        sandbox = InventorySandbox(
            webhook_url=integration.webhook_url,
            webhook_secret=webhook_secret,
            webhook_scheme=cfg.webhook_scheme,
            api_key=SANDBOX_INVENTORY_KEY,
        )
        wiring.sandboxes["inventory"] = sandbox
        base_url = cfg.base_url or f"{wiring.public_url}/_sandbox/inventory"
        integration.sandbox_url = base_url
        key = SANDBOX_INVENTORY_KEY
    else:
        assert cfg.api_key is not None and cfg.base_url is not None
        base_url, key = cfg.base_url, cfg.api_key.get_secret_value()
    client = InventoryClient(
        base_url=base_url,
        api_key=key,
        store_id=cfg.store_id,
        sandbox=cfg.sandbox,
        timeout=wiring.settings.http_timeout_seconds,
        max_connections=max(cfg.concurrency, 10),
    )
    integration.mode = client.mode
    integration.problems = client.validate_config()
    service = InventoryService(wiring.db, cfg)
    service.subscribe(wiring.bus)
    wiring.services["inventory"] = service
    wiring.stock = service
    wiring.services["inventory_client"] = client
    wiring.health_checks["inventory"] = client.health_check
    wiring.worker_jobs.append(("inventory-expiry", service.expire_once))
    wiring.webhook_sources["inventory"] = inventory_source(
        cfg.webhook_scheme, (webhook_secret,), cfg.webhook_tolerance_seconds
    )
    wiring.webhook_handlers["inventory"] = inventory_webhook_handler(cfg.default_location)
    wiring.routers.append(build_router())
    wiring.closers.append(client.aclose)
    wiring.closers.append(service.aclose)
