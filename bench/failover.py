"""How long are writes unavailable when the app's preferred node dies?

Starts its own three-node Galera lab (``LAB_PORT_BASE``, default 34061), runs earn
traffic through the service layer of the ``us`` app (preferred node: us) and of the
``ie`` app (whose node survives), then ``kill -9``s the us node several times, restarting
it by IST in between. For each kill it measures, from the acknowledgements:

* ``gap_s``: the longest stretch with no acknowledged write around the kill, from the
  last acknowledgement before it to the first after it -- what a till sees;
* ``first_ack_s``: from the kill to the first acknowledgement of a write that *started*
  after it.

Not a pass/fail test: it prints the numbers and writes ``reports/failover.json``::

    .venv/bin/python -m bench.failover --kills 5
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
from pathlib import Path
from typing import Any

from db.seed import seed_stores
from labs.galera import GaleraLab
from labs.stack import cluster_apps, router_of
from webapp.auth.services import register
from webapp.card.queries import active_cards
from webapp.database.cluster import MemberState
from webapp.extensions import db
from webapp.ledger import services as ledger

REPORT = Path(__file__).resolve().parent.parent / "reports" / "failover.json"
STORE = {"us": ("US-NYC-01", "USD"), "ie": ("IE-DUB-01", "EUR")}


class Writer(threading.Thread):
    """Earns one coin after another through one app; records when each was acknowledged."""

    def __init__(self, app: Any, card: str, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.app = app
        self.card = card
        self.acks: list[tuple[float, float]] = []  # (started, acknowledged)
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        store, currency = STORE[self.app.config["REGION"]]
        while not self.stop.is_set():
            started = time.monotonic()
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
                except Exception:  # the benchmark measures outages; it must not die of one
                    self.failures += 1
                    time.sleep(0.01)
                    continue
            self.acks.append((started, time.monotonic()))


def measure(writers: list[Writer], killed_at: float) -> dict[str, float]:
    acks = sorted(ack for writer in writers for ack in writer.acks)
    before = [done for _, done in acks if done <= killed_at]
    after = sorted(done for _, done in acks if done > killed_at)
    fresh = sorted(done for started, done in acks if started > killed_at)
    gap = (after[0] - before[-1]) if before and after else float("nan")
    return {
        "gap_s": round(gap, 3),
        "first_ack_s": round(fresh[0] - killed_at, 3) if fresh else float("nan"),
    }


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 3),
        "max": round(max(values), 3),
        "min": round(min(values), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--keepalive-period", default="PT0.3S")
    parser.add_argument("--suspect-timeout", default="PT1S")
    parser.add_argument("--inactive-timeout", default="PT2S")
    parser.add_argument("--health-interval", type=float, default=0.2)
    parser.add_argument(
        "--steady", type=float, default=2.0, help="seconds of normal traffic before each kill"
    )
    args = parser.parse_args(argv)

    lab = GaleraLab(
        port_base=int(os.environ.get("LAB_PORT_BASE") or 34061),
        keepalive_period=args.keepalive_period,
        suspect_timeout=args.suspect_timeout,
        inactive_timeout=args.inactive_timeout,
    )
    print("starting the lab...", file=sys.stderr)
    lab.start()
    try:
        with cluster_apps(lab, ("us", "ie"), HEALTH_CHECK_INTERVAL=args.health_interval) as apps:
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
            writers = {
                region: Writer(app, card, f"writer-{region}") for region, app in apps.items()
            }
            for writer in writers.values():
                writer.start()
            kills = []
            for n in range(args.kills):
                time.sleep(args.steady)
                killed_at = time.monotonic()
                lab.kill(0)
                time.sleep(max(4.0, args.steady))
                result = {
                    "kill": n + 1,
                    "us_app": measure([writers["us"]], killed_at),
                    "ie_app": measure([writers["ie"]], killed_at),
                }
                started = time.monotonic()
                lab.restart(0)
                result["restart_s"] = round(time.monotonic() - started, 2)
                result["join"] = lab.join_method(0)
                us = router_of(apps["us"]).cluster.member("us")
                deadline = time.monotonic() + 15
                while us.state is not MemberState.UP and time.monotonic() < deadline:
                    time.sleep(0.02)
                result["routed_back_s"] = round(time.monotonic() - started, 2)
                kills.append(result)
                print(json.dumps(result), file=sys.stderr)
            for writer in writers.values():
                writer.stop.set()
                writer.join(timeout=30)
            stats = {region: router_of(app).stats.snapshot() for region, app in apps.items()}
    finally:
        lab.stop()
    report = {
        "what": "write unavailability when the preferred (us) node is SIGKILLed",
        "evs": lab.evs,
        "health_check_interval_s": args.health_interval,
        "kills": kills,
        "us_app_gap_s": summary([k["us_app"]["gap_s"] for k in kills]),
        "us_app_first_ack_s": summary([k["us_app"]["first_ack_s"] for k in kills]),
        "ie_app_gap_s": summary([k["ie_app"]["gap_s"] for k in kills]),
        "failures": {region: writer.failures for region, writer in writers.items()},
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
                for k in ("evs", "us_app_gap_s", "us_app_first_ack_s", "ie_app_gap_s", "failures")
            },
            indent=2,
        )
    )
    print(f"written to {REPORT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
