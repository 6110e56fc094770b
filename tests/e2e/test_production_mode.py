"""STOREBRIDGE_ENV=production: real credentials or no start; no /_sandbox; test controls need the API token."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import httpx
import pytest
from starlette.routing import Mount

from storebridge.api.app import create_app
from storebridge.bootstrap import bootstrap
from storebridge.config import load_settings
from storebridge.errors import ConfigError
from storebridge.providers.stripe.plugin import SANDBOX_STRIPE_KEY
from tests.e2e.test_cli import _env, _run
from tests.support.hub import API_TOKEN, RunningHub, make_settings
from tests.support.servers import free_port

PROVIDER_PREFIXES = ("STRIPE_", "PAYPAL_", "SHIPPO_", "SENDGRID_", "NOTIFICATIONS_", "INVENTORY_", "STOREBRIDGE_ENV")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No provider variable from the outer environment, a database in tmp_path."""
    import os

    for name in list(os.environ):
        if name.startswith(PROVIDER_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STOREBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'prod.db'}")
    return monkeypatch


def test_production_without_credentials_refuses_naming_every_missing_variable(clean_env: pytest.MonkeyPatch) -> None:
    """Every enabled provider without credentials is named with its variables and its off switch."""
    clean_env.setenv("STOREBRIDGE_ENV", "production")
    with pytest.raises(ConfigError) as refused:
        bootstrap(load_settings())
    message = str(refused.value)
    for name in (
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_ENABLED=false",
        "PAYPAL_CLIENT_ID",
        "PAYPAL_CLIENT_SECRET",
        "PAYPAL_WEBHOOK_ID",
        "SHIPPO_API_KEY",
        "SHIPPO_WEBHOOK_TOKEN",
        "SENDGRID_API_KEY",
        "INVENTORY_API_KEY",
        "INVENTORY_BASE_URL",
        "INVENTORY_WEBHOOK_SECRET",
        "STOREBRIDGE_ENV=development",
    ):
        assert name in message, name
    # One provider switched off is no longer named; development (the default) still falls back.
    clean_env.setenv("PAYPAL_ENABLED", "false")
    with pytest.raises(ConfigError) as refused:
        bootstrap(load_settings())
    assert "PAYPAL_" not in str(refused.value) and "STRIPE_SECRET_KEY" in str(refused.value)
    clean_env.delenv("STOREBRIDGE_ENV")
    assert "stripe" in bootstrap(load_settings()).sandboxes


def test_an_unknown_environment_name_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    """STOREBRIDGE_ENV=prod (a typo) is a configuration error naming the variable, not development."""
    clean_env.setenv("STOREBRIDGE_ENV", "prod")
    with pytest.raises(ConfigError, match="STOREBRIDGE_ENV"):
        load_settings()


PRODUCTION_CREDENTIALS = {
    "STOREBRIDGE_ENV": "production",
    "STRIPE_SECRET_KEY": "sk_test_not_a_real_key",
    "STRIPE_WEBHOOK_SECRET": "whsec_not_a_real_secret",
    "PAYPAL_ENABLED": "false",
    "SHIPPO_API_KEY": "shippo_test_not_a_real_key",
    "SHIPPO_WEBHOOK_TOKEN": "a-webhook-token-of-some-length",
    "SENDGRID_API_KEY": "SG.not_a_real_key",
    "INVENTORY_API_KEY": "inv_not_a_real_key",
    "INVENTORY_BASE_URL": "https://inventory.example.com",
    "INVENTORY_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode(),
}


def test_production_with_credentials_starts_and_serves_no_sandbox(clean_env: pytest.MonkeyPatch) -> None:
    """Real credentials for every enabled provider: the hub is built, nothing is mounted under /_sandbox."""
    for name, value in PRODUCTION_CREDENTIALS.items():
        clean_env.setenv(name, value)
    hub = bootstrap(load_settings(), api_token=API_TOKEN)
    assert hub.sandboxes == {}
    assert {i.mode for i in hub.integrations.values()} <= {"test", "live", "disabled"}
    app = create_app(hub, migrate=False, run_worker=False)
    assert not [r for r in app.api.router.routes if isinstance(r, Mount) and r.path.startswith("/_sandbox")]

    async def answers() -> list[int]:  # no lifespan: routing only
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://hub", headers=auth) as c:
            return [
                (await c.get(p)).status_code
                for p in ("/_sandbox/stripe/_control/faults", "/_sandbox/sendgrid/messages")
            ]

    assert asyncio.run(answers()) == [404, 404]


