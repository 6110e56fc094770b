"""3-D Secure in the Stripe sandbox: a card that needs authentication leaves its PaymentIntent in
`requires_action`, and the sandbox's own authentication page plays the bank's challenge.

Confirming with a 3-D Secure test card (`pm_card_threeDSecure2Required`, `pm_card_authenticationRequired`,
4000002760003184, ...) answers `next_action` as Stripe does: `redirect_to_url` (`url`, `return_url`) when the
confirmation carried a `return_url`, else `use_stripe_sdk` (what Stripe.js reads to run the challenge in the
page). Both point at `GET /3ds/{payment_intent}`, a page whose buttons POST back `outcome=complete|fail`.
Completing charges the card (the PaymentIntent succeeds, or waits in requires_capture); failing returns it to
requires_payment_method with last_payment_error `payment_intent_authentication_failure`. Either way the
webhooks Stripe sends go out through the sandbox's delivery, and the browser is sent on to `return_url` with
Stripe's query parameters (`payment_intent`, `payment_intent_client_secret`, `redirect_status`).
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from .stripe_objects import error_body, new_id, payment_method_object
from .stripe_state import Challenge, Ctx, StripeState

__all__ = ["authentication_routes"]

_FAILURE_MESSAGE = (
    "We are unable to authenticate your payment method. Please choose a different payment method and try again."
)


def _finish(state: StripeState, pi: dict[str, Any], challenge: Challenge, completed: bool, ctx: Ctx) -> None:
    """The buyer answered: charge the card, or fail the PaymentIntent as Stripe does."""
    del state.challenges[pi["id"]]
    pi["next_action"] = None
    if completed:
        secure = {
            "authentication_flow": "challenge",
            "electronic_commerce_indicator": "05",
            "result": "authenticated",
            "result_reason": None,
            "transaction_id": new_id("3ds", 20),
            "version": "2.2.0",
        }
        state.charge(pi, challenge.payment_method, challenge.card, ctx, three_d_secure=secure)
        return
    extra = {"payment_method": payment_method_object(challenge.payment_method, challenge.card)}
    error = error_body("invalid_request_error", _FAILURE_MESSAGE, code="payment_intent_authentication_failure")
    pi.update(status="requires_payment_method", payment_method=None, last_payment_error={**error, **extra})
    state.emit_event("payment_intent.payment_failed", pi, ctx)


def _page(pi: dict[str, Any]) -> str:
    amount = f"{int(pi['amount'])} {html.escape(str(pi['currency']).upper())} (minor units)"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>3-D Secure authentication</title></head>
<body>
<h1>3-D Secure authentication (Stripe sandbox)</h1>
<p>The bank asks the cardholder to authenticate a payment of {amount} for {html.escape(str(pi["id"]))}.</p>
<form method="post">
<button type="submit" name="outcome" value="complete">Complete authentication</button>
<button type="submit" name="outcome" value="fail">Fail authentication</button>
</form>
</body></html>
"""


def _message(status: int, text: str) -> HTMLResponse:
    body = f'<!doctype html><html lang="en"><body><p>{html.escape(text)}</p></body></html>\n'
    return HTMLResponse(body, status)


def authentication_routes(state: StripeState) -> list[Route]:
    """The challenge page: `GET /3ds/{id}` shows it, `POST /3ds/{id}` with outcome=complete|fail answers it."""

    def waiting(request: Request) -> tuple[dict[str, Any], Challenge] | Response:
        pi_id = request.path_params["id"]
        pi = state.payment_intents.get(pi_id)
        if pi is None:
            return _message(404, f"No such payment_intent: '{pi_id}'")
        challenge = state.challenges.get(pi_id)
        if challenge is None or pi["status"] != "requires_action":
            return _message(409, f"{pi_id} is not waiting for authentication (status: {pi['status']}).")
        return pi, challenge

    async def show(request: Request) -> Response:
        found = waiting(request)
        return found if isinstance(found, Response) else HTMLResponse(_page(found[0]))

    async def answer(request: Request) -> Response:
        outcome = dict(parse_qsl((await request.body()).decode("utf-8", "replace"))).get("outcome")
        if outcome not in ("complete", "fail"):
            return _message(400, "outcome must be 'complete' or 'fail'.")
        found = waiting(request)
        if isinstance(found, Response):
            return found
        pi, challenge = found
        ctx = Ctx({}, {"id": pi["id"]}, new_id("req", 14), None, "POST", f"/3ds/{pi['id']}", challenge.api_version)
        _finish(state, pi, challenge, outcome == "complete", ctx)
        status = "succeeded" if outcome == "complete" else "failed"
        if challenge.return_url:
            query = {"payment_intent": pi["id"], "payment_intent_client_secret": pi["client_secret"]}
            separator = "&" if "?" in challenge.return_url else "?"
            target = challenge.return_url + separator + urlencode({**query, "redirect_status": status})
            return RedirectResponse(target, 303)
        return _message(200, f"Authentication {status}. You can close this window.")

    return [Route("/3ds/{id}", show, methods=["GET"]), Route("/3ds/{id}", answer, methods=["POST"])]
