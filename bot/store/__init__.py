"""Persistent handoff queue (SQLAlchemy 1.4; SQLite by default, PostgreSQL via DATABASE_URL)."""
