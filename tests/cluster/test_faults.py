"""Fault drills: kill real Galera nodes under load and prove the ledger loses nothing.

Load goes through the product's own service layer (``webapp.ledger.services.earn`` and
``redeem``) in three app instances, one per region (us, ie, in), each configured with
the whole cluster, from several threads at once. After each fault the ledger is read
from every live node directly and checked against what the clients were told:

* every acknowledged transaction is in the ledger exactly once, with the coins asked,
  on every node; a refused one ("not enough coins") is not there at all;
* an unacknowledged one (unknown outcome) is either wholly there or wholly absent:
  every wallet's balance equals the sum of its ledger rows, and none is negative;
* every node holds the same ledger and the same balances.

The tests share the session lab and run in file order; each starts from a healthy
cluster and leaves it healthy (the rejoin test finishes what the kill test started).
Numbers are printed (``-s``) and written to ``reports/faults.json``.
"""

from __future__ import annotations

import collections
import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import g

from db.seed import seed_stores
from labs.latency import distribution
from labs.primary_watch import PrimaryWatch
from labs.stack import cluster_app, cluster_apps, router_of
from tests.helpers import ROOT, AuthActions, wait_for
from tests.lab_plugin import empty_app_tables
from webapp.auth.services import register
from webapp.card.queries import active_cards
from webapp.config import REGIONS
from webapp.database.cluster import MemberState
from webapp.errors import InsufficientCoins, ServiceUnavailable
from webapp.extensions import db
from webapp.ledger import services as ledger

pytestmark = [pytest.mark.mariadb, pytest.mark.cluster]

NODE = {region: i for i, region in enumerate(REGIONS)}
# store code, currency, minor units per coin (db/seed.py)
STORES = {
    "us": ("US-NYC-01", "USD", 100),
    "ie": ("IE-DUB-01", "EUR", 100),
    "in": ("IN-BLR-01", "INR", 8000),
}
REPORT = ROOT / "reports" / "faults.json"
STARTED = time.monotonic()


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def lab(request):
    lab = request.getfixturevalue("galera_schema")
    lab.heal()
    empty_app_tables(lab)
    yield lab
    lab.heal()


@pytest.fixture(scope="module")
def apps(lab) -> Iterator[dict[str, Any]]:
    with cluster_apps(lab) as apps:
        with apps["us"].app_context():
            seed_stores()
        yield apps
    _write_report("total_runtime_s", round(time.monotonic() - STARTED, 1))


def _write_report(section: str, data: Any) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    report = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    report[section] = data
    REPORT.write_text(json.dumps(report, indent=2, default=str))
    print(f"\n[{section}] {json.dumps(data, default=str)}")


def sees(app, states: dict[str, MemberState]) -> bool:
    cluster = router_of(app).cluster
    return all(cluster.member(name).state is state for name, state in states.items())


def ensure_healthy(lab, apps) -> None:
    lab.heal()
    everyone_up = dict.fromkeys(REGIONS, MemberState.UP)
    for app in apps.values():
        router_of(app).cluster.ensure_started()
        wait_for(lambda app=app: sees(app, everyone_up), 15, "every app to see 3 members up")


# ---------------------------------------------------------------------------- customers
@dataclass(frozen=True)
class Customer:
    wallet_id: int
    number: str


def make_customers(app, count: int, coins: int) -> list[Customer]:
    customers = []
    with app.app_context():
        for _ in range(count):
            account = register(
                name="Fault Drill",
                email=f"drill-{uuid.uuid4().hex}@example.com",
                password="correct-horse-battery",
                region="us",
            )
            card = db.read(lambda conn, a=account: active_cards(conn, a["id"])[0], name="t")
            customer = Customer(card["wallet_id"], card["number"])
            if coins:
                ledger.earn(
                    card=customer.number,
                    store_code="US-NYC-01",
                    amount_minor=coins * 100,
                    currency="USD",
                    idempotency_key=f"seed-{uuid.uuid4().hex}",
                    staff_id=None,
                )
            customers.append(customer)
    return customers


def earn(app, customer: Customer, coins: int, key: str):
    store, currency, rate = STORES[app.config["REGION"]]
    return ledger.earn(
        card=customer.number,
        store_code=store,
        amount_minor=coins * rate,
        currency=currency,
        idempotency_key=key,
        staff_id=None,
    )


