"""The ledger and the spent card codes are append-only, and the database enforces it.

On every backend the application's own database access (``db.write``) is refused when
it tries to UPDATE or DELETE a ledger or used-codes row: on SQLite by the triggers of
migration 0002, on Galera first by the account's privileges (the app's account has
INSERT/SELECT only on these tables) and, for everyone else, the schema owner included,
by the same triggers. Nothing is changed by a refused attempt.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from tests.helpers import PASSWORD
from webapp import audit
from webapp.auth.services import register
from webapp.card.queries import active_cards
from webapp.clock import utcnow
from webapp.database.privileges import (
    append_only_message,
    append_only_triggers,
    grant_statements,
    quote_account,
)
from webapp.database.schema import APPEND_ONLY, metadata
from webapp.extensions import db
from webapp.ledger import services as ledger

# MySQL/MariaDB: "UPDATE command denied to user" / "DELETE command denied to user".
COMMAND_DENIED = 1142
SIGNAL = 1644  # a trigger's SIGNAL SQLSTATE '45000'

ATTEMPTS = {
    "ledger": [
        "UPDATE ledger SET coins = coins + 100",
        "UPDATE ledger SET balance_after = 0 WHERE id = :id",
        "DELETE FROM ledger WHERE id = :id",
        "DELETE FROM ledger",
    ],
    "used_codes": [
        "UPDATE used_codes SET ledger_id = ledger_id + 1",
        "DELETE FROM used_codes WHERE ledger_id = :id",
    ],
    "audit_log": [
        "UPDATE audit_log SET action = 'nothing happened'",
        "DELETE FROM audit_log WHERE id > 0",
        "DELETE FROM audit_log",
    ],
}


@pytest.fixture
def booked(app):
    """One earn through the product, and one spent code pointing at it."""
    with app.app_context():
        account = register(name="Ana Silva", email=f"ana-{uuid.uuid4().hex}@example.com",
                           password=PASSWORD, region="us")
        card = db.read(lambda conn: active_cards(conn, account["id"])[0], name="t")
        receipt = ledger.earn(card=card["number"], store_code="US-NYC-01", amount_minor=1500,
                              currency="USD", idempotency_key=f"k-{uuid.uuid4().hex}",
                              staff_id=None)
        db.write(lambda conn: conn.execute(
            text("INSERT INTO used_codes (card_id, step, ledger_id, created_at) "
                 "VALUES (:card, 1, :id, :now)"),
            {"card": card["id"], "id": receipt.transaction_id, "now": utcnow()}), name="t")
        audit.record(actor_id=None, actor_role="staff", action="earn", region="us",
                     target=f"ledger:{receipt.transaction_id}",
                     event_key=f"ledger:{receipt.transaction_id}")
    return receipt.transaction_id


def snapshot(conn) -> tuple:
    ledger_rows = conn.execute(text("SELECT * FROM ledger ORDER BY id")).all()
    used = conn.execute(text("SELECT * FROM used_codes ORDER BY card_id, step")).all()
    audit_rows = conn.execute(text("SELECT * FROM audit_log ORDER BY id")).all()
    return ledger_rows, used, audit_rows


def refusal_code(error: sa_exc.DBAPIError) -> int | None:
    args = getattr(error.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_the_application_cannot_update_or_delete(app, booked, table):
    with app.app_context():
        before = db.read(snapshot, name="t")
        assert before[0]
        assert before[1]
        for sql in ATTEMPTS[table]:
            with pytest.raises(sa_exc.DBAPIError) as refused:
                db.write(lambda conn, sql=sql: conn.execute(text(sql), {"id": booked}),
                         name="t.tamper")
            message = str(refused.value.orig)
            if db.engine.dialect.name == "sqlite":
                assert append_only_message(table) in message
            else:  # the privilege check comes first: the trigger is the owner's fence
                assert refusal_code(refused.value) == COMMAND_DENIED, message
                assert "command denied" in message
        assert db.read(snapshot, name="t") == before
        # ...while the same account still changes what it may (the wallet balance).
        assert db.write(lambda conn: conn.execute(
            text("UPDATE wallets SET updated_at = updated_at")).rowcount, name="t") >= 1


@pytest.mark.mariadb
@pytest.mark.parametrize("app", ["galera"], indirect=True)
def test_triggers_stop_the_schema_owner_too(app, booked):
    """The owner may do anything to the schema, but rows of an append-only table are
    refused even to it (1644 from the trigger); TRUNCATE, which test resets use, is not
    a row change and still works for it."""
    with app.app_context():
        owner = db.engine
        with owner.connect() as conn:
            assert conn.execute(text("SELECT CURRENT_USER()")).scalar().startswith(
                "loyalty_owner@")
        for table in APPEND_ONLY:
            for sql in ATTEMPTS[table]:
                with pytest.raises(sa_exc.DBAPIError) as refused, owner.begin() as conn:
                    conn.execute(text(sql), {"id": booked})
                assert refusal_code(refused.value) == SIGNAL
                assert append_only_message(table) in str(refused.value.orig)
        with owner.begin() as conn:
            conn.execute(text("TRUNCATE TABLE used_codes"))
            assert conn.execute(text("SELECT COUNT(*) FROM used_codes")).scalar() == 0


@pytest.mark.mariadb
@pytest.mark.parametrize("app", ["galera"], indirect=True)
def test_the_app_account_holds_exactly_the_granted_privileges(app):
    """What ``flask db upgrade`` granted, read back from the server."""
    with app.app_context():
        account = db.read(lambda conn: conn.execute(text("SELECT CURRENT_USER()")).scalar(),
                          name="t")
        grants = db.read(lambda conn: [row[0] for row in conn.execute(
            text("SHOW GRANTS FOR CURRENT_USER()"))], name="t")
    table_grants = {g for g in grants if " ON `loyalty`.`" in g}
    for table in (t.name for t in metadata.sorted_tables):
        granted = [g for g in table_grants if f"`loyalty`.`{table}`" in g]
        if table in APPEND_ONLY:
            assert granted == [], granted
        else:
            assert len(granted) == 1, (table, grants)
            assert "UPDATE" in granted[0]
            assert "DELETE" in granted[0]
    database_grant = next(g for g in grants if " ON `loyalty`.* " in g)
    assert database_grant.startswith("GRANT SELECT, INSERT ON"), database_grant
    assert quote_account(account).replace("'", "`") in database_grant.replace("'", "`")


def test_trigger_and_grant_sql_is_one_statement_each():
    """One statement per trigger (no DELIMITER), the same for any append-only table: an
    audit log joins by name."""
    for dialect in ("sqlite", "mysql", "mariadb"):
        statements = append_only_triggers(dialect, "audit_log")
        assert len(statements) == 2
        if dialect != "sqlite":  # SQLite's BEGIN ... END body is itself one statement
            assert not any(";" in statement for statement in statements)
        assert "audit_log_no_update" in statements[0]
        assert "audit_log_no_delete" in statements[1]
    grants = grant_statements("loyalty@%", ["accounts", "ledger", "used_codes", "wallets"])
    assert grants == [
        "GRANT UPDATE, DELETE ON `accounts` TO 'loyalty'@'%'",
        "GRANT UPDATE, DELETE ON `wallets` TO 'loyalty'@'%'",
    ]
    assert quote_account("o'brien@10.0.%") == "'o''brien'@'10.0.%'"
