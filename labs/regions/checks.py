"""Measurements and fault drills over a running :class:`labs.regions.lab.RegionLab`.

The tests in ``tests/cluster/test_regions.py`` call these and assert; :class:`Report` collects
what they measured and writes ``reports/regions/summary.{md,json}``.
"""


from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from db.seed import DEMO_PASSWORD
from labs import ROOT
from labs.galera.config import ADMIN_PASSWORD, ADMIN_USER
from labs.proc import python
from labs.regions import client as http
from labs.regions.lab import RegionLab
from labs.regions.netns import in_ns
from labs.regions.topology import REGIONS

# One coin per earn in every region (stores' earn rates from db/seed.py).
EARN = {"us": ("1.00", "USD"), "ie": ("1.00", "EUR"), "in": ("80.00", "INR")}


def samples(name: str, default: int) -> int:
    return int(os.environ.get(f"REGIONS_{name}") or default)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pick(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return {
        "n": len(ordered),
        "p50": round(pick(50), 2),
        "p90": round(pick(90), 2),
        "p99": round(pick(99), 2),
        "max": round(ordered[-1], 2),
    }


# ---------------------------------------------------------------------- the WAN itself
PROBE = """
import json, statistics, sys, time, pymysql
out = {}
for region, host in json.loads(sys.argv[1]).items():
    conn = pymysql.connect(host=host, port=3306, user=sys.argv[2], password=sys.argv[3],
                           connect_timeout=10, read_timeout=10)
    times = []
    with conn.cursor() as cur:
        for _ in range(int(sys.argv[4])):
            t = time.perf_counter(); cur.execute("SELECT 1"); cur.fetchall()
            times.append((time.perf_counter() - t) * 1000)
    conn.close()
    out[region] = statistics.median(times)
print(json.dumps(out))
"""


def link_rtts(lab: RegionLab, count: int = 15) -> dict[str, dict[str, float]]:
    """Median ``SELECT 1`` round trip from each namespace to every node's identity."""
    targets = {r: lab.topology.identity(r) for r in REGIONS}
    result: dict[str, dict[str, float]] = {}
    for region in REGIONS:
        out = subprocess.run(
            [*in_ns(lab.topology, region), python(), "-c", PROBE, json.dumps(targets),
             ADMIN_USER, ADMIN_PASSWORD, str(count)],
            capture_output=True, text=True, check=True, timeout=120, cwd=ROOT,
        )  # fmt: skip
        result[region] = {k: round(v, 1) for k, v in json.loads(out.stdout).items()}
    return result


@contextmanager
def without_wan(lab: RegionLab) -> Iterator[None]:
    """All RTTs 0 for the duration (same lab, same processes): the baseline."""
    rtts = dict(lab.topology.rtts)
    lab.wan.set_rtts(dict.fromkeys(rtts, 0.0))
    try:
        yield
    finally:
        lab.wan.set_rtts(rtts)


# ---------------------------------------------------------------------- latencies
def bare_commits(lab: RegionLab, region: str, count: int) -> list[float]:
    """PyMySQL INSERT + COMMIT on the region's node from a client in the same region."""
    assert lab.galera is not None
    conn = lab.galera.connect(region, autocommit=False)
    times: list[float] = []
    try:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS lab_commit_probe "
                "(id BIGINT AUTO_INCREMENT PRIMARY KEY, region CHAR(2), at DOUBLE)"
            )
            conn.commit()
            for _ in range(count):
                started = time.perf_counter()
                cur.execute(
                    "INSERT INTO lab_commit_probe (region, at) VALUES (%s, %s)",
                    (region, time.time()),
                )
                conn.commit()
                times.append((time.perf_counter() - started) * 1000)
    finally:
        conn.close()
    return times


def signed_in(url: str, email: str = "demo@example.com") -> http.Client:
    client = http.Client(url)
    http.login_page(client, email, DEMO_PASSWORD)
    return client


def card_reads(client: http.Client, count: int) -> tuple[list[float], set[str | None]]:
    """``GET /card`` ``count`` times; the elapsed times and which regions served them."""
    times, served = [], set()
    client.get("/card")  # warm the connection
    for _ in range(count):
        answer = client.get("/card")
        if answer.status != 200:
            raise AssertionError(f"/card answered {answer.status}: {answer.text[:300]}")
        times.append(answer.elapsed_ms)
        served.add(answer.header("x-served-region"))
    return times, served


@dataclass
class Till:
    """A barista's till in one region, talking to the front router as a local client."""

    lab: RegionLab
    region: str
    client: http.Client = field(init=False)
    token: str = field(init=False)

    def __post_init__(self) -> None:
        self.client = http.Client(self.lab.front_url(self.region))
        self.token = http.api_token(
            self.client, f"barista.{self.region}@example.com", DEMO_PASSWORD
        )

    def earn(self, card: str, key: str | None = None) -> http.Response:
        amount, currency = EARN[self.region]
        return http.earn(
            self.client,
            self.token,
            card,
            amount,
            currency,
            key or http.new_key(f"earn-{self.region}"),
        )

    def redeem(self, card: str, coins: int, key: str | None = None) -> http.Response:
        return http.redeem(
            self.client, self.token, card, coins, key or http.new_key(f"redeem-{self.region}")
        )


