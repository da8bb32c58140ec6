"""append-only ledger and used codes: triggers refuse UPDATE and DELETE

The application's account is already kept to INSERT/SELECT on these tables by its
grants (``flask db upgrade`` grants the rest of the schema); the triggers also stop the
schema owner, a console session, a future code path. Same SQL on SQLite, MariaDB and
MySQL: each trigger is one statement.

Revision ID: 0002_chaos
Revises: 0006_cardlive
"""

from __future__ import annotations

from alembic import op

from webapp.database.privileges import append_only_triggers, drop_append_only_triggers

revision = "0002_chaos"
down_revision = "0006_cardlive"
branch_labels = None
depends_on = None

TABLES = ("ledger", "used_codes")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in TABLES:
        for statement in append_only_triggers(dialect, table):
            op.execute(statement)


def downgrade() -> None:
    for table in TABLES:
        for statement in drop_append_only_triggers(table):
            op.execute(statement)
