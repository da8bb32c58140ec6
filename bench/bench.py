"""``make bench``: our numbers against the ceilings of this machine.

Not part of the test run. Starts its own Galera lab and app instances (labs/stack.py),
measures, prints a table and writes reports/bench/bench-<time>.json (+ latest.json):

1. **card page vs two ceilings** -- req/s and p99 of GET /card (signed in: the session
   cookie as wrk -H) under gunicorn with deploy/gunicorn.conf.py, against hello-world
   Flask (bench/hello.py) and against the *database floor* (bench/floor.py: one point
   SELECT + COMMIT through the app's own pool settings and a tiny template), all three
   under the very same settings and load (wrk, same threads and connections).
   Targets: card >= 0.25x hello and >= 0.6x floor.
2. **earn vs raw commits** -- earn transactions/s through the app (the service layer in
   one thread, and HTTP POST /api/v1/transactions with unique Idempotency-Keys under wrk)
   against bare PyMySQL single-row INSERT+COMMIT loops on the same node, at the same
   concurrency. Targets: service >= 0.5x raw at 1, HTTP >= 0.25x raw at 16.
3. **a node dies** -- p99 of the card page and of earns on the US app while the Irish
   node is SIGKILLed and restarted (GaleraLab.kill/restart), against the same load with
   no fault.
4. ``--worker-classes gthread,gevent``: the card page and HTTP earns per gunicorn worker
   model (gevent only when installed).

**Alternation.** The machine's load changes by the minute, so two numbers taken minutes
apart compare the load, not the code. Every comparison runs in short alternating rounds
(hello, floor, card, hello, floor, card...; raw, earn, raw, earn...) and reports the
median of the per-round ratios with their spread (min-max), plus the load average.

**Same contention?** The earns (service and HTTP) rotate over the same seeded US
wallets, so they contend for those rows; the raw commits insert fresh rows into a table
of their own and contend for nothing but the node's commit path. The ratio therefore
includes the cost of hot wallet rows; it is the fair ceiling of "one durable commit".

**Memory.** RSS of every gunicorn worker after warm-up and of every database node.

Exits non-zero when wrk saw errors or non-2xx answers, or the ledger check fails.
``--short`` runs a quick version (2 s rounds, 5 pairs, shorter fault run, no profile).

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
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labs import stack
from webapp.config import REGIONS

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


class RawCommits:
    """Single-row INSERT + COMMIT in a bare PyMySQL loop per thread: the node's ceiling for
    durable, replicated commits (innodb_flush_log_at_trx_commit=1, Galera certification).
    The table is made once; :meth:`run` can be called for every round of an alternation."""

    def __init__(self, lab: Any, node: int) -> None:
        self.lab, self.node = lab, node

    def connect(self) -> Any:
        import pymysql

        from labs.galera import APP_DATABASE, APP_PASSWORD, APP_USER

        return pymysql.connect(host="127.0.0.1", port=self.lab.port(self.node), user=APP_USER,
                               password=APP_PASSWORD, database=APP_DATABASE, autocommit=False)

    def __enter__(self) -> RawCommits:
        from labs.galera import APP_DATABASE, APP_USER

        # The app's account may not create tables (only the schema owner may): the lab's
        # admin makes the scratch table and lets the app account insert into it.
        self.setup = self.lab.admin_connect(self.node)
        with self.setup.cursor() as cur:
            cur.execute(f"CREATE TABLE IF NOT EXISTS {APP_DATABASE}.bench_commits (id BIGINT "
                        "AUTO_INCREMENT PRIMARY KEY, k VARCHAR(64) NOT NULL, "
                        "created_at DATETIME(6) NOT NULL)")
            cur.execute(f"GRANT SELECT, INSERT ON {APP_DATABASE}.bench_commits "
                        f"TO '{APP_USER}'@'%'")
        self.setup.commit()
        return self

    def __exit__(self, *_exc: object) -> None:
        import pymysql

        from labs.galera import APP_DATABASE

        with contextlib.suppress(pymysql.MySQLError):
            self.setup.close()
        # A new connection: the fault phase may have killed this node since (--fault-node us).
        setup = self.lab.admin_connect(self.node)
        with setup.cursor() as cur:
            cur.execute(f"DROP TABLE {APP_DATABASE}.bench_commits")
        setup.close()

    def run(self, *, seconds: float, threads: int) -> dict[str, Any]:
        counts = [0] * threads
        latencies: list[list[float]] = [[] for _ in range(threads)]
        connections = [self.connect() for _ in range(threads)]  # outside the timed part
        stop = time.monotonic() + seconds

        def loop(i: int) -> None:
            conn = connections[i]
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
        return _rate(sum(counts), seconds, [x for chunk in latencies for x in chunk], before)


@contextlib.contextmanager
def service_earner(lab: Any, cards: list[str], *, db_mode: str) -> Iterator[Any]:
    """ledger.earn in one thread, through the app's database layer (router, retries,
    causal barrier): what a request pays for its transaction, without HTTP. Yields
    ``run(seconds)`` for the rounds of an alternation."""
    from webapp import create_app
    from webapp.extensions import db
    from webapp.ledger import services as ledger

    env = stack.database_env(lab, "us", db_mode)
    config = {"PROFILE": "test", "REGION": "us",
              "CLUSTER": env.get("LOYALTY_CLUSTER"), "CLUSTER_KIND": "galera",
              "DATABASE_URL": env.get("LOYALTY_DATABASE_URL", lab.dsn(0)),
              "HEALTH_CHECK_INTERVAL": 1.0}
    app = create_app(config)
    n = 0

    def earn(prefix: str) -> None:
        nonlocal n
        ledger.earn(card=cards[n % len(cards)], store_code="US-NYC-01", amount_minor=1250,
                    currency="USD", idempotency_key=f"{prefix}-{uuid.uuid4().hex}",
                    staff_id=None)
        n += 1

    def run(seconds: float) -> dict[str, Any]:
        latencies: list[float] = []
        with app.app_context():
            before = stack.load_average()
            stop = time.monotonic() + seconds
            while time.monotonic() < stop:
                started = time.perf_counter()
                earn("svc")
                latencies.append(time.perf_counter() - started)
        return _rate(len(latencies), seconds, latencies, before)

    with app.app_context():
        for _ in range(20):  # warm the pool and caches
            earn("warm")
    try:
        yield run
    finally:
        with app.app_context():
            db.dispose()


def _rate(count: int, seconds: float, latencies: list[float], before: str) -> dict[str, Any]:
    ordered = sorted(latencies) or [0.0]

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 2)

    return {"requests": count, "rps": round(count / seconds, 1), "p50_ms": pct(50),
            "p99_ms": pct(99), "max_ms": round(ordered[-1] * 1000, 2), "ok": count > 0,
            "load_average": {"before": before, "after": stack.load_average()}}


# ------------------------------------------------------------------------ alternation
def alternate(runs: dict[str, Callable[[], dict[str, Any]]], pairs: int) -> dict[str, Any]:
    """Run every measurement once per round, ``pairs`` rounds: A, B, (C,) A, B, ...
    Returns each one's runs plus the load average around the whole alternation."""
    out: dict[str, Any] = {name: [] for name in runs}
    load_before = stack.load_average()
    for _ in range(pairs):
        for name, run in runs.items():
            out[name].append(run())
    return {"runs": out, "load_average": {"before": load_before, "after": stack.load_average()}}


