"""append-only ledger and used codes: triggers refuse UPDATE and DELETE

The application's account is already kept to INSERT/SELECT on these tables by its
grants (``flask db upgrade`` grants the rest of the schema); the triggers also stop the
schema owner, a console session, a future code path. Same SQL on SQLite, MariaDB and
MySQL: each trigger is one statement.

Revision ID: 0002_chaos
Revises: 0006_cardlive
"""

from __future__ import annotations

from db.migrations.shared import create_append_only_triggers, drop_append_only_triggers

revision = "0002_chaos"
down_revision = "0006_cardlive"

TABLES = ("ledger", "used_codes")


def upgrade() -> None:
    create_append_only_triggers(TABLES)


def downgrade() -> None:
    drop_append_only_triggers(TABLES)
