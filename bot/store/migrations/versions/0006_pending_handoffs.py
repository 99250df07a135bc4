"""Durable handoff state (#12): pending handoffs in the database, announcement claims.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_handoffs",
        sa.Column("conversation_id", sa.String(200), primary_key=True),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True)),
    )
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("announce_claimed_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("announce_claimed_at")
    op.drop_table("pending_handoffs")
