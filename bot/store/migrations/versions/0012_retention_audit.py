"""Retention and the audit log (#14 items 5 and 6).

- ``audit_log``: who did what and when (append-only: an UPDATE is refused by a trigger on
  SQLite and PostgreSQL; rows are only ever added, and deleted by retention after
  ``BOT_AUDIT_RETENTION_DAYS``).
- ``job_runs``: when a daily job last started, claimed by a conditional UPDATE so that of
  several bot servers one runs it (retention) or one records a change (settings).
- ``redacted_at`` on tickets, chat messages and conversations: when retention removed the
  content and kept the row for the analytics counts.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

APPEND_ONLY = "audit_log is append-only"
REDACTED_TABLES = ("tickets", "chat_messages", "conversations")
JOBS = ("retention", "settings")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(100)),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target", sa.String(200)),
        sa.Column("detail", sa.JSON()),
        sa.Column("address", sa.String(100)),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_actor_at", "audit_log", ["actor", "at"])
    op.create_index("ix_audit_log_action_at", "audit_log", ["action", "at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                   f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$")
        op.execute("CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
                   "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()")
    else:
        op.execute("CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
                   f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END")
    jobs = op.create_table(
        "job_runs",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(jobs, [{"name": name, "started_at": None} for name in JOBS])
    for table in REDACTED_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("redacted_at", sa.DateTime(timezone=True)))
    op.create_index("ix_tickets_resolved_at", "tickets", ["resolved_at"])


def downgrade() -> None:
    op.drop_index("ix_tickets_resolved_at", table_name="tickets")
    for table in REDACTED_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("redacted_at")
    op.drop_table("job_runs")
    op.execute("DROP TRIGGER audit_log_no_update" + (" ON audit_log" if op.get_bind().dialect.name == "postgresql"
                                                    else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_log_append_only()")
    for name in ("ix_audit_log_action_at", "ix_audit_log_actor_at", "ix_audit_log_at"):
        op.drop_index(name, table_name="audit_log")
    op.drop_table("audit_log")
