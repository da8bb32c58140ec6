"""Coin expiry racing itself and the tills, on the real three-node Galera lab.

One in-process app per region (us, ie, in), each writing to its own node. Time comes from
a controllable clock; the coins were earned "a year ago". What must hold:

* two regions running the expiry at the same moment expire each wallet's coins once;
* a redeem racing the expiry: never both (the redeem succeeds and the coins live on, or
  the coins expire and the redeem finds none), never negative;
* an earn or redeem that commits on another node *while* the expiry's transaction is
  open, before its debit, cancels the expiry (the re-check after the debit, and the
  conditional UPDATE of the balance);
* an expiry whose COMMIT answer is lost is retried on another member and applied once;
* every node ends with the same ledger and balances, each balance its ledger's sum.
"""

from __future__ import annotations

import collections
import threading
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from db.seed import seed_stores
from labs.ackloss import AckLossProxy
from labs.stack import router_of
from tests.helpers import Clock, wait_for
from tests.ledger_helpers import new_customer
from webapp import create_app
from webapp.config import REGIONS
from webapp.errors import InsufficientCoins
from webapp.expiry import queries as expiry_queries
from webapp.expiry import services as expiry
from webapp.extensions import db
from webapp.ledger import queries as ledger_queries
from webapp.ledger import services as ledger

pytestmark = [pytest.mark.mariadb, pytest.mark.cluster]

START = datetime(2025, 1, 12, 10, 0)
DUE = datetime(2026, 1, 12, 11, 0)  # an hour past the 12 months
NODE = {region: i for i, region in enumerate(REGIONS)}
STORE = {"us": "US-NYC-01", "ie": "IE-DUB-01", "in": "IN-BLR-01"}


@pytest.fixture
def clock(monkeypatch):
    return Clock.install(monkeypatch, START)


@pytest.fixture
def apps(galera_clean, cluster_apps):
    made = {region: cluster_apps(region) for region in REGIONS}
    with made["us"].app_context():
        seed_stores()
    return made


def customers_with_coins(app, count: int, coins: int = 40) -> list[dict]:
    made = []
    with app.app_context():
        for _ in range(count):
            customer = new_customer(f"expiry-{uuid.uuid4().hex[:12]}@example.com")
            ledger.earn(card=customer["number"], store_code="US-NYC-01",
                        amount_minor=coins * 100, currency="USD",
                        idempotency_key=f"seed-{uuid.uuid4().hex}", staff_id=None)
            made.append(customer)
    return made


def redeem(app, number: str, coins: int):
    region = app.config["REGION"]
    with app.app_context():
        return ledger.redeem(card=number, store_code=STORE[region], coins=coins,
                             idempotency_key=f"race-{uuid.uuid4().hex}", staff_id=None,
                             confirmed=True)


def earn(app, number: str, coins: int):
    with app.app_context():
        return ledger.earn(card=number, store_code="US-NYC-01", amount_minor=coins * 100,
                           currency="USD", idempotency_key=f"race-{uuid.uuid4().hex}",
                           staff_id=None)


def warm_up(app) -> None:
    with app.app_context():
        for _ in range(3):
            db.read(lambda conn: conn.execute(text("SELECT 1")).scalar(), name="test.warm",
                    causal=True)


def snapshot(lab, node: int) -> dict:
    """The ledger and balances as ``node`` has them, after applying everything committed."""
    with lab.admin_connect(node) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION wsrep_sync_wait = 1")
        cur.execute("SELECT id, wallet_id, kind, coins, idempotency_key FROM loyalty.ledger")
        rows = sorted(cur.fetchall())
        cur.execute("SELECT id, balance FROM loyalty.wallets")
        balances = dict(cur.fetchall())
    return {"ledger": rows, "balances": balances}


def verified(lab) -> dict:
    """Every node holds the same ledger and balances; each balance is its ledger's sum
    and never negative. Returns the first node's snapshot."""
    snapshots = [snapshot(lab, node) for node in range(len(REGIONS))]
    for node, other in enumerate(snapshots[1:], start=1):
        assert other == snapshots[0], f"node {REGIONS[node]} differs from {REGIONS[0]}"
    sums: collections.Counter[int] = collections.Counter()
    for _id, wallet_id, _kind, coins, _key in snapshots[0]["ledger"]:
        sums[wallet_id] += coins
    for wallet_id, balance in snapshots[0]["balances"].items():
        assert balance >= 0, f"wallet {wallet_id} is negative: {balance}"
        assert balance == sums[wallet_id], f"wallet {wallet_id}: {balance} != {sums[wallet_id]}"
    return snapshots[0]


