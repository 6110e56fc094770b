"""The external inventory system (the guide's HTTP API) as a provider plugin: its client, its
`/webhooks/inventory` source (Standard Webhooks or plain HMAC), and the emulator when no key is set.
The hub's own stock (reservations, levels) is the inventory capability's service, which the
composition root builds when this plugin is enabled, with these settings as its stock policy."""

from __future__ import annotations

import base64
import secrets

from storebridge.inventory.provider import InventorySetup
from storebridge.providers.inventory_http.client import InventoryClient
from storebridge.providers.inventory_http.settings import InventorySettings
from storebridge.providers.inventory_http.webhooks import inventory_source, inventory_webhook_handler
from storebridge.providers.plugin import (
    BuiltProvider,
    ProviderContext,
    ProviderPlugin,
    Sandbox,
    StandaloneSandbox,
    WebhookRoute,
)

__all__ = ["InventoryPlugin", "plugin", "SANDBOX_INVENTORY_KEY"]

SANDBOX_INVENTORY_KEY = "inv_sandbox_storebridge"


class InventoryPlugin(ProviderPlugin[InventorySettings]):
    name = "inventory"
    kind = "inventory"
    settings_model = InventorySettings
    credential_variables = ("INVENTORY_API_KEY", "INVENTORY_BASE_URL", "INVENTORY_WEBHOOK_SECRET")
    switch_off = "INVENTORY_ENABLED=false"
    description = "an external inventory system over HTTP"

    def uses_sandbox(self, settings: InventorySettings) -> bool:
        return settings.sandbox

    def build(self, settings: InventorySettings, context: ProviderContext) -> BuiltProvider:
        webhook_url = context.webhook_url(self.name)
        if settings.webhook_secret is not None:
            webhook_secret = settings.webhook_secret.get_secret_value()
        else:
            webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        sandbox: Sandbox | None = None
        if settings.sandbox:
            from storebridge.sandbox.inventory import InventorySandbox  # only the plugin knows its emulator

            sandbox = InventorySandbox(
                webhook_url=webhook_url,
                webhook_secret=webhook_secret,
                webhook_scheme=settings.webhook_scheme,
                api_key=SANDBOX_INVENTORY_KEY,
            )
            base_url = settings.base_url or context.sandbox_url(self.name)
            key = SANDBOX_INVENTORY_KEY
        else:
            assert settings.api_key is not None and settings.base_url is not None
            base_url, key = settings.base_url, settings.api_key.get_secret_value()
        client = InventoryClient(
            base_url=base_url,
            api_key=key,
            store_id=settings.store_id,
            sandbox=settings.sandbox,
            timeout=context.http_timeout,
            max_connections=max(settings.concurrency, 10),
        )
        source = inventory_source(settings.webhook_scheme, (webhook_secret,), settings.webhook_tolerance_seconds)
        return BuiltProvider(
            mode=client.mode,
            inventory=InventorySetup(client, settings),
            webhooks=(WebhookRoute(source, inventory_webhook_handler(settings.default_location)),),
            webhook_url=webhook_url,
            sandbox=sandbox,
            sandbox_url=base_url if sandbox is not None else None,
            problems=client.validate_config(),
            closers=(client.aclose,),
            health_check=client.health_check,
        )

    def standalone_sandbox(self, base_url: str, webhook_url: str | None, secret: str) -> StandaloneSandbox:
        from storebridge.sandbox.inventory import InventorySandbox

        notes = (f"INVENTORY_BASE_URL={base_url}", "INVENTORY_API_KEY=<anything>", "INVENTORY_STORE_ID=<any id>")
        return StandaloneSandbox(InventorySandbox(webhook_url=webhook_url, webhook_secret=secret or None), notes)


plugin = InventoryPlugin()