def new_customer(lab: RegionLab, region: str, tag: str) -> dict[str, Any]:
    """Register a fresh customer (their own wallet) through the front router."""
    email = f"{tag}-{int(time.time() * 1000)}@example.com"
    with http.Client(lab.front_url(region)) as client:
        answer = client.post_json(
            "/api/v1/auth/register",
            {"name": f"Lab {tag}", "email": email, "password": DEMO_PASSWORD, "region": region},
        )
        if answer.status != 202:
            raise AssertionError(f"register: {answer.status} {answer.text[:300]}")
        _open_verification_link(lab, region, client, email)
        token = http.api_token(client, email, DEMO_PASSWORD)
        me = http.me(client, token).json()
    return {
        "email": email,
        "token": token,
        "card": me["cards"][0]["number"],
        "balance": me["balance"],
    }


def _open_verification_link(lab: RegionLab, region: str, client: http.Client,
                            email: str) -> None:
    """What the customer does with the mail: open the link, press the button."""
    assert lab.galera is not None
    conn = lab.galera.connect(region, read_timeout=30)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION wsrep_sync_wait = 1")
            cur.execute("SELECT body_text FROM mail_outbox WHERE recipient = %s "
                        "AND kind = 'verify'", (email,))
            (text,) = cur.fetchone()
    finally:
        conn.close()
    path = "/verify/" + re.search(r"/verify/([A-Za-z0-9_-]+)", text).group(1)
    page = client.get(path)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)
    if page.status != 200 or not token:
        raise AssertionError(f"verification page: {page.status} {page.text[:300]}")
    answer = client.post_form(path, {"csrf_token": token.group(1)})
    if answer.status not in (302, 303):
        raise AssertionError(f"verification: {answer.status} {answer.text[:300]}")


# ---------------------------------------------------------------------- ledger truth
def ledger_on(lab: RegionLab, region: str, card: str) -> dict[str, Any]:
    """The card's wallet as one node has it: balance, ledger rows by idempotency key."""
    assert lab.galera is not None
    conn = lab.galera.connect(region, read_timeout=30)
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SET SESSION wsrep_sync_wait = 1")
            cur.execute("SELECT wallet_id FROM cards WHERE number = %s", (card,))
            wallet = cur.fetchone()["wallet_id"]
            cur.execute("SELECT balance FROM wallets WHERE id = %s", (wallet,))
            balance = cur.fetchone()["balance"]
            cur.execute(
                "SELECT id, idempotency_key, coins FROM ledger WHERE wallet_id = %s", (wallet,)
            )
            rows = cur.fetchall()
    finally:
        conn.close()
    return {
        "balance": int(balance),
        "sum": sum(int(r["coins"]) for r in rows),
        "ids": {int(r["id"]) for r in rows},
        "keys": [r["idempotency_key"] for r in rows],
    }


# ---------------------------------------------------------------------- traffic
@dataclass
class Outcome:
    region: str
    key: str
    status: int | None  # None: no HTTP answer (outcome unknown)
    served_by: str | None
    receipt_id: int | None
    coins: int
    at: float
    elapsed_ms: float
    problem: str | None = None


