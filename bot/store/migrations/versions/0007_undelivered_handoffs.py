"""Undelivered handoffs (#12): packets the outbox set aside, with their reason, for the console.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "undelivered_handoffs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("conversation_id", sa.String(200)),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("packet", sa.JSON()),
        sa.Column("excerpt", sa.Text()),
        sa.Column("set_aside_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("handled_by", sa.String(100)),
        sa.Column("handled_at", sa.DateTime(timezone=True)),
        sa.Column("ticket_id", sa.Integer()),
    )
    op.create_index("ix_undelivered_handoffs_status", "undelivered_handoffs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_undelivered_handoffs_status", table_name="undelivered_handoffs")
    op.drop_table("undelivered_handoffs")