def expiries(state: dict, wallet_id: int) -> list[int]:
    return [coins for _id, wallet, kind, coins, _key in state["ledger"]
            if wallet == wallet_id and kind == "expiry"]


def balance_on(lab, node: int, wallet_id: int) -> int:
    with lab.admin_connect(node) as conn, conn.cursor() as cur:
        cur.execute("SELECT balance FROM loyalty.wallets WHERE id = %s", (wallet_id,))
        return cur.fetchone()[0]


# ------------------------------------------------------------------------- the race
def test_two_regions_and_a_redeem_at_the_same_moment(galera_clean, apps, clock):
    """us and in run the expiry over the same wallets while a till in ie redeems from
    each: every wallet ends either redeemed (no expiry) or expired once (redeem refused)."""
    lab = galera_clean
    customers = customers_with_coins(apps["us"], 16)
    clock.set(DUE)
    summaries: dict[str, expiry.Summary] = {}
    redeemed: dict[int, str] = {}
    start = threading.Barrier(3)

    def run_expiry(region: str) -> None:
        with apps[region].app_context():
            start.wait(30)
            summaries[region] = expiry.expire_due()

    def till() -> None:
        # From the other end of the list than the expiry (which goes by wallet id), so
        # the two meet somewhere in the middle; the exact split is the race's.
        order = list(reversed(customers))
        start.wait(30)
        for customer in order:
            try:
                redeem(apps["ie"], customer["number"], 5)
                redeemed[customer["wallet_id"]] = "ok"
            except InsufficientCoins:
                redeemed[customer["wallet_id"]] = "refused"
            except Exception as error:  # every outcome is data here
                redeemed[customer["wallet_id"]] = f"{type(error).__name__}: {error}"

    for app in apps.values():  # connections and member health settled before the start
        warm_up(app)
    threads = [threading.Thread(target=run_expiry, args=(r,)) for r in ("us", "in")]
    threads.append(threading.Thread(target=till))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert set(summaries) == {"us", "in"}
    assert summaries["us"].failed == summaries["in"].failed == []

    state = verified(lab)
    for customer in customers:
        wallet_id = customer["wallet_id"]
        expired, outcome = expiries(state, wallet_id), redeemed[wallet_id]
        assert outcome in ("ok", "refused"), outcome
        if outcome == "ok":  # the redeem won: the coins live on
            assert expired == [], f"wallet {wallet_id} redeemed and expired"
            assert state["balances"][wallet_id] == 35
        else:  # the expiry won, once, with all 40 coins
            assert expired == [-40], f"wallet {wallet_id}: {expired}"
            assert state["balances"][wallet_id] == 0
    booked = sum(s.count(expiry.EXPIRED) for s in summaries.values())
    assert booked == sum(len(expiries(state, c["wallet_id"])) for c in customers)
    stats = {region: router_of(app).stats.snapshot() for region, app in apps.items()}
    print(f"\n[expiry race] wallets {len(customers)}: expired "
          f"{sum(v == 'refused' for v in redeemed.values())}, redeemed first "
          f"{sum(v == 'ok' for v in redeemed.values())}; per run "
          + ", ".join(f"{r}: {s.count(expiry.EXPIRED)} expired, {s.count(expiry.ALREADY)} "
                      f"already, {s.count(expiry.ACTIVE)} kept" for r, s in summaries.items())
          + "; conflicts " + ", ".join(f"{r} {s['conflicts']}" for r, s in stats.items()))

    # Tomorrow's runs, in both regions: nothing more.
    clock.set(DUE + timedelta(days=1))
    for region in ("us", "in"):
        with apps[region].app_context():
            assert expiry.expire_due().count(expiry.EXPIRED) == 0
    assert verified(lab) == state


