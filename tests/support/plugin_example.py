"""A STOREBRIDGE_PLUGINS entry for the CLI tests: records each payment event's type in $PLUGIN_EXAMPLE_OUT."""

from __future__ import annotations

import os
from pathlib import Path

from storebridge.bootstrap import Hub
from storebridge.events.bus import Event


def install(hub: Hub) -> None:
    out = Path(os.environ["PLUGIN_EXAMPLE_OUT"])
    out.write_text("installed\n")

    async def record(event: Event) -> None:
        with out.open("a") as f:
            f.write(event.type + "\n")

    hub.bus.subscribe("plugin-example", "payment.*", record)


def broken(hub: Hub) -> None:
    raise RuntimeError("no ERP configured")
