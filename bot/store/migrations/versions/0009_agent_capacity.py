"""Agent desk (#14 item 1): agents' role, concurrent-chat cap, status and skills; ticket offers.

The earliest agent of an existing database becomes an admin, so someone can manage the
others from the console.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("role", sa.String(20), nullable=False, server_default="agent"))
        batch.add_column(sa.Column("max_chats", sa.Integer(), nullable=False, server_default="3"))
        batch.add_column(sa.Column("status", sa.String(20), nullable=False, server_default="offline"))
        batch.add_column(sa.Column("skills", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("last_assigned_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE agents SET role = 'admin' WHERE id = (SELECT min(id) FROM agents)")
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("offered_to", sa.String(100)))
        batch.add_column(sa.Column("offered_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("offer_skipped", sa.JSON()))
        batch.add_column(sa.Column("awaiting_reply_since", sa.DateTime(timezone=True)))
    op.create_index("ix_tickets_offered_to", "tickets", ["offered_to"])


def downgrade() -> None:
    op.drop_index("ix_tickets_offered_to", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        for name in ("awaiting_reply_since", "offer_skipped", "offered_at", "offered_to"):
            batch.drop_column(name)
    with op.batch_alter_table("agents") as batch:
        for name in ("last_assigned_at", "skills", "status", "max_chats", "role"):
            batch.drop_column(name)
