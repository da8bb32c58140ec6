"""``make bench``: our numbers against the ceilings of this machine.

Not part of the test run. Starts its own Galera lab and app instances (labs/stack.py),
measures, prints a table and writes reports/bench/bench-<time>.json (+ latest.json):

1. **card page vs hello world** -- req/s and p99 of GET /card (signed in: the session
   cookie as wrk -H) under gunicorn with deploy/gunicorn.conf.py, against a hello-world
   Flask app (bench/hello.py) under the very same settings and load (wrk, same threads and
   connections). Target: at least 0.5x.
2. **earn vs raw commits** -- earn transactions/s through the app (the service layer in
   one thread, and HTTP POST /api/v1/transactions with unique Idempotency-Keys under wrk)
   against bare PyMySQL single-row INSERT+COMMIT loops on the same node, at the same
   concurrency. Target: at least 0.5x.
3. **a node dies** -- p99 of the card page and of earns on the US app while the Irish
   node is SIGKILLed and restarted (GaleraLab.kill/restart), against the same load with
   no fault.
4. ``--worker-classes gthread,gevent``: the card page and HTTP earns per gunicorn worker
   model (gevent only when installed).

The machine has 2 cores and is shared: every result carries the load average measured
around it; compare runs only at similar load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labs import stack

ROOT = stack.ROOT
REPORTS = ROOT / "reports" / "bench"
WRK_SCRIPT = Path(__file__).with_name("wrk.lua")


def wrk(url: str, *, seconds: float, connections: int, threads: int = 2,
        headers: dict[str, str] | None = None, env: dict[str, str] | None = None,
        expect: int | None = None) -> dict[str, Any]:
    """One wrk run; the JSON line bench/wrk.lua prints, plus the load average around it.
    ``expect`` checks every response's status in Lua (slow: only for Lua-made requests)."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{round(seconds)}s",
               "--timeout", "10s", "-s", str(WRK_SCRIPT), "--latency"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    before = stack.load_average()
    result = subprocess.run([*command, url], capture_output=True, text=True, check=False,
                            env={**os.environ, "WRK_EXPECT": str(expect or ""), **(env or {})})
    line = next((x for x in result.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {result.stdout}\n{result.stderr}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    data["load_average"] = {"before": before, "after": stack.load_average()}
    data["ok"] = not (data["unexpected_status"] or data["errors_status"]
                      or data["errors_connect"] or data["errors_read"]
                      or data["errors_timeout"])
    return data


def earn_env(token: str, cards: list[str], region: str = "us") -> dict[str, str]:
    currency, amount = stack.TILL[region]
    return {"WRK_MODE": "earn", "WRK_TOKEN": token, "WRK_CARDS": " ".join(cards),
            "WRK_CURRENCY": currency, "WRK_AMOUNT": amount,
            "WRK_RUN": "bench-" + uuid.uuid4().hex[:8]}


def raw_commits(lab: Any, node: int, *, seconds: float, threads: int) -> dict[str, Any]:
    """Single-row INSERT + COMMIT in a bare PyMySQL loop per thread: the node's ceiling for
    durable, replicated commits (innodb_flush_log_at_trx_commit=1, Galera certification)."""
    import pymysql

    from labs.galera import APP_DATABASE, APP_PASSWORD, APP_USER

    def connect() -> pymysql.connections.Connection:
        return pymysql.connect(host="127.0.0.1", port=lab.port(node), user=APP_USER,
                               password=APP_PASSWORD, database=APP_DATABASE, autocommit=False)

    setup = connect()
    with setup.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_commits (id BIGINT AUTO_INCREMENT "
                    "PRIMARY KEY, k VARCHAR(64) NOT NULL, created_at DATETIME(6) NOT NULL)")
    setup.commit()
    counts = [0] * threads
    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop = time.monotonic() + seconds

    def loop(i: int) -> None:
        conn = connect()
        with conn.cursor() as cur:
            while time.monotonic() < stop:
                started = time.perf_counter()
                cur.execute("INSERT INTO bench_commits (k, created_at) VALUES (%s, NOW(6))",
                            (uuid.uuid4().hex,))
                conn.commit()
                latencies[i].append(time.perf_counter() - started)
                counts[i] += 1
        conn.close()

    before = stack.load_average()
    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    with setup.cursor() as cur:
        cur.execute("DROP TABLE bench_commits")
    setup.close()
    return _rate(sum(counts), seconds, [x for chunk in latencies for x in chunk], before)


def service_earns(lab: Any, cards: list[str], *, seconds: float, db_mode: str) -> dict[str, Any]:
    """ledger.earn in one thread, through the app's database layer (router, retries,
    causal barrier): what a request pays for its transaction, without HTTP."""
    from webapp import create_app
    from webapp.extensions import db
    from webapp.ledger import services as ledger

    env = stack.database_env(lab, "us", db_mode)
    config = {"PROFILE": "test", "REGION": "us",
              "CLUSTER": env.get("LOYALTY_CLUSTER"), "CLUSTER_KIND": "galera",
              "DATABASE_URL": env.get("LOYALTY_DATABASE_URL", lab.dsn(0)),
              "HEALTH_CHECK_INTERVAL": 1.0}
    app = create_app(config)
    latencies: list[float] = []
    with app.app_context():
        for i in range(20):  # warm the pool and caches
            ledger.earn(card=cards[i % len(cards)], store_code="US-NYC-01", amount_minor=1250,
                        currency="USD", idempotency_key=f"warm-{uuid.uuid4().hex}",
                        staff_id=None)
        before = stack.load_average()
        stop = time.monotonic() + seconds
        n = 0
        while time.monotonic() < stop:
            started = time.perf_counter()
            ledger.earn(card=cards[n % len(cards)], store_code="US-NYC-01", amount_minor=1250,
                        currency="USD", idempotency_key=f"svc-{uuid.uuid4().hex}",
                        staff_id=None)
            latencies.append(time.perf_counter() - started)
            n += 1
    db.dispose()
    return _rate(n, seconds, latencies, before)


def _rate(count: int, seconds: float, latencies: list[float], before: str) -> dict[str, Any]:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 2)

    return {"requests": count, "rps": round(count / seconds, 1), "p50_ms": pct(50),
            "p99_ms": pct(99), "max_ms": round(ordered[-1] * 1000, 2), "ok": count > 0,
            "load_average": {"before": before, "after": stack.load_average()}}


def _app(name: str, port: int, env: dict[str, str], **options: Any) -> stack.AppServer:
    return stack.AppServer(name, port, env, log_dir=REPORTS / "logs", access_log=False,
                           **options)


def bench_pages(lab: Any, args: argparse.Namespace, worker_class: str) -> dict[str, Any]:
    env = stack.production_env("us", stack.database_env(lab, "us", args.db))
    results: dict[str, Any] = {}
    # The same gunicorn settings for both: deploy/gunicorn.conf.py with its defaults.
    with stack.running([_app("hello", args.port, env, app="bench.hello:app",
                             worker_class=worker_class, ready_path="/card")]):
        wrk(f"http://127.0.0.1:{args.port}/card", seconds=2, connections=args.connections)
        results["hello"] = wrk(f"http://127.0.0.1:{args.port}/card", seconds=args.seconds,
                               connections=args.connections)
    with stack.running([_app("app-us", args.port, env, worker_class=worker_class)]) as (app,):
        cookie = stack.page_cookie(app.url, "demo@example.com")
        _check_card_page(app.url, cookie)
        wrk(app.url + "/card", seconds=2, connections=args.connections,
            headers={"Cookie": cookie})
        results["card"] = wrk(app.url + "/card", seconds=args.seconds,
                              connections=args.connections, headers={"Cookie": cookie})
        _check_card_page(app.url, cookie)  # still signed in: no run of redirects
        token = stack.sign_in(app.url, "barista.us@example.com")
        results["earn_http"] = wrk(app.url + "/", seconds=args.seconds,
                                   connections=args.earn_connections, expect=201,
                                   env=earn_env(token, args.cards))
    return results


def _check_card_page(url: str, cookie: str) -> None:
    import urllib.request

    request = urllib.request.Request(url + "/card", headers={"Cookie": cookie})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        body = response.read().decode()
    if response.status != 200 or 'id="balance"' not in body:
        raise RuntimeError("the card page did not render for the benchmark's session")


def bench_fault(lab: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Card page and earns on the US app, with and without the Irish node being killed."""
    env = stack.production_env("us", stack.database_env(lab, "us", args.db))
    results: dict[str, Any] = {}
    with stack.running([_app("app-us-fault", args.port, env)]) as (app,):
        cookie = stack.page_cookie(app.url, "demo@example.com")
        token = stack.sign_in(app.url, "barista.us@example.com")
        seconds = args.fault_seconds

        def both() -> tuple[dict[str, Any], list[threading.Thread]]:
            out: dict[str, Any] = {}

            def card() -> None:
                out["card"] = wrk(app.url + "/card", seconds=seconds, connections=16,
                                  headers={"Cookie": cookie})

            def earn() -> None:
                out["earn"] = wrk(app.url + "/", seconds=seconds, connections=4, expect=201,
                                  env=earn_env(token, args.cards))

            workers = [threading.Thread(target=card), threading.Thread(target=earn)]
            for worker in workers:
                worker.start()
            return out, workers

        out, workers = both()
        for worker in workers:
            worker.join()
        results["no_fault"] = out
        out, workers = both()
        time.sleep(seconds / 4)
        killed_at = time.monotonic()
        lab.kill(1)
        time.sleep(seconds / 3)
        restart_started = time.monotonic()
        lab.restart(1)
        rejoined = time.monotonic()
        for worker in workers:
            worker.join()
        _check_card_page(app.url, cookie)
        out["timeline"] = {"kill_at_s": round(seconds / 4, 1),
                           "down_s": round(restart_started - killed_at, 1),
                           "restart_took_s": round(rejoined - restart_started, 1)}
        results["ie_killed"] = out
    return results


def profile(lab: Any, args: argparse.Namespace) -> list[str]:
    """pyinstrument over in-process card pages and history partials (the app on the lab,
    one thread): HTML and text under reports/bench/."""
    from pyinstrument import Profiler

    from webapp import create_app

    env = stack.database_env(lab, "us", args.db)
    app = create_app({"PROFILE": "test", "REGION": "us", "CLUSTER": env.get("LOYALTY_CLUSTER"),
                      "CLUSTER_KIND": "galera",
                      "DATABASE_URL": env.get("LOYALTY_DATABASE_URL", lab.dsn(0))})
    client = app.test_client()
    html = client.get("/login").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    client.post("/login", data={"csrf_token": token, "email": "demo@example.com",
                                "password": stack.PASSWORD})
    written = []
    for name, path in (("card", "/card"), ("history", "/card?fresh=1")):
        for _ in range(100):
            client.get(path, headers={"HX-Request": "true"} if "fresh" in path else {})
        profiler = Profiler(interval=0.001)
        with profiler:
            for _ in range(500):
                client.get(path, headers={"HX-Request": "true"} if "fresh" in path else {})
        for suffix, text in (("html", profiler.output_html()),
                             ("txt", profiler.output_text(unicode=True, show_all=False))):
            target = REPORTS / f"profile-{name}.{suffix}"
            target.write_text(text)
            written.append(str(target))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-base", type=int, default=38061)
    parser.add_argument("--port", type=int, default=38095)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--earn-connections", type=int, default=16)
    parser.add_argument("--fault-seconds", type=float, default=24)
    parser.add_argument("--db", choices=("auto", "cluster", "single"), default="auto")
    parser.add_argument("--worker-classes", default="gthread",
                        help="comma-separated gunicorn worker classes to compare")
    parser.add_argument("--skip", default="", help="comma-separated: pages,earn,fault,profile")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    REPORTS.mkdir(parents=True, exist_ok=True)
    if shutil.which("wrk") is None:  # Debian's package; the project installs what it needs
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})

    from labs.galera import GaleraLab

    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_average_start": stack.load_average()},
        "settings": {k: v for k, v in vars(args).items() if k != "cards"},
    }
    with GaleraLab(port_base=args.port_base) as lab:
        args.cards = stack.seed(lab.dsn(0), customers_per_region=8)["us"]
        if "pages" not in skip:
            report["pages"] = {}
            for worker_class in args.worker_classes.split(","):
                report["pages"][worker_class] = bench_pages(lab, args, worker_class)
        if "earn" not in skip:
            report["earn"] = {
                "raw_1": raw_commits(lab, 0, seconds=args.seconds, threads=1),
                "service_1": service_earns(lab, args.cards, seconds=args.seconds,
                                           db_mode=args.db),
                f"raw_{args.earn_connections}": raw_commits(
                    lab, 0, seconds=args.seconds, threads=args.earn_connections),
            }
        if "fault" not in skip:
            report["fault"] = bench_fault(lab, args)
        if "profile" not in skip:
            report["profiles"] = profile(lab, args)
        report["ledger"] = stack.check_ledger(lab)
    report["machine"]["load_average_end"] = stack.load_average()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    text = json.dumps(report, indent=2)
    (REPORTS / f"bench-{stamp}.json").write_text(text)
    (REPORTS / "latest.json").write_text(text)
    print(table(report))
    print(f"\nwritten: {REPORTS / f'bench-{stamp}.json'}")
    return 0 if report["ledger"]["ok"] else 1


def table(report: dict[str, Any]) -> str:
    rows = [("measurement", "req/s", "p50 ms", "p99 ms", "ratio", "load avg (1 min) before/after",
             "clean")]

    def add(name: str, data: dict[str, Any] | None, ratio: str = "") -> None:
        if not data:
            return
        load = data["load_average"]
        rows.append((name, f"{data['rps']:.0f}", f"{data['p50_ms']:.1f}", f"{data['p99_ms']:.1f}",
                     ratio, f"{load['before'].split()[0]} / {load['after'].split()[0]}",
                     "yes" if data["ok"] else "NO"))

    for worker_class, pages in report.get("pages", {}).items():
        hello, card, earn = pages["hello"], pages["card"], pages["earn_http"]
        add(f"hello world ({worker_class})", hello)
        add(f"GET /card ({worker_class})", card, f"{card['rps'] / hello['rps']:.2f}x hello")
        raw = report.get("earn", {}).get(f"raw_{report['settings']['earn_connections']}")
        add(f"POST earn over HTTP ({worker_class}, "
            f"{report['settings']['earn_connections']} conns)", earn,
            f"{earn['rps'] / raw['rps']:.2f}x raw" if raw else "")
    earn = report.get("earn", {})
    for key, data in earn.items():
        if key.startswith("raw_"):
            add(f"raw INSERT+COMMIT, {key.removeprefix('raw_')} thread(s)", data)
    if "service_1" in earn:
        add("ledger.earn (service layer), 1 thread", earn["service_1"],
            f"{earn['service_1']['rps'] / earn['raw_1']['rps']:.2f}x raw")
    for phase, data in report.get("fault", {}).items():
        add(f"GET /card, {phase}", data.get("card"))
        add(f"POST earn, {phase}", data.get("earn"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    fault = report.get("fault", {}).get("ie_killed", {}).get("timeline")
    if fault:
        lines.append(f"(node ie SIGKILLed {fault['kill_at_s']} s into the run, down "
                     f"{fault['down_s']} s, rejoin took {fault['restart_took_s']} s)")
    return "\n".join(lines)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
