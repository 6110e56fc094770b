"""Apply and inspect Alembic migrations on storebridge's own async engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from storebridge.db import Database

__all__ = ["alembic_config", "upgrade", "current_revision", "head_revision"]

_MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


async def upgrade(db: Database, revision: str = "heads") -> None:
    cfg = alembic_config()

    def _run(connection: Any) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(_run)


def head_revision() -> str | None:
    """The newest revision(s) this code ships, comma-joined if branches have not been merged yet."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    return ",".join(sorted(heads)) or None


async def current_revision(db: Database) -> str | None:
    """The revision(s) the database is at, in the same form as head_revision()."""
    async with db.engine.connect() as conn:
        heads = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads())
    return ",".join(sorted(heads)) or None
