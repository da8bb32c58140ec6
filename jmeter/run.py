"""``make jmeter``: the multi-region load test, end to end, in a few minutes.

1. installs JMeter 5.5 into tools/jmeter (scripts/install_jmeter.sh);
2. starts a 3-node Galera lab (labs/galera) and seeds it: demo data plus ``load.<region>.<n>``
   customers for every region;
3. starts one app per region under gunicorn with deploy/gunicorn.conf.py, each told its
   region (LOYALTY_REGION) so the cluster router prefers its own node;
4. runs jmeter/loyalty.jmx against the three at once, one JMeter per region, sized so
   each region gets at least ``--requests`` requests;
5. writes reports/jmeter/: the HTML dashboards (all regions, and one per region), the
   raw results (.jtl), summary.md / summary.json (throughput, p50/p95/p99 and errors per
   sampler), the app logs;
6. checks the ledger: every wallet's balance equals its ledger sum, none is negative, all
   nodes agree, and exactly one ledger row exists per successful earn/redeem (the replays
   added none).

Exits non-zero on any sampler error, a region short of requests, or a broken invariant.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from labs import stack

ROOT = stack.ROOT
PLAN = ROOT / "jmeter" / "loyalty.jmx"
JMETER_HOME = ROOT / "tools" / "jmeter"
REPORTS = ROOT / "reports" / "jmeter"
# Requests one iteration makes: customers 5 (card, history, family, family list, /me),
# staff 3 (earn, replay, redeem); once per thread: customers 3 (login x2, token), staff 1.
CUSTOMER_LOOP, STAFF_LOOP, CUSTOMER_ONCE, STAFF_ONCE = 5, 3, 3, 1
WRITES = ("api: POST /transactions earn", "api: POST /transactions redeem")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-base", type=int, default=38061, help="Galera lab ports")
    parser.add_argument("--app-port", type=int, default=38090,
                        help="first app port (one per region: N, N+1, N+2)")
    parser.add_argument("--requests", type=int, default=10_000, help="at least, per region")
    parser.add_argument("--customers", type=int, default=8, help="customer threads per region")
    parser.add_argument("--staff", type=int, default=2, help="barista threads per region")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per region")
    parser.add_argument("--db", choices=("auto", "cluster", "single"), default="auto")
    parser.add_argument("--duration", type=int, default=600, help="safety stop, seconds")
    args = parser.parse_args(argv)

    subprocess.run(["bash", str(ROOT / "scripts" / "install_jmeter.sh")], check=True)
    if REPORTS.exists():
        shutil.rmtree(REPORTS)
    REPORTS.mkdir(parents=True)
    per_loop = args.customers * CUSTOMER_LOOP + args.staff * STAFF_LOOP
    once = args.customers * CUSTOMER_ONCE + args.staff * STAFF_ONCE
    loops = math.ceil((args.requests - once) / per_loop)

    from labs.galera import GaleraLab

    started = time.monotonic()
    print(f"starting the Galera lab (port base {args.port_base})...", flush=True)
    with GaleraLab(port_base=args.port_base) as lab:
        print("seeding demo data and load-test customers...", flush=True)
        cards = stack.seed(lab.dsn(0), customers_per_region=max(args.customers, 1),
                           schema_dsn=lab.schema_dsn(0))
        servers = [
            stack.AppServer(f"app-{region}", args.app_port + i,
                            stack.production_env(region, stack.database_env(lab, region,
                                                                            args.db)),
                            workers=args.workers, log_dir=REPORTS / "logs")
            for i, region in enumerate(stack.REGIONS)
        ]
        writes_before = stack.ledger_rows(lab)
        with stack.running(servers):
            print(f"apps up ({', '.join(s.url for s in servers)}); load average "
                  f"{stack.load_average()}; {loops} loops per thread", flush=True)
            load_start = stack.load_average()
            with ThreadPoolExecutor(len(servers)) as pool:
                codes = list(pool.map(
                    lambda pair: _run_jmeter(pair[0], pair[1], cards[pair[0]], loops, args),
                    zip(stack.REGIONS, servers, strict=True)))
            load_end = stack.load_average()
        writes_after = stack.ledger_rows(lab)
        ledger = stack.check_ledger(lab)

    results = {region: _read_jtl(REPORTS / region / "results.jtl") for region in stack.REGIONS}
    _dashboard_for_all()
    summary = _summarize(results, ledger, writes_after - writes_before, args.requests,
                         load=(load_start, load_end), seconds=time.monotonic() - started)
    summary["jmeter_exit_codes"] = dict(zip(stack.REGIONS, codes, strict=True))
    (REPORTS / "summary.json").write_text(json.dumps(summary, indent=2))
    markdown = _markdown(summary)
    (REPORTS / "summary.md").write_text(markdown)
    print(markdown)
    if summary["failures"]:
        print("FAILED:\n  " + "\n  ".join(summary["failures"]), file=sys.stderr)
        return 1
    print(f"OK: dashboards in {REPORTS}/dashboard/index.html and {REPORTS}/<region>/dashboard/")
    return 0


def _java() -> list[str]:
    return ["java", "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC",
            "-jar", str(JMETER_HOME / "bin" / "ApacheJMeter.jar")]


def _run_jmeter(region: str, server: stack.AppServer, cards: list[str], loops: int,
                args: argparse.Namespace) -> int:
    out = REPORTS / region
    out.mkdir(parents=True, exist_ok=True)
    cards_csv = out / "cards.csv"
    cards_csv.write_text("card\n" + "\n".join(cards) + "\n")
    currency, amount = stack.TILL[region]
    properties = {
        "host": "127.0.0.1", "port": server.port, "region": region,
        "customers": args.customers, "staff": args.staff, "loops": loops,
        "duration": args.duration, "rampup": 5, "cards_csv": cards_csv,
        "currency": currency, "amount": amount, "password": stack.PASSWORD,
    }
    command = [*_java(), "-n", "-t", str(PLAN), "-l", str(out / "results.jtl"),
               "-j", str(out / "jmeter.log"), "-e", "-o", str(out / "dashboard"),
               *(f"-J{k}={v}" for k, v in properties.items())]
    with (out / "jmeter-stdout.log").open("w") as log:
        return subprocess.run(command, cwd=out, stdout=log, stderr=subprocess.STDOUT,
                              check=False).returncode


def _read_jtl(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _dashboard_for_all() -> None:
    """One dashboard over every region's results (JMeter's -g on the merged .jtl)."""
    merged = REPORTS / "all-regions.jtl"
    with merged.open("w", newline="") as out:
        writer = None
        for region in stack.REGIONS:
            for row in _read_jtl(REPORTS / region / "results.jtl"):
                row["label"] = f"{region} {row['label']}"
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
    subprocess.run([*_java(), "-g", str(merged), "-o", str(REPORTS / "dashboard"),
                    "-j", str(REPORTS / "dashboard-jmeter.log")], cwd=REPORTS, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _percentile(sorted_values: list[int], p: float) -> int:
    if not sorted_values:
        return 0
    return sorted_values[min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1)]


def _stats(rows: list[dict[str, str]]) -> dict[str, Any]:
    elapsed = sorted(int(r["elapsed"]) for r in rows)
    start = min((int(r["timeStamp"]) for r in rows), default=0)
    end = max((int(r["timeStamp"]) + int(r["elapsed"]) for r in rows), default=0)
    seconds = max((end - start) / 1000, 0.001)
    errors = [r for r in rows if r["success"] != "true"]
    return {
        "requests": len(rows), "errors": len(errors),
        "throughput_per_s": round(len(rows) / seconds, 1),
        "p50_ms": _percentile(elapsed, 50), "p95_ms": _percentile(elapsed, 95),
        "p99_ms": _percentile(elapsed, 99), "max_ms": elapsed[-1] if elapsed else 0,
        "first_error": (errors[0]["responseCode"] + " " + errors[0]["failureMessage"][:200]
                        if errors else None),
    }


def _summarize(results: dict[str, list[dict[str, str]]], ledger: dict[str, Any],
               new_rows: int, wanted: int, *, load: tuple[str, str],
               seconds: float) -> dict[str, Any]:
    regions: dict[str, Any] = {}
    failures: list[str] = []
    successful_writes = 0
    for region, rows in results.items():
        labels = sorted({r["label"] for r in rows})
        regions[region] = {
            "total": _stats(rows),
            "samplers": {label: _stats([r for r in rows if r["label"] == label])
                         for label in labels},
        }
        total = regions[region]["total"]
        if total["requests"] < wanted:
            failures.append(f"{region}: {total['requests']} requests, fewer than {wanted}")
        for label, stats in regions[region]["samplers"].items():
            if stats["errors"]:
                failures.append(f"{region} {label}: {stats['errors']} errors, first: "
                                f"{stats['first_error']}")
        successful_writes += sum(1 for r in rows if r["label"] in WRITES and r["success"] == "true")
    if not ledger["ok"]:
        failures.extend(ledger["problems"])
    if new_rows != successful_writes:
        failures.append(f"{new_rows} new ledger rows for {successful_writes} successful "
                        "earns/redeems: a write was lost or applied twice")
    return {"regions": regions, "ledger": dict(ledger, new_rows=new_rows,
                                               successful_writes=successful_writes),
            "load_average": {"start": load[0], "end": load[1]},
            "wall_seconds": round(seconds, 1), "failures": failures}


def _markdown(summary: dict[str, Any]) -> str:
    lines = ["# JMeter: three regions at once", "",
             f"Load average (1/5/15 min) at start {summary['load_average']['start']}, at end "
             f"{summary['load_average']['end']}; whole run {summary['wall_seconds']} s.", ""]
    for region, data in summary["regions"].items():
        t = data["total"]
        lines += [f"## {region}: {t['requests']} requests, {t['throughput_per_s']}/s, "
                  f"p50 {t['p50_ms']} ms, p95 {t['p95_ms']} ms, p99 {t['p99_ms']} ms, "
                  f"{t['errors']} errors", "",
                  "| sampler | n | /s | p50 ms | p95 ms | p99 ms | errors |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for label, s in data["samplers"].items():
            lines.append(f"| {label} | {s['requests']} | {s['throughput_per_s']} | "
                         f"{s['p50_ms']} | {s['p95_ms']} | {s['p99_ms']} | {s['errors']} |")
        lines.append("")
    ledger = summary["ledger"]
    lines += ["## Ledger", "",
              f"{ledger['wallets']} wallets, {ledger['ledger_rows']} ledger rows; balances equal "
              f"ledger sums and none negative on all three nodes: "
              f"{'yes' if ledger['ok'] else 'NO'}; {ledger['new_rows']} new rows for "
              f"{ledger['successful_writes']} successful earns/redeems.", ""]
    if summary["failures"]:
        lines += ["## Failures", "", *(f"- {f}" for f in summary["failures"]), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
