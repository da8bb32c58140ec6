"""WAN earns: a bare commit against an earn through the API, p50/p99 per region, on the
three-region lab (labs/regions: network namespaces, a delayed WAN; root, ~3 min).

    python -m bench.wan_earn [--samples 60] [--variant NAME:ENV=VALUE[,ENV=VALUE]]...

Per region, in alternating rounds of 20: PyMySQL INSERT+COMMIT on the region's node from
a client in that region, then API earns by the region's barista through the front
router (one customer, so every region writes the same wallet, as tills do). Each
``--variant`` restarts the three apps with those settings and measures again. Prints a
table and writes reports/bench/wan-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from labs.regions import checks
from labs.regions.lab import RegionLab
from labs.regions.topology import REGIONS

REPORTS = Path(__file__).resolve().parent.parent / "reports" / "bench"
ROUND = 20


def measure(lab: RegionLab, card: str, samples: int) -> dict[str, dict[str, dict]]:
    out = {}
    for region in REGIONS:
        till = checks.Till(lab, region)
        commits: list[float] = []
        earns: list[float] = []
        till.earn(card)  # warm the till's connection and the app's pool
        while len(earns) < samples:
            commits += checks.bare_commits(lab, region, ROUND)
            for _ in range(ROUND):
                answer = till.earn(card)
                if answer.status != 201:
                    raise AssertionError(f"{region}: earn {answer.status} {answer.text[:300]}")
                earns.append(answer.elapsed_ms)
        till.client.close()
        out[region] = {"commit": checks.percentiles(commits), "earn": checks.percentiles(earns)}
        print(region, out[region], flush=True)
    return out


def restart_apps(lab: RegionLab, env: dict[str, str]) -> None:
    os.environ.update(env)
    for region in REGIONS:
        lab.kill_app(region)
        lab.start_app(region)
    lab.heal()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--variant", action="append", default=[])
    args = parser.parse_args(argv)
    runs: list[tuple[str, dict[str, str]]] = [("app", {})]
    for text in args.variant:
        name, _, assignments = text.partition(":")
        runs.append((name, dict(x.split("=", 1) for x in assignments.split(",") if x)))
    report: dict = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                    "load_average_start": os.getloadavg(), "runs": {}}
    lab = RegionLab()
    lab.start()
    try:
        lab.heal()  # every node and app up and healthy, as the region tests start
        report["rtts"] = lab.wan.status()["rtts"]
        card = checks.new_customer(lab, "us", "wan")["card"]
        for name, env in runs:
            if env:
                restart_apps(lab, env)
            report["runs"][name] = measure(lab, card, args.samples)
    finally:
        lab.stop()
    report["load_average_end"] = os.getloadavg()
    print("| run | region | commit p50 / p99 ms | API earn p50 / p99 ms | earn p99 / commit p99 |")
    print("|---|---|---:|---:|---:|")
    for name, regions in report["runs"].items():
        for region, row in regions.items():
            c, e = row["commit"], row["earn"]
            print(f"| {name} | {region} | {c['p50']:.0f} / {c['p99']:.0f} | "
                  f"{e['p50']:.0f} / {e['p99']:.0f} | {e['p99'] / c['p99']:.2f}x |")
    print(f"load average {report['load_average_start']} -> {report['load_average_end']}")
    REPORTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    (REPORTS / f"wan-{stamp}.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
