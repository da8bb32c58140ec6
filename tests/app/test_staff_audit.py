"""What the rulebook writes to the audit log for the till and the API alike: one row per
booking (who, at which store, on whose wallet, which ledger row, what moved), none more
for a replayed request, and a row for a refused booking on the staff member's own wallet."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import insert, select

from tests.helpers import PASSWORD
from tests.ledger_helpers import ledger_count, new_customer
from webapp.auth.services import register
from webapp.auth.tokens import Principal
from webapp.card.queries import active_cards
from webapp.database.schema import audit_log, rewards
from webapp.errors import OwnWallet, ValidationFailed
from webapp.extensions import db
from webapp.ledger.queries import store_by_code
from webapp.staff import create_staff
from webapp.staff import services as staff

HOME = "US-NYC-01"


def _principal(account: dict) -> Principal:
    return Principal(account["id"], account["role"], account["name"])


def _audit() -> list[dict]:
    return db.read(lambda conn: [dict(r) for r in conn.execute(
        select(audit_log).order_by(audit_log.c.id)).mappings()], name="test.audit",
        causal=True)


def _barista() -> dict:
    return create_staff(email="sam@example.com", store_code=HOME, name="Sam",
                        password=PASSWORD)


def _manager() -> dict:
    return create_staff(email="meg@example.com", store_code=HOME, name="Meg",
                        password=PASSWORD, role="manager")


def _shape(row: dict) -> tuple:
    return (row["actor_id"], row["actor_role"], row["action"], row["region"],
            row["store_id"], row["subject_id"], row["target"],
            json.loads(row["details"]) if row["details"] else None)


def test_each_booking_is_audited_once_with_what_it_did(app):
    with app.app_context():
        sam, meg = _barista(), _manager()
        cleo = new_customer("cleo@example.com", name="Cleo Customer")
        owner = cleo["account"]["id"]
        store_id = db.read(lambda conn: store_by_code(conn, HOME)["id"], name="test.store")
        coffee = db.write(lambda conn: conn.execute(insert(rewards).values(
            region="us", name="Coffee", coins=3, active=True, sort=0)).inserted_primary_key[0],
            name="test.reward")
        by_sam, by_meg = _principal(sam), _principal(meg)
        key = uuid.uuid4().hex
        bought = staff.earn(by_sam, card=cleo["number"], amount_minor=1200, currency="USD",
                            key=key)
        staff.earn(by_sam, card=cleo["number"], amount_minor=1200, currency="USD", key=key)
        spent = staff.redeem(by_sam, card=cleo["number"], coins=None, key=uuid.uuid4().hex,
                             confirmed=True, reward_id=coffee)
        undone = staff.reverse(by_meg, transaction_id=spent.transaction_id,
                               key=uuid.uuid4().hex, reason="Wrong reward")
        plain = staff.reverse(by_sam, transaction_id=bought.transaction_id,
                              key=uuid.uuid4().hex)
        rows = _audit()
        assert [_shape(row) for row in rows] == [
            (sam["id"], "staff", "earn", "us", store_id, owner,
             f"ledger:{bought.transaction_id}", {"coins": 12}),
            (sam["id"], "staff", "redeem", "us", store_id, owner,
             f"ledger:{spent.transaction_id}", {"coins": -3, "reward": coffee}),
            (meg["id"], "manager", "reversal", "us", store_id, owner,
             f"ledger:{undone.transaction_id}",
             {"coins": 3, "reverses": spent.transaction_id, "reason": "Wrong reward"}),
            (sam["id"], "staff", "reversal", "us", store_id, owner,
             f"ledger:{plain.transaction_id}",
             {"coins": -12, "reverses": bought.transaction_id}),
        ]
        assert [row["event_key"] for row in rows] == [
            f"ledger:{r.transaction_id}" for r in (bought, spent, undone, plain)]


def test_a_booking_on_ones_own_wallet_is_refused_and_audited(app):
    with app.app_context():
        sam = _barista()
        store_id = db.read(lambda conn: store_by_code(conn, HOME)["id"], name="test.store")
        own = db.read(lambda conn: active_cards(conn, sam["id"])[0]["number"], name="test.card")
        refusal = ("This card is on your own wallet (yours or your family's): "
                   "ask a colleague to book it.")
        with pytest.raises(OwnWallet) as error:
            staff.earn(_principal(sam), card=own, amount_minor=1200, currency="USD",
                       key=uuid.uuid4().hex)
        assert error.value.detail == refusal
        assert [_shape(row) for row in _audit()] == [
            (sam["id"], "staff", "refused", "us", store_id, sam["id"], None,
             {"attempted": "earn", "rule": "own-wallet"})]


def test_a_redemption_or_reversal_on_ones_own_wallet_is_audited_as_such(app):
    with app.app_context():
        sam, meg = _barista(), _manager()
        def card_of(account):
            return db.read(lambda conn: active_cards(conn, account["id"])[0]["number"],
                           name="test.card")

        staff.earn(_principal(meg), card=card_of(sam), amount_minor=1200, currency="USD",
                   key=uuid.uuid4().hex)
        megs = staff.earn(_principal(sam), card=card_of(meg), amount_minor=1200,
                          currency="USD", key=uuid.uuid4().hex)
        with pytest.raises(OwnWallet):
            staff.redeem(_principal(sam), card=card_of(sam), coins=2, key=uuid.uuid4().hex,
                         confirmed=True)
        with pytest.raises(OwnWallet):  # a manager may reverse Sam's sale, not on her wallet
            staff.reverse(_principal(meg), transaction_id=megs.transaction_id,
                          key=uuid.uuid4().hex)
        refused = [json.loads(row["details"]) for row in _audit() if row["action"] == "refused"]
        assert refused == [{"attempted": "redeem", "rule": "own-wallet"},
                           {"attempted": "reversal", "rule": "own-wallet"}]


@pytest.mark.parametrize("which", ["unknown", "inactive", "other-region"])
def test_a_reward_not_offered_at_the_store_is_refused(app, which):
    with app.app_context():
        sam = _barista()
        cleo = new_customer("cleo@example.com", name="Cleo Customer")
        staff.earn(_principal(sam), card=cleo["number"], amount_minor=5000, currency="USD",
                   key=uuid.uuid4().hex)
        region, active = {"unknown": ("us", True), "inactive": ("us", False),
                          "other-region": ("ie", True)}[which]
        reward = db.write(lambda conn: conn.execute(insert(rewards).values(
            region=region, name="Coffee", coins=3, active=active, sort=0))
            .inserted_primary_key[0], name="test.reward")
        with pytest.raises(ValidationFailed) as error:
            staff.redeem(_principal(sam), card=cleo["number"], coins=None,
                         key=uuid.uuid4().hex, confirmed=True,
                         reward_id=reward + 1000 if which == "unknown" else reward)
        assert error.value.errors == {"reward": ["That reward is not offered at this store."]}
        assert ledger_count() == 1


def test_an_admin_without_a_home_store_is_refused_on_their_own_wallet_and_audited(app):
    # A global admin books at a store they name; the refusal's log line has no store of
    # theirs to name.
    with app.app_context():
        ada = register(name="Ada", email="ada@example.com", password=PASSWORD, region="us",
                       role="admin", store_id=None)
        own = db.read(lambda conn: active_cards(conn, ada["id"])[0]["number"], name="test.card")
        with pytest.raises(OwnWallet):
            staff.earn(_principal(ada), card=own, amount_minor=1200, currency="USD",
                       key=uuid.uuid4().hex, store=HOME)
        assert [_shape(row) for row in _audit()] == [
            (ada["id"], "admin", "refused", None, None, ada["id"], None,
             {"attempted": "earn", "rule": "own-wallet"})]
        assert ledger_count() == 0
