"""The provider registry: every plugin in the `storebridge.providers` entry-point group.

Built-in providers are registered in storebridge's own pyproject.toml exactly as a third-party
package registers its own, so an installed package is all it takes to add one. An entry point that
cannot be imported, or that is not a ProviderPlugin, is a ConfigError naming it: a provider the
operator installed must never vanish silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import SecretStr

from storebridge.errors import ConfigError
from storebridge.providers.plugin import KINDS, Kind, ProviderPlugin

__all__ = ["ENTRY_POINT_GROUP", "ProviderRegistry", "load_plugin", "load_registry", "registry_of", "HUB_RESERVED_NAMES"]

ENTRY_POINT_GROUP = "storebridge.providers"

# Paths under /webhooks/ the hub itself takes, whatever is installed.
HUB_RESERVED_NAMES = frozenset({"events"})


@dataclass(frozen=True, slots=True)
class ProviderRegistry:
    plugins: tuple[ProviderPlugin[Any], ...]

    def __iter__(self) -> Iterator[ProviderPlugin[Any]]:
        return iter(self.plugins)

    def names(self, kind: Kind | None = None) -> list[str]:
        return [p.name for p in self.plugins if kind is None or p.kind == kind]

    def get(self, name: str) -> ProviderPlugin[Any] | None:
        return next((p for p in self.plugins if p.name == name), None)

    def secret_values(self) -> list[str]:
        """Every secret the providers' settings hold (for log redaction). A provider whose settings do
        not read is skipped here: bootstrap reports it."""
        values: list[str] = []
        for plugin in self.plugins:
            try:
                settings = plugin.read_settings()
            except ConfigError:
                continue
            for name in type(settings).model_fields:
                value = getattr(settings, name)
                if isinstance(value, SecretStr) and value.get_secret_value():
                    values.append(value.get_secret_value())
        return values

    def reserved_names(self) -> frozenset[str]:
        """Names custom webhook providers may not take: every plugin's name and webhook sources."""
        return HUB_RESERVED_NAMES.union(*(p.reserved_names for p in self.plugins))


def _load(entry: EntryPoint) -> ProviderPlugin[Any]:
    where = f"{ENTRY_POINT_GROUP} entry point {entry.name!r} ({entry.value})"
    try:
        loaded = entry.load()
    except Exception as exc:  # noqa: BLE001 - any import failure is the installed package's to name
        raise ConfigError(f"{where} cannot be loaded: {type(exc).__name__}: {exc}") from None
    if not isinstance(loaded, ProviderPlugin):
        raise ConfigError(f"{where} is not a storebridge.providers.plugin.ProviderPlugin instance")
    if loaded.name != entry.name:
        raise ConfigError(f"{where} names its plugin {loaded.name!r}: the entry point's name must match")
    if loaded.kind not in KINDS:
        raise ConfigError(f"{where}: kind {loaded.kind!r} is not one of {', '.join(KINDS)}")
    return loaded


def registry_of(plugins: Iterable[ProviderPlugin[Any]]) -> ProviderRegistry:
    """A registry of `plugins` in a stable order: by kind (payments first), then priority, then name."""
    ordered = sorted(plugins, key=lambda p: (KINDS.index(p.kind), p.priority, p.name))
    seen: set[str] = set()
    for plugin in ordered:
        if plugin.name in seen:
            raise ConfigError(f"two {ENTRY_POINT_GROUP} plugins are named {plugin.name!r}")
        seen.add(plugin.name)
    return ProviderRegistry(tuple(ordered))


def load_plugin(name: str, group: str = ENTRY_POINT_GROUP) -> ProviderPlugin[Any] | None:
    """Load only the plugin registered as `name` (None when there is none): a command about one
    provider need not import every installed one."""
    matching = [e for e in entry_points(group=group) if e.name == name]
    return _load(matching[0]) if matching else None


def load_registry(group: str = ENTRY_POINT_GROUP) -> ProviderRegistry:
    """Load every plugin registered in the entry-point group (installed distributions only)."""
    unique = {(e.name, e.value): e for e in entry_points(group=group)}  # an editable install may list one twice
    return registry_of(_load(entry) for entry in unique.values())