def redeem(app, customer: Customer, coins: int, key: str):
    store = STORES[app.config["REGION"]][0]
    return ledger.redeem(
        card=customer.number,
        store_code=store,
        coins=coins,
        idempotency_key=key,
        staff_id=None,
        confirmed=True,
    )


# ---------------------------------------------------------------------------- load
@dataclass
class Outcome:
    key: str
    app: str
    thread: str
    kind: str
    wallet_id: int
    coins: int  # signed: what the ledger row must say if it was applied
    started: float
    finished: float
    status: str  # ok | refused (definitely not applied) | failed (outcome unknown)
    member: str | None = None
    error: str | None = None
    exception: BaseException | None = None  # what the service raised, when it failed

    @property
    def clean_failure(self) -> bool:
        """Failed the way the product promises: a 503 (ServiceUnavailable, refused, or
        OutcomeUnknown: retry with the same key), never a raw driver error or a 500."""
        return isinstance(self.exception, ServiceUnavailable)


@dataclass
class Load:
    """Earn/redeem traffic through the service layer of every app, several threads each."""

    apps: dict[str, Any]
    customers: list[Customer]
    threads_per_app: int = 2
    redeem_share: float = 0.4
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._worker, args=(region, n), daemon=True, name=f"load-{region}-{n}"
            )
            for region in self.apps
            for n in range(self.threads_per_app)
        ]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def acknowledged(
        self, app: str, *, after: float = 0.0, member: str | None = None, elsewhere: bool = False
    ) -> int:
        """Acknowledged transactions of ``app`` started after ``after`` (on ``member``, or
        on any other member than the app's own with ``elsewhere``)."""
        return sum(
            o.status == "ok"
            and o.app == app
            and o.started > after
            and (member is None or o.member == member)
            and (not elsewhere or o.member != app)
            for o in list(self.outcomes)
        )

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
            assert not thread.is_alive(), f"{thread.name} is stuck"
        return self.outcomes

    def _worker(self, region: str, n: int) -> None:
        app = self.apps[region]
        rng = random.Random(f"{self.run_id}-{region}-{n}")
        thread = f"{region}-{n}"
        for seq in range(1_000_000):
            if self._stop.is_set():
                return
            customer = rng.choice(self.customers)
            key = f"load-{self.run_id}-{thread}-{seq}"
            kind = "redeem" if rng.random() < self.redeem_share else "earn"
            coins = rng.randint(1, 3) if kind == "redeem" else rng.randint(1, 5)
            outcome = Outcome(
                key,
                region,
                thread,
                kind,
                customer.wallet_id,
                -coins if kind == "redeem" else coins,
                time.monotonic(),
                0.0,
                "failed",
            )
            with app.app_context():
                try:
                    if kind == "redeem":
                        redeem(app, customer, coins, key)
                    else:
                        earn(app, customer, coins, key)
                    outcome.status = "ok"
                    outcome.member = g.get("db_member")
                except InsufficientCoins:
                    outcome.status = "refused"
                except Exception as error:  # every failure is data here
                    outcome.error = f"{type(error).__name__}: {error}"[:200]
                    outcome.exception = error
            outcome.finished = time.monotonic()
            self.outcomes.append(outcome)
            if outcome.status == "failed":
                time.sleep(0.05)  # the service said "try again later"; a till would wait


# ---------------------------------------------------------------------------- verification
def node_snapshot(lab, node: int) -> dict[str, Any]:
    with lab.admin_connect(node) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION wsrep_sync_wait = 1")  # everything committed anywhere
        cur.execute("SELECT id, wallet_id, idempotency_key, coins FROM loyalty.ledger")
        rows = sorted(cur.fetchall())
        cur.execute("SELECT id, balance FROM loyalty.wallets")
        balances = dict(cur.fetchall())
    return {"ledger": rows, "balances": balances}


