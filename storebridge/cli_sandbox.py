"""`storebridge sandbox NAME`: one provider emulator alone on its own port (each plugin builds its own)."""

from __future__ import annotations

from typing import Any

from storebridge.providers.plugin import ProviderPlugin
from storebridge.providers.registry import load_plugin, load_registry

__all__ = ["sandbox_names", "build_sandbox"]


def sandbox_names() -> list[str]:
    """The installed providers that have an emulator (their plugin says how to run it alone)."""
    return [p.name for p in load_registry() if type(p).standalone_sandbox is not ProviderPlugin.standalone_sandbox]


def build_sandbox(name: str, base: str, webhook_url: str | None, secret: str) -> tuple[Any, list[str]]:
    """The emulator and the settings that point storebridge at it. KeyError for an unknown name."""
    plugin = load_plugin(name)
    standalone = plugin.standalone_sandbox(base, webhook_url, secret) if plugin is not None else None
    if standalone is None:
        raise KeyError(name)
    return standalone.sandbox, list(standalone.notes)
