"""Custom webhook providers, configured by settings alone.

    STOREBRIDGE_WEBHOOK_PROVIDERS=acme:standard,legacy:plain
    ACME_WEBHOOK_SECRET=whsec_<base64>        (comma-separated: several secrets during a rotation)
    LEGACY_WEBHOOK_SECRET=any-shared-secret

Each gets POST /webhooks/<name>; its verified events are stored in the inbox and handed to
subscribers as `webhook.<name>.<type>`. Schemes: `standard` (Standard Webhooks) and `plain` (the
guide's hex HMAC of the body; weaker: no timestamp, so deduplication on the event id is its only
replay defence; a body without an `id` is deduplicated on its SHA-256).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.errors import ConfigError, WebhookRejected
from storebridge.events.bus import stage_event
from storebridge.webhooks.events import CUSTOM_WEBHOOK
from storebridge.webhooks.model import WebhookEvent
from storebridge.webhooks.processor import WebhookHandler
from storebridge.webhooks.sources import Identified, WebhookSource, parse_json_object, signed_body_id

__all__ = ["CustomProvider", "parse_custom_providers", "refuse_reserved_names", "custom_source", "custom_handler"]

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_SCHEMES = ("standard", "plain")


@dataclass(frozen=True, slots=True)
class CustomProvider:
    name: str
    scheme: str
    secrets: tuple[str, ...] = field(repr=False)
    tolerance: int = 300

    @property
    def secret_variable(self) -> str:
        return secret_variable(self.name)


def secret_variable(name: str) -> str:
    return f"{name.upper().replace('-', '_')}_WEBHOOK_SECRET"


def parse_custom_providers(
    spec: str, environ: Mapping[str, str], *, reserved: Collection[str] = ()
) -> list[CustomProvider]:
    """Parse STOREBRIDGE_WEBHOOK_PROVIDERS and each provider's secret; ConfigError names what is wrong.
    `reserved`: names taken by installed providers (the registry's; bootstrap checks them again)."""
    providers: list[CustomProvider] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, scheme = item.partition(":")
        name, scheme = name.strip().lower(), (scheme.strip().lower() or "standard")
        if not _NAME.match(name):
            raise ConfigError(f"STOREBRIDGE_WEBHOOK_PROVIDERS: {name!r} is not a valid name (a-z, 0-9, - and _)")
        refuse_reserved_names([name], reserved)
        if scheme not in _SCHEMES:
            raise ConfigError(
                f"STOREBRIDGE_WEBHOOK_PROVIDERS: scheme for {name!r} must be one of {', '.join(_SCHEMES)}"
            )
        variable = secret_variable(name)
        secrets = tuple(s.strip() for s in environ.get(variable, "").split(",") if s.strip())
        if not secrets:
            raise ConfigError(f"{variable} is required for the custom webhook provider {name!r}")
        if scheme == "standard":
            for secret in secrets:
                try:
                    base64.b64decode(secret.removeprefix("whsec_"), validate=True)
                except (binascii.Error, ValueError):
                    raise ConfigError(f"{variable} must be whsec_<base64> for the standard scheme") from None
        tolerance = environ.get(f"{name.upper().replace('-', '_')}_WEBHOOK_TOLERANCE", "300")
        if not tolerance.isdigit():
            raise ConfigError(f"{name.upper()}_WEBHOOK_TOLERANCE must be a whole number of seconds")
        if any(p.name == name for p in providers):
            raise ConfigError(f"STOREBRIDGE_WEBHOOK_PROVIDERS lists {name!r} twice")
        providers.append(CustomProvider(name, scheme, secrets, int(tolerance)))
    return providers


def refuse_reserved_names(names: Iterable[str], reserved: Collection[str]) -> None:
    """A custom provider may not take a name the hub reserves (its installed providers' names and
    webhook sources, from the provider registry)."""
    for name in names:
        if name in reserved:
            raise ConfigError(f"STOREBRIDGE_WEBHOOK_PROVIDERS: {name!r} is reserved for an installed provider")


def _identify(scheme: str) -> Any:
    def identify(raw: bytes, headers: Mapping[str, str]) -> Identified:
        body = parse_json_object(raw)
        event_type = body.get("type") or body.get("event")
        if not isinstance(event_type, str) or not event_type:
            raise WebhookRejected("the event needs a string 'type' (or 'event')", code="malformed_event")
        # Standard Webhooks sign webhook-id; the plain scheme signs the body alone.
        event_id = str(headers.get("webhook-id") or "") if scheme == "standard" else signed_body_id(body, raw)
        created = body.get("timestamp") or body.get("created")
        data = body.get("data")
        aggregate = None
        if isinstance(data, dict):
            key = data.get("id") or data.get("sku")
            aggregate = str(key) if key is not None else None
        return Identified(
            str(event_id), event_type, float(created) if isinstance(created, int | float) else None, aggregate
        )

    return identify


def custom_source(provider: CustomProvider) -> WebhookSource:
    return WebhookSource(
        provider.name, provider.scheme, provider.secrets, _identify(provider.scheme), provider.tolerance
    )


def custom_handler(provider: CustomProvider) -> WebhookHandler:
    """Processing a custom provider's webhook = publishing it to subscribers as webhook.<name>.<type>."""

    async def handle(row: WebhookEvent, session: AsyncSession) -> str | None:
        body = parse_json_object(row.body)
        # Staged: the inbox processor inserts a chunk's events with one statement.
        stage_event(
            session,
            CUSTOM_WEBHOOK.member(f"{provider.name}.{row.event_type}"),
            {"provider": provider.name, "event_id": row.event_id, "type": row.event_type, "body": body},
            aggregate_id=row.aggregate_key,
            request_id=row.request_id,
        )
        return None

    return handle
