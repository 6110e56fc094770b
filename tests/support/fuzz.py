"""API fuzzing with schemathesis against a running hub's own /openapi.json.

Every operation in the document (but the sandbox emulators, the console and provider webhooks) is sent:

1. explicit cases: a valid request built on real records (orders, payments, shipments, ...), then the
   same request with one path parameter, query parameter or body field replaced by a hostile value
   (NUL characters, huge integers, booleans where numbers go, "1e30", "NaN", ...);
2. generated cases: schemathesis' positive and negative strategies with a fixed seed, their path
   parameters mostly real ids and their bodies spliced into the valid body one field at a time, so
   that generated values get past the first validation error to the code behind it.

Each answer is judged by every default check of schemathesis (not_a_server_error, status_code_conformance,
content_type_conformance, response_headers_conformance, response_schema_conformance,
negative_data_rejection, positive_data_acceptance, ...). Every failure is kept with the server's own log
lines for that request (matched by X-Request-ID), grouped by operation, status and check (or server-side
exception), and rendered as a readable report. A schema-valid request refused for a rule about the data
it names (not a `validation_error`, or one of CROSS_FIELD_RULES) is not a failure.
"""

from __future__ import annotations

import json
import logging
import re
import time
import zlib
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
import structlog
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from jsonschema import Draft202012Validator
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.core.failures import ServerError
from schemathesis.core.result import Err
from schemathesis.errors import FailureGroup
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import ignored_auth

from storebridge.events.outbound_http import Answer, OutboundHttp
from tests.support.hub import API_TOKEN, ORDER, RunningHub, wait_for

__all__ = ["FuzzReport", "FuzzRun", "Seeds", "ServerLog", "fuzz_hub", "seed_records"]

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}

# Out of scope: the emulators and the console are not the API; provider webhooks have their own tests.
EXCLUDED_PATHS = r"^/(_sandbox|admin)(/|$)"
EXCLUDED_WEBHOOK_ROUTE = r"^/webhooks/\{provider\}$"

HUGE = 10**30
# Hostile values for one field at a time, by what the valid request has there.
NUMBER_VALUES: tuple[Any, ...] = (
    HUGE,
    -HUGE,
    2**63,
    True,
    1e30,
    1.5,
    "1e30",
    "NaN",
    "Infinity",
    "\u0661\u0662\u0663",  # Arabic-Indic digits: int() and Decimal() accept them
    "1\x002",
    None,
)
STRING_VALUES: tuple[Any, ...] = ("a\x00b", "1e30", HUGE, True, "x" * 5000, None)
BOOLEAN_VALUES: tuple[Any, ...] = ("\x00", HUGE, "1e30", "yes", 2, None)
PATH_VALUES: tuple[str, ...] = ("a\x00b", "1e30", str(HUGE))
QUERY_VALUES: dict[str, tuple[Any, ...]] = {
    "integer": (HUGE, -HUGE, "1e30", "1.5", "true", "NaN", "a\x00b"),
    "number": (HUGE, "1e30", "1e400", "-1e400", "NaN", "inf", "true", "a\x00b"),
    "boolean": ("a\x00b", "1e30", "2", HUGE),
    "string": ("a\x00b", "1e30", "x" * 5000, ""),
}

MAX_OTHERS = 4  # other requests shown for each finding

PARCEL = {"length": "10", "width": "8", "height": "4", "distance_unit": "in", "weight": "2.5", "mass_unit": "lb"}
ADDRESS = {
    "name": "Ada",
    "street1": "1 Main St",
    "street2": "Apt 1",
    "city": "Springfield",
    "state": "IL",
    "zip": "12345",
    "country": "US",
    "phone": "+15555550100",
    "email": "ada@example.com",
}
SKU = "SKU-1"
LOCATION = "default"
RECEIVER = "https://receiver.invalid/fuzz"  # never called: outbound deliveries are answered in-process