@pytest.mark.parametrize("command", [["check"], ["serve", "--port", "0"]])
def test_serve_and_check_exit_with_the_message_in_production(tmp_path: Path, command: list[str]) -> None:
    """`storebridge serve` / `check` in production without credentials: exit 2, the variables named, no traceback."""
    env = {k: v for k, v in _env(tmp_path, STOREBRIDGE_ENV="production").items() if not k.startswith(PROVIDER_PREFIXES)}
    env["STOREBRIDGE_ENV"] = "production"
    if command[0] == "serve":
        command = ["serve", "--port", str(free_port())]
    result = _run(command, env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "STRIPE_SECRET_KEY" in result.stderr and "SENDGRID_API_KEY" in result.stderr
    assert "STOREBRIDGE_ENV=development" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cli.db").exists()  # refused before the database was touched


def test_sandbox_controls_and_the_mailbox_need_the_api_token(sqlite_hub: RunningHub) -> None:
    """Without the API token every emulator's /_control and the SendGrid mailbox are a 401; with it they
    answer; the emulated provider APIs keep taking their own test keys."""
    base = sqlite_hub.base_url
    names = set(sqlite_hub.hub.sandboxes)
    assert {"stripe", "paypal", "shippo", "sendgrid", "inventory"} <= names
    bad = {"Authorization": "Bearer not-the-token"}
    for name in names:
        for headers in ({}, bad):
            refused = httpx.get(f"{base}/_sandbox/{name}/_control/state", headers=headers)
            assert refused.status_code == 401, (name, refused.text)
            assert refused.json()["error"]["code"] == "unauthorized"
            assert refused.headers["www-authenticate"] == "Bearer"
    for path in (
        "/_sandbox/stripe/_control/faults",
        "/_sandbox/stripe/_control/faults/",
        "/_sandbox/stripe/%5Fcontrol/faults",
        "/_sandbox/stripe/_control/webhooks",
        "/_sandbox/sendgrid/messages",
        "/_sandbox/sendgrid/messages/msg_1",
    ):
        assert httpx.get(f"{base}{path}").status_code == 401, path
        assert httpx.post(f"{base}{path}", json={}).status_code in (401, 405), path
    # The webhook target cannot be changed without the token.
    assert httpx.post(f"{base}/_sandbox/stripe/_control/webhooks", json={"enabled": False}).status_code == 401
    assert sqlite_hub.client.get("/_sandbox/stripe/_control/faults").status_code == 200
    assert sqlite_hub.client.get("/_sandbox/sendgrid/messages").json() == {"messages": []}
    assert sqlite_hub.client.get("/_sandbox/inventory/_control/state").status_code == 200
    # The emulated APIs: their own test key, no API token.
    balance = httpx.get(f"{base}/_sandbox/stripe/v1/balance", headers={"Authorization": f"Bearer {SANDBOX_STRIPE_KEY}"})
    assert balance.status_code == 200, balance.text


def test_development_is_the_default(clean_env: pytest.MonkeyPatch) -> None:
    """Without STOREBRIDGE_ENV the hub is in development: sandboxes for providers without credentials."""
    settings = make_settings(load_settings().database_url)
    assert settings.env == "development" and not settings.production


def test_serve_in_production_needs_an_api_token_it_did_not_make_up(tmp_path: Path) -> None:
    """With every credential but STOREBRIDGE_API_TOKEN, production `serve` exits 2 naming it (a token generated
    into a file is for trying the hub out), before the database is touched."""
    env = {k: v for k, v in _env(tmp_path).items() if not k.startswith(PROVIDER_PREFIXES)}
    env.update(PRODUCTION_CREDENTIALS)
    result = _run(["serve", "--port", str(free_port())], env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "STOREBRIDGE_API_TOKEN is required with STOREBRIDGE_ENV=production" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cli.db").exists() and not (tmp_path / "cli.db.token").exists()