def ratio(alternation: dict[str, Any], numerator: str, denominator: str,
          key: str = "rps") -> dict[str, Any]:
    """Median of the per-round ratios numerator/denominator, with its spread."""
    tops, bottoms = alternation["runs"][numerator], alternation["runs"][denominator]
    values = sorted(t[key] / b[key] for t, b in zip(tops, bottoms, strict=True) if b[key])
    return {"median": round(statistics.median(values), 3) if values else None,
            "min": round(values[0], 3) if values else None,
            "max": round(values[-1], 3) if values else None, "rounds": len(values)}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds of one measurement (req/s, p50, p99); clean only if all were."""
    return {"rps": statistics.median(r["rps"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "ok": all(r["ok"] for r in runs),
            "load_average": {"before": runs[0]["load_average"]["before"],
                             "after": runs[-1]["load_average"]["after"]}}


# ----------------------------------------------------------------------------- memory
def rss_kib(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def worker_rss(server: stack.AppServer) -> list[int | None]:
    """RSS (KiB) of each gunicorn worker: the arbiter's children."""
    assert server.proc is not None
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children")
    pids = [int(x) for x in children.read_text().split()] if children.exists() else []
    return [rss_kib(pid) for pid in pids]


def node_rss(lab: Any) -> dict[str, int | None]:
    return {region: rss_kib(lab.pid(i)) for i, region in enumerate(lab.regions)}


