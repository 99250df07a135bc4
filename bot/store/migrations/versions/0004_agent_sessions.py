"""Server-side agent sessions and the login throttle's counters (security review #11).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

# The tables' models live in bot/store/agents.py; importing it declares them on the models'
# Base, so comparing Base.metadata with a migrated database (autogenerate, tests) sees them.
import bot.store.agents  # noqa: F401  pylint: disable=unused-import

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("agent_id", sa.Integer(), sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "login_attempts",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("login_attempts")
    op.drop_table("agent_sessions")
