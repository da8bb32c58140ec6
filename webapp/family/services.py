"""Family members: up to four extra cards on the account's one shared wallet."""

from __future__ import annotations

from datetime import date

from flask import current_app
from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from webapp.card import queries
from webapp.card.numbers import new_card_number, new_code_secret
from webapp.clock import utcnow
from webapp.database import RetryTransaction
from webapp.errors import FamilyFull, NotFound, Unauthorized
from webapp.extensions import db


def members(account_id: int) -> list[dict]:
    """The family cards (slot 1..4), without the holder's own card."""
    cards = db.read(lambda conn: queries.active_cards(conn, account_id), name="family.list")
    return [card for card in cards if card["slot"] > 0]


def add(account_id: int, name: str, birthday: date | None) -> dict:
    """Takes the lowest free slot. Two phones adding at once may pick the same slot:
    the unique (account, slot) key makes one fail, and its retry takes the next slot or
    finds the family full. The limit holds in the database, not in this count."""
    limit = current_app.config["FAMILY_LIMIT"]

    def work(conn: Connection) -> dict:
        cards = queries.active_cards(conn, account_id)
        taken = {card["slot"] for card in cards}
        free = [slot for slot in range(1, limit + 1) if slot not in taken]
        if not free:
            raise FamilyFull(f"A family can have at most {limit} members besides you.")
        holder = next((card for card in cards if card["slot"] == 0), None)
        if holder is None:  # a valid token outlived its account
            raise Unauthorized("This account no longer exists. Please sign in.")
        values = {
            "account_id": account_id, "wallet_id": holder["wallet_id"], "slot": free[0],
            "number": new_card_number(), "display_name": name, "birthday": birthday,
            "code_secret": new_code_secret(), "created_at": utcnow(),
        }
        try:
            card_id = queries.insert_family_card(conn, **values)
        except sa_exc.IntegrityError as error:
            raise RetryTransaction() from error
        return dict(values, id=card_id)

    return db.write(work, name="family.add")


def rename(account_id: int, card_id: int, name: str, birthday: date | None) -> None:
    changed = db.write(
        lambda conn: queries.rename_family_card(conn, account_id, card_id, name, birthday),
        name="family.rename",
    )
    if not changed:
        raise NotFound("No such family member.")


def remove(account_id: int, card_id: int) -> None:
    removed = db.write(
        lambda conn: queries.retire_family_card(conn, account_id, card_id, utcnow()),
        name="family.remove",
    )
    if not removed:
        raise NotFound("No such family member.")
