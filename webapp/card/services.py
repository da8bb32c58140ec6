"""What the card page shows: the chosen card, the shared balance, recent history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webapp.errors import Unauthorized
from webapp.extensions import db

from . import queries

HISTORY_LENGTH = 10


@dataclass(frozen=True)
class CardView:
    cards: list[dict[str, Any]]
    card: dict[str, Any]
    balance: int
    history: list[dict[str, Any]]


def card_view(account_id: int, card_id: int | None, *, causal: bool = False) -> CardView:
    """One read transaction for the whole page: two narrow queries (cards with the
    wallet's balance, then the recent history), the fewest round trips that can serve it."""

    def work(conn) -> CardView:
        cards = queries.cards_with_balance(conn, account_id)
        if not cards:  # a valid token outlived its account: that session is over
            raise Unauthorized("This account no longer exists. Please sign in.")
        chosen = next((c for c in cards if c["id"] == card_id), cards[0])
        history = queries.recent_activity(conn, chosen["wallet_id"], HISTORY_LENGTH)
        return CardView(cards, chosen, chosen["balance"], history)

    return db.read(work, name="card.view", causal=causal)


@dataclass(frozen=True)
class Wallet:
    id: int
    balance: int
    cards: list[dict[str, Any]]  # active cards, the holder's (slot 0) first


def wallet(account_id: int, *, causal: bool = False) -> Wallet:
    """The account's shared wallet and its active cards, in one read."""

    def work(conn) -> Wallet:
        row = queries.wallet_for_account(conn, account_id)
        return Wallet(row["id"], row["balance"], queries.active_cards(conn, account_id))

    return db.read(work, name="card.wallet", causal=causal)
