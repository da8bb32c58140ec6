"""Engines: one per database (or per cluster member), with the settings failover needs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy
from pymysql.constants.SERVER_STATUS import SERVER_STATUS_IN_TRANS
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url


def make_engine(url: str, config: Mapping[str, Any], **overrides: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    connect_args = {
        "connect_timeout": config.get("DB_CONNECT_TIMEOUT", 2),
        # A frozen member answers nothing: this bounds what it costs one statement.
        "read_timeout": config.get("DB_STATEMENT_TIMEOUT", 3),
        "write_timeout": config.get("DB_STATEMENT_TIMEOUT", 3),
        "charset": "utf8mb4",
        # READ COMMITTED is what GR recommends for multi-primary; balance changes never
        # rely on snapshot reads, they are single conditional UPDATEs.
        # (This spelling works on MySQL 8 and MariaDB 10.x alike; the variable name
        # transaction_isolation only exists on MariaDB from 11.1.)
        "init_command": "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    }
    options: dict[str, Any] = {
        # No ping per checkout (it was a quarter of a card page's round trips). A pooled
        # connection the server dropped fails on its first statement instead: the
        # dialect's is_disconnect (plus _flag_disconnects below) invalidates it and every
        # older pooled connection, and the router runs the transaction again on a fresh
        # connection to the same member before it suspects the member (routing.py).
        "pool_pre_ping": bool(config.get("DB_POOL_PRE_PING", False)),
        # About one connection per gunicorn thread; more only queues work on the server.
        "pool_size": config.get("DB_POOL_SIZE", 8),
        "max_overflow": config.get("DB_POOL_OVERFLOW", 4),
        "pool_timeout": 5,
        "pool_recycle": 1800,
        "pool_reset_on_return": None,  # see _reset_only_open_transactions
        "connect_args": connect_args,
    }
    options.update(overrides)
    # Looked up on the module at call time, so OpenTelemetry's wrapper applies.
    engine = sqlalchemy.create_engine(url, **options)
    if options.get("pool_reset_on_return", "rollback") is None:
        _reset_only_open_transactions(engine)
    _flag_disconnects(engine)
    return engine


# Errors after which a connection is worth nothing, though PyMySQL's dialect does not
# call them disconnects: a Galera node that left the Primary component (1047) answers
# every statement, even ROLLBACK, with it; 2003/2002/2055 are sockets that never were.
_DEAD_CONNECTION_CODES = {1047, 2002, 2003, 2006, 2013, 2014, 2055}


def _flag_disconnects(engine: Engine) -> None:
    """Mark those errors as disconnects, so SQLAlchemy invalidates the connection and the
    pool (every connection checked out before it is replaced on its next checkout)."""

    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        if context.is_disconnect:
            return
        args = getattr(context.original_exception, "args", ())
        if args and args[0] in _DEAD_CONNECTION_CODES:
            context.is_disconnect = True


def _reset_only_open_transactions(engine: Engine) -> None:
    """Roll back a returned connection only when the server says a transaction is open.

    By default SQLAlchemy sends ROLLBACK on every check-in, even right after our COMMIT:
    one more round trip for every unit of work (a fifth of a card page's). Every OK/EOF
    packet carries the server's SERVER_STATUS_IN_TRANS bit and PyMySQL keeps the last
    one, so the rollback is skipped exactly when there is nothing to roll back. This is
    SQLAlchemy's documented "custom reset" (``pool_reset_on_return=None`` + ``reset``).
    """

    @event.listens_for(engine, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, reset_state: Any) -> None:
        if reset_state.terminate_only:
            return
        status = getattr(dbapi_connection, "server_status", None)
        if status is None or status & SERVER_STATUS_IN_TRANS:
            dbapi_connection.rollback()


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sqlalchemy.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A write takes the lock up front: a deferred transaction that later upgrades
        # to a writer can deadlock against another and fail instead of waiting.
        mode = "IMMEDIATE" if conn.get_execution_options().get("loyalty_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine
