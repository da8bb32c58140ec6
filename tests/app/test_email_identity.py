"""One email address, one account: the page and the API normalise an address the same
way (NFC, lower case, the domain as IDNA would write it), the database holds a unique
index on that normalised form, and the migration that adds it reports the duplicates it
finds instead of merging accounts.

Before: the API stored the NFC form and the page what it was sent (lower-cased), so
``josé@`` typed with a combining accent (NFD) and with a precomposed é (NFC) became two
accounts (on SQLite; MariaDB's accent-insensitive collation happened to refuse it).
"""

from __future__ import annotations

import logging
import unicodedata

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from tests.helpers import PASSWORD, AuthActions, csrf_token
from tests.mail_helpers import outbox, verify_via_outbox
from webapp import create_app
from webapp.auth.emails import normalize_email
from webapp.commands import upgrade_schema
from webapp.database.schema import accounts, wallets
from webapp.extensions import db

API = "/api/v1"
NFC = unicodedata.normalize("NFC", "josé@example.com")
NFD = unicodedata.normalize("NFD", "josé@example.com")
assert NFC != NFD


# --- The normalisation ------------------------------------------------------------


@pytest.mark.parametrize(("raw", "normal"), [
    (NFD, NFC),
    (NFC, NFC),
    ("  Ana@Example.COM ", "ana@example.com"),
    ("JOSÉ@EXAMPLE.COM", NFC),
    (unicodedata.normalize("NFD", "JOSÉ@EXAMPLE.COM"), NFC),
    ("ana@ＥＸＡＭＰＬＥ.com", "ana@example.com"),  # fullwidth domain, as IDNA maps it
    ("not an address", "not an address"),  # sign-in looks it up, finds nobody
])
def test_one_normal_form(raw, normal):
    assert normalize_email(raw) == normal


# --- Page and API: one account per address ----------------------------------------


def _register_page(client, email):
    page = client.get("/register").get_data(as_text=True)
    return client.post("/register", data={
        "csrf_token": csrf_token(page), "name": "José", "email": email,
        "password": PASSWORD, "region": "ie"})


def _register_api(client, email):
    return client.post(f"{API}/auth/register", json={
        "name": "José", "email": email, "password": PASSWORD, "region": "ie"})


def _emails(app) -> list[str]:
    with app.app_context():
        return db.read(lambda conn: list(conn.execute(
            select(accounts.c.email).order_by(accounts.c.id)).scalars()),
            name="test", causal=True)


def _verify(app, email):
    response = verify_via_outbox(app.test_client(), email)
    assert response.status_code == 302, response.get_data(as_text=True)


def _kinds(app, email) -> list[str]:
    return [m["kind"] for m in outbox(app, normalize_email(email))]


# Registration answers the same whoever owns the address ("check your inbox"): a page
# redirect to /register/sent, an API 202 with no tokens.
def _accepted(response, path) -> None:
    if path == "page":
        assert response.status_code == 302, response.get_data(as_text=True)
        assert response.headers["Location"].endswith("/register/sent")
    else:
        assert response.status_code == 202, response.get_data(as_text=True)
        assert "access_token" not in response.get_data(as_text=True)


@pytest.mark.parametrize("verified", [True, False], ids=["verified", "unverified"])
@pytest.mark.parametrize(("first", "second"), [
    ("page", "page"), ("page", "api"), ("api", "page"), ("api", "api")])
@pytest.mark.parametrize(("one", "other"), [(NFC, NFD), (NFD, NFC)], ids=["nfc-nfd", "nfd-nfc"])
def test_the_same_address_registers_once(app, first, second, one, other, verified):
    """The second registration, in the other Unicode form, finds the first account: one
    row, and the owner gets mail about it (a fresh link while unverified, "someone tried
    to register with your address" once verified), never a second account."""
    send = {"page": _register_page, "api": _register_api}
    _accepted(send[first](app.test_client(), one), first)
    if verified:
        _verify(app, one)
    _accepted(send[second](app.test_client(), other), second)
    assert _emails(app) == [NFC]  # one account, stored in its normal form
    second_mail = "register_existing" if verified else "verify"
    assert _kinds(app, other) == ["verify", second_mail]


def test_the_page_stores_the_normal_form(app, client):
    assert _register_page(client, " " + NFD.upper() + " ").status_code == 302
    assert _emails(app) == [NFC]


@pytest.mark.parametrize("typed", [NFC, NFD, NFC.upper()])
def test_sign_in_with_any_form_of_the_address(app, client, typed):
    assert AuthActions(client).register(email=NFD).status_code == 302  # and verified
    AuthActions(client).logout()
    response = AuthActions(client).login(email=typed)
    assert response.status_code == 302
    token = client.post(f"{API}/auth/token", json={"email": typed, "password": PASSWORD})
    assert token.status_code == 200


