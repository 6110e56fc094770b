"""Checkout invariants: 64-bit money and quantities, and one live payment per order

- Money and quantity columns become BIGINT on PostgreSQL (INTEGER there is 32-bit: an IDR
  25,000,000.00 order, 2,500,000,000 minor units, did not fit). SQLite's INTEGER is already
  64-bit, so SQLite keeps its tables as they are (no rebuild).
- `payments.live_order_id` holds the order id while a payment is live (pending, authorized,
  captured, partially refunded) and NULL once it failed, was canceled or fully refunded; a unique
  index on it lets the database refuse a second live payment for one order, however many
  checkouts race. Existing rows: the newest live payment of each order takes the slot.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 19:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_WIDENED = {
    "orders": ("subtotal", "shipping_total", "total"),
    "line_items": ("quantity", "unit_price", "total"),
    "payments": ("amount", "amount_authorized", "amount_captured", "amount_refunded"),
    "refunds": ("amount",),
    "inventory_items": ("low_stock_threshold",),
    "inventory_levels": ("stocked", "reserved"),
    "inventory_reservations": ("quantity",),
}
_LIVE = "('pending', 'requires_action', 'authorized', 'captured', 'partially_refunded')"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, columns in _WIDENED.items():
            for column in columns:
                op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer())
    op.add_column("payments", sa.Column("live_order_id", sa.String(length=40), nullable=True))
    op.execute(
        f"UPDATE payments SET live_order_id = order_id WHERE status IN {_LIVE} AND id = ("
        f"SELECT p2.id FROM payments p2 WHERE p2.order_id = payments.order_id AND p2.status IN {_LIVE} "
        "ORDER BY p2.created_at DESC, p2.id DESC LIMIT 1)"
    )
    op.create_index("uq_payments_live_order_id", "payments", ["live_order_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_payments_live_order_id", table_name="payments")
    with op.batch_alter_table("payments") as batch_op:
        batch_op.drop_column("live_order_id")
    if op.get_bind().dialect.name == "postgresql":
        for table, columns in _WIDENED.items():
            for column in columns:
                op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger())
