"""Staff accounts and stores (admin operations, used by the CLI and demo data)."""

from __future__ import annotations

from sqlalchemy import insert

from webapp.auth.services import register
from webapp.database import after_unknown_commit
from webapp.database.schema import stores
from webapp.errors import ValidationFailed
from webapp.extensions import db
from webapp.ledger.queries import store_by_code

from . import queries


def create_store(*, code: str, name: str, region: str, currency: str,
                 minor_per_coin: int) -> None:
    values = {"code": code, "name": name, "region": region, "currency": currency,
              "minor_per_coin": minor_per_coin}

    def create(conn):
        if after_unknown_commit(conn):
            existing = store_by_code(conn, code)
            if existing is not None and all(existing[k] == v for k, v in values.items()):
                return  # written by the attempt whose COMMIT answer was lost
        conn.execute(insert(stores).values(**values))

    # Idempotent: a second run recognises the store it created (above).
    db.write(create, name="store.create", idempotent=True)


def create_staff(*, email: str, store_code: str, name: str, password: str,
                 role: str = "staff") -> dict:
    store = db.read(lambda conn: store_by_code(conn, store_code), name="store")
    if store is None:
        raise ValidationFailed({"store": [f"Unknown store {store_code!r}."]})
    return register(name=name, email=email, password=password, region=store["region"],
                    role=role, store_id=store["id"])


def home_store(account_id: int) -> dict | None:
    """The store a staff account works at (accounts.store_id), or None."""
    return db.read(lambda conn: queries.home_store(conn, account_id), name="staff.home_store")
