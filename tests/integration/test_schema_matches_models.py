"""The migrations build exactly the schema the models describe (no drift either way)."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from storebridge.db import Base, Database
from storebridge.migrate import upgrade


def _load_all_models() -> None:
    # Each capability's models register on Base when imported.
    import storebridge.events.model
    import storebridge.inventory.model
    import storebridge.notifications.model
    import storebridge.orders.model
    import storebridge.payments.model
    import storebridge.sandbox.model
    import storebridge.shipping.model
    import storebridge.webhooks.model  # noqa: F401


def test_migrated_database_matches_the_models(db_url: str) -> None:
    _load_all_models()

    async def diff() -> list[Any]:
        db = Database(db_url)
        try:
            await upgrade(db)
            async with db.engine.connect() as conn:
                return await conn.run_sync(
                    lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)  # type: ignore[no-any-return]
                )
        finally:
            await db.dispose()

    assert asyncio.run(diff()) == []
