"""webhook_events.ordering_key: the per-aggregate order index is filled by the worker, not at ingest

The aggregate key is random (a PaymentIntent, an order, a tracking number), so indexing it on
insert dirtied one random index page per stored webhook: measured, ~5 KB of the ~15 KB of WAL and
~30% of the SQLite inbox writer's CPU per 2 KB webhook. Ingest now stores `aggregate_key` without
indexing it; the worker copies it into `ordering_key` (indexed) when it first reaches the row,
oldest arrival first, before it claims anything. `ix_webhook_events_unordered` finds those rows
(an append on insert: its key is the arrival time).

Rows already stored keep their place in the order: ordering_key is filled for every row that has
an aggregate.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 21:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ORDERED = sa.text("ordering_key IS NOT NULL")
_UNORDERED = sa.text("ordering_key IS NULL AND aggregate_key IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("webhook_events") as batch_op:
        batch_op.add_column(sa.Column("ordering_key", sa.String(length=255), nullable=True))
    op.execute("UPDATE webhook_events SET ordering_key = aggregate_key WHERE aggregate_key IS NOT NULL")
    op.drop_index("ix_webhook_events_aggregate", table_name="webhook_events")
    op.create_index(
        "ix_webhook_events_ordering",
        "webhook_events",
        ["ordering_key", "status"],
        sqlite_where=_ORDERED,
        postgresql_where=_ORDERED,
    )
    op.create_index(
        "ix_webhook_events_unordered",
        "webhook_events",
        ["received_at"],
        sqlite_where=_UNORDERED,
        postgresql_where=_UNORDERED,
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_events_unordered", table_name="webhook_events")
    op.drop_index("ix_webhook_events_ordering", table_name="webhook_events")
    op.create_index("ix_webhook_events_aggregate", "webhook_events", ["aggregate_key", "status"])
    with op.batch_alter_table("webhook_events") as batch_op:
        batch_op.drop_column("ordering_key")
