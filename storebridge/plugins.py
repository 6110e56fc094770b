"""STOREBRIDGE_PLUGINS: the user's own subscribers, loaded by `serve` and `worker` without a launcher.

The variable lists `module:function` entries, comma-separated. Each function is imported and called
once with the Hub (typed here as `PluginHost`, the part a subscriber needs), before it starts, and
subscribes what it wants on `hub.bus`:

    def install(hub: Hub) -> None:
        hub.bus.subscribe("erp-sync", "payment.*", push_to_erp)

An entry that is malformed, cannot be imported, is not a callable, or raises is a ConfigError that
names it (the command stops with exit 2 before serving anything).
"""

from __future__ import annotations

import importlib
from typing import Protocol

from storebridge.errors import ConfigError
from storebridge.events.bus import EventBus

__all__ = ["PluginHost", "install_plugins", "plugin_entries"]


class PluginHost(Protocol):
    """What an entry is handed: the Hub, of which a subscriber needs the event bus."""

    @property
    def bus(self) -> EventBus: ...


def plugin_entries(spec: str) -> list[tuple[str, str]]:
    """`"a.b:f, c:g"` -> `[("a.b", "f"), ("c", "g")]`; a malformed entry is a ConfigError naming it."""
    entries = []
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        module, sep, function = entry.partition(":")
        if not sep or not module.strip() or not function.strip():
            raise ConfigError(f"STOREBRIDGE_PLUGINS: {entry!r} is not `module:function`")
        entries.append((module.strip(), function.strip()))
    return entries


def install_plugins(hub: PluginHost, spec: str) -> list[str]:
    """Import and call each entry of `spec` with `hub`; the entries installed, in order."""
    installed = []
    for module_name, function_name in plugin_entries(spec):
        entry = f"{module_name}:{function_name}"
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any import failure is the user's entry to name
            raise ConfigError(f"STOREBRIDGE_PLUGINS: cannot import {entry!r}: {type(exc).__name__}: {exc}") from None
        target: object = module
        for part in function_name.split("."):
            target = getattr(target, part, None)
        if not callable(target):
            raise ConfigError(f"STOREBRIDGE_PLUGINS: {entry!r}: {module_name} has no callable {function_name!r}")
        try:
            target(hub)
        except Exception as exc:  # noqa: BLE001 - a failing plugin stops start-up, named
            raise ConfigError(f"STOREBRIDGE_PLUGINS: {entry!r} failed: {type(exc).__name__}: {exc}") from None
        installed.append(entry)
    return installed