# ------------------------------------------------- a movement inside the expiry's window
class Pause:
    """Holds the expiry's transaction at one call (the first, in the expiry's own thread
    only: the tills call the same functions) until the test releases it."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()
        self.thread: threading.Thread | None = None

    def around(self, original):
        def paused(*args, **kwargs):
            if threading.current_thread() is self.thread and not self.reached.is_set():
                self.reached.set()
                assert self.release.wait(60), "the test never released the expiry"
            return original(*args, **kwargs)

        return paused


def _expire_paused(app, wallet_id: int, pause: Pause) -> tuple[threading.Thread, list]:
    result: list = []

    def run() -> None:
        with app.app_context():
            result.append(expiry.expire_wallet(wallet_id))

    pause.thread = threading.Thread(target=run)
    pause.thread.start()
    assert pause.reached.wait(30), "the expiry never reached the pause"
    return pause.thread, result


def _movement_while_the_expiry_waits(lab, apps, monkeypatch, customer, module, function: str,
                                     move, balance: int, what: str) -> None:
    """Runs the expiry on the us node and holds it at ``module.function`` while ``move``
    commits on another node and reaches the us node (the wallet then holds ``balance``);
    then lets it finish. It must see the activity: nothing expired, ``balance`` kept."""
    pause = Pause()
    monkeypatch.setattr(module, function, pause.around(getattr(module, function)))
    thread, result = _expire_paused(apps["us"], customer["wallet_id"], pause)

    move()
    wait_for(lambda: balance_on(lab, NODE["us"], customer["wallet_id"]) == balance, 10,
             f"the {what} to be applied on the us node")
    pause.release.set()
    thread.join(60)

    assert [o.status for o in result] == [expiry.ACTIVE]
    state = verified(lab)
    assert expiries(state, customer["wallet_id"]) == []
    assert state["balances"][customer["wallet_id"]] == balance


def test_an_earn_committed_elsewhere_after_the_expirys_first_look_cancels_it(
        galera_clean, apps, clock, monkeypatch):
    """The expiry (us node) has found the wallet idle and is about to read the balance
    and debit it; an earn commits on the ie node and reaches the us node first. The debit
    then succeeds (there are coins), so only the re-check after it can see the new
    activity: the expiry must roll back, not take the fresh coins with the old."""
    (customer,) = customers_with_coins(apps["us"], 1)
    clock.set(DUE)
    _movement_while_the_expiry_waits(
        galera_clean, apps, monkeypatch, customer, expiry_queries, "wallet",
        lambda: earn(apps["ie"], customer["number"], 10), balance=50, what="earn")


def test_a_redeem_committed_elsewhere_before_the_debit_cancels_it(
        galera_clean, apps, clock, monkeypatch):
    """The expiry has read 40 coins; a till in India redeems 5 before the debit. The
    conditional UPDATE (balance - 40 >= 0) refuses, the expiry runs again from the top
    and finds the redemption: no expiry, 35 coins, never negative."""
    (customer,) = customers_with_coins(apps["us"], 1)
    clock.set(DUE)
    _movement_while_the_expiry_waits(
        galera_clean, apps, monkeypatch, customer, ledger_queries, "apply_to_wallet",
        lambda: redeem(apps["in"], customer["number"], 5), balance=35, what="redeem")
    assert router_of(apps["us"]).stats.snapshot()["conflicts"] >= 1  # the rerun


# ------------------------------------------------------------ a lost COMMIT answer
def test_an_expiry_whose_commit_answer_was_lost_is_applied_once(galera_clean, clock):
    lab = galera_clean
    proxies = {region: AckLossProxy(("127.0.0.1", lab.port(i))).start()
               for i, region in enumerate(REGIONS)}
    members = ",".join(
        f"{region}={lab.dsn(i).replace(f':{lab.port(i)}/', f':{proxies[region].port}/')}"
        for i, region in enumerate(REGIONS))
    app = create_app({"PROFILE": "test", "CLUSTER": members, "CLUSTER_KIND": "galera",
                      "REGION": "us"})
    try:
        with app.app_context():
            seed_stores()
        (customer,) = customers_with_coins(app, 1)
        clock.set(DUE)
        proxies["us"].arm(1, statement=rb"INSERT INTO ledger")
        with app.app_context():
            outcome = expiry.expire_wallet(customer["wallet_id"])
        drops = proxies["us"].drops
        assert [drop.reply for drop in drops] == ["ok"], drops  # it was committed
        assert router_of(app).stats.snapshot()["retries"].get("commit_unknown") == 1
        # The retry found its own row: expired by this call, once, not "already".
        assert (outcome.status, outcome.coins) == (expiry.EXPIRED, 40)
        state = verified(lab)
        assert expiries(state, customer["wallet_id"]) == [-40]
        assert state["balances"][customer["wallet_id"]] == 0
    finally:
        router_of(app).dispose()
        for proxy in proxies.values():
            proxy.stop()
