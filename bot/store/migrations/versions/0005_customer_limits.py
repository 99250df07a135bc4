"""Limits and expiry for customers (security review #11): conversation activity and end,
address key, a ticket's entry counter, who resolved it, indexes for paging and counting.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("address_key", sa.String(64)))
        batch.add_column(sa.Column("last_active_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("ended_at", sa.DateTime(timezone=True)))
    op.create_index("ix_conversations_address_created", "conversations", ["address_key", "created_at"])
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("entry_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("resolved_by", sa.String(100)))
    # The next position: after the highest one (two entries may share a position on SQLite).
    op.execute("UPDATE tickets SET entry_count = COALESCE((SELECT MAX(e.position) + 1 FROM transcript_entries e "
               "WHERE e.ticket_id = tickets.id), 0)")
    op.create_index("ix_transcript_entries_ticket_position", "transcript_entries", ["ticket_id", "position", "id"])
    op.create_index("ix_chat_messages_conversation_created", "chat_messages", ["conversation_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_chat_messages_conversation_created", "chat_messages")
    op.drop_index("ix_transcript_entries_ticket_position", "transcript_entries")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("resolved_by")
        batch.drop_column("entry_count")
    op.drop_index("ix_conversations_address_created", "conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("ended_at")
        batch.drop_column("last_active_at")
        batch.drop_column("address_key")
