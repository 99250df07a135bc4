"""Delivery marks: which tickets the console was told about, which messages were routed.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("announced_at", sa.DateTime(timezone=True)))
    op.create_index("ix_tickets_announced_at", "tickets", ["announced_at"])
    # Tickets that existed before this migration were shown already.
    op.execute("UPDATE tickets SET announced_at = created_at")
    with op.batch_alter_table("chat_messages") as batch:
        batch.add_column(sa.Column("routed_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("chat_messages") as batch:
        batch.drop_column("routed_at")
    op.drop_index("ix_tickets_announced_at", "tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("announced_at")
