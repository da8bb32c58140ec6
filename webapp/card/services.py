"""What the card page shows: the chosen card, the shared balance, recent history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webapp.extensions import db
from webapp.ledger import queries as ledger_queries

from . import queries

HISTORY_LENGTH = 10


@dataclass(frozen=True)
class CardView:
    cards: list[dict[str, Any]]
    card: dict[str, Any]
    balance: int
    history: list[dict[str, Any]]


def card_view(account_id: int, card_id: int | None, *, causal: bool = False) -> CardView:
    """One read transaction for the whole page (no N+1: three small queries)."""

    def work(conn) -> CardView:
        cards = queries.active_cards(conn, account_id)
        wallet = queries.wallet_for_account(conn, account_id)
        chosen = next((c for c in cards if c["id"] == card_id), cards[0])
        history = ledger_queries.history(conn, wallet["id"], HISTORY_LENGTH)
        return CardView(cards, chosen, wallet["balance"], history)

    return db.read(work, name="card.view", causal=causal)
