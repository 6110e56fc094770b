"""API fuzzing with schemathesis: every operation in the hub's own /openapi.json (but the sandbox
emulators, the console and provider webhooks), with valid and invalid data, authenticated, on a real
hub over loopback, on SQLite and PostgreSQL, judged by every default check of schemathesis (no 5xx,
documented statuses, content types, headers and response schemas, invalid data refused, valid data accepted).

Run it alone:  .venv/bin/python -m pytest tests/e2e/test_api_fuzz.py
(set STOREBRIDGE_TEST_POSTGRES_URL for the PostgreSQL variant). Deterministic: fixed seeds, no
Hypothesis example database. A failure lists each distinct failure (operation, status, check or server-side
exception) with its smallest request, the answer, what the check says, a curl command and the server's log
lines for that request.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fuzz import FuzzRun, ServerLog, fuzz_hub, seed_records
from tests.support.hub import RunningHub, make_settings, running_hub

pytestmark = [
    pytest.mark.fuzz,
    # ~35 s per database on an idle machine, several times that beside the rest of the suite under xdist.
    pytest.mark.timeout(900),
    # The hub runs in this process, and its threads use `random`: Hypothesis would blame the strategies.
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]

# Generated cases per operation and mode (positive, negative), on top of the explicit ones; sized to
# keep the whole test under a minute per database on the 2-core reference machine (and the suite under 15 minutes).
MAX_EXAMPLES = 8


@pytest.fixture
def fuzzed_hub(db_url: str) -> Iterator[RunningHub]:
    with running_hub(make_settings(db_url)) as running, fuzz_hub(running) as hub:
        yield hub


def test_every_api_operation_answers_as_its_document_says(fuzzed_hub: RunningHub) -> None:
    """Every API operation answers what /openapi.json documents, never 5xx, to valid and invalid requests."""
    seeds = seed_records(fuzzed_hub)
    with ServerLog().capturing() as server_log:
        report = FuzzRun(fuzzed_hub, seeds, server_log, max_examples=MAX_EXAMPLES).run()
    print(f"fuzzed {len(report.sent)} operations with {report.total} requests in {report.seconds:.1f} s")
    if report.findings:
        pytest.fail(report.render(), pytrace=False)
