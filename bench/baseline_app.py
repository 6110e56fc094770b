"""The ingest benchmark's baseline: a bare Starlette app that only reads the POST body.

It is served exactly the way `storebridge serve` serves the hub (uvicorn, one process, the
default `auto` loop and HTTP implementations, so uvloop and httptools when installed, log
level warning, no access log), so the ratio hub/baseline measures what the hub adds on top
of the ASGI server: verification, parsing, the group-committed durable insert.

    python bench/baseline_app.py --host 127.0.0.1 --port 8001
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["app", "main"]


async def receive(request: Request) -> Response:
    await request.body()
    return JSONResponse({"received": True})


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/webhooks/{provider}", receive, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