# ------------------------------------------------------------------------------ pages
def _app(name: str, port: int, env: dict[str, str], **options: Any) -> stack.AppServer:
    return stack.AppServer(name, port, env, log_dir=REPORTS / "logs", access_log=False,
                           **options)


def bench_pages(lab: Any, args: argparse.Namespace, worker_class: str,
                raw: RawCommits) -> dict[str, Any]:
    """hello, floor and card page side by side (three gunicorns at once, idle ones cost
    nothing), then HTTP earns alternating with raw commits at the same concurrency."""
    env = stack.production_env("us", stack.database_env(lab, "us", args.db))
    servers = [_app("hello", args.port, env, app="bench.hello:app",
                    worker_class=worker_class, ready_path="/card"),
               _app("floor", args.port + 1, env, app="bench.floor:app",
                    worker_class=worker_class, ready_path="/card"),
               _app("app-us", args.port + 2, env, worker_class=worker_class)]
    if args.variant:  # the same app with a setting changed: a lever, measured alternating
        servers.append(_app("variant", args.port + 3, {**env, **args.variant_env},
                            worker_class=worker_class))
    results: dict[str, Any] = {}
    with stack.running(servers) as running:
        hello, floor, app = running[:3]
        cookie = stack.page_cookie(app.url, "demo@example.com")
        _check_card_page(app.url, cookie)

        def page(url: str, headers: dict[str, str] | None = None) -> Callable[[], Any]:
            return lambda: wrk(url, seconds=args.seconds, connections=args.connections,
                               headers=headers)

        runs = {"hello": page(hello.url + "/card"), "floor": page(floor.url + "/card"),
                "card": page(app.url + "/card", {"Cookie": cookie})}
        warm = [(hello.url + "/card", None), (floor.url + "/card", None),
                (app.url + "/card", {"Cookie": cookie})]
        if args.variant:
            variant = running[3]
            variant_cookie = stack.page_cookie(variant.url, "demo@example.com")
            _check_card_page(variant.url, variant_cookie)
            runs["variant"] = page(variant.url + "/card", {"Cookie": variant_cookie})
            warm.append((variant.url + "/card", {"Cookie": variant_cookie}))
        # Warm-up: every worker imported, its pool filled, its caches built.
        for url, headers in warm:
            wrk(url, seconds=2, connections=args.connections, headers=headers)
        results["memory_kib"] = {s.name: worker_rss(s) for s in running}
        pages = alternate(runs, args.pairs)
        _check_card_page(app.url, cookie)  # still signed in: no run of redirects
        results["pages"] = pages
        token = stack.sign_in(app.url, "barista.us@example.com")
        conns = args.earn_connections
        earn_runs = {
            f"raw_{conns}": lambda: raw.run(seconds=args.seconds, threads=conns),
            "earn_http": lambda: wrk(app.url + "/", seconds=args.seconds, connections=conns,
                                     expect=201, env=earn_env(token, args.cards)),
        }
        if args.variant:
            variant_token = stack.sign_in(variant.url, "barista.us@example.com")
            earn_runs["earn_http_variant"] = lambda: wrk(
                variant.url + "/", seconds=args.seconds, connections=conns, expect=201,
                env=earn_env(variant_token, args.cards))
        earns = alternate(earn_runs, args.pairs)
        results["earn_http"] = earns
        results["memory_kib"]["app-us after earns"] = worker_rss(app)
    return results


def _check_card_page(url: str, cookie: str) -> None:
    import urllib.request

    request = urllib.request.Request(url + "/card", headers={"Cookie": cookie})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        body = response.read().decode()
    if response.status != 200 or 'id="balance"' not in body:
        raise RuntimeError("the card page did not render for the benchmark's session")


