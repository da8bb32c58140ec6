"""API v1 views: parse (declared in :func:`operation`), call a service, serialize.

Rules live in the services; a view only maps between the wire and them.
"""

from __future__ import annotations

from flask import current_app

from webapp import staff
from webapp.auth import services as accounts
from webapp.auth import throttle, tokens
from webapp.auth.limits import address_limit
from webapp.card import services as cards
from webapp.errors import NotFound, Unauthorized
from webapp.family import services as family
from webapp.ledger import services as ledger

from . import bp
from .auth import add_challenge, current_principal
from .openapi import REPLAYED_HEADER, document, operation
from .schemas import (
    Account,
    Card,
    CardLookup,
    EarnRequest,
    FamilyList,
    FamilyMember,
    FamilyMemberCreate,
    FamilyMemberUpdate,
    HistoryQuery,
    LedgerEntry,
    LookupRequest,
    Me,
    OpenApiDocument,
    Receipt,
    RefreshRequest,
    RegisterRequest,
    RegistrationAccepted,
    Store,
    StoreList,
    TokenRequest,
    TokenResponse,
    TransactionPage,
    TransactionRequest,
)

REGISTRATION_ACCEPTED = ("We have sent a message to the address you gave. Open the link in it "
                         "to finish.")


@bp.after_request
def _api_headers(response):
    # Tokens, balances and card secrets: nothing here may be kept by a shared cache.
    response.headers.setdefault("Cache-Control", "no-store")
    return add_challenge(response)


def _tokens(pair: tokens.TokenPair) -> dict:
    return {"access_token": pair.access_token, "refresh_token": pair.refresh_token,
            "expires_in": pair.expires_in}


# -- auth ---------------------------------------------------------------------------


@bp.post("/auth/register")
@operation(summary="Register a customer account (the address is verified by mail)",
           tag="auth", access="public", body=RegisterRequest,
           responses={202: RegistrationAccepted}, rate_limit=throttle.sign_up_limited,
           address_rate_limit=address_limit,
           description="Always 202 with the same body, whether or not the address already "
                       "has an account, so it reveals no one's address. The address's owner "
                       "gets a mail: a link that verifies the address (then sign in with "
                       "`/auth/token`), or a note that they already have an account. Until "
                       "the address is verified, `/auth/token` answers 401 as for a wrong "
                       "password.")
def register(body: RegisterRequest):
    accounts.start_registration(name=body.name, email=body.email, password=body.password,
                                region=body.region)
    return RegistrationAccepted(detail=REGISTRATION_ACCEPTED), 202


@bp.post("/auth/token")
@operation(summary="Sign in: email and password for a token pair", tag="auth",
           access="public", body=TokenRequest, responses={200: TokenResponse},
           problems=(401,), rate_limit=throttle.sign_in_limited,
           description="Shares its per-address limit with the sign-in page. Repeated "
                       "failures for one email from one address lock that pair for a "
                       "growing time (429 `too-many-attempts`, see Retry-After).")
def token(body: TokenRequest):
    account = accounts.authenticate(body.email, body.password, client=throttle.client())
    return TokenResponse(**_tokens(tokens.issue_token_pair(account)))


@bp.post("/auth/refresh")
@operation(summary="Spend a refresh token for a new pair", tag="auth", access="public",
           body=RefreshRequest, responses={200: TokenResponse}, problems=(401,),
           description="Each refresh token works once. Presenting a spent one again revokes "
                       "every token descended from the same sign-in.")
def refresh(body: RefreshRequest):
    return TokenResponse(**_tokens(tokens.rotate(body.refresh_token)))


@bp.post("/auth/logout")
@operation(summary="Sign out: revoke the refresh token and its descendants", tag="auth",
           access="public", body=RefreshRequest, responses={204: None},
           description="Always 204, so it reveals nothing about the token. Access tokens "
                       "already issued stay valid until they expire (minutes).")
def logout(body: RefreshRequest):
    tokens.revoke(body.refresh_token)


# -- the customer's account ---------------------------------------------------------


@bp.get("/me")
@operation(summary="The account, its cards and the shared balance", tag="account",
           responses={200: Me})
def me():
    principal = current_principal()
    account = accounts.account(principal.account_id)
    if account is None:
        raise Unauthorized("This account no longer exists.")
    wallet = cards.wallet(principal.account_id)
    return Me(account=Account.of(account), cards=[Card.of(c) for c in wallet.cards],
              balance=wallet.balance)


@bp.get("/family")
@operation(summary="Family members' cards", tag="family", responses={200: FamilyList})
def family_list():
    members = family.members(current_principal().account_id)
    return FamilyList(members=[FamilyMember.of(m) for m in members],
                      limit=current_app.config["FAMILY_LIMIT"])


@bp.post("/family")
@operation(summary="Add a family member with their own card", tag="family",
           body=FamilyMemberCreate, idempotent=True, idempotency_optional=True,
           responses={201: FamilyMember, 200: FamilyMember}, problems=(409,),
           description="Send an Idempotency-Key to make the request safe to send again "
                       "(after a timeout or a 503 outcome-unknown): a second request with "
                       "it answers 200 with the member the first one added.")
