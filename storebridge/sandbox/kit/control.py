"""The control API mounted on every emulator under `/_control` (tests, demos and the console drive it):

    GET|POST|DELETE /_control/faults               list, add (see faults.py) or clear fault rules
    GET             /_control/deliveries           every delivery attempt, and how many are in flight
    POST            /_control/deliveries/wait      {timeout}: 200 when none is in flight, else 504
    GET             /_control/deliveries/{id}      one delivery: its state, its attempts
    POST            /_control/deliveries/{id}/resend   send it again (a fresh round of attempts)
    GET|POST        /_control/webhooks             {enabled, url}: where (and whether) webhooks go

An emulator adds its own controls through its route table; all of them stay behind the hub's API token
(api/sandbox_guard.py) when mounted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .deliveries import DeliverySender
from .faults import ControlError, Faults, parse_fault

__all__ = ["WebhookTarget", "control_error", "control_routes", "read_json_object"]


@dataclass
class WebhookTarget:
    """Where an emulator's webhooks go; switched off, events are still recorded but nothing is sent."""

    url: str | None
    enabled: bool = True

    def current(self) -> str | None:
        return self.url if self.enabled else None


async def read_json_object(request: Request) -> dict[str, Any]:
    """A control request's JSON object body ({} when empty); ControlError otherwise."""
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise ControlError(f"Body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ControlError("Body must be a JSON object.")
    return data


def control_error(exc: ControlError, status: int = 400) -> Response:
    error = {"type": "invalid_request_error", "message": exc.message, "param": exc.param}
    return JSONResponse({"error": error}, status)


class _Controls:
    def __init__(self, faults: Faults, sender: DeliverySender, webhooks: WebhookTarget) -> None:
        self.faults, self.sender, self.webhooks = faults, sender, webhooks

    async def faults_endpoint(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.clear()
        elif request.method == "POST":
            try:
                data = await read_json_object(request)
                if "seed" in data:  # makes probabilistic rules repeatable
                    seed = data.pop("seed")
                    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                        raise ControlError("seed must be an integer or null.", "seed")
                    self.faults.reseed(seed)
                if data:
                    self.faults.add(parse_fault(data))
            except ControlError as exc:
                return control_error(exc)
        return JSONResponse({"faults": [rule.to_json() for rule in self.faults.live()]})

    async def list_deliveries(self, request: Request) -> Response:
        payload = {"object": "list", "data": list(self.sender.attempts), "in_flight": self.sender.in_flight}
        return JSONResponse(payload)

    async def wait(self, request: Request) -> Response:
        try:
            timeout = (await read_json_object(request)).get("timeout", 10.0)
            if isinstance(timeout, bool) or not isinstance(timeout, int | float):
                raise ControlError("timeout must be a number of seconds.", "timeout")
        except ControlError as exc:
            return control_error(exc)
        try:
            await self.sender.wait(float(timeout))
        except TimeoutError:
            return JSONResponse({"in_flight": self.sender.in_flight}, 504)
        return JSONResponse({"in_flight": 0})

    def _missing(self, delivery_id: str) -> Response:
        return control_error(ControlError(f"No such delivery: '{delivery_id}'", "id"), 404)

    async def get_delivery(self, request: Request) -> Response:
        delivery = self.sender.deliveries.get(request.path_params["id"])
        if delivery is None:
            return self._missing(request.path_params["id"])
        attempts = [a for a in self.sender.attempts if a["delivery_id"] == delivery.id]
        return JSONResponse({**delivery.summary(), "body": delivery.body.decode("utf-8", "replace"), "data": attempts})

    async def resend(self, request: Request) -> Response:
        try:
            delivery = self.sender.resend(request.path_params["id"])
        except KeyError:
            return self._missing(request.path_params["id"])
        except ValueError as exc:
            return control_error(ControlError(str(exc), "id"), 409)
        return JSONResponse(delivery.summary(), 202)

    async def webhooks_endpoint(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                data = await read_json_object(request)
                enabled, url = data.get("enabled", self.webhooks.enabled), data.get("url", self.webhooks.url)
                if not isinstance(enabled, bool) or not (url is None or isinstance(url, str)):
                    raise ControlError("enabled must be a boolean and url a string or null.")
            except ControlError as exc:
                return control_error(exc)
            self.webhooks.enabled, self.webhooks.url = enabled, url
        state = {"enabled": self.webhooks.enabled, "url": self.webhooks.url, "in_flight": self.sender.in_flight}
        return JSONResponse(state)


def control_routes(faults: Faults, sender: DeliverySender, webhooks: WebhookTarget) -> list[Route]:
    """The kit's controls, relative to the emulator's root (they start with /_control)."""
    c = _Controls(faults, sender, webhooks)
    return [
        Route("/_control/faults", c.faults_endpoint, methods=["GET", "POST", "DELETE"]),
        Route("/_control/deliveries", c.list_deliveries, methods=["GET"]),
        Route("/_control/deliveries/wait", c.wait, methods=["POST"]),
        Route("/_control/deliveries/{id}", c.get_delivery, methods=["GET"]),
        Route("/_control/deliveries/{id}/resend", c.resend, methods=["POST"]),
        Route("/_control/webhooks", c.webhooks_endpoint, methods=["GET", "POST"]),
    ]