Operation = APIOperation[Any, Any, Any, Any]
FuzzCase = Case[Any]


# -- the hub under test ----------------------------------------------------------------------------


@contextmanager
def fuzz_hub(running: RunningHub) -> Iterator[RunningHub]:
    """`running` with outbound webhooks answered in-process: fuzzed subscription URLs must never be called."""

    class Answering(OutboundHttp):
        async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
            return Answer(200, {}, b"ok")

    sender = running.hub.outbound.sender
    sender.http = Answering(allow_private=True)
    yield running


# -- records the requests refer to -----------------------------------------------------------------


@dataclass
class Seeds:
    """Real records: ids for each path parameter name, and a valid request for each operation."""

    ids: dict[str, list[str]]
    path_parameters: dict[str, dict[str, str]]  # operation label -> its valid request's path parameters
    bodies: dict[str, Any]  # operation label -> a valid body
    # Ids of records the hub's worker makes a moment later (notifications, deliveries, stored
    # webhooks): looked up when first needed, so the wait overlaps with fuzzing.
    later: dict[str, Callable[[], list[str]]] = field(default_factory=dict)

    def ids_for(self, name: str) -> list[str]:
        if name not in self.ids and name in self.later:
            self.ids[name] = self.later.pop(name)()
        return self.ids.get(name, [])

    def base_path_parameters(self, label: str, names: list[str]) -> dict[str, str]:
        chosen = self.path_parameters.get(label, {})
        return {name: chosen.get(name) or (self.ids_for(name) or ["unknown"])[0] for name in names}


def _json(response: httpx.Response, *statuses: int) -> Any:
    assert response.status_code in statuses, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json()