def test_the_database_refuses_a_second_account_with_the_same_normal_form(app):
    """The unique index, not only the service's check: a direct insert fails too."""
    _accepted(_register_api(app.test_client(), NFC), "api")
    assert _emails(app) == [NFC]
    with app.app_context():
        row = db.read(lambda conn: dict(conn.execute(select(accounts)).mappings().one()),
                      name="test", causal=True)
        row.pop("id")

        def insert(conn):
            conn.execute(sa.insert(accounts).values(**{**row, "email": NFD}))

        with pytest.raises(sa_exc.IntegrityError):
            db.write(insert, name="test.duplicate")


# --- The migration ----------------------------------------------------------------

EXISTING = [  # what the old code could store: the same address in different forms
    (NFC, "api"), (NFD, "page"), ("ana@example.com", "page"), ("bo@example.com", "page"),
    (unicodedata.normalize("NFD", "zoë@example.com"), "page"),
]


def _insert_old_accounts(conn, rows) -> None:
    for number, (email, _) in enumerate(rows, start=1):
        conn.execute(sa.text(
            "INSERT INTO accounts (id, email, name, password_hash, home_region, role, "
            "created_at) VALUES (:id, :email, 'Old', 'x', 'ie', 'customer', "
            "'2026-01-01 00:00:00')"), {"id": number, "email": email})
        conn.execute(sa.text(
            "INSERT INTO wallets (id, account_id, balance, updated_at) "
            "VALUES (:id, :id, 0, '2026-01-01 00:00:00')"), {"id": number})


def _migrate_with_old_accounts(app, rows, caplog) -> list[dict]:
    with app.app_context():
        upgrade_schema("0001")
        with db.engine.begin() as conn:
            _insert_old_accounts(conn, rows)
        with caplog.at_level(logging.WARNING):
            upgrade_schema()
        with db.engine.connect() as conn:
            return [dict(r) for r in conn.execute(
                select(accounts.c.id, accounts.c.email, accounts.c.email_key)
                .order_by(accounts.c.id)).mappings()]


def test_migration_reports_duplicates_and_merges_nothing(tmp_path, caplog):
    app = create_app({"PROFILE": "test",
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'old.db'}"})
    try:
        rows = _migrate_with_old_accounts(app, EXISTING, caplog)
        with app.app_context(), db.engine.connect() as conn:
            wallet_count = conn.execute(select(sa.func.count()).select_from(wallets)).scalar()
    finally:
        db.dispose()
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5]  # every account is still there
    assert wallet_count == 5
    assert [r["email"] for r in rows] == [email for email, _ in EXISTING]  # untouched
    keys = {r["id"]: r["email_key"] for r in rows}
    assert keys[1] == NFC  # the first account keeps the address
    assert keys[2] is None  # its duplicate waits for an operator, reported
    assert keys[3] == "ana@example.com"
    assert keys[4] == "bo@example.com"
    assert keys[5] == unicodedata.normalize("NFC", "zoë@example.com")
    report = [r.getMessage() for r in caplog.records if "duplicate" in r.getMessage()]
    assert len(report) == 1, caplog.text
    assert "accounts 1, 2" in report[0]
    assert "account 1 keeps" in report[0]
    assert NFC not in report[0]  # ids, not addresses, go to the log


def test_migration_without_duplicates_reports_nothing(tmp_path, caplog):
    app = create_app({"PROFILE": "test",
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'old.db'}"})
    try:
        rows = _migrate_with_old_accounts(app, EXISTING[2:], caplog)
    finally:
        db.dispose()
    assert all(r["email_key"] for r in rows)
    assert not [r for r in caplog.records if "duplicate" in r.getMessage()]


@pytest.mark.mariadb
def test_migration_on_mariadb(galera_lab, caplog):
    """The same migration on a Galera node (in a database of its own): the key column is
    exact (binary collation) where the address column's collation ignores accents."""
    database = "loyalty_email_migration"
    with galera_lab.admin_connect(0) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {database}")
        cur.execute(f"CREATE DATABASE {database} CHARACTER SET utf8mb4 "
                    "COLLATE utf8mb4_unicode_ci")
    url = (f"mysql+pymysql://lab_admin:lab-admin@127.0.0.1:{galera_lab.port(0)}/{database}")
    app = create_app({"PROFILE": "test", "DATABASE_URL": url})
    try:
        # MariaDB's old unique index already refused NFD/NFC and case twins: none exist.
        rows = _migrate_with_old_accounts(app, [EXISTING[0], *EXISTING[2:]], caplog)
        assert all(r["email_key"] for r in rows)
        with app.app_context():
            def twins(conn):
                conn.execute(sa.insert(accounts).values(
                    email="jose@example.com", email_key="jose@example.com", name="Jose",
                    password_hash="x", home_region="ie", role="customer",
                    created_at=sa.func.now()))
            db.write(twins, name="test")  # josé@ and jose@ are two addresses
    finally:
        db.dispose()
        with galera_lab.admin_connect(0) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {database}")