def verify(lab, nodes: list[int], outcomes: list[Outcome]) -> dict[str, Any]:
    """The ledger promises, checked on every node in ``nodes``; returns the counts."""
    snapshots = {node: node_snapshot(lab, node) for node in nodes}
    reference = snapshots[nodes[0]]
    for node, snapshot in snapshots.items():
        assert snapshot["ledger"] == reference["ledger"], f"node {node} ledger differs"
        assert snapshot["balances"] == reference["balances"], f"node {node} balances differ"
    rows_by_key = collections.defaultdict(list)
    sums: collections.Counter[int] = collections.Counter()
    for _id, wallet_id, key, coins in reference["ledger"]:
        rows_by_key[key].append((wallet_id, coins))
        sums[wallet_id] += coins
    for wallet_id, balance in reference["balances"].items():
        assert balance >= 0, f"wallet {wallet_id} negative: {balance}"
        assert balance == sums[wallet_id], (
            f"wallet {wallet_id}: balance {balance} != ledger sum {sums[wallet_id]}"
        )
    missing = [o for o in outcomes if o.status == "ok" and not rows_by_key.get(o.key)]
    assert not missing, f"{len(missing)} acknowledged transactions lost, e.g. {missing[:3]}"
    for outcome in outcomes:
        rows = rows_by_key.get(outcome.key, [])
        assert len(rows) <= 1, f"{outcome.key} applied {len(rows)} times"
        if outcome.status == "ok":
            assert rows == [(outcome.wallet_id, outcome.coins)], (outcome, rows)
        elif outcome.status == "refused":
            assert rows == [], f"refused {outcome.key} was applied"
    known = {o.key for o in outcomes}
    prefixes = {o.key.rsplit("-", 2)[0] for o in outcomes}
    strays = [key for key in rows_by_key if key.rsplit("-", 2)[0] in prefixes and key not in known]
    assert not strays, f"ledger rows no client asked for: {strays[:3]}"
    unknown = [o for o in outcomes if o.status == "failed"]
    return {
        "nodes_checked": [REGIONS[n] for n in nodes],
        "attempted": len(outcomes),
        "acknowledged": sum(o.status == "ok" for o in outcomes),
        "refused_insufficient": sum(o.status == "refused" for o in outcomes),
        "unknown_outcome": len(unknown),
        "unknown_but_applied": sum(bool(rows_by_key.get(o.key)) for o in unknown),
        "ledger_rows": len(reference["ledger"]),
        "errors": dict(collections.Counter((o.error or "").split(":")[0] for o in unknown)),
    }


def stats_delta(apps, before: dict[str, dict]) -> dict[str, dict]:
    delta = {}
    for region, app in apps.items():
        now = router_of(app).stats.snapshot()
        then = before[region]
        delta[region] = {
            "transactions": now["transactions"] - then["transactions"],
            "failovers": now["failovers"] - then["failovers"],
            "conflicts": now["conflicts"] - then["conflicts"],
            "retries": dict(
                collections.Counter(now["retries"]) - collections.Counter(then["retries"])
            ),
            "unavailable": now["unavailable"] - then["unavailable"],
            "max_attempts": now["max_attempts"],
        }
    return delta


def snapshot_stats(apps) -> dict[str, dict]:
    return {region: router_of(app).stats.snapshot() for region, app in apps.items()}


def longest_gap(outcomes: list[Outcome], around: float) -> float:
    """Longest time without any acknowledged transaction, across ``around``."""
    done = sorted(o.finished for o in outcomes if o.status == "ok")
    before = [t for t in done if t <= around]
    after = [t for t in done if t > around]
    if not before or not after:
        return float("inf")
    gaps = [b - a for a, b in zip([before[-1], *after], after, strict=False)]
    return round(max(gaps), 3)