def family_add(body: FamilyMemberCreate, idempotency_key: str | None):
    added = family.add(current_principal().account_id, body.name, body.birthday,
                       request_id=idempotency_key)
    if added.replayed:
        return FamilyMember.of(added.card), 200, {REPLAYED_HEADER: "true"}
    return FamilyMember.of(added.card), 201


@bp.patch("/family/<int:card_id>")
@operation(summary="Rename a family member or change their birthday", tag="family",
           body=FamilyMemberUpdate, responses={200: FamilyMember}, problems=(404,))
def family_update(card_id: int, body: FamilyMemberUpdate):
    account_id = current_principal().account_id
    member = _family_member(account_id, card_id)
    name = body.name if "name" in body.model_fields_set else member["display_name"]
    birthday = body.birthday if "birthday" in body.model_fields_set else member["birthday"]
    family.rename(account_id, card_id, name, birthday)
    return FamilyMember.of(dict(member, display_name=name, birthday=birthday))


@bp.delete("/family/<int:card_id>")
@operation(summary="Remove a family member's card (their history stays)", tag="family",
           responses={204: None}, problems=(404,))
def family_remove(card_id: int):
    family.remove(current_principal().account_id, card_id)


def _family_member(account_id: int, card_id: int) -> dict:
    member = next((m for m in family.members(account_id) if m["id"] == card_id), None)
    if member is None:
        raise NotFound("No such family member.")
    return member


@bp.get("/wallet/transactions")
@operation(summary="The wallet's history, newest first", tag="account", query=HistoryQuery,
           responses={200: TransactionPage})
def wallet_transactions(query: HistoryQuery):
    wallet = cards.wallet(current_principal().account_id)
    rows = ledger.history(wallet.id, limit=query.limit + 1, before_id=query.cursor)
    page, more = rows[: query.limit], len(rows) > query.limit
    return TransactionPage(items=[LedgerEntry.of(row) for row in page],
                           next_cursor=page[-1]["id"] if more else None)


# -- the till -----------------------------------------------------------------------
# What staff may do is the rulebook's (webapp.staff.services), the same one the till
# pages call: these views only map the wire to it.


def _receipt_reply(receipt: ledger.Receipt):
    if receipt.replayed:
        return Receipt.of(receipt), 200, {REPLAYED_HEADER: "true"}
    return Receipt.of(receipt), 201


_STAFF_RULES = (
    " A barista books only at their home store, never on their own wallet (their own or "
    "their family's cards), and purchases above the staff limit per currency need a "
    "manager: those are refused with 403 and change nothing.")


@bp.post("/lookup")
@operation(summary="Look up a scanned or typed card at the till", tag="till",
           access="staff", body=LookupRequest, responses={200: CardLookup},
           problems=(404,),
           description="What the barista sees after a scan: the first name, the card's last "
                       "4 digits and the shared balance. A POST, so a live card code never "
                       "lands in a URL or an access log. An expired rotating code is 422.")
def lookup(body: LookupRequest):
    return CardLookup.of(staff.lookup(current_principal(), body.card))


@bp.post("/transactions")
@operation(summary="Earn or redeem coins at the till", tag="till", access="staff",
           body=TransactionRequest, idempotent=True, responses={201: Receipt, 200: Receipt},
           problems=(404, 409, 428), checks_session_itself=True,
           description="The card is the number or the rotating QR payload. An earn goes by "
                       "the card number in either (a rotating code that has since expired "
                       "still identifies the card); a redemption needs a live rotating code, "
                       "or the number with `confirm_static`. An earn's amount is in the "
                       "store's currency; coins are whole. The store is the staff account's "
                       "home store; `store` may only name it (an admin may name any)."
                       + _STAFF_RULES)
def create_transaction(body: TransactionRequest, idempotency_key: str):
    principal = current_principal()
    if isinstance(body, EarnRequest):
        receipt = staff.earn(principal, card=body.card, amount_minor=body.amount_minor,
                             currency=body.currency, key=idempotency_key, store=body.store)
    else:
        receipt = staff.redeem(principal, card=body.card, coins=body.coins,
                               key=idempotency_key, confirmed=body.confirm_static,
                               store=body.store, reward_id=body.reward)
    return _receipt_reply(receipt)


@bp.post("/transactions/<int:transaction_id>/reversal")
@operation(summary="Reverse an earn or a redemption, once", tag="till", access="staff",
           idempotent=True, responses={201: Receipt, 200: Receipt}, problems=(404, 409),
           description="Within the reversal window; fails if the coins were already spent. "
                       "A barista reverses only their own transactions (403 otherwise); an "
                       "admin any. Nobody reverses a transaction on their own wallet.")
def reverse_transaction(transaction_id: int, idempotency_key: str):
    return _receipt_reply(staff.reverse(current_principal(), transaction_id=transaction_id,
                                        key=idempotency_key))


@bp.get("/stores")
@operation(summary="Stores, their currency and earn rate", tag="stores", access="public",
           responses={200: StoreList})
def stores():
    return StoreList(stores=[Store.of(row) for row in ledger.stores()])


@bp.get("/openapi.json")
@operation(summary="This document", tag="meta", access="public", uses_database=False,
           responses={200: OpenApiDocument})
def openapi():
    cached = current_app.extensions.get("api_openapi")
    if cached is None:
        cached = current_app.extensions["api_openapi"] = document(current_app)
    return OpenApiDocument(cached)
