"""Webhook attempts numbered across replays, each with the replay that queued it

- `webhook_events.replays`: how many times an operator replayed the webhook.
- `webhook_attempts.attempt`: now the attempt's place among all of its webhook's attempts (a replay
  used to start again at 1, so three attempts could all read "1"); existing rows are renumbered in
  the order they were made, and (webhook_event_id, attempt) is unique.
- `webhook_attempts.replay`: the replay that queued the attempt (NULL: the provider's delivery).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 10:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_RENUMBER = (
    "UPDATE webhook_attempts SET attempt = (SELECT r.n FROM (SELECT id, row_number() OVER "
    "(PARTITION BY webhook_event_id ORDER BY started_at, id) AS n FROM webhook_attempts) AS r "
    "WHERE r.id = webhook_attempts.id)"
)


def upgrade() -> None:
    op.add_column("webhook_events", sa.Column("replays", sa.Integer(), server_default="0", nullable=False))
    op.execute(_RENUMBER)
    with op.batch_alter_table("webhook_attempts") as batch_op:
        batch_op.add_column(sa.Column("replay", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(
            op.f("uq_webhook_attempts_webhook_event_id_attempt"), ["webhook_event_id", "attempt"]
        )
        batch_op.create_check_constraint(op.f("ck_webhook_attempts_attempt_positive"), "attempt >= 1")
        batch_op.create_check_constraint(op.f("ck_webhook_attempts_replay_positive"), "replay IS NULL OR replay >= 1")


def downgrade() -> None:
    with op.batch_alter_table("webhook_attempts") as batch_op:
        batch_op.drop_constraint(op.f("ck_webhook_attempts_replay_positive"), type_="check")
        batch_op.drop_constraint(op.f("ck_webhook_attempts_attempt_positive"), type_="check")
        batch_op.drop_constraint(op.f("uq_webhook_attempts_webhook_event_id_attempt"), type_="unique")
        batch_op.drop_column("replay")
    with op.batch_alter_table("webhook_events") as batch_op:
        batch_op.drop_column("replays")
