"""Append-only, enforced by the database: what the application's account may change.

Two accounts touch a MySQL/MariaDB database. The *schema owner* (``SCHEMA_DATABASE_URL``)
runs migrations, creates triggers and grants; the *application's account* (the user in
``DATABASE_URL`` / ``CLUSTER``) serves requests. The application's account gets
``SELECT, INSERT`` on the whole schema when it is created (deploy/mysql/init-gr.sql, the
labs), and ``flask db upgrade`` grants it ``UPDATE, DELETE`` table by table on every
table except those in :data:`webapp.database.schema.APPEND_ONLY`. A table a migration
adds is granted in full automatically; an append-only one is named in ``APPEND_ONLY``.

Privileges stop the application; triggers (:func:`append_only_triggers`, created by a
migration) stop everyone else too, the schema owner included, on SQLite, MariaDB and
MySQL alike. Test fixtures empty append-only tables with ``TRUNCATE`` as the owner, which
fires no trigger.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, text

from .schema import APPEND_ONLY, metadata

APPEND_ONLY_SQLSTATE = "45000"  # MySQL/MariaDB SIGNAL: error 1644, "unhandled user exception"


def append_only_message(table: str) -> str:
    return f"{table} is append-only: rows are never updated or deleted"


def append_only_triggers(dialect: str, table: str) -> list[str]:
    """``CREATE TRIGGER`` statements refusing UPDATE and DELETE on ``table``."""
    statements = []
    for operation in ("UPDATE", "DELETE"):
        name = f"{table}_no_{operation.lower()}"
        message = append_only_message(table)
        if dialect == "sqlite":
            statements.append(
                f"CREATE TRIGGER {name} BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
        else:  # mysql, mariadb: one statement, so no DELIMITER games
            statements.append(
                f"CREATE TRIGGER {name} BEFORE {operation} ON {table} FOR EACH ROW "
                f"SIGNAL SQLSTATE '{APPEND_ONLY_SQLSTATE}' SET MESSAGE_TEXT = '{message}'"
            )
    return statements


def drop_append_only_triggers(table: str) -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {table}_no_{op}" for op in ("update", "delete")]


def app_privileges(table: str) -> str:
    """What the application's account may do on ``table``."""
    return "SELECT, INSERT" if table in APPEND_ONLY else "SELECT, INSERT, UPDATE, DELETE"


def quote_account(account: str) -> str:
    """``user@host`` as ``CURRENT_USER()`` returns it -> ``'user'@'host'``."""
    user, _, host = account.rpartition("@")
    if not user:
        raise ValueError(f"not an account: {account!r}")
    user, host = (part.replace("\\", "\\\\").replace("'", "''") for part in (user, host))
    return f"'{user}'@'{host}'"


def grant_statements(account: str, tables: Iterable[str] | None = None) -> list[str]:
    """GRANTs giving the application's ``account`` (``user@host``) full DML on every
    table but the append-only ones; ``SELECT, INSERT`` come from its creation."""
    names = [t.name for t in metadata.sorted_tables] if tables is None else list(tables)
    quoted = quote_account(account)
    return [
        f"GRANT UPDATE, DELETE ON `{table}` TO {quoted}"
        for table in names
        if table not in APPEND_ONLY
    ]


def grant_app_privileges(owner: Connection, account: str) -> list[str]:
    """Runs :func:`grant_statements` as the schema owner (in the current database)."""
    statements = grant_statements(account)
    for statement in statements:
        owner.execute(text(statement))
    return statements
