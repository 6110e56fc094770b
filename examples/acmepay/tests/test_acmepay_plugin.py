"""The plugin object: found by entry point, its settings checked, built for the sandbox or a real account."""

from __future__ import annotations

from pathlib import Path

import pytest

from storebridge.bootstrap import bootstrap
from storebridge.config import load_settings
from storebridge.errors import ConfigError
from storebridge.observability.calls import CallLog
from storebridge.providers.assembly import build_providers
from storebridge.providers.plugin import ProviderContext
from storebridge.providers.registry import load_registry
from storebridge_acmepay.plugin import plugin
from storebridge_acmepay.sandbox import AcmePaySandbox
from storebridge_acmepay.signature import verify

HUB = "http://127.0.0.1:8000"


def _context(*, production: bool = False) -> ProviderContext:
    return ProviderContext(HUB, production, 5.0, CallLog())


@pytest.fixture(autouse=True)
def _no_acmepay_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("ACMEPAY_ENABLED", "ACMEPAY_API_KEY", "ACMEPAY_WEBHOOK_SECRET", "ACMEPAY_API_BASE"):
        monkeypatch.delenv(variable, raising=False)


def test_the_entry_point_registers_the_plugin_object() -> None:
    """Installing the package is enough: the storebridge.providers registry holds this very object."""
    assert load_registry().get("acmepay") is plugin
    assert plugin.kind == "payments"


def test_without_an_api_key_it_builds_its_sandbox() -> None:
    """No ACMEPAY_API_KEY: the adapter points at /_sandbox/acmepay and the sandbox is built to be mounted."""
    built = plugin.build(plugin.read_settings(), _context())
    assert built.mode == "sandbox"
    assert isinstance(built.sandbox, AcmePaySandbox)
    assert built.sandbox_url == f"{HUB}/_sandbox/acmepay"
    assert built.webhook_url == f"{HUB}/webhooks/acmepay"
    assert [route.source.verifier for route in built.webhooks] == [verify]  # AcmePay's own scheme
    assert built.sandbox.webhook_secret.startswith("acme_whsec_")  # made up for this run


def test_with_an_api_key_it_talks_to_acmepay_and_mounts_no_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test key: mode test, no sandbox, the webhook source checks the configured secret."""
    monkeypatch.setenv("ACMEPAY_API_KEY", "acme_test_abc")
    monkeypatch.setenv("ACMEPAY_WEBHOOK_SECRET", "acme_whsec_configured")
    built = plugin.build(plugin.read_settings(), _context())
    assert (built.mode, built.sandbox, built.sandbox_url) == ("test", None, None)
    assert built.webhooks[0].source.secrets == ("acme_whsec_configured",)
    assert built.problems == []


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"ACMEPAY_API_KEY": "sk_test_stripe_key"}, "ACMEPAY_API_KEY"),
        ({"ACMEPAY_ENABLED": "true", "ACMEPAY_API_KEY": "acme_live_abc"}, "ACMEPAY_WEBHOOK_SECRET"),
        ({"ACMEPAY_WEBHOOK_SECRET": "whsec_stripe_style"}, "ACMEPAY_WEBHOOK_SECRET"),
        ({"ACMEPAY_WEBHOOK_TOLERANCE": "-1"}, "ACMEPAY_WEBHOOK_TOLERANCE"),
    ],
)
def test_a_bad_setting_is_a_config_error_naming_the_variable_not_its_value(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    """A malformed ACMEPAY_* variable stops start-up with a message naming it and never echoing a secret."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        plugin.read_settings()
    assert named in str(caught.value)
    assert all(value not in str(caught.value) for value in variables.values())


def test_production_without_credentials_is_refused_naming_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """STOREBRIDGE_ENV=production never falls back to the sandbox: AcmePay is listed as missing its key."""
    monkeypatch.setenv("ACMEPAY_ENABLED", "true")
    built = build_providers([plugin], _context(production=True))
    assert built.sandboxes == {} and built.payment_providers == {}
    assert [str(m) for m in built.missing] == [
        "acmepay (set ACMEPAY_API_KEY and ACMEPAY_WEBHOOK_SECRET, or ACMEPAY_ENABLED=false)"
    ]


def test_installed_it_is_listed_disabled_until_switched_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed alone it changes no hub: listed disabled, nothing built; ACMEPAY_ENABLED=true builds it."""
    built = build_providers([plugin], _context(production=True))
    assert (built.integrations["acmepay"].enabled, built.integrations["acmepay"].mode) == (False, "disabled")
    assert built.payment_providers == {} and built.webhook_sources == {} and built.sandboxes == {}
    assert built.missing == []  # so a production hub is not refused for it either
    monkeypatch.setenv("ACMEPAY_ENABLED", "true")
    built = build_providers([plugin], _context())
    assert (built.integrations["acmepay"].enabled, built.integrations["acmepay"].mode) == (True, "sandbox")
    assert list(built.payment_providers) == list(built.webhook_sources) == list(built.sandboxes) == ["acmepay"]


def test_a_custom_webhook_provider_may_not_take_its_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Installed, `acmepay` is a name the hub reserves: STOREBRIDGE_WEBHOOK_PROVIDERS cannot claim it."""
    monkeypatch.setenv("STOREBRIDGE_WEBHOOK_PROVIDERS", "acmepay:plain")
    monkeypatch.setenv("ACMEPAY_WEBHOOK_SECRET", "acme_whsec_shared_by_both")
    settings = load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    with pytest.raises(ConfigError, match="'acmepay' is reserved"):
        bootstrap(settings)


def test_its_secrets_are_redacted_from_the_hub_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """SecretStr settings are secrets the hub keeps out of its logs: the API key and the signing secret."""
    monkeypatch.setenv("ACMEPAY_API_KEY", "acme_live_do_not_log")
    monkeypatch.setenv("ACMEPAY_WEBHOOK_SECRET", "acme_whsec_do_not_log")
    redacted = load_registry().secret_values()
    assert {"acme_live_do_not_log", "acme_whsec_do_not_log"} <= set(redacted)
