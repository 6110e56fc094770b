"""inventory: items, locations, levels, reservations, sync runs and batches

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-27 13:10:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "inventory_items",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("sku", sa.String(length=120), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=True),
        sa.Column("allow_backorder", sa.Boolean(), nullable=False),
        sa.Column("low_stock_threshold", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_items")),
        sa.UniqueConstraint("sku", name=op.f("uq_inventory_items_sku")),
    )
    op.create_table(
        "inventory_locations",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_locations")),
    )
    op.create_table(
        "inventory_levels",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("item_id", sa.String(length=40), nullable=False),
        sa.Column("location_id", sa.String(length=80), nullable=False),
        sa.Column("stocked", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.CheckConstraint("reserved >= 0", name=op.f("ck_inventory_levels_reserved_not_negative")),
        sa.ForeignKeyConstraint(
            ["item_id"], ["inventory_items.id"], name=op.f("fk_inventory_levels_item_id_inventory_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["location_id"], ["inventory_locations.id"],
            name=op.f("fk_inventory_levels_location_id_inventory_locations"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_levels")),
        sa.UniqueConstraint("item_id", "location_id", name=op.f("uq_inventory_levels_item_id_location_id")),
    )
    op.create_index(op.f("ix_inventory_levels_location_id"), "inventory_levels", ["location_id"], unique=False)
    op.create_table(
        "inventory_reservations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=120), nullable=False),
        sa.Column("item_id", sa.String(length=40), nullable=False),
        sa.Column("location_id", sa.String(length=80), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["inventory_items.id"], name=op.f("fk_inventory_reservations_item_id_inventory_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_reservations")),
    )
    op.create_index(op.f("ix_inventory_reservations_order_id"), "inventory_reservations", ["order_id"], unique=False)
    op.create_index(op.f("ix_inventory_reservations_item_id"), "inventory_reservations", ["item_id"], unique=False)
    op.create_index("ix_inventory_reservations_due", "inventory_reservations", ["status", "expires_at"], unique=False)
    op.create_table(
        "inventory_sync_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total_skus", sa.Integer(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("batches", sa.Integer(), nullable=False),
        sa.Column("synced", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_sync_runs")),
    )
    op.create_table(
        "inventory_sync_batches",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("variants", _JSON, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["inventory_sync_runs.id"],
            name=op.f("fk_inventory_sync_batches_run_id_inventory_sync_runs"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "number", name=op.f("pk_inventory_sync_batches")),
    )


def downgrade() -> None:
    op.drop_table("inventory_sync_batches")
    op.drop_table("inventory_sync_runs")
    op.drop_index("ix_inventory_reservations_due", table_name="inventory_reservations")
    op.drop_index(op.f("ix_inventory_reservations_item_id"), table_name="inventory_reservations")
    op.drop_index(op.f("ix_inventory_reservations_order_id"), table_name="inventory_reservations")
    op.drop_table("inventory_reservations")
    op.drop_index(op.f("ix_inventory_levels_location_id"), table_name="inventory_levels")
    op.drop_table("inventory_levels")
    op.drop_table("inventory_locations")
    op.drop_table("inventory_items")
