"""One open ticket per conversation (#12): the keys of later handoffs folded into a ticket.

A handoff of a conversation that already has an open ticket of its kind (staffed or offline)
joins that ticket instead of opening a second one (bot/store/queue.py ``Queue.enqueue``);
``handoff_keys`` keeps the joining packets' idempotency keys, so a retry of one finds the
ticket and the bot server knows the ticket is the one a pending handoff waits for.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("handoff_keys", sa.JSON()))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("handoff_keys")
