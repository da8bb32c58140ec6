"""What does losing the app's preferred node cost a till: a crash, or a freeze?

Starts its own three-node Galera lab (``LAB_PORT_BASE``, default 34061), runs earn
traffic through the service layer of the ``us`` app (preferred node: us) and of the
``ie`` app (whose node survives), several threads each, then hits the us node several
times, healing it in between:

``--fault kill`` (default)
    ``kill -9``: the connection breaks at once, the node is restarted by IST.
``--fault freeze``
    ``SIGSTOP`` for ``--freeze-seconds``, then ``SIGCONT`` (a gray failure: the TCP
    connections stay open and nothing answers; the node finds itself evicted when it
    resumes and rejoins by IST).

For each fault it measures, from what the clients saw:

* ``gap_s``: the longest stretch with no acknowledged write around the fault, from the
  last acknowledgement before it to the first after it;
* ``first_ack_s``: from the fault to the first acknowledgement of a write that *started*
  after it;
* ``latency``: the distribution (p50/p90/p99/max and a histogram) of every request that
  was in flight at the fault or started while the node was down/frozen, with how many
  were refused (503) -- what the chaos run saw as 10-15 s hangs ending in 503;
* for a freeze, ``majority_non_primary_s``: how long the surviving nodes spent outside
  the Primary component after the node resumed (should be 0).

Not a pass/fail test: it prints the numbers and writes ``reports/failover.json``::

    .venv/bin/python -m bench.failover --kills 5
    .venv/bin/python -m bench.failover --fault freeze --kills 3
    # the behaviour before the statement timeout and the stalled-probe check:
    .venv/bin/python -m bench.failover --fault freeze --statement-timeout 10 --health-timeout 2
    .venv/bin/python -m bench.failover --suspect-timeout PT3S --inactive-timeout PT6S
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from db.seed import seed_stores
from labs.galera import GaleraLab
from labs.latency import distribution as latency
from labs.primary_watch import PrimaryWatch
from labs.stack import cluster_apps, router_of
from webapp.auth.services import register
from webapp.card.queries import active_cards
from webapp.database.cluster import MemberState
from webapp.extensions import db
from webapp.ledger import services as ledger

REPORT = Path(__file__).resolve().parent.parent / "reports" / "failover.json"
STORE = {"us": ("US-NYC-01", "USD"), "ie": ("IE-DUB-01", "EUR")}


@dataclass(frozen=True)
class Request:
    started: float
    finished: float
    ok: bool
    member: str | None


class Writer(threading.Thread):
    """Earns one coin after another through one app; records every request."""

    def __init__(self, app: Any, card: str, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.app = app
        self.card = card
        self.requests: list[Request] = []
        self.stop = threading.Event()

    @property
    def acks(self) -> list[tuple[float, float]]:
        return [(r.started, r.finished) for r in self.requests if r.ok]

    @property
    def failures(self) -> int:
        return sum(not r.ok for r in self.requests)

    def run(self) -> None:
        store, currency = STORE[self.app.config["REGION"]]
        while not self.stop.is_set():
            started = time.monotonic()
            ok, member = True, None
            with self.app.app_context():
                try:
                    ledger.earn(
                        card=self.card,
                        store_code=store,
                        amount_minor=100,
                        currency=currency,
                        idempotency_key=uuid.uuid4().hex,
                        staff_id=None,
                    )
                    member = db_member()
                except Exception:  # the benchmark measures outages; it must not die of one
                    ok = False
            self.requests.append(Request(started, time.monotonic(), ok, member))
            if not ok:
                time.sleep(0.01)


def db_member() -> str | None:
    from flask import g

    return g.get("db_member")


def measure(writers: list[Writer], fault_at: float, until: float) -> dict[str, Any]:
    acks = sorted(ack for writer in writers for ack in writer.acks)
    before = [done for _, done in acks if done <= fault_at]
    after = sorted(done for _, done in acks if done > fault_at)
    fresh = sorted(done for started, done in acks if started > fault_at)
    gap = (after[0] - before[-1]) if before and after else float("nan")
    affected = [
        r
        for writer in writers
        for r in writer.requests
        if r.finished > fault_at and r.started < until
    ]
    return {
        "gap_s": round(gap, 3),
        "first_ack_s": round(fresh[0] - fault_at, 3) if fresh else float("nan"),
        "latency": latency([r.finished - r.started for r in affected]),
        "refused": sum(not r.ok for r in affected),
        "served_by": dict(
            sorted(
                (m or "-", sum(r.member == m for r in affected if r.ok))
                for m in {r.member for r in affected if r.ok}
            )
        ),
    }


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 3),
        "max": round(max(values), 3),
        "min": round(min(values), 3),
    }


def run_faults(
    lab: GaleraLab,
    apps: dict[str, Any],
    writers: dict[str, list[Writer]],
    watch: PrimaryWatch,
    args: argparse.Namespace,
) -> tuple[list[dict[str, Any]], list[tuple[float, float]]]:
    """Hits the us node ``args.kills`` times; returns what each fault cost, and the
    windows (fault, node back or resumed) the latency distribution covers."""
    faults = []
    windows = []
    for n in range(args.kills):
        time.sleep(args.steady)
        fault_at = time.monotonic()
        result: dict[str, Any] = {"fault": n + 1}
        if args.fault == "kill":
            lab.kill(0)
            time.sleep(max(4.0, args.steady))
            until = started = time.monotonic()
            lab.restart(0)
            result["restart_s"] = round(time.monotonic() - started, 2)
            result["join"] = lab.join_method(0)
        else:
            lab.pause(0)
            time.sleep(args.freeze_seconds)
            until = time.monotonic()
            lab.resume(0)
            time.sleep(max(4.0, args.steady))
            result["majority_non_primary_s"] = watch.seconds_outside(until)
            started = time.monotonic()
            lab.heal()
            result["rejoin_s"] = round(time.monotonic() - started, 2)
        windows.append((fault_at, until))
        result["us_app"] = measure(writers["us"], fault_at, until)
        result["ie_app"] = measure(writers["ie"], fault_at, until)
        us = router_of(apps["us"]).cluster.member("us")
        deadline = time.monotonic() + 15
        while us.state is not MemberState.UP and time.monotonic() < deadline:
            time.sleep(0.02)
        result["routed_back_s"] = round(time.monotonic() - started, 2)
        faults.append(result)
        print(json.dumps(result), file=sys.stderr)
    return faults, windows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fault", choices=("kill", "freeze"), default="kill")
    parser.add_argument("--kills", type=int, default=5, help="how many faults")
    parser.add_argument("--freeze-seconds", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=2, help="writers per app")
    parser.add_argument("--keepalive-period", default=None)
    parser.add_argument("--suspect-timeout", default=None)
    parser.add_argument("--inactive-timeout", default=None)
    parser.add_argument("--health-interval", type=float, default=0.2)
    parser.add_argument("--health-timeout", type=float, default=None)
    parser.add_argument("--statement-timeout", type=float, default=None)
    parser.add_argument(
        "--steady", type=float, default=2.0, help="seconds of normal traffic before each fault"
    )
    args = parser.parse_args(argv)

    evs = {
        key: value
        for key, value in (
            ("keepalive_period", args.keepalive_period),
            ("suspect_timeout", args.suspect_timeout),
            ("inactive_timeout", args.inactive_timeout),
        )
        if value
    }
    lab = GaleraLab(port_base=int(os.environ.get("LAB_PORT_BASE") or 34061), **evs)
    settings: dict[str, Any] = {"HEALTH_CHECK_INTERVAL": args.health_interval}
    if args.health_timeout is not None:
        settings["HEALTH_CHECK_TIMEOUT"] = args.health_timeout
    if args.statement_timeout is not None:
        settings["DB_STATEMENT_TIMEOUT"] = args.statement_timeout
    print("starting the lab...", file=sys.stderr)
    lab.start()
    watch = PrimaryWatch(lab, (1, 2))
    try:
        with cluster_apps(lab, ("us", "ie"), **settings) as apps:
            with apps["us"].app_context():
                from webapp.commands import upgrade_schema

                upgrade_schema()
                seed_stores()
                account = register(
                    name="Bench",
                    email=f"bench-{uuid.uuid4().hex}@example.com",
                    password="correct-horse-battery",  # noqa: S106 - a throwaway lab account
                    region="us",
                )
                card = db.read(
                    lambda conn: active_cards(conn, account["id"])[0]["number"], name="bench"
                )
            us_config = dict(apps["us"].config)
            writers = {
                region: [Writer(app, card, f"writer-{region}-{n}") for n in range(args.threads)]
                for region, app in apps.items()
            }
            for group in writers.values():
                for writer in group:
                    writer.start()
            watch.start()
            faults, windows = run_faults(lab, apps, writers, watch, args)
            for group in writers.values():
                for writer in group:
                    writer.stop.set()
                    writer.join(timeout=30)
            stats = {region: router_of(app).stats.snapshot() for region, app in apps.items()}
    finally:
        if watch.is_alive():
            watch.stop()
        lab.stop()
    report = {
        "what": f"the preferred (us) node: {args.fault}"
        + (f" for {args.freeze_seconds}s" if args.fault == "freeze" else " -9"),
        "evs": dict(lab.tuning.evs),
        "health_check_interval_s": us_config["HEALTH_CHECK_INTERVAL"],
        "health_check_timeout_s": us_config["HEALTH_CHECK_TIMEOUT"],
        "statement_timeout_s": us_config["DB_STATEMENT_TIMEOUT"],
        "faults": faults,
        "us_app_gap_s": summary([f["us_app"]["gap_s"] for f in faults]),
        "us_app_first_ack_s": summary([f["us_app"]["first_ack_s"] for f in faults]),
        "ie_app_gap_s": summary([f["ie_app"]["gap_s"] for f in faults]),
        "us_app_latency": latency(
            [
                r.finished - r.started
                for w in writers["us"]
                for r in w.requests
                if any(r.finished > f0 and r.started < f1 for f0, f1 in windows)
            ]
        ),
        "refused": {region: sum(w.failures for w in group) for region, group in writers.items()},
        "router_stats": {
            region: {
                k: stats[region][k]
                for k in ("transactions", "failovers", "retries", "unavailable", "max_attempts")
            }
            for region in stats
        },
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2))
    print(
        json.dumps(
            {
                k: report[k]
                for k in (
                    "what",
                    "evs",
                    "statement_timeout_s",
                    "health_check_timeout_s",
                    "us_app_gap_s",
                    "us_app_first_ack_s",
                    "ie_app_gap_s",
                    "us_app_latency",
                    "refused",
                )
            },
            indent=2,
        )
    )
    if args.fault == "freeze":
        print(
            "majority outside Primary after resume (s): "
            + json.dumps([f["majority_non_primary_s"] for f in faults])
        )
    print(f"written to {REPORT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
