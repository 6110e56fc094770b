"""Shipping plugs into the hub here: settings, the Shippo adapter (or its sandbox), webhooks, routes."""

from __future__ import annotations

import secrets

from storebridge.capabilities import Wiring
from storebridge.shipping.settings import load_shippo_settings

__all__ = ["install", "SANDBOX_SHIPPO_KEY"]

SANDBOX_SHIPPO_KEY = "shippo_test_storebridge_sandbox"


def install(wiring: Wiring) -> None:
    from storebridge.bootstrap import Integration
    from storebridge.shipping.api import build_router
    from storebridge.shipping.service import ShippingService
    from storebridge.shipping.shippo import ShippoProvider
    from storebridge.shipping.webhooks import (
        SCHEME,
        ShippoWebhookSource,
        identify_shippo_event,
        register_verifier,
        shippo_webhook_handler,
    )

    cfg = load_shippo_settings()
    integration = Integration("shippo", "shipping", cfg.enabled, "disabled")
    wiring.integrations["shippo"] = integration
    if not cfg.enabled:
        return
    token = cfg.webhook_token.get_secret_value() if cfg.webhook_token else secrets.token_urlsafe(24)
    hmac_secret = cfg.webhook_hmac_secret.get_secret_value() if cfg.webhook_hmac_secret else None
    integration.webhook_url = f"{wiring.public_url}/webhooks/shippo"  # + ?token=<SHIPPO_WEBHOOK_TOKEN>
    variables = ("SHIPPO_API_KEY", "SHIPPO_WEBHOOK_TOKEN")
    if cfg.sandbox and not wiring.may_use_sandbox("shippo", variables, "SHIPPO_ENABLED=false"):
        return
    if cfg.sandbox:
        from storebridge.sandbox.shippo import ShippoSandbox

        sandbox = ShippoSandbox(
            webhook_url=f"{integration.webhook_url}?token={token}", api_key=SANDBOX_SHIPPO_KEY, hmac_secret=hmac_secret
        )
        wiring.sandboxes["shippo"] = sandbox
        api_base: str | None = cfg.api_base or f"{wiring.public_url}/_sandbox/shippo"
        integration.sandbox_url = api_base
        key = SANDBOX_SHIPPO_KEY
    else:
        assert cfg.api_key is not None
        api_base = cfg.api_base
        key = cfg.api_key.get_secret_value()
    provider = ShippoProvider(
        api_key=key, api_base=api_base, sandbox=cfg.sandbox, timeout=wiring.settings.http_timeout_seconds
    )
    integration.mode = provider.mode
    integration.problems = provider.validate_config()
    register_verifier()
    wiring.webhook_sources["shippo"] = ShippoWebhookSource(
        "shippo", SCHEME, (token,), identify_shippo_event, cfg.webhook_tolerance_seconds, hmac_secret=hmac_secret
    )
    wiring.webhook_handlers["shippo"] = shippo_webhook_handler()
    lease = provider.retry.timeout + 2 * wiring.settings.http_timeout_seconds  # find (retried) + buy (once)
    timeout = wiring.settings.http_timeout_seconds
    service = ShippingService(wiring.db, provider, cfg, lease_seconds=lease, settle_seconds=timeout)
    wiring.services["shipping"] = service
    wiring.health_checks["shippo"] = service.health_check
    wiring.routers.append(build_router())
    wiring.closers.append(provider.aclose)
