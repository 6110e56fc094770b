"""The storebridge command as a user runs it: real processes, real ports."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from storebridge.migrate import head_revision
from tests.support.hub import wait_for
from tests.support.servers import free_port

STOREBRIDGE = [sys.executable, "-m", "storebridge"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "STOREBRIDGE_", "PAYPAL_"))}
    env.update({"STOREBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "STOREBRIDGE_LOG_LEVEL": "WARNING"})
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(STOREBRIDGE + args, env=env, capture_output=True, text=True, timeout=timeout)


def test_serve_refuses_a_malformed_key_naming_the_variable(tmp_path: Path) -> None:
    """serve with STRIPE_SECRET_KEY=pk_... exits 2, names the variable, and never prints the value."""
    result = _run(["serve", "--port", str(free_port())], _env(tmp_path, STRIPE_SECRET_KEY="pk_live_TOPSECRET"))
    assert result.returncode == 2
    assert "STRIPE_SECRET_KEY" in result.stderr
    assert "TOPSECRET" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_serve_says_when_the_database_is_unreachable(tmp_path: Path) -> None:
    """A database URL nobody answers is a start-up error that names the variable, not a traceback."""
    port = free_port()
    env = _env(tmp_path, STOREBRIDGE_DATABASE_URL=f"postgresql://nobody@127.0.0.1:{port}/none")
    result = _run(["serve", "--port", str(free_port())], env)
    assert result.returncode == 2
    assert "STOREBRIDGE_DATABASE_URL" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    with _serving(tmp_path) as running:
        yield running


@contextmanager
def _serving(tmp_path: Path, *args: str, **env: str) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen(
        [*STOREBRIDGE, "serve", "--port", str(port), *args],
        env=_env(tmp_path, **env),
        cwd=tmp_path,  # on PostgreSQL the generated token is kept in ./storebridge.token
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        token = re.search(r"(sbk_\S+)", line)
        assert token, f"serve did not print a generated API token: {line!r}"

        def healthy() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=30, what="serve to answer /healthz")
        yield base, token.group(1), proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_serve_cuts_off_an_idle_connection_after_its_head_timeout(tmp_path: Path) -> None:
    """`storebridge serve` runs the hub's protocol with STOREBRIDGE_HTTP_HEADER_TIMEOUT: a connection
    that sends nothing gets a 408 and is closed (0.5 s here, generous slack), and serving goes on."""
    with _serving(tmp_path, STOREBRIDGE_HTTP_HEADER_TIMEOUT="0.5") as (base, _, _):
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            started = time.monotonic()
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            assert time.monotonic() - started < 0.5 + 3.0
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert httpx.get(f"{base}/healthz").status_code == 200


def test_serve_refuses_a_bad_http_limit_naming_the_variable(tmp_path: Path) -> None:
    """STOREBRIDGE_HTTP_MAX_CONNECTIONS=0 is a start-up error naming the variable, not a traceback."""
    result = _run(["serve", "--port", str(free_port())], _env(tmp_path, STOREBRIDGE_HTTP_MAX_CONNECTIONS="0"))
    assert result.returncode == 2
    assert "STOREBRIDGE_HTTP_MAX_CONNECTIONS" in result.stderr and "Traceback" not in result.stderr


def test_serve_migrates_prints_a_token_and_shows_stripe_in_sandbox(
    served: tuple[str, str, subprocess.Popen[str]],
) -> None:
    """make serve's command: migrates, prints a one-time token, /integrations shows Stripe in sandbox mode."""
    base, token, _ = served
    assert httpx.get(f"{base}/integrations").status_code == 401
    data = httpx.get(f"{base}/integrations", headers={"Authorization": f"Bearer {token}"}).json()["data"]
    stripe = next(i for i in data if i["name"] == "stripe")
    assert stripe["mode"] == "sandbox" and stripe["enabled"]
    ready = httpx.get(f"{base}/readyz").json()
    assert ready["checks"]["database"] == "ok" and ready["checks"]["migrations"] == "ok"