def seed_records(running: RunningHub) -> Seeds:
    """Orders, payments in every state, shipments, stock, a reservation, a subscription with deliveries,
    stored webhooks and notifications, made through the API."""
    client = running.client
    _json(client.put(f"/inventory/{SKU}/levels/{LOCATION}", json={"stocked": 1000}), 200)
    _json(client.put(f"/inventory/{SKU}", json={"title": "Widget", "low_stock_threshold": 5}), 200)
    # Narrow event types: every matching event is a delivery for the hub's worker while the fuzzer runs.
    subscription = _json(client.post("/subscriptions", json={"url": RECEIVER, "event_types": ["payment.*"]}), 201)
    paid, authorized, pending, approving, fresh = (running.place_order()["id"] for _ in range(5))

    def pay(order_id: str, **body: Any) -> str:
        payment = _json(client.post(f"/orders/{order_id}/payments", json=body), 201)
        return str(payment["id"])

    captured = pay(paid, provider="stripe", payment_method="pm_card_visa")
    _json(client.post(f"/payments/{captured}/confirm"), 200)
    held = pay(authorized, provider="stripe", payment_method="pm_card_visa", capture_method="manual")
    _json(client.post(f"/payments/{held}/confirm"), 200)
    unconfirmed = pay(pending, provider="stripe", payment_method="pm_card_visa")
    unapproved = pay(approving, provider="paypal")

    shipment = _json(client.post(f"/orders/{paid}/shipments", json={"parcels": [PARCEL]}), 201)
    labelled = _json(client.post(f"/orders/{paid}/shipments", json={"parcels": [PARCEL]}), 201)
    cheapest = next(rate for rate in labelled["rates"] if rate["cheapest"])
    _json(client.post(f"/shipments/{labelled['id']}/label", json={"rate_id": cheapest["id"]}), 200)
    reserved = "ord_fuzz_reserved"
    reservation = {"order_id": reserved, "lines": [{"sku": SKU, "quantity": 1}]}
    _json(client.post("/inventory/reservations", json=reservation), 200, 201)

    def listed(path: str) -> list[str]:
        return [str(row["id"]) for row in client.get(path).raise_for_status().json()["data"]]

    def eventually(path: str) -> Callable[[], list[str]]:
        return lambda: wait_for(lambda: listed(path), what=f"records listed by {path}")

    ids = {
        "order_id": [paid, authorized, pending, approving, fresh, reserved],
        "payment_id": [captured, held, unconfirmed, unapproved],
        "shipment_id": [shipment["id"], labelled["id"]],
        "subscription_id": [subscription["id"]],
        "sku": [SKU],
        "location": [LOCATION],
    }
    path_parameters = {
        "POST /orders/{order_id}/payments": {"order_id": fresh},
        "POST /payments/{payment_id}/confirm": {"payment_id": unconfirmed},
        "POST /payments/{payment_id}/capture": {"payment_id": held},
        "POST /payments/{payment_id}/cancel": {"payment_id": held},
        "GET /shipments/{shipment_id}/label": {"shipment_id": labelled["id"]},
        "GET /inventory/reservations/{order_id}": {"order_id": reserved},
        "DELETE /inventory/reservations/{order_id}": {"order_id": reserved},
    }
    bodies: dict[str, Any] = {
        "POST /orders": {
            **ORDER,
            "shipping_address": ADDRESS,
            "shipping_total": 500,
            "metadata": {"note": "fuzz", "count": 1},
        },
        "POST /orders/{order_id}/payments": {
            "provider": "stripe",
            "payment_method": "pm_card_visa",
            "capture_method": "manual",
        },
        "POST /payments/{payment_id}/confirm": {"payment_method": "pm_card_visa"},
        "POST /payments/{payment_id}/capture": {"amount": 100},
        "POST /payments/{payment_id}/refunds": {"amount": 100, "reason": "requested_by_customer"},
        "POST /subscriptions": {"url": RECEIVER, "event_types": ["shipment.delivered"], "description": "fuzz"},
        "PATCH /subscriptions/{subscription_id}": {
            "url": RECEIVER,
            "event_types": ["payment.refunded"],
            "description": "fuzz",
            "enabled": True,
        },
        "POST /orders/{order_id}/shipments": {
            "parcels": [PARCEL],
            "address_to": {**ADDRESS, "is_residential": True},
            "items": [{"sku": "SKU-1", "quantity": 1}],
        },
        "POST /shipments/{shipment_id}/label": {"rate_id": shipment["rates"][0]["id"]},
        "POST /inventory/adjustments": {
            "adjustments": [
                {"sku": SKU, "location": LOCATION, "delta": 1, "reason": "fuzz"},
                {"sku": "SKU-2", "location": LOCATION, "stocked": 5},
            ]
        },
        "POST /inventory/reservations": {
            "order_id": "ord_fuzz_reservation",
            "lines": [{"sku": SKU, "quantity": 1}],
            "location": LOCATION,
            "ttl_seconds": 60,
        },
        "PUT /inventory/{sku}": {"title": "Widget", "allow_backorder": False, "low_stock_threshold": 2},
        "PUT /inventory/{sku}/levels/{location}": {"stocked": 10},
    }
    later = {
        "delivery_id": eventually(f"/subscriptions/{subscription['id']}/deliveries"),
        "webhook_id": eventually("/webhooks/events"),
        "notification_id": eventually(f"/orders/{paid}/notifications"),
    }
    return Seeds(ids=ids, path_parameters=path_parameters, bodies=bodies, later=later)


# -- the server's side of each request -------------------------------------------------------------


