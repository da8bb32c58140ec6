"""What the migrations share: the column types every table uses, tables keyed by an
id, the columns of a single-use secret, and the append-only triggers.

Frozen like the migrations that use it: a migration that has run must keep meaning what
it did, so nothing here changes. A new type gets a new name; the app's current view of the
tables is webapp.database.schema, which moves on.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from webapp.database import privileges

# SQLite only autoincrements an INTEGER PRIMARY KEY; MySQL wants BIGINT for ids that grow.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Microsecond timestamps on MySQL/MariaDB, so history orders the way it happened.
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def create_table(name: str, *elements: sa.schema.SchemaItem) -> None:
    """op.create_table for a table keyed by its own autoincrementing ``id`` (first
    column, primary key named pk_<table>), then the given columns and constraints."""
    op.create_table(name, sa.Column("id", Id, autoincrement=True, nullable=False), *elements,
                    sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")))


def token_lifetime(*, revocable: bool = True) -> list[sa.Column]:
    """The life of a single-use secret (a refresh token, a mailed link, a WebAuthn
    challenge): made, stops working, used; and withdrawn early where it can be."""
    columns = [sa.Column("created_at", Timestamp, nullable=False),
               sa.Column("expires_at", Timestamp, nullable=False),
               sa.Column("used_at", Timestamp, nullable=True)]
    if revocable:
        columns.append(sa.Column("revoked_at", Timestamp, nullable=True))
    return columns


def create_append_only_triggers(tables: Iterable[str]) -> None:
    """Triggers that refuse UPDATE and DELETE on each table, for every account."""
    dialect = op.get_bind().dialect.name
    for table in tables:
        for statement in privileges.append_only_triggers(dialect, table):
            op.execute(statement)


def drop_append_only_triggers(tables: Iterable[str]) -> None:
    for table in tables:
        for statement in privileges.drop_append_only_triggers(table):
            op.execute(statement)
