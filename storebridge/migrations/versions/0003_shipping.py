"""shipping: shipments, rates, labels, tracking events; orders.fulfillment_status

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "shipments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("provider_ref", sa.String(length=120), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("address_from", _JSON, nullable=False),
        sa.Column("address_to", _JSON, nullable=False),
        sa.Column("parcels", _JSON, nullable=False),
        sa.Column("items", _JSON, nullable=False),
        sa.Column("chosen_rate_id", sa.String(length=40), nullable=True),
        sa.Column("carrier", sa.String(length=64), nullable=True),
        sa.Column("tracking_number", sa.String(length=120), nullable=True),
        sa.Column("tracking_status", sa.String(length=32), nullable=True),
        sa.Column("tracking_url", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_shipments_order_id_orders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipments")),
    )
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shipments_order_id"), ["order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_shipments_provider_ref"), ["provider_ref"], unique=False)
        batch_op.create_index(batch_op.f("ix_shipments_tracking_number"), ["tracking_number"], unique=False)

    op.create_table(
        "shipment_rates",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("shipment_id", sa.String(length=40), nullable=False),
        sa.Column("provider_ref", sa.String(length=120), nullable=False),
        sa.Column("carrier", sa.String(length=64), nullable=False),
        sa.Column("service_name", sa.String(length=120), nullable=False),
        sa.Column("service_token", sa.String(length=120), nullable=True),
        sa.Column("amount", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("estimated_days", sa.Integer(), nullable=True),
        sa.Column("duration_terms", sa.Text(), nullable=True),
        sa.Column("cheapest", sa.Boolean(), nullable=False),
        sa.Column("fastest", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shipment_id"], ["shipments.id"], name=op.f("fk_shipment_rates_shipment_id_shipments"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipment_rates")),
    )
    with op.batch_alter_table("shipment_rates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shipment_rates_shipment_id"), ["shipment_id"], unique=False)

    op.create_table(
        "shipment_labels",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("shipment_id", sa.String(length=40), nullable=False),
        sa.Column("rate_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.Float(), nullable=True),
        sa.Column("provider_ref", sa.String(length=120), nullable=True),
        sa.Column("tracking_number", sa.String(length=120), nullable=True),
        sa.Column("carrier", sa.String(length=64), nullable=True),
        sa.Column("label_url", sa.Text(), nullable=True),
        sa.Column("label_file_type", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shipment_id"], ["shipments.id"], name=op.f("fk_shipment_labels_shipment_id_shipments"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["rate_id"], ["shipment_rates.id"], name=op.f("fk_shipment_labels_rate_id_shipment_rates")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipment_labels")),
        sa.UniqueConstraint("shipment_id", name=op.f("uq_shipment_labels_shipment_id")),
    )
    with op.batch_alter_table("shipment_labels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shipment_labels_provider_ref"), ["provider_ref"], unique=False)

    op.create_table(
        "tracking_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("shipment_id", sa.String(length=40), nullable=False),
        sa.Column("provider_ref", sa.String(length=120), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_details", sa.Text(), nullable=True),
        sa.Column("status_date", sa.String(length=40), nullable=True),
        sa.Column("location", _JSON, nullable=True),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shipment_id"], ["shipments.id"], name=op.f("fk_tracking_events_shipment_id_shipments"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_events")),
        sa.UniqueConstraint("shipment_id", "provider_ref", name=op.f("uq_tracking_events_shipment_id")),
    )
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tracking_events_shipment_id"), ["shipment_id"], unique=False)

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fulfillment_status", sa.String(length=32), nullable=False, server_default="not_fulfilled")
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("fulfillment_status")
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracking_events_shipment_id"))
    op.drop_table("tracking_events")
    with op.batch_alter_table("shipment_labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shipment_labels_provider_ref"))
    op.drop_table("shipment_labels")
    with op.batch_alter_table("shipment_rates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shipment_rates_shipment_id"))
    op.drop_table("shipment_rates")
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shipments_tracking_number"))
        batch_op.drop_index(batch_op.f("ix_shipments_provider_ref"))
        batch_op.drop_index(batch_op.f("ix_shipments_order_id"))
    op.drop_table("shipments")
