"""Widget conversations and chat log, agents, offline tickets and how a ticket ended.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:  # batch: SQLite cannot ALTER freely
        batch.add_column(sa.Column("offline", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("resolution", sa.String(20)))
    with op.batch_alter_table("transcript_entries") as batch:
        batch.add_column(sa.Column("author", sa.String(100)))
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("conversation_id", sa.String(200), nullable=False, index=True),
        sa.Column("sender", sa.String(20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("buttons", sa.JSON(), nullable=False),
        sa.Column("intent", sa.String(100)),
        sa.Column("confidence", sa.JSON()),
        sa.Column("faq_id", sa.String(100), index=True),
        sa.Column("route", sa.String(20)),
        sa.Column("agent_name", sa.String(100)),
        sa.Column("client_id", sa.String(100)),
        sa.Column("feedback", sa.Boolean()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.UniqueConstraint("conversation_id", "client_id", name="uq_chat_client_id"),
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("customer", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(100), nullable=False, unique=True),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("agents")
    op.drop_table("conversations")
    op.drop_table("chat_messages")
    with op.batch_alter_table("transcript_entries") as batch:
        batch.drop_column("author")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("resolution")
        batch.drop_column("offline")
