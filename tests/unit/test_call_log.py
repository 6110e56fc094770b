"""The in-memory log of outbound provider calls that the console and /metrics read."""

from __future__ import annotations

import time

from storebridge.observability.calls import CallLog


def test_summary_counts_calls_and_failures_in_the_window() -> None:
    log = CallLog()
    log.record("stripe", "post", 200, 0.01)
    log.record("stripe", "get", 503, 0.02)
    log.record("stripe", "post", None, 30.0, error="ConnectTimeout")
    log.record("shippo", "get", 200, 0.01)
    summary = log.summary("stripe")
    assert (summary.calls, summary.failures) == (3, 2)
    assert summary.last_error == "ConnectTimeout"
    assert log.summary("shippo").failures == 0
    assert log.summary("shippo").last_error is None
    assert log.providers() == ["shippo", "stripe"]


def test_old_calls_leave_the_window_but_the_last_error_stays() -> None:
    log = CallLog()
    rec = log.record("paypal", "post", 500, 0.1)
    object.__setattr__(rec, "at", time.time() - 7200)  # two hours ago
    log.record("paypal", "get", 200, 0.1)
    summary = log.summary("paypal", window_s=3600)
    assert (summary.calls, summary.failures) == (1, 0)
    assert summary.last_error == "HTTP 500"


def test_each_provider_keeps_a_bounded_number_of_calls() -> None:
    log = CallLog(keep=10)
    for _ in range(25):
        log.record("sendgrid", "post", 202, 0.01)
    assert log.summary("sendgrid").calls == 10


def test_only_provider_failures_count_as_failures_and_refusals_are_counted_apart() -> None:
    """No answer, 5xx, 429, 401/403 are provider failures; a 402 decline or a 400/404/409 is a refusal."""
    log = CallLog()
    for status in (None, 500, 503, 429, 401, 403):
        log.record("stripe", "post", status, 0.01, error="ConnectError" if status is None else None)
    for status in (402, 400, 404, 409):
        log.record("stripe", "post", status, 0.01)
    summary = log.summary("stripe")
    assert (summary.calls, summary.failures, summary.refused) == (10, 6, 4)
    assert summary.last_error == "HTTP 403" and summary.last_refusal == "HTTP 409"


def test_a_decline_is_not_a_last_error() -> None:
    """After a card decline (HTTP 402) alone, the provider has no failure and no last error."""
    log = CallLog()
    log.record("stripe", "post", 200, 0.01)
    log.record("stripe", "post", 402, 0.01)
    summary = log.summary("stripe")
    assert (summary.failures, summary.refused, summary.last_error) == (0, 1, None)
    assert summary.last_refusal == "HTTP 402"