def test_migrate_and_check(tmp_path: Path) -> None:
    """migrate brings a new database to head; check then reports settings, database and Stripe healthy."""
    env = _env(tmp_path)
    migrated = _run(["migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    assert f"revision {head_revision()}" in migrated.stdout
    checked = _run(["check"], env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "stripe" in checked.stdout and "sandbox" in checked.stdout


def test_check_fails_on_an_unmigrated_database(tmp_path: Path) -> None:
    """check on a database that was never migrated exits non-zero and says to run migrate."""
    checked = _run(["check"], _env(tmp_path))
    assert checked.returncode == 1
    assert "storebridge migrate" in checked.stdout


def test_demo_pays_an_order_and_prints_its_timeline(tmp_path: Path) -> None:
    """make demo: an order paid with pm_card_visa, the webhook processed, payment_status captured, exit 0."""
    result = _run(["demo"], _env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "payment_status: captured" in result.stdout
    assert "payment_intent.succeeded" in result.stdout
    assert "payment.captured" in result.stdout
    # Stock was reserved when the order was placed and taken out when the label was bought: 10 - 2 = 8.
    assert "stock of TSHIRT-BLK-M after shipping: stocked 8, reserved 0, available 8" in result.stdout
    assert "fulfillment_status: delivered" in result.stdout
    # The SCA payment: requires_action with a redirect, the challenge completed, the order captured.
    assert "status requires_action, next_action redirect_to_url" in result.stdout
    assert "/_sandbox/stripe/3ds/pi_" in result.stdout and "payment.requires_action" in result.stdout
    assert "SCA payment ended captured" in result.stdout
    # The hub's own lines: each provider's mode once, not again as log warnings.
    assert "providers: stripe (sandbox)" in result.stdout
    assert "provider_in_sandbox" not in result.stdout + result.stderr


def test_unknown_sandbox_name_is_refused(tmp_path: Path) -> None:
    """storebridge sandbox with an unknown provider exits 2 and lists the available ones."""
    result = _run(["sandbox", "nosuch"], _env(tmp_path))
    assert result.returncode == 2 and "available: stripe, paypal" in result.stderr


def test_demo_with_paypal_pays_through_the_approve_link(tmp_path: Path) -> None:
    """make demo --provider paypal: the sandbox buyer approves, the order is captured, exit 0."""
    result = subprocess.run(
        [*STOREBRIDGE, "demo", "--provider", "paypal", "--output", str(tmp_path / "out")],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "buyer approves at" in result.stdout and "payment_status: captured" in result.stdout


@pytest.mark.parametrize("name", ["stripe", "paypal", "shippo", "sendgrid", "inventory"])
def test_each_sandbox_runs_alone(tmp_path: Path, name: str) -> None:
    """storebridge sandbox NAME serves the emulator on its own port and prints the settings to use it."""
    port = free_port()
    proc = subprocess.Popen(
        [*STOREBRIDGE, "sandbox", name, "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def answers() -> bool:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                return True
            except httpx.TransportError:
                return False

        wait_for(answers, timeout=30, what=f"the {name} sandbox to listen")
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=15)
    assert f"{name} sandbox on http://127.0.0.1:{port}" in stdout


def test_a_capability_setting_error_stops_serve_naming_the_variable(tmp_path: Path) -> None:
    """PAYPAL_CLIENT_ID without its secret: serve exits 2 naming PAYPAL_CLIENT_SECRET, no traceback."""
    result = _run(["serve", "--port", str(free_port())], _env(tmp_path, PAYPAL_CLIENT_ID="client-abc"))
    assert result.returncode == 2
    assert "PAYPAL_CLIENT_SECRET" in result.stderr and "Traceback" not in result.stderr


def test_shipping_buy_label_for_a_paid_order(served: tuple[str, str, subprocess.Popen[str]], tmp_path: Path) -> None:
    """storebridge shipping buy-label: a paid order gets the cheapest label; without a token it says what to do."""
    base, token, _ = served
    auth = {"Authorization": f"Bearer {token}"}
    order = httpx.post(
        f"{base}/orders",
        headers=auth,
        json={
            "email": "a@example.com",
            "currency": "USD",
            "items": [{"sku": "S", "title": "T", "quantity": 1, "unit_price": 900}],
            "shipping_address": {
                "name": "Ada",
                "street1": "1 Main St",
                "city": "Springfield",
                "state": "IL",
                "zip": "62701",
                "country": "US",
            },
        },
    ).json()
    payment = httpx.post(
        f"{base}/orders/{order['id']}/payments",
        headers=auth,
        json={"provider": "stripe", "payment_method": "pm_card_visa"},
    ).json()
    httpx.post(f"{base}/payments/{payment['id']}/confirm", headers=auth).raise_for_status()
    no_token = _run(["shipping", "buy-label", order["id"], "--hub-url", base], _env(tmp_path))
    assert no_token.returncode == 2 and "STOREBRIDGE_API_TOKEN" in no_token.stderr
    bought = _run(
        ["shipping", "buy-label", order["id"], "--hub-url", base], _env(tmp_path, STOREBRIDGE_API_TOKEN=token)
    )
    assert bought.returncode == 0, bought.stdout + bought.stderr
    assert "tracking" in bought.stdout
    shipments = httpx.get(f"{base}/orders/{order['id']}", headers=auth).json()
    assert shipments["fulfillment_status"] == "label_purchased"


def test_shipping_buy_label_run_twice_buys_one_label(
    served: tuple[str, str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    """buy-label run again for an order against `serve`: exit 0, the same tracking number, "a label already exists"."""
    base, token, _ = served
    auth = {"Authorization": f"Bearer {token}"}
    address = {"name": "Ada", "street1": "1 Main St", "city": "Springfield", "zip": "62701", "country": "US"}
    order = httpx.post(
        f"{base}/orders",
        headers=auth,
        json={
            "email": "a@example.com",
            "currency": "USD",
            "items": [{"sku": "S", "title": "T", "quantity": 1, "unit_price": 900}],
            "shipping_address": address,
        },
    ).json()
    payment = httpx.post(
        f"{base}/orders/{order['id']}/payments",
        headers=auth,
        json={"provider": "stripe", "payment_method": "pm_card_visa"},
    ).json()
    httpx.post(f"{base}/payments/{payment['id']}/confirm", headers=auth).raise_for_status()
    env = _env(tmp_path, STOREBRIDGE_API_TOKEN=token)
    runs = [_run(["shipping", "buy-label", order["id"], "--hub-url", base], env) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], [r.stdout + r.stderr for r in runs]
    numbers = [re.findall(r"tracking (\S+),", r.stdout) for r in runs]
    assert len(numbers[0]) == 1 and numbers[0] == numbers[1]
    assert "a label already exists" not in runs[0].stdout and "a label already exists" in runs[1].stdout
    shipments = httpx.get(f"{base}/orders/{order['id']}/shipments", headers=auth).json()["data"]
    assert [s["tracking_number"] for s in shipments] == numbers[0]


def test_paypal_payment_paid_then_refunded_from_the_cli(
    served: tuple[str, str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    """PayPal end to end against `storebridge serve`: approve, confirm, then `payments refund` in two parts."""
    base, token, _ = served
    auth = {"Authorization": f"Bearer {token}"}
    order = httpx.post(
        f"{base}/orders",
        headers=auth,
        json={
            "email": "a@example.com",
            "currency": "EUR",
            "items": [{"sku": "S", "title": "T", "quantity": 2, "unit_price": "5.00"}],
        },
    ).json()
    payment = httpx.post(f"{base}/orders/{order['id']}/payments", headers=auth, json={"provider": "paypal"}).json()
    httpx.get(payment["action_url"], timeout=10).raise_for_status()  # the buyer approves
    confirmed = httpx.post(f"{base}/payments/{payment['id']}/confirm", headers=auth)
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "captured", confirmed.text
    env = _env(tmp_path, STOREBRIDGE_API_TOKEN=token)
    part = _run(["payments", "refund", payment["id"], "--amount", "400", "--hub-url", base], env)
    assert part.returncode == 0, part.stdout + part.stderr
    assert "partially_refunded" in part.stdout
    rest = _run(["payments", "refund", payment["id"], "--hub-url", base], env)
    assert rest.returncode == 0 and "refunded €6.00" in rest.stdout, rest.stdout + rest.stderr
    again = _run(["payments", "refund", payment["id"], "--hub-url", base], env)
    assert again.returncode == 1 and "nothing left to refund" in again.stderr
    shown = _run(["payments", "show", payment["id"], "--hub-url", base], env)
    assert "refunded" in shown.stdout and "captured €10.00 refunded €10.00" in shown.stdout


def test_a_standalone_worker_serves_its_own_metrics(tmp_path: Path) -> None:
    """`worker --metrics-port`: /healthz, and /metrics behind the API token with the worker's own
    counters (a webhook it attempted is counted there, not in any API process); SIGTERM stops it."""

    token = "sbk_worker_metrics_token_0123"
    env = _env(tmp_path, STOREBRIDGE_API_TOKEN=token)
    assert _run(["migrate"], env).returncode == 0
    with sqlite3.connect(tmp_path / "cli.db") as db:  # a stored webhook the Stripe handler cannot apply
        t = time.time()
        db.execute(
            "INSERT INTO webhook_events (id, provider, event_id, event_type, status, headers, body, received_at,"
            " attempts, next_attempt_at) VALUES ('whk_1', 'stripe', 'evt_1', 'payment_intent.succeeded',"
            " 'received', '{}', X'7B7D', ?, 0, ?)",
            (t, t),
        )
    port = free_port()
    proc = subprocess.Popen(
        [*STOREBRIDGE, "worker", "--metrics-port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def failure_counted() -> str | None:
            try:
                text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=2).text
            except httpx.TransportError:
                return None
            line = (
                'storebridge_webhook_processing_failures_total{event_type="payment_intent.succeeded",provider="stripe"}'
            )
            # The heartbeat gauge appears with the worker's first heartbeat, which may commit after
            # the first claim: wait for both.
            return text if line in text and "storebridge_worker_heartbeat_age_seconds" in text else None

        wait_for(failure_counted, timeout=30, what="the worker's /metrics to count its failed attempt and heartbeat")
        assert httpx.get(f"{base}/metrics").status_code == 401
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{base}/orders").status_code == 404  # nothing but health and metrics here
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0, proc.stderr.read() if proc.stderr else ""


def test_a_worker_metrics_port_in_use_stops_it_with_advice(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = _run(["worker", "--metrics-port", str(port)], _env(tmp_path), timeout=60)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stdout + result.stderr
    assert "Choose another --metrics-port" in result.stdout + result.stderr


def _serve_once(tmp_path: Path, check: Callable[[str], None]) -> str:
    """Start `serve` on tmp_path's database, run `check(base)` once it answers, stop it; its first two lines."""
    port = free_port()
    proc = subprocess.Popen(
        [*STOREBRIDGE, "serve", "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline() + proc.stdout.readline()

        def healthy() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=30, what="serve to answer /healthz")
        check(base)
        return line
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_a_generated_token_is_kept_beside_the_database_and_works_after_a_restart(tmp_path: Path) -> None:
    """serve twice on one SQLite file: the token generated first (kept in cli.token, 0600) still works after."""
    sessions: list[str] = []

    def first(base: str) -> None:
        token = (tmp_path / "cli.token").read_text().strip()
        assert httpx.get(f"{base}/integrations", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        with httpx.Client(base_url=base) as client:
            page = client.get("/admin/login")
            nonce = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert nonce, page.text[:500]
            signed_in = client.post("/admin/login", data={"token": token, "csrf": nonce.group(1)})
            assert signed_in.status_code == 303, signed_in.text[:300]
            sessions.append(client.cookies["storebridge_console"])

    line = _serve_once(tmp_path, first)
    token = (tmp_path / "cli.token").read_text().strip()
    assert token in line and str(tmp_path / "cli.token") in line
    assert (tmp_path / "cli.token").stat().st_mode & 0o777 == 0o600

    def second(base: str) -> None:
        assert httpx.get(f"{base}/integrations", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        console = httpx.get(f"{base}/admin/", headers={"Cookie": f"storebridge_console={sessions[0]}"})
        assert console.status_code == 200, (console.status_code, console.headers.get("location"))

    line = _serve_once(tmp_path, second)
    assert token not in line and "cli.token" in line  # reused, never shown again


def test_an_explicit_token_wins_over_the_kept_one(tmp_path: Path) -> None:
    """STOREBRIDGE_API_TOKEN set: it is the token, and no file is written."""
    from storebridge.api_token import resolve_api_token
    from storebridge.config import load_settings

    url = f"sqlite:///{tmp_path / 'x.db'}"
    kept = resolve_api_token(load_settings(database_url=url, api_token=None))
    assert kept.source == "generated" and kept.path == tmp_path / "x.token"
    assert resolve_api_token(load_settings(database_url=url, api_token=None)).value == kept.value
    explicit = resolve_api_token(load_settings(database_url=url, api_token="sbk_mine"))
    assert explicit.value == "sbk_mine" and explicit.source == "environment"


def test_serve_loads_the_subscribers_named_in_storebridge_plugins(tmp_path: Path) -> None:
    """STOREBRIDGE_PLUGINS=module:function: serve calls it with the hub; its subscriber receives the payment events."""
    out = tmp_path / "plugin.out"
    port = free_port()
    env = _env(tmp_path, STOREBRIDGE_PLUGINS="tests.support.plugin_example:install", PLUGIN_EXAMPLE_OUT=str(out))
    env["STOREBRIDGE_API_TOKEN"] = "sbk_plugin_test_token"
    proc = subprocess.Popen(
        [*STOREBRIDGE, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": "Bearer sbk_plugin_test_token"}
    try:
        assert proc.stdout is not None
        assert "tests.support.plugin_example:install" in proc.stdout.readline()

        def healthy() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=30, what="serve to answer /healthz")
        order = httpx.post(
            f"{base}/orders",
            headers=auth,
            json={
                "email": "a@example.com",
                "currency": "USD",
                "items": [{"sku": "S", "title": "T", "quantity": 1, "unit_price": 900}],
            },
        ).json()
        payment = httpx.post(
            f"{base}/orders/{order['id']}/payments",
            headers=auth,
            json={"provider": "stripe", "payment_method": "pm_card_visa"},
        ).json()
        httpx.post(f"{base}/payments/{payment['id']}/confirm", headers=auth).raise_for_status()
        wait_for(lambda: "payment.captured" in out.read_text(), what="the plugin's subscriber to see payment.captured")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ("tests.support.plugin_example", "is not `module:function`"),
        ("tests.support.no_such_module:install", "cannot import"),
        ("tests.support.plugin_example:missing", "has no callable 'missing'"),
        ("tests.support.plugin_example:broken", "no ERP configured"),
    ],
)
def test_a_bad_plugin_entry_stops_serve_and_worker_naming_it(tmp_path: Path, entry: str, said: str) -> None:
    """A bad STOREBRIDGE_PLUGINS entry: serve and worker exit 2 naming it (a malformed list before any entry runs)."""
    out = tmp_path / "plugin.out"
    plugins = f"tests.support.plugin_example:install, {entry}"
    env = _env(tmp_path, STOREBRIDGE_PLUGINS=plugins, PLUGIN_EXAMPLE_OUT=str(out))
    for args in (["serve", "--port", str(free_port())], ["worker"]):
        out.unlink(missing_ok=True)
        result = _run(args, env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        stderr = " ".join(result.stderr.split())
        assert "STOREBRIDGE_PLUGINS" in stderr and entry.split(":")[0] in stderr and said in stderr, stderr
        assert "Traceback" not in result.stderr
        assert out.exists() == (":" in entry)  # the good entry before it ran, unless the list is malformed
