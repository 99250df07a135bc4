"""Escalation and transfers (#15 items 1 and 2): the ticket's escalation state and its history.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("escalation", sa.String(20)))
        batch.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("escalated_by", sa.String(100)))
        batch.add_column(sa.Column("joined_by", sa.String(100)))
    op.create_index("ix_tickets_escalation", "tickets", ["escalation"])
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("actor", sa.String(100)),
        sa.Column("target", sa.String(100)),
        sa.Column("note", sa.Text()),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ticket_events_ticket", "ticket_events", ["ticket_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_ticket_events_ticket", table_name="ticket_events")
    op.drop_table("ticket_events")
    op.drop_index("ix_tickets_escalation", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        for name in ("joined_by", "escalated_by", "escalated_at", "escalation"):
            batch.drop_column(name)
