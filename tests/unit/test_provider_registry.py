"""The provider registry: built-ins load through the entry-point group; a broken entry point is named."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest

from storebridge.errors import ConfigError
from storebridge.observability.calls import CallLog
from storebridge.providers import registry as registry_module
from storebridge.providers.assembly import build_providers, refuse_sandboxes_in_production
from storebridge.providers.plugin import BuiltProvider, ProviderContext, ProviderPlugin, ProviderSettings
from storebridge.providers.registry import ENTRY_POINT_GROUP, load_registry, registry_of

BUILT_INS = {"stripe", "paypal", "shippo", "sendgrid", "smtp", "inventory"}


def _entry_points(*entries: tuple[str, str]) -> Any:
    points = [EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in entries]
    return lambda group: points if group == ENTRY_POINT_GROUP else []


def test_built_in_providers_come_from_the_entry_point_group() -> None:
    """Every built-in provider is registered in pyproject.toml, as a third-party one would be."""
    registry = load_registry()
    assert set(registry.names()) >= BUILT_INS
    # Listed by kind, then priority: Stripe first among the payments (other installed plugins may sit between).
    built_ins = [name for name in registry.names() if name in BUILT_INS]
    assert built_ins[:5] == ["stripe", "paypal", "shippo", "sendgrid", "smtp"]
    assert BUILT_INS | {"events"} <= registry.reserved_names()


def test_an_unimportable_entry_point_is_a_config_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider that cannot be loaded stops start-up with its name, never vanishes silently."""
    monkeypatch.setattr(registry_module, "entry_points", _entry_points(("acme", "acme_missing.plugin:plugin")))
    with pytest.raises(ConfigError, match=r"'acme'.*acme_missing"):
        load_registry()


def test_an_entry_point_that_is_not_a_plugin_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The object behind the entry point must be a ProviderPlugin whose name is the entry point's."""
    monkeypatch.setattr(registry_module, "entry_points", _entry_points(("acme", "storebridge.config:Settings")))
    with pytest.raises(ConfigError, match=r"not a storebridge\.providers\.plugin\.ProviderPlugin"):
        load_registry()
    monkeypatch.setattr(
        registry_module, "entry_points", _entry_points(("acme", "storebridge.providers.stripe.plugin:plugin"))
    )
    with pytest.raises(ConfigError, match="must match"):
        load_registry()


class _NoKeySettings(ProviderSettings):
    enabled: bool = True


class _SandboxOnly(ProviderPlugin[_NoKeySettings]):
    name = "acme"
    kind = "payments"
    settings_model = _NoKeySettings
    credential_variables = ("ACME_API_KEY", "ACME_SECRET")

    def uses_sandbox(self, settings: _NoKeySettings) -> bool:
        return True

    def build(self, settings: _NoKeySettings, context: ProviderContext) -> BuiltProvider:
        raise AssertionError("production never builds a provider that would use its sandbox")


def test_production_names_a_plugin_without_credentials_and_its_default_switch_off() -> None:
    """A third-party plugin gets the same production rule as the built-ins, with ACME_ENABLED=false."""
    context = ProviderContext("http://hub", True, 5.0, CallLog())
    built = build_providers(registry_of([_SandboxOnly()]), context)
    assert built.integrations["acme"].mode == "disabled"
    with pytest.raises(ConfigError, match=r"acme \(set ACME_API_KEY and ACME_SECRET, or ACME_ENABLED=false\)"):
        refuse_sandboxes_in_production(True, built)


def test_two_plugins_of_one_name_are_refused() -> None:
    """Names are unique: they are webhook paths and integration names."""
    with pytest.raises(ConfigError, match="named 'acme'"):
        registry_of([_SandboxOnly(), _SandboxOnly()])
