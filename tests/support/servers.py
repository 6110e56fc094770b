"""Run an ASGI app on a real loopback port in a background thread, for tests over real HTTP."""

from __future__ import annotations

from storebridge.embedded import free_port, port_of, reserve_port, serve_in_thread

__all__ = ["free_port", "port_of", "reserve_port", "serve_in_thread"]
