"""Sandbox state: a `sandbox_state` table

- `sandbox_state`: one row per emulator embedded in a development hub (stripe, paypal, shippo,
  sendgrid, inventory), holding its exported state as JSON text, so a restarted hub's sandboxes
  still know the payments, orders and labels whose ids the other tables keep.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 08:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sandbox_state",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sandbox_state")),
    )


def downgrade() -> None:
    op.drop_table("sandbox_state")