class ServerLog:
    """The hub's error log lines while fuzzing: structlog events (with the request id they were logged
    under, exceptions rendered) and uvicorn's tracebacks for errors that escaped the application."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.escaped: list[str] = []

    def _capture(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
        self.events.append(dict(event))
        raise structlog.DropEvent

    @contextmanager
    def capturing(self) -> Iterator[ServerLog]:
        previous = structlog.get_config()
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.format_exc_info,
                self._capture,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
            cache_logger_on_first_use=False,
        )
        handler = _ListHandler(self.escaped)
        uvicorn_log = logging.getLogger("uvicorn.error")
        uvicorn_log.addHandler(handler)
        try:
            yield self
        finally:
            uvicorn_log.removeHandler(handler)
            structlog.configure(**previous)

    def for_request(self, request_id: str | None, escaped_since: int) -> tuple[list[dict[str, Any]], list[str]]:
        """What the server logged for one request: its events, and tracebacks that escaped the app meanwhile."""
        events = [e for e in list(self.events) if request_id is not None and e.get("request_id") == request_id]
        return events, self.escaped[escaped_since:]


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.sink = sink
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(self.format(record))


_FRAME = re.compile(r'File "[^"]*?/(storebridge/[^"]+)", line (\d+), in (\S+)')


def _compact_traceback(text: str) -> list[str]:
    """A traceback cut to storebridge's own frames (each with its source line) and the exception lines."""
    lines = text.rstrip().splitlines()
    kept: list[str] = []
    for index, line in enumerate(lines):
        if _FRAME.search(line):
            kept.append(line.strip())
            if index + 1 < len(lines) and not lines[index + 1].lstrip().startswith("File "):
                kept.append("  " + lines[index + 1].strip())
        elif line and not line.startswith(" ") and not line.startswith("Traceback"):
            kept.append(line)  # an exception line (or the text between chained ones)
    return kept


def render_log(events: list[dict[str, Any]], escaped: list[str]) -> str:
    lines = []
    for event in events:
        exception = event.get("exception")
        detail = {k: v for k, v in event.items() if k not in {"exception", "request_id", "level", "event"}}
        lines.append(f"[{event.get('level')}] {event.get('event')} {detail}")
        if exception:
            lines += _compact_traceback(str(exception))
    if not lines:
        for text in escaped:
            lines += _compact_traceback(text)
    return "\n".join(lines)


_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


def _type_name(line: str) -> str:
    match = _EXCEPTION_LINE.match(line)
    return match.group(1).rsplit(".", 1)[-1] if match else line.strip()


def _traceback_signature(text: str) -> str:
    """`Outer(RootCause) at storebridge/module.py:line in function` from a logged traceback ('' without one).

    The root cause tells apart what a wrapper hides: SQLAlchemy's DBAPIError for a NUL character
    (CharacterNotInRepertoireError) or for a number too large for the column (OverflowError)."""
    sections = [part for part in text.split("Traceback (most recent call last):")[1:] if part.strip()]
    exceptions = [line for line in text.splitlines() if _EXCEPTION_LINE.match(line)]
    if not sections or not exceptions:
        return ""
    outer, root = _type_name(exceptions[-1]), _type_name(exceptions[0])
    frames = _FRAME.findall(sections[-1])
    where = f" at {frames[-1][0]}:{frames[-1][1]} in {frames[-1][2]}" if frames else ""
    return (f"{outer}({root})" if root != outer else outer) + where


def exception_signature(events: list[dict[str, Any]], escaped: list[str]) -> str:
    """The server-side exception behind an answer: its type and the innermost storebridge frame."""
    for event in events:
        if event.get("error_type"):  # the hub's structured `unhandled_error` line
            frames = [str(f) for f in event.get("frames", []) if str(f).startswith("storebridge.")]
            name = str(event["error_type"]).rsplit(".", 1)[-1]
            driver = str(event.get("error", "")).split(":", 1)[0] if event.get("sqlstate") else ""
            return (f"{name}({driver})" if driver else name) + (f" at {frames[-1]}" if frames else "")
        if event.get("exception"):
            return _traceback_signature(str(event["exception"]))
    return next((sig for sig in map(_traceback_signature, escaped) if sig), "")


# -- running and reporting -------------------------------------------------------------------------


