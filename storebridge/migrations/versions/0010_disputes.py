"""Disputes: a `disputes` table and `payments.amount_disputed`

- `disputes`: one row per provider dispute (chargeback or inquiry), unique per (provider,
  provider_ref), tied to its payment and order; amount in ISO minor units (BIGINT on
  PostgreSQL), status in storebridge's vocabulary (payments/disputes.py), evidence deadline
  as a unix timestamp, and two one-way flags for the funds the provider withdrew/reinstated.
- `payments.amount_disputed`: what open and lost disputes put at stake, 0 for existing rows.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# storebridge.db.Int64, spelled out so this migration never changes with the application code.
_INT64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("payments", sa.Column("amount_disputed", _INT64, server_default="0", nullable=False))
    op.create_table(
        "disputes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("provider_ref", sa.String(length=120), nullable=False),
        sa.Column("amount", _INT64, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=120), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("evidence_due_by", sa.Float(), nullable=True),
        sa.Column("funds_withdrawn", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("funds_reinstated", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_disputes_payment_id_payments"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_disputes_order_id_orders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disputes")),
        sa.UniqueConstraint("provider", "provider_ref", name=op.f("uq_disputes_provider_provider_ref")),
    )
    with op.batch_alter_table("disputes") as batch_op:
        batch_op.create_index(batch_op.f("ix_disputes_payment_id"), ["payment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_disputes_order_id"), ["order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_disputes_status"), ["status"], unique=False)


def downgrade() -> None:
    op.drop_table("disputes")
    with op.batch_alter_table("payments") as batch_op:
        batch_op.drop_column("amount_disputed")
