"""Staff accounts and stores (admin operations, used by the CLI and demo data)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from sqlalchemy import insert, update

from webapp.auth.services import register
from webapp.config import REGION_LOCALES, REGION_TIMEZONES
from webapp.database import after_unknown_commit
from webapp.database.schema import cards, stores
from webapp.errors import ValidationFailed
from webapp.extensions import db
from webapp.ledger.queries import store_by_code

from . import queries

# A staff member's name is also the name on their account's own card (every account has
# one, webapp.auth.services): the card's column is the shorter, so it sets the limit.
STAFF_NAME_MAX = cards.c.display_name.type.length


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(
            {"timezone": [f"Unknown time zone {name!r}: use an IANA name such as "
                          "Asia/Kolkata."]}) from None
    return name


def check_locale(name: str) -> str:
    try:
        return str(Locale.parse(name))
    except (UnknownLocaleError, ValueError):
        raise ValidationFailed(
            {"locale": [f"Unknown locale {name!r}: use one such as en_IN."]}) from None


def create_store(*, code: str, name: str, region: str, currency: str,
                 minor_per_coin: int, timezone: str | None = None,
                 locale: str | None = None) -> None:
    """``timezone`` and ``locale`` default to the region's (webapp.config)."""
    values = {"code": code, "name": name, "region": region, "currency": currency,
              "minor_per_coin": minor_per_coin,
              "timezone": check_timezone(timezone or REGION_TIMEZONES[region]),
              "locale": check_locale(locale or REGION_LOCALES[region])}

    def create(conn):
        if after_unknown_commit(conn):
            existing = store_by_code(conn, code)
            if existing is not None and all(existing[k] == v for k, v in values.items()):
                return  # written by the attempt whose COMMIT answer was lost
        conn.execute(insert(stores).values(**values))

    # Idempotent: a second run recognises the store it created (above).
    db.write(create, name="store.create", idempotent=True)


def set_store_place(code: str, *, timezone: str | None, locale: str | None) -> bool:
    """Changes a store's time zone and/or locale; False if there is no such store."""
    values = {}
    if timezone:
        values["timezone"] = check_timezone(timezone)
    if locale:
        values["locale"] = check_locale(locale)
    if not values:
        # Nothing to change, but the answer still says whether the store exists (the CLI
        # would otherwise report a store that isn't there as updated).
        return db.read(lambda conn: store_by_code(conn, code), name="store") is not None

    def work(conn):
        found = conn.execute(update(stores).where(stores.c.code == code).values(**values))
        # MySQL counts matched rows (CLIENT_FOUND_ROWS), so setting the same values again
        # still finds the store.
        return found.rowcount == 1

    # Idempotent: setting the same values again changes nothing.
    return db.write(work, name="store.place", idempotent=True)


def create_staff(*, email: str, store_code: str, name: str, password: str,
                 role: str = "staff") -> dict:
    if not name or len(name) > STAFF_NAME_MAX:
        raise ValidationFailed({"name": [f"Enter a name of at most {STAFF_NAME_MAX} "
                                         "characters."]})
    store = db.read(lambda conn: store_by_code(conn, store_code), name="store")
    if store is None:
        raise ValidationFailed({"store": [f"Unknown store {store_code!r}."]})
    return register(name=name, email=email, password=password, region=store["region"],
                    role=role, store_id=store["id"])


def home_store(account_id: int) -> dict | None:
    """The store a staff account works at (accounts.store_id), or None."""
    return db.read(lambda conn: queries.home_store(conn, account_id), name="staff.home_store")
