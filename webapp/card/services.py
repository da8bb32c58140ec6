"""What the card page shows: the chosen card, the shared balance, recent history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from webapp import clock
from webapp.auth.tokens import Principal
from webapp.config import REGION_TIMEZONES
from webapp.errors import NotFound, Unauthorized
from webapp.expiry import services as expiry
from webapp.extensions import db

from . import queries
from .numbers import new_code_secret

HISTORY_LENGTH = 10


class NoCard(NotFound):
    """The caller has no card to show (a revoked member's sign-in)."""


class SessionEnded(Unauthorized):
    """The device was signed out (its refresh-token family revoked): the check that
    :func:`webapp.auth.session.checks_session_itself` leaves to the page's own read."""


@dataclass(frozen=True)
class CardView:
    cards: list[dict[str, Any]]
    card: dict[str, Any]
    balance: int
    history: list[dict[str, Any]]  # each row's "zone": where its time is shown
    etag: str  # the live version the page shows (see live_version)
    expiry: expiry.Notice | None = None  # the warning, within its days before expiry
    rewards: tuple[dict[str, Any], ...] = ()  # the home region's, in catalogue order


def card_view(principal: Principal, card_id: int | None, *, causal: bool = False,
              session_family: str | None = None) -> CardView:
    """One read transaction for the whole page. The owner's page is one statement (the
    cards with the wallet's balance, the recent history, the home region's rewards and,
    with ``session_family``, the device's session check: ``queries.card_page``).

    A family member's own sign-in sees only their card and their own transactions (the
    balance is the family's); once the owner revoked it there is no card:
    :class:`NoCard`, which the page treats as signed out. A revoked ``session_family``
    is :class:`SessionEnded`, checked before anything of the page is used.

    The expiry warning mostly needs no query: the owner's history is the wallet's newest
    rows, which hold its last activity (see :func:`webapp.expiry.services.notice`).
    """
    from webapp.staff import catalogue  # webapp.staff imports the auth services

    config = current_app.config
    period, warning_days = config["COIN_EXPIRY_MONTHS"], config["EXPIRY_WARNING_DAYS"]

    def work(conn) -> CardView:
        if principal.is_member:
            cards = queries.member_card_with_balance(conn, principal.account_id, session_family)
            if cards and not cards[0]["session_live"]:
                raise SessionEnded("You were signed out. Please sign in again.")
            if not cards:
                raise NoCard("This sign-in no longer shows a card.")
            chosen = cards[0]
            history = queries.member_activity(conn, chosen["wallet_id"], chosen["id"],
                                              HISTORY_LENGTH)
            balance, last_id = queries.live_version(conn, chosen["wallet_id"])
            wallet_rows: list[dict[str, Any]] = []  # a member's own rows: not the wallet's
            region = queries.home_region(conn, principal.account_id)
            rewards = catalogue.region_rewards(conn, region) if region else []
        else:
            page = queries.card_page(conn, principal.account_id, HISTORY_LENGTH,
                                     session_family)
            cards, history, rewards = page.cards, page.history, page.rewards
            if not cards:
                raise NoCard("This account has no card.")
            if not page.session_live:
                raise SessionEnded("You were signed out. Please sign in again.")
            chosen = next((c for c in cards if c["id"] == card_id), cards[0])
            if any(c["wallet_id"] != chosen["wallet_id"] for c in cards):
                # Cards on different wallets: the union's history mixes them; ask for this one.
                history = queries.recent_activity(conn, chosen["wallet_id"], HISTORY_LENGTH)
            # The history is the wallet's newest rows, so its first id is the live version's.
            balance, last_id = chosen["balance"], (history[0]["id"] if history else 0)
            wallet_rows = history
        for row in history:
            # A store's time zone; a movement without a store (an expiry) is dated in
            # the region it was booked for.
            row["zone"] = row["store_timezone"] or REGION_TIMEZONES.get(row["region"], "UTC")
        notice = expiry.notice(conn, wallet_id=chosen["wallet_id"], balance=balance,
                               recent=wallet_rows, now=clock.utcnow(), period_months=period,
                               warning_days=warning_days)
        return CardView(cards, chosen, balance, history,
                        live_etag(chosen["id"], balance, last_id), notice, tuple(rewards))

    return db.read(work, name="card.view", causal=causal)


def live_etag(card_id: int, balance: int, last_id: int) -> str:
    return f'"{card_id}.{balance}.{last_id}"'


def live_version(principal: Principal, card_id: int, *,
                 session_family: str | None = None) -> str | None:
    """The open card's version as an ETag, in one small read (the card as this caller
    may see it with the check of ``session_family``, then the wallet's newest ledger id);
    None once the caller may no longer see that card (a revoked member, a removed card,
    a signed-out device): the script then reloads and the page signs out. A local read:
    on Galera a write made in another region arrives in milliseconds, and the next poll
    would catch it anyway."""

    def work(conn) -> str | None:
        if principal.is_member:
            visible = queries.member_card_with_balance(conn, principal.account_id,
                                                       session_family)
        else:
            visible = queries.cards_with_balance(conn, principal.account_id, session_family)
        card = next((c for c in visible if c["id"] == card_id), None)
        if card is None or not card["session_live"]:
            return None
        balance, last_id = queries.live_version(conn, card["wallet_id"])
        return live_etag(card_id, balance, last_id)

    return db.read(work, name="card.live", causal=False)


def rotate_code_secret(conn, card_id: int) -> None:
    """Called inside the transaction that revokes a member's access, blocks the card or
    erases the account: a copy of the card cached on a phone (or in a wallet pass)
    then shows codes the till refuses."""
    queries.rotate_code_secret(conn, card_id, new_code_secret())


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


def next_reward(balance: int, rewards: list[dict]) -> dict | None:
    from webapp.staff import catalogue

    return catalogue.next_reward(balance, rewards)