@dataclass
class Finding:
    operation: str
    status: int
    signature: str
    request: str
    curl: str
    response: str
    server_log: str
    detail: str = ""  # what the failed check says (the schema path and value for a conformance failure)
    count: int = 1
    others: list[str] = field(default_factory=list)  # other requests answered the same way (a few)


@dataclass
class FuzzReport:
    findings: dict[tuple[str, int, str], Finding] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)  # operation label -> requests sent
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    def render(self) -> str:
        ordered = sorted(self.findings.values(), key=lambda f: (f.operation, f.status, f.signature))
        out = [
            f"{len(ordered)} distinct failure(s) in {self.total} requests to {len(self.sent)} operations "
            f"({self.seconds:.1f} s); each with its smallest request:"
        ]
        causes: dict[str, list[str]] = {}
        for finding in ordered:
            cause = finding.signature.split(" at ", 1)[0] or f"{finding.status} (no exception logged)"
            causes.setdefault(cause, []).append(finding.operation)
        out.append("By server-side cause:")
        for cause, operations in sorted(causes.items(), key=lambda item: -len(item[1])):
            out.append(f"  {cause}: {len(operations)} finding(s) in {', '.join(sorted(set(operations)))}")
        for number, finding in enumerate(ordered, 1):
            out += [
                "",
                f"[{number}] {finding.operation} -> {finding.status}  ({finding.count} request(s))",
                f"    server: {finding.signature or '(no traceback logged)'}",
                f"    request: {finding.request}",
                *[f"    also:    {other}" for other in finding.others],
                f"    response: {finding.response}",
                *[f"    check:    {line}" for line in finding.detail.splitlines()[:12] if line.strip()],
                f"    reproduce: {finding.curl}",
            ]
            if finding.server_log:
                out.append("    server log:")
                out += [f"      {_clip(line, 600)}" for line in finding.server_log.splitlines()[-24:]]
        return "\n".join(out)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _short(value: Any, limit: int = 400) -> str:
    return _clip(repr(value), limit)


def _differences(base: Any, value: Any, where: str = "") -> list[str]:
    """Where `value` differs from `base`: `items.0.unit_price=10**30`-like entries."""
    if isinstance(base, dict) and isinstance(value, dict):
        found = [f"{where}{key} removed" for key in base if key not in value]
        for key, item in value.items():
            if key in base:
                found += _differences(base[key], item, f"{where}{key}.")
            else:
                found.append(f"{where}{key!r} added={_short(item, 200)}")
        return found
    if isinstance(base, list) and isinstance(value, list) and len(base) == len(value):
        pairs = enumerate(zip(base, value, strict=True))
        return [found for index, (a, b) in pairs for found in _differences(a, b, f"{where}{index}.")]
    if type(base) is type(value) and base == value:
        return []
    return [f"{where.rstrip('.') or '(whole body)'}={_short(value, 200)}"]


def describe(case: FuzzCase, base_body: Any = None) -> str:
    """The request in one line; a body close to the valid one is told by what was changed in it."""
    path = re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], case.formatted_path)
    parts = [f"{case.method.upper()} {path}"]
    if case.query:
        parts.append(f"query={_short(case.query)}")
    if isinstance(case.body, dict | list | str | bytes | int | float | bool) or case.body is None:
        changes = _differences(base_body, case.body) if base_body is not None else []
        if base_body is not None and 0 < len(changes) <= 3 and not changes[0].startswith("(whole body)"):
            parts.append(f"body=the valid body with {'; '.join(changes)}")
        elif base_body is not None and not changes:
            parts.append("body=the valid body")
        else:
            parts.append(f"body={_short(case.body)}")
    return "  ".join(parts)


