"""The operator console: server-rendered pages at /admin over the hub's services and queries."""

from __future__ import annotations

from storebridge.admin.app import create_console

__all__ = ["create_console"]
