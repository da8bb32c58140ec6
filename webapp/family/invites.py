"""Family members on their own phones: the owner invites a member to use their card on
their own phone, the member accepts with a sign-in of their own, and the owner can revoke
it (the member may also leave).

An invite token is 256 random bits shown once (link and QR); only its SHA-256 is stored,
so a copy of the database cannot be used to accept an invite. Single use, 24 hours,
revocable; creating a new invite for a card revokes the card's earlier pending ones.

Whenever a phone loses the right to show a card (access revoked, the member leaves, the
card is removed) the card's code secret is rotated in the same transaction, so a copy
cached on that phone (or in a wallet pass) shows codes the till refuses.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from webapp.auth import queries as account_queries
from webapp.auth.services import hasher
from webapp.card import services as card_services
from webapp.clock import utcnow
from webapp.database import after_unknown_commit
from webapp.errors import AppError, Conflict, EmailTaken, NotFound
from webapp.extensions import db

from . import queries

INVITE_TTL = timedelta(hours=24)


class InviteGone(AppError):
    """The invite cannot be used: unknown, used, expired or revoked. ``reason`` picks
    the page's wording."""

    status = 410

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Invite:
    token: str  # shown once: in the link and its QR
    card_name: str
    expires_at: object


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(owner_id: int, card_id: int) -> Invite:
    token = secrets.token_urlsafe(32)
    token_hash = _hash(token)

    def work(conn: Connection) -> Invite:
        card = queries.family_card(conn, owner_id, card_id)
        if card is None or card["slot"] is None:
            raise NotFound("No such family member.")
        if queries.member_of_card(conn, card_id) is not None:
            raise Conflict(f"{card['display_name']} already uses this card on their own phone.")
        earlier = queries.invite_by_hash(conn, token_hash)
        if earlier is not None:  # our own attempt whose COMMIT answer was lost
            return Invite(token, card["display_name"], earlier["expires_at"])
        now = utcnow()
        queries.revoke_pending_invites(conn, card_id, now)
        queries.insert_invite(conn, token_hash=token_hash, account_id=owner_id, card_id=card_id,
                              created_at=now, expires_at=now + INVITE_TTL)
        return Invite(token, card["display_name"], now + INVITE_TTL)

    # Idempotent: the token is random to this call; a second run finds its own row.
    return db.write(work, name="family.invite", idempotent=True)


def _usable(conn: Connection, token: str) -> tuple[dict, dict]:
    invite = queries.invite_by_hash(conn, _hash(token)) if token else None
    if invite is None:
        raise InviteGone("unknown")
    if invite["used_at"] is not None:
        raise InviteGone("used")
    if invite["revoked_at"] is not None:
        raise InviteGone("revoked")
    if invite["expires_at"] <= utcnow():
        raise InviteGone("expired")
    card = queries.family_card(conn, invite["account_id"], invite["card_id"])
    if card is None or card["slot"] is None:
        raise InviteGone("revoked")
    return invite, card


def check(token: str) -> dict:
    """The card an open invite is for, or :class:`InviteGone`."""
    return db.read(lambda conn: _usable(conn, token)[1], name="family.invite_check",
                   causal=True)


def accept(token: str, *, email: str, password: str) -> dict:
    """Creates the member's own sign-in for the invited card, spending the invite."""
    email = email.strip().lower()
    password_hash = hasher.hash(password)

    def work(conn: Connection) -> dict:
        if after_unknown_commit(conn):
            # The hash has a fresh random salt: only this call's own row carries it.
            mine = account_queries.account_by_email(conn, email)
            if mine is not None and mine["password_hash"] == password_hash:
                return mine
        invite, card = _usable(conn, token)
        if queries.member_of_card(conn, card["id"]) is not None:
            raise InviteGone("used")
        now = utcnow()
        if not queries.claim_invite(conn, invite["id"], now):
            raise InviteGone("used")  # another phone took it a moment ago
        owner = account_queries.account_by_id(conn, invite["account_id"])
        member_id = account_queries.insert_account(
            conn, email=email, name=card["display_name"], password_hash=password_hash,
            home_region=owner["home_region"], role="member", member_card_id=card["id"],
            created_at=now,
            # Signs in at once: the owner's single-use link is what vouches for this
            # phone. The address itself is not proven by a mailed link (yet).
            email_verified_at=now,
        )
        queries.set_invite_member(conn, invite["id"], member_id)
        return account_queries.account_by_id(conn, member_id)

    try:
        # Idempotent: a second run recognises its own account (above).
        return db.write(work, name="family.accept", idempotent=True)
    except sa_exc.IntegrityError as error:
        # The email is taken (or the card got a sign-in at the same moment): nothing
        # was written, the invite is still open.
        raise EmailTaken("We could not create a sign-in with this email. If you already "
                         "have one, use another email for this card.") from error