def _spliced(base: Any, generated: Any) -> st.SearchStrategy[Any]:
    """The generated value as it is, or `base` with one generated part put in (recursively)."""
    whole = st.just(generated)
    if isinstance(base, dict) and isinstance(generated, dict) and generated:
        keys = list(generated)

        def put(key: str) -> st.SearchStrategy[Any]:
            return _spliced(base.get(key), generated[key]).map(lambda value: {**base, key: value})

        return st.one_of(st.sampled_from(keys).flatmap(put), whole)
    if isinstance(base, list) and base and isinstance(generated, list) and generated:

        def at(index: int) -> st.SearchStrategy[Any]:
            return _spliced(base[index], generated[0]).map(lambda item: [*base[:index], item, *base[index + 1 :]])

        return st.one_of(st.integers(0, len(base) - 1).flatmap(at), whole)
    return whole


def _leaf_variants(value: Any) -> tuple[Any, ...]:
    if isinstance(value, bool):
        return BOOLEAN_VALUES
    if isinstance(value, int | float):
        return NUMBER_VALUES
    if isinstance(value, str):
        return STRING_VALUES
    return ()


def body_variants(body: Any) -> Iterator[Any]:
    """`body` with one value replaced by a hostile one, for every value in it (and a NUL key in each object)."""
    if isinstance(body, dict):
        yield {**body, "k\x00": "v"}
        for key, value in body.items():
            for variant in body_variants(value):
                yield {**body, key: variant}
    elif isinstance(body, list):
        for index, item in enumerate(body):
            for variant in body_variants(item):
                yield [*body[:index], variant, *body[index + 1 :]]
    else:
        yield from _leaf_variants(body)


def _query_type(definition: dict[str, Any]) -> str:
    schema = definition.get("schema", {})
    for option in [schema, *schema.get("anyOf", [])]:
        if option.get("type") in QUERY_VALUES:
            return str(option["type"])
    return "string"


