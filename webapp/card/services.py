"""What the card page shows: the chosen card, the shared balance, recent history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from webapp import clock
from webapp.config import REGION_TIMEZONES
from webapp.expiry import services as expiry
from webapp.extensions import db

from . import queries

HISTORY_LENGTH = 10


@dataclass(frozen=True)
class CardView:
    cards: list[dict[str, Any]]
    card: dict[str, Any]
    balance: int
    history: list[dict[str, Any]]  # each row's "zone": where its time is shown
    expiry: expiry.Notice | None = None  # the warning, within its days before expiry


def card_view(account_id: int, card_id: int | None, *, causal: bool = False) -> CardView:
    """One read transaction for the whole page: two narrow queries (cards with the
    wallet's balance, then the recent history), the fewest round trips that can serve it.
    The expiry warning mostly needs none (see :func:`webapp.expiry.services.notice`)."""
    config = current_app.config
    period, warning_days = config["COIN_EXPIRY_MONTHS"], config["EXPIRY_WARNING_DAYS"]

    def work(conn) -> CardView:
        cards = queries.cards_with_balance(conn, account_id)
        chosen = next((c for c in cards if c["id"] == card_id), cards[0])
        history = queries.recent_activity(conn, chosen["wallet_id"], HISTORY_LENGTH)
        for row in history:
            # A store's time zone; a movement without a store (an expiry) is dated in
            # the region it was booked for.
            row["zone"] = row["store_timezone"] or REGION_TIMEZONES.get(row["region"], "UTC")
        notice = expiry.notice(conn, wallet_id=chosen["wallet_id"], balance=chosen["balance"],
                               recent=history, now=clock.utcnow(), period_months=period,
                               warning_days=warning_days)
        return CardView(cards, chosen, chosen["balance"], history, notice)

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