# ---------------------------------------------------------------------------- the drills
def test_cross_region_redemption_sees_the_earn(lab, apps):
    """Earn in the US, redeem in India at once: the coins are there (causal barrier)."""
    ensure_healthy(lab, apps)
    (customer,) = make_customers(apps["us"], 1, coins=0)
    for i in range(20):
        with apps["us"].app_context():
            earn(apps["us"], customer, 10, f"xr-earn-{customer.wallet_id}-{i}")
            assert g.db_member == "us"
        with apps["in"].app_context():
            receipt = redeem(apps["in"], customer, 10, f"xr-redeem-{customer.wallet_id}-{i}")
            assert g.db_member == "in"
        assert receipt.balance == 0

    # Now with India's applier paused (FTWRL): a fast read there is stale, the redeem
    # waits at the barrier until the earn is applied, then succeeds.
    # no probe sees the paused node as Desynced during the test
    lagging = cluster_app(lab, "in", HEALTH_CHECK_INTERVAL=60)
    try:
        with lagging.app_context():
            db.read(lambda conn: None, name="warm-up")
        lock = lab.admin_connect(NODE["in"])
        with lock.cursor() as cur:
            cur.execute("FLUSH TABLES WITH READ LOCK")
        try:
            with apps["us"].app_context():
                earn(apps["us"], customer, 25, f"xr-earn-{customer.wallet_id}-lag")
            with lagging.app_context():
                fast = db.read(
                    lambda conn: ledger.queries.wallet_balance(conn, customer.wallet_id), name="t"
                )
            assert fast == 0, "expected the paused node to be behind"
            release = threading.Timer(0.5, lambda: lock.cursor().execute("UNLOCK TABLES"))
            release.start()
            with lagging.app_context():
                receipt = redeem(lagging, customer, 25, f"xr-redeem-{customer.wallet_id}-lag")
                assert g.db_member == "in"
            release.join()
        finally:
            lock.close()
    finally:
        router_of(lagging).dispose()
    assert receipt.balance == 0
    summary = verify(lab, [0, 1, 2], [])
    balances = {node: node_snapshot(lab, node)["balances"][customer.wallet_id] for node in range(3)}
    assert balances == {0: 0, 1: 0, 2: 0}
    _write_report("cross_region", {"round_trips": 21, **summary})