def revoke_invites(owner_id: int, card_id: int) -> None:
    def work(conn: Connection) -> None:
        if queries.family_card(conn, owner_id, card_id) is None:
            raise NotFound("No such family member.")
        queries.revoke_pending_invites(conn, card_id, utcnow())

    # Idempotent: revoking revoked invites changes nothing.
    db.write(work, name="family.invite_revoke", idempotent=True)


def _remove_member(conn: Connection, card_id: int) -> bool:
    member = queries.member_of_card(conn, card_id)
    queries.revoke_pending_invites(conn, card_id, utcnow())
    card_services.rotate_code_secret(conn, card_id)
    return member is not None and queries.delete_member(conn, member["id"])


def revoke_member(owner_id: int, card_id: int) -> None:
    """The member's phone loses the card: their sign-in is deleted (refused at their next
    request), the card's code secret rotated (their cached copy stops working)."""

    def work(conn: Connection) -> bool:
        if queries.family_card(conn, owner_id, card_id) is None:
            raise NotFound("No such family member.")
        return _remove_member(conn, card_id) or after_unknown_commit(conn)

    # Idempotent: after a lost answer, the member already gone counts as done; rotating
    # the secret once more does no harm.
    if not db.write(work, name="family.revoke_member", idempotent=True):
        raise NotFound("This family member does not use their own phone.")


def leave(member_id: int) -> None:
    """A member deletes their own sign-in; the card stays in the owner's family."""

    def work(conn: Connection) -> None:
        member = account_queries.account_by_id(conn, member_id)
        if member is None or member["role"] != "member":
            return  # already gone (our lost attempt, or revoked meanwhile)
        if member["member_card_id"] is not None:
            card_services.rotate_code_secret(conn, member["member_card_id"])
        queries.delete_member(conn, member_id)

    db.write(work, name="family.leave", idempotent=True)


def on_card_removed(conn: Connection, card_id: int) -> None:
    """Inside the family remove: the card's member sign-in and invites go with it."""
    _remove_member(conn, card_id)


def on_account_erased(conn: Connection, card_ids: list[int]) -> list[dict]:
    """Inside the owner's erasure: each card's member sign-in (which carries the card's
    name) and pending invites go with the cards. Returns the members removed, whose
    devices, links, passkeys and mail the erasure deletes as the owner's; the cards'
    code secrets are the erasure's to replace."""
    now = utcnow()
    removed = []
    for card_id in card_ids:
        queries.revoke_pending_invites(conn, card_id, now)
        member = queries.member_of_card(conn, card_id)
        if member is not None and queries.delete_member(conn, member["id"]):
            removed.append(member)
    return removed


def states(owner_id: int) -> dict[int, dict]:
    """Per family card: the member's email if they use their own phone, or the pending
    invite's expiry."""

    def work(conn: Connection) -> dict[int, dict]:
        result: dict[int, dict] = {}
        for invite in queries.pending_invites(conn, owner_id, utcnow()):
            result.setdefault(invite["card_id"], {})["invite_expires"] = invite["expires_at"]
        for member in queries.members_of_account(conn, owner_id):
            result.setdefault(member["member_card_id"], {})["member_email"] = member["email"]
        return result

    return db.read(work, name="family.states")
