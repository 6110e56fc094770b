"""3-D Secure in the Stripe sandbox, driven by the official `stripe` SDK and the storebridge adapter over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import stripe
from starlette.applications import Starlette
from starlette.routing import Route

from storebridge.payments.provider import PaymentRequest, ProviderPayment
from storebridge.providers.stripe.adapter import StripeProvider
from storebridge.sandbox.stripe import StripeSandbox
from tests.integration.test_stripe_sandbox import API_KEY, FAST_RETRIES, SECRET, Env, Receiver, make_client, new_pi
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")
RETURN_URL = "https://shop.example/return"


@pytest.fixture
def env() -> Iterator[Env]:
    receiver = Receiver()
    hook_app = Starlette(routes=[Route("/hooks/stripe", receiver.endpoint, methods=["POST"])])
    with serve_in_thread(hook_app) as hook_base:
        sandbox = StripeSandbox(
            webhook_url=f"{hook_base}/hooks/stripe", webhook_secret=SECRET, delivery_retry_delays=FAST_RETRIES
        )
        with serve_in_thread(sandbox.app) as base:
            yield Env(sandbox, base, make_client(base), receiver)


def _delivered(env: Env) -> list[str]:
    response = env.control("POST", "/deliveries/wait", {"timeout": 10})
    assert response.status_code == 200
    env.receiver.events()  # every signature verifies with the SDK
    return env.receiver.types()


def test_redirect_challenge_completed(env: Env) -> None:
    """return_url: requires_action + redirect_to_url to the sandbox page; Complete charges and redirects back."""
    pi = new_pi(env.client, payment_method="pm_card_threeDSecure2Required")
    pi = env.client.v1.payment_intents.confirm(pi.id, params={"return_url": RETURN_URL})
    assert pi.status == "requires_action" and pi.latest_charge is None
    assert pi.next_action is not None and pi.next_action.type == "redirect_to_url"
    redirect = pi.next_action.redirect_to_url
    assert redirect is not None and redirect.return_url == RETURN_URL
    assert redirect.url == f"{env.base}/3ds/{pi.id}"

    page = httpx.get(redirect.url)
    assert page.status_code == 200 and "Complete authentication" in page.text
    assert httpx.post(redirect.url, data={"outcome": "maybe"}).status_code == 400
    done = httpx.post(redirect.url, data={"outcome": "complete"})
    assert done.status_code == 303
    query = parse_qs(urlsplit(done.headers["location"]).query)
    assert query == {
        "payment_intent": [pi.id],
        "payment_intent_client_secret": [pi.client_secret],
        "redirect_status": ["succeeded"],
    }
    pi = env.client.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]})
    assert (pi.status, pi.amount_received, pi.next_action) == ("succeeded", 2000, None)
    assert isinstance(pi.latest_charge, stripe.Charge)
    card = pi.latest_charge.payment_method_details.card  # type: ignore[union-attr]
    assert card is not None and card.three_d_secure is not None and card.three_d_secure.result == "authenticated"
    assert _delivered(env) == [
        "payment_intent.created",
        "payment_intent.requires_action",
        "charge.succeeded",
        "payment_intent.succeeded",
    ]
    assert httpx.post(redirect.url, data={"outcome": "complete"}).status_code == 409  # answered once
    assert httpx.get(f"{env.base}/3ds/pi_unknown").status_code == 404


def test_use_stripe_sdk_challenge_failed_then_retried(env: Env) -> None:
    """No return_url: use_stripe_sdk; Fail leaves requires_payment_method with payment_intent_authentication_failure."""
    pi = new_pi(env.client, payment_method="4000002500003155", capture_method="manual", confirm=True)
    assert pi.status == "requires_action"
    assert pi.next_action is not None and pi.next_action.type == "use_stripe_sdk"
    sdk = pi.next_action.to_dict()["use_stripe_sdk"]
    assert sdk["type"] == "three_d_secure_redirect" and sdk["stripe_js"] == f"{env.base}/3ds/{pi.id}"
    done = httpx.post(sdk["stripe_js"], data={"outcome": "fail"})
    assert done.status_code == 200 and "failed" in done.text
    pi = env.client.v1.payment_intents.retrieve(pi.id)
    assert (pi.status, pi.payment_method, pi.next_action) == ("requires_payment_method", None, None)
    assert pi.last_payment_error is not None and pi.last_payment_error.code == "payment_intent_authentication_failure"
    # The buyer tries again with another card that needs 3-D Secure, and authenticates: authorized only.
    pi = env.client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_threeDSecureRequired"})
    assert pi.status == "requires_action"
    assert httpx.post(f"{env.base}/3ds/{pi.id}", data={"outcome": "complete"}).status_code == 200
    pi = env.client.v1.payment_intents.retrieve(pi.id)
    assert (pi.status, pi.amount_capturable, pi.last_payment_error) == ("requires_capture", 2000, None)
    assert _delivered(env) == [
        "payment_intent.created",
        "payment_intent.requires_action",
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
        "charge.succeeded",
        "payment_intent.amount_capturable_updated",
    ]


def test_adapter_reports_requires_action_with_the_redirect(env: Env) -> None:
    """StripeProvider.confirm with return_url: requires_action, the page as action_url; without: no action_url."""

    async def work() -> tuple[ProviderPayment, ProviderPayment]:
        provider = StripeProvider(secret_key=API_KEY, api_base=env.base, max_network_retries=0)
        try:
            states = []
            for n, return_url in enumerate((RETURN_URL, None)):
                request = PaymentRequest(
                    f"pay_{n}", "ord_1", 2000, "USD", "automatic", "pm_card_authenticationRequired"
                )
                created = await provider.initiate(request)
                states.append(
                    await provider.confirm(
                        created.provider_ref,
                        payment_id=f"pay_{n}",
                        payment_method=None,
                        attempt=1,
                        return_url=return_url,
                    )
                )
            return states[0], states[1]
        finally:
            await provider.aclose()

    redirect, sdk = asyncio.run(work())
    assert redirect.requires_action is True and redirect.action_url == f"{env.base}/3ds/{redirect.provider_ref}"
    assert sdk.requires_action is True and sdk.action_url is None and sdk.client_secret
