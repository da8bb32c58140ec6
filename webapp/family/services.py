"""Family members: up to four extra cards on the account's one shared wallet."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date

from flask import current_app
from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from webapp.card import queries
from webapp.card.numbers import new_card_number, new_code_secret
from webapp.clock import utcnow
from webapp.database import RetryTransaction, after_unknown_commit
from webapp.errors import Conflict, FamilyFull, IdempotencyMismatch, NotFound, Unauthorized
from webapp.extensions import db

from . import invites


@dataclass(frozen=True)
class Added:
    card: dict
    replayed: bool  # the request was sent before and had added this card then


def members(account_id: int) -> list[dict]:
    """The family cards (slot 1..4), without the holder's own card."""
    cards = db.read(lambda conn: queries.active_cards(conn, account_id), name="family.list")
    return [card for card in cards if card["slot"] > 0]


def new_request_id() -> str:
    return secrets.token_urlsafe(18)


def add(account_id: int, name: str, birthday: date | None, request_id: str | None = None) -> Added:
    """Takes the lowest free slot. Two phones adding at once may pick the same slot:
    the unique (account, slot) key makes one fail, and its retry takes the next slot or
    finds the family full. The limit holds in the database, not in this count.

    ``request_id`` (the page form's hidden field, the API's Idempotency-Key) makes the
    add safe to send again: a second request with it gets the card the first one added.
    Without one the server makes one for this call, so the database layer's own retry
    after a lost COMMIT answer finds the card instead of adding a second.
    """
    limit = current_app.config["FAMILY_LIMIT"]
    request_id = request_id or new_request_id()
    written: set[int] = set()

    def work(conn: Connection) -> Added:
        earlier = queries.card_by_request(conn, account_id, request_id)
        if earlier is not None:
            if (earlier["display_name"], earlier["birthday"]) != (name, birthday):
                raise IdempotencyMismatch(
                    "This request id was already used to add a different family member."
                )
            if earlier["slot"] is None:
                raise Conflict("This request added a family member who was removed since.")
            # Our own attempt's row (its COMMIT answer was lost) is no replay.
            own = earlier["id"] in written and after_unknown_commit(conn)
            return Added(earlier, replayed=not own)
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
            "code_secret": new_code_secret(), "created_at": utcnow(), "request_id": request_id,
        }
        try:
            card_id = queries.insert_family_card(conn, **values)
        except sa_exc.IntegrityError as error:
            # A slot or this request id taken meanwhile: the retry sees which.
            raise RetryTransaction() from error
        written.add(card_id)
        return Added(dict(values, id=card_id), replayed=False)

    # Idempotent: a second run finds the card by its request id (above).
    return db.write(work, name="family.add", idempotent=True)


def rename(account_id: int, card_id: int, name: str, birthday: date | None) -> None:
    # Idempotent: setting the same name again matches the same row (MySQL/MariaDB count
    # matched rows, not changed ones: SQLAlchemy connects with CLIENT_FOUND_ROWS).
    changed = db.write(
        lambda conn: queries.rename_family_card(conn, account_id, card_id, name, birthday),
        name="family.rename",
        idempotent=True,
    )
    if not changed:
        raise NotFound("No such family member.")


def remove(account_id: int, card_id: int) -> None:
    def work(conn: Connection) -> bool:
        if queries.retire_family_card(conn, account_id, card_id, utcnow()):
            # Their own phone's sign-in and any open invite go with the card.
            invites.on_card_removed(conn, card_id)
            return True
        # Already retired: by the attempt whose COMMIT answer was lost, or a 404.
        return after_unknown_commit(conn) and queries.card_was_retired(conn, account_id, card_id)

    # Idempotent: a second run recognises the card its first run retired (above).
    if not db.write(work, name="family.remove", idempotent=True):
        raise NotFound("No such family member.")
