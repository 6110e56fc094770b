"""The console's Integrations page counts provider failures apart from the provider refusing a request."""

from __future__ import annotations

import re

from tests.e2e.test_admin_pages import _console
from tests.support.hub import RunningHub


def test_a_card_decline_is_counted_as_refused_not_as_a_provider_failure(hub: RunningHub) -> None:
    """A declined card (Stripe answers 402): Stripe's row shows 0 provider failures, 1 refused, no last error."""
    order = hub.place_order(email="declined-health@example.com")
    payment = hub.pay(order["id"], payment_method="pm_card_chargeDeclined")
    declined = hub.client.post(f"/payments/{payment['id']}/confirm")
    assert declined.status_code == 402, declined.text
    with _console(hub) as console:
        page = console.get("/admin/integrations").text
    row = re.search(r'<tr id="int-stripe">.*?</tr>', page, re.S)
    assert row is not None
    failures = re.search(r'class="num failures">(\d+)<', row.group(0))
    refused = re.search(r'class="num refused" title="last: HTTP 402">(\d+)<', row.group(0))
    assert failures is not None and failures.group(1) == "0"
    assert refused is not None and int(refused.group(1)) >= 1
    assert re.search(r'<td class="last-error">—</td>', row.group(0))