class FuzzRun:
    """Fuzz every operation of a running hub's /openapi.json; collect the answers the checks refuse."""

    def __init__(self, running: RunningHub, seeds: Seeds, server_log: ServerLog, *, max_examples: int) -> None:
        self.base_url = running.base_url
        self.seeds = seeds
        self.server_log = server_log
        self.max_examples = max_examples
        self.report = FuzzReport()
        self.auth_checked: set[str] = set()  # operations whose token check ignored_auth has proved
        document = running.client.get("/openapi.json").raise_for_status().json()
        # The token is always sent (AUTH): leaving it out is not a way to make a request invalid here.
        # NUL characters are refused everywhere before any route runs (RejectNulCharacters), which no
        # schema says: the explicit cases send them instead.
        generation = {"with-security-parameters": False, "allow-x00": False}
        config = schemathesis.Config.from_dict({"generation": generation})
        loaded = schemathesis.openapi.from_dict(document, config=config)
        self.document = document
        in_scope = loaded.exclude(path_regex=EXCLUDED_PATHS)
        self.schema = in_scope.exclude(method="POST", path_regex=EXCLUDED_WEBHOOK_ROUTE)

    def operations(self) -> list[Operation]:
        operations = []
        for result in self.schema.get_all_operations():
            if isinstance(result, Err):
                raise result.err()  # the hub's own document must load whole
            operations.append(result.ok())

        def order(operation: Operation) -> tuple[int, str]:
            # Reads first, destructive calls last, so the records the others use live as long as possible.
            destructive = operation.method.upper() == "DELETE" or operation.path.endswith("/cancel")
            return (2 if destructive else 0 if operation.method.upper() == "GET" else 1, operation.label)

        return sorted(operations, key=order)

    def run(self) -> FuzzReport:
        started = time.monotonic()
        for operation in self.operations():
            for case in self.explicit_cases(operation):
                self.send(case)
            if operation.body or len(operation.query):
                self.generated(operation, GenerationMode.POSITIVE, self.max_examples)
                self.generated(operation, GenerationMode.NEGATIVE, self.max_examples)
            else:
                # Only string path parameters: nothing to make invalid, little to vary but which record.
                self.generated(operation, GenerationMode.POSITIVE, max(1, self.max_examples // 4))
        self.report.seconds = time.monotonic() - started
        return self.report

    # -- cases ---------------------------------------------------------------------------------------

    def explicit_cases(self, operation: Operation) -> Iterator[FuzzCase]:
        label = operation.label
        path = self.seeds.base_path_parameters(label, [p.name for p in operation.path_parameters])
        body = self.seeds.bodies.get(label)
        query_types = {p.name: _query_type(p.definition) for p in operation.query}

        def make(path_parameters: dict[str, Any], query: dict[str, Any], body: Any) -> FuzzCase:
            if body is None:
                return operation.Case(path_parameters=path_parameters, query=query)
            return operation.Case(
                path_parameters=path_parameters, query=query, body=body, media_type="application/json"
            )

        yield make(path, {}, body)
        for name in path:
            for value in PATH_VALUES:
                yield make({**path, name: value}, {}, body)
        for name, kind in query_types.items():
            for value in QUERY_VALUES[kind]:
                yield make(path, {name: value}, body)
        if body is not None:
            for variant in body_variants(body):
                yield make(path, {}, variant)

    def body_validator(self, operation: Operation) -> Draft202012Validator | None:
        """The operation's JSON body schema (its references resolved in the document)."""
        body = self.document["paths"][operation.path][operation.method.lower()].get("requestBody")
        schema = (body or {}).get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return None
        return Draft202012Validator({**schema, "components": self.document.get("components", {})})

    def strategy(self, operation: Operation, mode: GenerationMode) -> st.SearchStrategy[FuzzCase]:
        base_body = self.seeds.bodies.get(operation.label)
        # A negative body spliced into the valid one can lose what made it invalid: then it is sent whole.
        validator = self.body_validator(operation) if mode == GenerationMode.NEGATIVE else None
        ids = {p.name: self.seeds.ids_for(p.name) for p in operation.path_parameters}

        def adapt(case: FuzzCase) -> st.SearchStrategy[FuzzCase]:
            generated = dict(case.path_parameters or {})
            parts: dict[str, st.SearchStrategy[Any]] = {
                "path": st.fixed_dictionaries(
                    {name: st.sampled_from([*ids.get(name, []), value]) for name, value in generated.items()}
                )
            }
            if base_body is not None and isinstance(case.body, dict):
                parts["body"] = _spliced(base_body, case.body)

            def rebuild(chosen: dict[str, Any]) -> FuzzCase:
                case.path_parameters = chosen["path"]
                if "body" in chosen and not (validator is not None and validator.is_valid(chosen["body"])):
                    case.body = chosen["body"]
                return case

            return st.fixed_dictionaries(parts).map(rebuild)

        return operation.as_strategy(generation_mode=mode).flatmap(adapt)

    def generated(self, operation: Operation, mode: GenerationMode, max_examples: int) -> None:
        @seed(zlib.crc32(f"{operation.label} {mode.value}".encode()))
        @settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            phases=(Phase.generate,),
            suppress_health_check=(
                HealthCheck.too_slow,
                HealthCheck.filter_too_much,
                HealthCheck.data_too_large,
                HealthCheck.large_base_example,
            ),
            print_blob=False,
        )
        @given(case=self.strategy(operation, mode))
        def fuzz(case: FuzzCase) -> None:
            self.send(case)

        try:
            fuzz()
        except Unsatisfiable:
            pass  # nothing to generate in this mode (e.g. no parameter to make invalid)

    # -- one request ---------------------------------------------------------------------------------

    def send(self, case: FuzzCase) -> None:
        label = case.operation.label
        self.report.sent[label] = self.report.sent.get(label, 0) + 1
        escaped_since = len(self.server_log.escaped)
        try:
            response = case.call(base_url=self.base_url, headers=AUTH, timeout=30)
        except Exception as exc:  # a dropped connection or a timeout is as bad as a 5xx
            self._record(case, 0, f"{type(exc).__name__}: {exc}", "", "", lambda: case.as_curl_command(AUTH))
            return
        try:
            # ignored_auth sends each 2xx request again without and with a wrong token: once per
            # operation is proof enough (and keeps the run near its former length).
            skipped = [ignored_auth] if label in self.auth_checked else []
            if 200 <= response.status_code < 300:
                self.auth_checked.add(label)
            case.validate_response(response, headers=AUTH, excluded_checks=skipped)  # every default check
        except FailureGroup as group:
            request_ids = response.headers.get("x-request-id") or []
            request_id = request_ids[0] if request_ids else None
            events, escaped = self.server_log.for_request(request_id, escaped_since)
            if events or response.status_code != 500:
                # uvicorn logs a traceback the app logged already, sometimes after the next request began.
                escaped = []
            body = response.content.decode("utf-8", "replace")
            curl = lambda: case.as_curl_command(AUTH, base_url=self.base_url)  # noqa: E731
            log = render_log(events, escaped)
            for failure in group.exceptions:
                if _breaks_a_data_rule(failure, response.status_code, body):
                    continue
                if isinstance(failure, ServerError):
                    signature = exception_signature(events, escaped) or _error_code(body)
                else:
                    signature = f"{type(failure).__name__}: {failure.title}"
                detail = _failure_detail(failure)
                self._record(case, response.status_code, _short(body, 300), log, signature, curl, detail)

    def _record(
        self,
        case: FuzzCase,
        status: int,
        response: str,
        server_log: str,
        signature: str,
        curl: Callable[[], str],
        detail: str = "",
    ) -> None:
        key = (case.operation.label, status, signature)
        request = describe(case, self.seeds.bodies.get(case.operation.label))
        known = self.report.findings.get(key)
        if known is not None:
            known.count += 1
            if len(request) >= len(known.request):
                if request != known.request and request not in known.others and len(known.others) < MAX_OTHERS:
                    known.others.append(request)
                return
        try:
            reproduce = curl().replace("[Filtered]", f"Bearer {API_TOKEN}")
        except Exception as exc:
            reproduce = f"(no curl command: {exc})"
        self.report.findings[key] = Finding(
            operation=case.operation.label,
            status=status,
            signature=signature,
            request=request,
            curl=_clip(reproduce, 1500),
            response=response,
            server_log=server_log,
            detail=detail,
            count=known.count if known else 1,
            others=[*known.others, known.request][-MAX_OTHERS:] if known else [],
        )


# Rules about several fields at once, which no JSON Schema of one field says: an amount's digits depend
# on the order's currency, line totals on quantity and price, a ZIP code's form on the country.
CROSS_FIELD_RULES = re.compile(
    r"has more precision than|^the (line total|subtotal|total|amount) .*must be between|a US ZIP code is"
)


def _breaks_a_data_rule(failure: Exception, status: int, body: str) -> bool:
    """A schema-valid request may still break a rule about the data it names (a rate of another shipment,
    a provider that is not enabled, a PayPal order not yet approved): such a 422 carries its own error
    code. Refused with `validation_error`, it is a failure (the schema is laxer than validation), unless
    each refused field broke one of the CROSS_FIELD_RULES."""
    if not isinstance(failure, RejectedPositiveData) or status != 422:
        return False
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    if error.get("code") != "validation_error":
        return True
    messages = [str(e.get("message", "")) for e in error.get("errors") or []]
    return bool(messages) and all(CROSS_FIELD_RULES.search(m) for m in messages)


def _failure_detail(failure: Exception) -> str:
    """What a check says beyond its title (a 5xx says nothing more: its server log is shown instead)."""
    return "" if isinstance(failure, ServerError) else _clip(str(getattr(failure, "message", failure)), 1500)


def _error_code(body: str) -> str:
    match = re.search(r'"code"\s*:\s*"([^"]+)"', body)
    return f"error code {match.group(1)}" if match else ""