def test_one_wallet_debited_through_three_nodes_at_once(lab, apps):
    """Nine tills on three nodes redeem one coin at a time from a 150-coin wallet.

    No lost update: the balance is exactly 150 minus the acknowledged redemptions and
    never negative. Conflicts are retried, but boundedly: under this (unrealistic) heat a
    redemption may give up after DB_RETRY_BUDGET conflicts with a 503 "busy" -- a
    certification failure is a rollback, so such a redemption is never applied.
    """
    ensure_healthy(lab, apps)
    (customer,) = make_customers(apps["us"], 1, coins=150)
    before = snapshot_stats(apps)
    outcomes: list[Outcome] = []
    barrier = threading.Barrier(9)

    def till(region: str, n: int) -> None:
        app = apps[region]
        barrier.wait()
        for i in range(25):
            key = f"hot-{customer.wallet_id}-{region}-{n}-{i}"
            outcome = Outcome(
                key,
                region,
                f"{region}-{n}",
                "redeem",
                customer.wallet_id,
                -1,
                time.monotonic(),
                0.0,
                "failed",
            )
            with app.app_context():
                try:
                    redeem(app, customer, 1, key)
                    outcome.status, outcome.member = "ok", g.db_member
                except InsufficientCoins:
                    outcome.status = "refused"
                except Exception as error:  # every failure is data here
                    outcome.error = f"{type(error).__name__}: {error}"[:200]
            outcome.finished = time.monotonic()
            outcomes.append(outcome)

    threads = [
        threading.Thread(target=till, args=(region, n)) for region in REGIONS for n in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    summary = verify(lab, [0, 1, 2], outcomes)
    delta = stats_delta(apps, before)
    conflicts = sum(d["conflicts"] for d in delta.values())
    budget = router_of(apps["us"]).retry_budget
    _write_report("hot_wallet", {**summary, "conflicts": conflicts, "stats": delta})
    busy = [o for o in outcomes if o.status == "failed"]
    assert all(
        o.error.startswith("ServiceUnavailable: The loyalty service is very busy") for o in busy
    ), busy
    assert summary["unknown_but_applied"] == 0, "a conflict-aborted redemption was applied"
    balance = node_snapshot(lab, 0)["balances"][customer.wallet_id]
    assert balance == 150 - summary["acknowledged"]
    assert summary["acknowledged"] + summary["refused_insufficient"] + len(busy) == 225
    if summary["refused_insufficient"]:
        assert balance == 0  # a refusal means the wallet really ran dry
    assert len(busy) <= 225 // 10, f"too many redemptions gave up: {summary}"
    for region in REGIONS:  # each app's tills really ran on their own node
        assert {o.member for o in outcomes if o.app == region and o.member} == {region}
    assert conflicts > 0, "three nodes debiting one row at once produced no conflict"
    assert all(d["max_attempts"] <= budget + 1 for d in delta.values())
    assert all(d["failovers"] == 0 for d in delta.values())


def test_kill_one_node_during_load_loses_nothing(lab, apps):
    """kill -9 the us node mid-load: acknowledged work survives on both survivors, the us
    app's writers fail over to ie and carry on."""
    ensure_healthy(lab, apps)
    customers = make_customers(apps["us"], 8, coins=100)
    before = snapshot_stats(apps)
    load = Load(apps, customers, threads_per_app=2).start()
    time.sleep(3)
    killed_at = time.monotonic()
    lab.kill(NODE["us"])
    time.sleep(6)
    outcomes = load.stop()
    summary = verify(lab, [NODE["ie"], NODE["in"]], outcomes)
    delta = stats_delta(apps, before)
    after = [o for o in outcomes if o.status == "ok" and o.started > killed_at]
    by_thread = collections.Counter(o.thread for o in after)
    report = {
        **summary,
        "acknowledged_after_kill": len(after),
        "write_gap_s": longest_gap(outcomes, killed_at),
        "us_after_kill_by_member": dict(
            collections.Counter(o.member for o in after if o.app == "us")
        ),
        "stats": delta,
    }
    _write_report("kill_one_node", report)
    assert summary["acknowledged"] > 50
    for thread in ("us-0", "us-1"):
        assert by_thread[thread] > 0, f"{thread} made no progress after the kill: {report}"
    assert all(o.member != "us" for o in after if o.app == "us")
    for region in ("ie", "in"):
        assert by_thread[f"{region}-0"] + by_thread[f"{region}-1"] > 0
    assert delta["us"]["failovers"] >= 1
    assert summary["unknown_outcome"] == 0, report


def test_killed_node_rejoins_and_takes_its_region_back(lab, apps):
    """The us node (killed above, or now) restarts by IST, is Synced with the same data,
    and the us app routes to it again."""
    if lab.is_running(NODE["us"]):
        ensure_healthy(lab, apps)
        lab.kill(NODE["us"])
    us = apps["us"]
    wait_for(lambda: sees(us, {"us": MemberState.DOWN}), 10, "us app to see its node down")
    customers = make_customers(us, 1, coins=0)  # written while us is down: IST carries it
    with us.app_context():
        earn(us, customers[0], 5, f"rejoin-{uuid.uuid4().hex}")
        assert g.db_member == "ie"
    started = time.monotonic()
    lab.restart(NODE["us"])
    restarted = time.monotonic() - started
    method = lab.join_method(NODE["us"])
    back = wait_for(lambda: sees(us, {"us": MemberState.UP}), 15, "us app to see us up")
    with us.app_context():
        receipt = earn(us, customers[0], 5, f"rejoin-{uuid.uuid4().hex}")
        assert g.db_member == "us"
    assert receipt.balance == 10
    summary = verify(lab, [0, 1, 2], [])
    history = [
        (c.member, c.old.value, c.new.value)
        for c in router_of(us).cluster.history
        if c.member == "us"
    ]
    _write_report(
        "rejoin",
        {
            "restart_s": round(restarted, 1),
            "join": method,
            "app_sees_up_after_s": round(back, 2),
            "us_state_history": history[-6:],
            **summary,
        },
    )
    assert method == "IST"


def test_quorum_loss_refuses_service_then_bootstrap_resumes(lab, apps):
    ensure_healthy(lab, apps)
    (customer,) = make_customers(apps["us"], 1, coins=40)
    inn = apps["in"]
    client = inn.test_client()
    AuthActions(client).register(email=f"quorum-{uuid.uuid4().hex}@example.com")
    assert client.get("/card").status_code == 200
    stale_app = cluster_app(lab, "in", ALLOW_STALE_READS=True)
    try:
        with stale_app.app_context():
            assert ledger.stores()  # connected while healthy
        lab.kill(NODE["us"])
        lab.kill(NODE["ie"])
        survivor = NODE["in"]
        wait_for(
            lambda: (lab.status(survivor) or {}).get("wsrep_cluster_status") == "non-Primary",
            15,
            "the survivor to lose quorum",
        )
        refused_key = f"quorum-{uuid.uuid4().hex}"
        started = time.monotonic()
        with inn.app_context(), pytest.raises(ServiceUnavailable):
            earn(inn, customer, 5, refused_key)
        refused_in = time.monotonic() - started
        assert sees(inn, {"in": MemberState.NON_PRIMARY})

        api = client.get("/api/v1/stores")
        assert api.status_code == 503
        assert api.headers["Retry-After"] == "5"
        assert api.mimetype == "application/problem+json"
        assert api.get_json()["status"] == 503
        page = client.get("/card")
        assert page.status_code == 503
        assert page.headers["Retry-After"] == "5"
        assert "can't reach the loyalty service" in page.get_data(as_text=True).replace(
            "&#39;", "'"
        )
        assert client.get("/readyz").status_code == 503

        with stale_app.app_context():  # degraded mode: old data, flagged as such
            assert [s["code"] for s in ledger.stores()] == [
                "IE-DUB-01",
                "IN-BLR-01",
                "US-NYC-01",
                "US-SEA-01",
            ]
            assert g.stale_read is True
            assert g.db_member == "in"
            with pytest.raises(ServiceUnavailable):
                ledger.history(customer.wallet_id, causal=True)
        stale_response = stale_app.test_client().get("/api/v1/stores")
        assert stale_response.status_code == 200
        assert stale_response.headers["X-Loyalty-Stale-Read"] == "1"
        with apps["us"].app_context(), pytest.raises(ServiceUnavailable):
            earn(apps["us"], customer, 5, f"quorum-{uuid.uuid4().hex}")

        lab.bootstrap_survivor(survivor)
        bootstrapped = time.monotonic()

        def resumed() -> bool:
            with inn.app_context():
                try:
                    earn(inn, customer, 1, f"quorum-resume-{uuid.uuid4().hex}")
                except ServiceUnavailable:
                    return False
                return True

        wait_for(resumed, 15, "service to resume after pc.bootstrap")
        resume_s = time.monotonic() - bootstrapped
        assert client.get("/card").status_code == 200
        started = time.monotonic()
        lab.restart(NODE["us"])
        lab.restart(NODE["ie"])
        restart_s = time.monotonic() - started
    finally:
        router_of(stale_app).dispose()
    summary = verify(lab, [0, 1, 2], [])
    rows = {key for _, _, key, _ in node_snapshot(lab, 0)["ledger"]}
    assert refused_key not in rows, "a refused write was applied"
    _write_report(
        "quorum_loss",
        {
            "refused_after_s": round(refused_in, 3),
            "resumed_after_bootstrap_s": round(resume_s, 2),
            "restart_two_s": round(restart_s, 1),
            **summary,
        },
    )


def resend(apps, customers: list[Customer], outcome: Outcome) -> bool:
    """What a till does after a 503: the same request with the same idempotency key.
    Resolves the outcome; returns True when the first send had in fact been applied."""
    customer = next(c for c in customers if c.wallet_id == outcome.wallet_id)
    app = apps[outcome.app]
    with app.app_context():
        try:
            if outcome.kind == "redeem":
                receipt = redeem(app, customer, -outcome.coins, outcome.key)
            else:
                receipt = earn(app, customer, outcome.coins, outcome.key)
        except InsufficientCoins:
            outcome.status = "refused"  # not applied before either: a replay never refuses
            return False
        outcome.status, outcome.member = "ok", g.db_member
    assert receipt.coins == outcome.coins
    return receipt.replayed


def test_whole_cluster_crash_loses_no_acknowledged_transaction(lab, apps):
    """kill -9 all three nodes at once mid-load, recover (the most advanced node
    bootstraps): every acknowledged transaction is still there.

    Every request caught in the crash failed cleanly, with a 503 (ServiceUnavailable: a
    refusal, or OutcomeUnknown when a COMMIT's answer was lost), never with a raw driver
    error. After recovery each is sent again with the same idempotency key, as the 503
    asks: one that had committed is replayed (its one row, no second), one that had not
    is applied now, so every outcome ends known and the ledger holds each exactly once.

    What this drill cannot show: SIGKILL kills processes, not the machine, so the OS page
    cache survives, and with it everything InnoDB had written but not yet fsynced. It
    therefore cannot tell ``innodb_flush_log_at_trx_commit=1`` (fsync at every commit, what
    the lab and production use) from ``=2`` (write at commit, fsync once a second, losing
    up to a second of commits when the machine itself dies). Only losing the page cache
    (power loss, kernel panic, a hypervisor killing the VM) tells them apart:
    ``labs/powerloss.py`` simulates that outside ``make test`` (``=1``: 0 acknowledged
    earns lost in three runs; ``=2``: 23-29 lost; docs/database.md).
    """
    ensure_healthy(lab, apps)
    customers = make_customers(apps["us"], 8, coins=100)
    load = Load(apps, customers, threads_per_app=2).start()
    wait_for(lambda: sum(load.acknowledged(r) for r in REGIONS) >= 100, 60, "load under way")
    lab.kill_all()
    crashed_at = time.monotonic()
    time.sleep(1)
    outcomes = load.stop()
    started = time.monotonic()
    lab.recover_all()
    recovered = time.monotonic() - started
    ensure_healthy(lab, apps)
    failed = [o for o in outcomes if o.status == "failed"]
    unclean = [o for o in failed if not o.clean_failure]
    assert not unclean, f"{len(unclean)} failed with other than a 503, e.g. {unclean[:3]}"
    applied_before = sum(resend(apps, customers, o) for o in failed)
    summary = verify(lab, [0, 1, 2], outcomes)
    acknowledged_before_crash = sum(o.status == "ok" and o.finished <= crashed_at for o in outcomes)
    _write_report(
        "whole_cluster_crash",
        {
            **summary,
            "recover_all_s": round(recovered, 1),
            "acknowledged_before_crash": acknowledged_before_crash,
            "failed_in_crash_window": len(failed),
            "failed_by_type": dict(collections.Counter(type(o.exception).__name__ for o in failed)),
            "resent_found_applied": applied_before,
            "resent_applied_now": len(failed) - applied_before,
            "last_committed_seqno": (lab.status(0) or {}).get("wsrep_last_committed"),
        },
    )
    assert acknowledged_before_crash >= 100
    assert summary["unknown_outcome"] == 0  # every failure resolved by its resend
    for region, app in apps.items():  # and the service is back everywhere
        with app.app_context():
            earn(app, customers[0], 1, f"after-crash-{region}-{uuid.uuid4().hex}")
            assert g.db_member == region


def test_frozen_node_costs_seconds_and_its_return_keeps_the_majority_primary(lab, apps):
    """A gray failure: the us node frozen (SIGSTOP) under load, then resumed (SIGCONT).

    A frozen member keeps its TCP connections open and answers nothing. Requests waiting
    on it give up after one statement timeout (``DB_STATEMENT_TIMEOUT``) and run again
    on the next member -- a write whose COMMIT answer never came under its idempotency
    key --; new ones go elsewhere as soon as its unanswered health probe makes it
    ``suspect``. So no request is refused, and those that were in flight on it end
    acknowledged by another member. When it resumes it rejoins by IST, and the two
    survivors stay in the Primary component throughout (the lab's evs timeouts, see
    docs/database.md): a resuming member must not cost the whole cluster a view change.
    The latency of every request the freeze touched is printed (no timed assertion).
    """
    ensure_healthy(lab, apps)
    customers = make_customers(apps["us"], 8, coins=100)
    before = snapshot_stats(apps)
    survivors = (NODE["ie"], NODE["in"])
    watch = PrimaryWatch(lab, survivors).start()
    load = Load(apps, customers, threads_per_app=2).start()
    try:
        wait_for(lambda: load.acknowledged("us") >= 20, 30, "load under way")
        lab.pause(NODE["us"])
        # Taken after the SIGSTOP: a request the load threads finished while this thread
        # waited for the GIL, before the stop, is not one the freeze caught.
        frozen_at = time.monotonic()
        wait_for(
            lambda: all((lab.status(n) or {}).get("wsrep_cluster_size") == 2 for n in survivors),
            30,
            "the survivors to evict the frozen node",
        )
        wait_for(
            lambda: load.acknowledged("us", after=frozen_at, elsewhere=True) >= 20,
            30,
            "the us app to carry on through another member",
        )
        resumed_at = time.monotonic()
        lab.resume(NODE["us"])
        wait_for(
            lambda: (lab.status(NODE["us"]) or {}).get("wsrep_cluster_size") == 3
            and lab.status(NODE["us"])["wsrep_local_state"] == 4,
            60,
            "the resumed node to rejoin and sync",
        )
        wait_for(
            lambda: load.acknowledged("us", after=time.monotonic() - 0.5, member="us") > 0,
            30,
            "the us app back on its own node",
        )
    finally:
        outcomes = load.stop()
        watch.stop()
    delta = stats_delta(apps, before)
    touched = [o for o in outcomes if o.finished > frozen_at and o.started < resumed_at]
    inflight = [o for o in outcomes if o.app == "us" and o.started < frozen_at < o.finished]
    summary = verify(lab, [0, 1, 2], outcomes)
    report = {
        **summary,
        "frozen_s": round(resumed_at - frozen_at, 2),
        "latency_while_frozen": {
            region: distribution([o.finished - o.started for o in touched if o.app == region])
            for region in REGIONS
        },
        "us_in_flight_at_freeze": [
            (round(o.finished - o.started, 2), o.status, o.member) for o in inflight
        ],
        "survivors_outside_primary_s": watch.seconds_outside(frozen_at),
        "status_polls": watch.polls,
        "stats": delta,
    }
    _write_report("freeze_and_resume", report)
    failed = [o for o in outcomes if o.status == "failed"]
    assert not failed, f"{len(failed)} refused while one node was frozen, e.g. {failed[:3]}"
    assert inflight, "no us request was in flight when the node froze"
    assert any(o.member != "us" for o in inflight), report["us_in_flight_at_freeze"]
    assert watch.polls > 20
    assert watch.outside_primary(frozen_at) == [], "a survivor left the Primary component"
    assert delta["us"]["failovers"] >= 1
    assert summary["unknown_outcome"] == 0


def test_a_moment_without_quorum_is_waited_out_not_refused(lab):
    """Every node briefly outside the Primary component -- what a node resuming in the
    middle of its own eviction does to the survivors for 0.3-1.4 s (docs/database.md) --
    costs requests a wait, not a 503: when no member takes writes but one did a moment
    ago (``DB_QUORUM_GRACE``), the router waits for quorum to come back.

    Made deterministic here by cutting all three nodes off from each other
    (``gmcast.isolate``) until each has fallen to a one-node non-Primary view, then
    reconnecting them; they merge back into the Primary component by themselves. That
    takes longer than the real blip (Galera's reconnect backoff: 5-11 s without quorum on
    this machine), so these apps allow a longer grace and budget than the 3 s / 10 s
    defaults; with the grace at 0 the same drill refused 176 of 247 requests.
    """
    with cluster_apps(lab, DB_QUORUM_GRACE=20, DB_RETRY_TIME_BUDGET=30) as apps:
        with apps["us"].app_context():
            seed_stores()
        quorum_blip(lab, apps)


def quorum_blip(lab, apps) -> None:
    ensure_healthy(lab, apps)
    customers = make_customers(apps["us"], 8, coins=100)
    load = Load(apps, customers, threads_per_app=2).start()

    def isolate(on: bool) -> None:
        for node in range(len(REGIONS)):
            with lab.admin_connect(node) as conn, conn.cursor() as cur:
                cur.execute(f"SET GLOBAL wsrep_provider_options = 'gmcast.isolate={int(on)}'")

    def cluster_status() -> set[str]:
        return {(lab.status(n) or {}).get("wsrep_cluster_status") for n in range(len(REGIONS))}

    try:
        wait_for(lambda: load.acknowledged("us") >= 20, 30, "load under way")
        isolate(True)
        lost_at = time.monotonic()
        try:
            wait_for(lambda: cluster_status() == {"non-Primary"}, 30, "every node non-Primary")
        finally:
            isolate(False)
        wait_for(lambda: cluster_status() == {"Primary"}, 30, "the Primary component back")
        back_at = time.monotonic()
        wait_for(
            lambda: all(load.acknowledged(r, after=back_at) >= 5 for r in REGIONS),
            30,
            "every app serving again",
        )
    finally:
        outcomes = load.stop()
        lab.heal()
    touched = [o for o in outcomes if o.finished > lost_at and o.started < back_at]
    summary = verify(lab, [0, 1, 2], outcomes)
    _write_report(
        "quorum_blip",
        {
            **summary,
            "without_quorum_s": round(back_at - lost_at, 2),
            "latency_during": distribution([o.finished - o.started for o in touched]),
        },
    )
    failed = [o for o in outcomes if o.status == "failed"]
    assert touched, "no request overlapped the loss of quorum"
    assert not failed, f"{len(failed)} refused during a moment without quorum: {failed[:3]}"