def bench_fault(lab: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Card page and earns on the US app, with and without a node being killed (the
    Irish one, or with ``--fault-node us`` the app's own preferred node), in
    ``--fault-rounds`` alternating pairs: no fault, fault, no fault, fault..."""
    env = stack.production_env("us", stack.database_env(lab, "us", args.db))
    node = REGIONS.index(args.fault_node)
    phase = f"{args.fault_node}_killed"
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

        rounds = []
        for index in range(args.fault_rounds):
            suffix = f"_{index + 1}" if index else ""
            out, workers = both()
            for worker in workers:
                worker.join()
            results["no_fault" + suffix] = out
            out, workers = both()
            time.sleep(seconds / 4)
            killed_at = time.monotonic()
            lab.kill(node)
            time.sleep(seconds / 3)
            restart_started = time.monotonic()
            lab.restart(node)
            rejoined = time.monotonic()
            for worker in workers:
                worker.join()
            _check_card_page(app.url, cookie)
            out["timeline"] = {"kill_at_s": round(seconds / 4, 1),
                               "down_s": round(restart_started - killed_at, 1),
                               "restart_took_s": round(rejoined - restart_started, 1)}
            results[phase + suffix] = out
            rounds.append(out["card"]["p99_ms"] / results["no_fault" + suffix]["card"]["p99_ms"])
        results["card_p99_ratio"] = {"median": statistics.median(rounds), "min": min(rounds),
                                     "max": max(rounds), "rounds": rounds}
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
    parser.add_argument("--port", type=int, default=38095, help="and the next two")
    parser.add_argument("--seconds", type=float, default=5, help="length of one round")
    parser.add_argument("--pairs", type=int, default=7, help="alternating rounds (>= 5)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--earn-connections", type=int, default=16)
    parser.add_argument("--fault-seconds", type=float, default=24)
    parser.add_argument("--fault-rounds", type=int, default=1,
                        help="alternating pairs of runs without and with the kill")
    parser.add_argument("--fault-node", choices=REGIONS, default="ie",
                        help="the node killed: ie, or us (the app's preferred node)")
    parser.add_argument("--db", choices=("auto", "cluster", "single"), default="auto")
    parser.add_argument("--worker-classes", default="gthread",
                        help="comma-separated gunicorn worker classes to compare")
    parser.add_argument("--skip", default="", help="comma-separated: pages,earn,fault,profile")
    parser.add_argument("--short", action="store_true",
                        help="quick run: 2 s rounds, 5 pairs, 12 s fault run, no profile")
    parser.add_argument("--variant", default="",
                        help="NAME:ENV=VALUE[,ENV=VALUE]: a fourth server, the app with these "
                        "settings, alternated with the others (to measure one lever)")
    args = parser.parse_args(argv)
    args.variant_env = {}
    if args.variant:
        args.variant, _, assignments = args.variant.partition(":")
        args.variant_env = dict(x.split("=", 1) for x in assignments.split(",") if x)
    skip = set(filter(None, args.skip.split(",")))
    if args.short:
        args.seconds, args.pairs, args.fault_seconds = 2, 5, 12
        skip.add("profile")
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
    with GaleraLab(port_base=args.port_base) as lab, RawCommits(lab, 0) as raw:
        args.cards = stack.seed(lab.dsn(0), customers_per_region=8,
                                schema_dsn=lab.schema_dsn(0))["us"]
        if "pages" not in skip:
            report["pages"] = {}
            for worker_class in args.worker_classes.split(","):
                report["pages"][worker_class] = bench_pages(lab, args, worker_class, raw)
        if "earn" not in skip:
            with service_earner(lab, args.cards, db_mode=args.db) as service:
                report["earn"] = alternate({
                    "raw_1": lambda: raw.run(seconds=args.seconds, threads=1),
                    "service_1": lambda: service(args.seconds)}, args.pairs)
        if "fault" not in skip:
            report["fault"] = bench_fault(lab, args)
        if "profile" not in skip:
            report["profiles"] = profile(lab, args)
        report["memory_kib"] = {"db_nodes": node_rss(lab)}
        report["ledger"] = stack.check_ledger(lab)
    report["machine"]["load_average_end"] = stack.load_average()
    report["wrk_clean"] = wrk_clean(report)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    text = json.dumps(report, indent=2)
    (REPORTS / f"bench-{stamp}.json").write_text(text)
    (REPORTS / "latest.json").write_text(text)
    print(table(report))
    print(f"\nwritten: {REPORTS / f'bench-{stamp}.json'}")
    if not report["wrk_clean"]:
        print("FAILED: wrk saw errors or non-2xx answers (see 'clean' above)", file=sys.stderr)
    if not report["ledger"]["ok"]:
        print("FAILED: the ledger check", file=sys.stderr)
    return 0 if report["ledger"]["ok"] and report["wrk_clean"] else 1


def wrk_clean(report: dict[str, Any]) -> bool:
    """Every measurement in the report was clean (no errors, only the expected statuses).
    The fault phase is exempt for earns: while a node dies a few may rightly answer 503."""
    def walk(node: Any, path: str) -> bool:
        if isinstance(node, dict):
            if "ok" in node and "rps" in node and not node["ok"]:
                return "_killed" in path and "earn" in path
            return all(walk(v, f"{path}/{k}") for k, v in node.items())
        if isinstance(node, list):
            return all(walk(v, path) for v in node)
        return True
    return walk({k: v for k, v in report.items() if k != "ledger"}, "")


def table(report: dict[str, Any]) -> str:
    rows = [("measurement", "req/s", "p50 ms", "p99 ms", "ratio median (min-max)",
             "load avg before/after", "clean")]

    def add(name: str, runs: list[dict[str, Any]] | dict[str, Any] | None,
            ratio_of: dict[str, Any] | None = None, against: str = "") -> None:
        if not runs:
            return
        data = summary(runs) if isinstance(runs, list) else runs
        load = data["load_average"]
        text = (f"{ratio_of['median']:.2f}x {against} ({ratio_of['min']:.2f}-"
                f"{ratio_of['max']:.2f})" if ratio_of else "")
        rows.append((name, f"{data['rps']:.0f}", f"{data['p50_ms']:.1f}", f"{data['p99_ms']:.1f}",
                     text, f"{load['before'].split()[0]} / {load['after'].split()[0]}",
                     "yes" if data["ok"] else "NO"))

    conns = report["settings"]["earn_connections"]
    for worker_class, result in report.get("pages", {}).items():
        pages, earns = result["pages"], result["earn_http"]
        add(f"hello world ({worker_class})", pages["runs"]["hello"])
        add(f"floor: 1 SELECT+COMMIT ({worker_class})", pages["runs"]["floor"],
            ratio(pages, "floor", "hello"), "hello")
        add(f"GET /card ({worker_class})", pages["runs"]["card"],
            ratio(pages, "card", "hello"), "hello")
        add("  ... same runs", pages["runs"]["card"], ratio(pages, "card", "floor"), "floor")
        if "variant" in pages["runs"]:
            name = report["settings"]["variant"]
            add(f"GET /card, variant {name}", pages["runs"]["variant"],
                ratio(pages, "variant", "card"), "card")
        add(f"raw INSERT+COMMIT, {conns} threads", earns["runs"][f"raw_{conns}"])
        add(f"POST earn over HTTP ({worker_class}, {conns} conns)", earns["runs"]["earn_http"],
            ratio(earns, "earn_http", f"raw_{conns}"), "raw")
        if "earn_http_variant" in earns["runs"]:
            add(f"POST earn over HTTP, variant {report['settings']['variant']}",
                earns["runs"]["earn_http_variant"],
                ratio(earns, "earn_http_variant", "earn_http"), "earn")
    earn = report.get("earn")
    if earn:
        add("raw INSERT+COMMIT, 1 thread", earn["runs"]["raw_1"])
        add("ledger.earn (service layer), 1 thread", earn["runs"]["service_1"],
            ratio(earn, "service_1", "raw_1"), "raw")
    for phase, data in report.get("fault", {}).items():
        if phase == "card_p99_ratio":
            continue
        add(f"GET /card, {phase}", data.get("card"))
        add(f"POST earn, {phase}", data.get("earn"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    fault = report.get("fault", {})
    node = report["settings"].get("fault_node", "ie")
    timeline = fault.get(f"{node}_killed", {}).get("timeline")
    if timeline:
        lines.append(f"(node {node} SIGKILLed {timeline['kill_at_s']} s into each faulty run, "
                     f"down {timeline['down_s']} s, rejoin took {timeline['restart_took_s']} s)")
        ratios = fault["card_p99_ratio"]
        lines.append(f"card p99 while a node dies: {ratios['median']:.2f}x its p99 without "
                     f"the fault (median of {len(ratios['rounds'])} alternating pairs, "
                     f"{ratios['min']:.2f}-{ratios['max']:.2f})")
    lines.append(f"medians over {report['settings']['pairs']} alternating rounds of "
                 f"{report['settings']['seconds']:.0f} s; load average at start "
                 f"{report['machine']['load_average_start']}, end "
                 f"{report['machine']['load_average_end']}")
    memory = dict(report.get("memory_kib", {}))
    for result in report.get("pages", {}).values():
        memory.update(result.get("memory_kib", {}))
    for name, values in memory.items():
        shown = values.values() if isinstance(values, dict) else values
        lines.append(f"RSS {name}: " + ", ".join(
            f"{v / 1024:.0f} MiB" if v else "?" for v in shown))
    return "\n".join(lines)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