class Traffic:
    """One customer, one till per region, each earning in a loop through the front router.

    Every attempt is recorded with its idempotency key; :meth:`settle` later retries the
    ones without an acknowledgement (same key, so a retry can never earn twice).
    """

    def __init__(
        self, lab: RegionLab, card: str, regions: tuple[str, ...] = REGIONS, pause: float = 0.2
    ) -> None:
        self.lab = lab
        self.card = card
        self.regions = regions
        self.pause = pause
        self.outcomes: list[Outcome] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def __enter__(self) -> Traffic:
        for region in self.regions:
            till = Till(self.lab, region)
            thread = threading.Thread(target=self._loop, args=(till,), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _loop(self, till: Till) -> None:
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                key = http.new_key(f"traffic-{till.region}-{n}")
                self.outcomes_append(self._attempt(till, key))
                self.stop.wait(self.pause)
        finally:
            till.client.close()

    def _attempt(self, till: Till, key: str) -> Outcome:
        started = time.time()
        try:
            answer = till.earn(self.card, key)
        except http.TransportError as exc:
            return Outcome(
                till.region,
                key,
                None,
                None,
                None,
                0,
                started,
                (time.time() - started) * 1000,
                str(exc),
            )
        body: dict[str, Any] = {}
        try:
            body = answer.json()
        except ValueError:
            body = {}
        ok = answer.status in (200, 201)
        return Outcome(
            till.region,
            key,
            answer.status,
            answer.header("x-served-region"),
            body.get("id") if ok else None,
            int(body.get("coins") or 0) if ok else 0,
            started,
            answer.elapsed_ms,
            None if ok else str(body.get("type") or body)[:200],
        )

    def outcomes_append(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    def acked(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.receipt_id is not None]

    def settle(self, attempts: int = 5) -> dict[str, Outcome]:
        """Retry every unacknowledged key until it is acknowledged; key -> final outcome."""
        final: dict[str, Outcome] = {o.key: o for o in self.outcomes}
        tills = {r: Till(self.lab, r) for r in self.regions}
        for key, outcome in list(final.items()):
            for _ in range(attempts):
                if final[key].receipt_id is not None:
                    break
                final[key] = self._attempt(tills[outcome.region], key)
                if final[key].receipt_id is None:
                    time.sleep(1)
        for till in tills.values():
            till.client.close()
        return final

    def summary(self) -> dict[str, Any]:
        by_status: dict[str, int] = {}
        for o in self.outcomes:
            label = str(o.status) if o.status is not None else "no-answer"
            by_status[label] = by_status.get(label, 0) + 1
        served: dict[str, dict[str, int]] = {}
        for o in self.outcomes:
            if o.served_by:
                row = served.setdefault(o.region, {})
                row[o.served_by] = row.get(o.served_by, 0) + 1
        earn_ms = {
            region: percentiles([o.elapsed_ms for o in self.acked() if o.region == region])
            for region in self.regions
        }
        return {
            "attempts": len(self.outcomes),
            "acked": len(self.acked()),
            "by_status": by_status,
            "served_by_client_region": served,
            "acked_earn_ms_by_client_region": earn_ms,
        }


def check_ledger_everywhere(
    lab: RegionLab, card: str, final: dict[str, Outcome], start_balance: int
) -> dict[str, Any]:
    """Every node: each acked receipt present once, balance = sum = start + acked coins."""
    expected = start_balance + sum(o.coins for o in final.values())
    ids = {o.receipt_id for o in final.values() if o.receipt_id is not None}
    views = {r: ledger_on(lab, r, card) for r in REGIONS}
    problems = []
    for region, view in views.items():
        missing = ids - view["ids"]
        if missing:
            problems.append(f"{region}: acknowledged receipts missing: {sorted(missing)}")
        dup = {k for k in view["keys"] if view["keys"].count(k) > 1}
        if dup:
            problems.append(f"{region}: keys applied twice: {sorted(dup)}")
        if view["balance"] != view["sum"]:
            problems.append(f"{region}: balance {view['balance']} != ledger sum {view['sum']}")
        if view["balance"] != expected:
            problems.append(f"{region}: balance {view['balance']} != expected {expected}")
    return {
        "expected_balance": expected,
        "balances": {r: v["balance"] for r, v in views.items()},
        "rows": {r: len(v["ids"]) for r, v in views.items()},
        "problems": problems,
    }


# ---------------------------------------------------------------------- the report
class Report:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or ROOT / "reports" / "regions"
        self.data: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.checks: dict[str, str] = {}

    def record(self, section: str, value: Any) -> None:
        self.data[section] = value
        self.write()

    def result(self, check: str, outcome: str) -> None:
        self.checks[check] = outcome
        self.write()

    def write(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = {**self.data, "checks": self.checks}
        (self.directory / "summary.json").write_text(json.dumps(payload, indent=2, default=str))
        (self.directory / "summary.md").write_text(self.markdown())

    def markdown(self) -> str:
        d = self.data
        lines = ["# Region lab summary", "", f"Run started {d['started']}.", ""]
        if "lab" in d:
            lines += [
                f"Lab start {d['lab'].get('start', 0):.0f} s "
                f"(galera {d['lab'].get('galera', 0):.0f} s); RTTs {d['lab'].get('rtts')}.",
                "",
            ]
        if "link_rtt_ms" in d:
            lines += [
                "## Measured link RTT (SELECT 1 over the forwarder, ms)",
                "",
                "| from \\ to | " + " | ".join(REGIONS) + " |",
                "|---|" + "---|" * len(REGIONS),
            ]
            for src, row in d["link_rtt_ms"].items():
                lines.append(f"| {src} | " + " | ".join(f"{row[r]:.1f}" for r in REGIONS) + " |")
            lines.append("")
        if "latency" in d:
            lines += [
                "## Latency per region (ms, p50 / p99)",
                "",
                "| region | card page | card page, no WAN | earn (API) | earn, no WAN "
                "| bare commit | bare commit, no WAN |",
                "|---|---|---|---|---|---|---|",
            ]
            for region in REGIONS:
                row = d["latency"].get(region, {})

                def cell(name: str, row: dict[str, Any] = row) -> str:
                    v = row.get(name)
                    return f"{v['p50']:.1f} / {v['p99']:.1f}" if v and v.get("n") else "-"

                lines.append(
                    f"| {region} | {cell('card')} | {cell('card_nowan')} | {cell('earn')} | "
                    f"{cell('earn_nowan')} | {cell('commit')} | {cell('commit_nowan')} |"
                )
            lines.append("")
        for key, value in d.items():
            if key in ("started", "lab", "link_rtt_ms", "latency"):
                continue
            lines += [f"## {key}", "", "```", json.dumps(value, indent=2, default=str), "```", ""]
        if self.checks:
            lines += ["## Checks", ""]
            lines += [f"- {name}: {outcome}" for name, outcome in self.checks.items()]
            lines.append("")
        return "\n".join(lines)
