"""Open, idle cards: what the live balance costs the server (not a test; prints numbers).

Every open card page polls ``GET /card/<id>/live`` with its session cookie and
``If-None-Match`` (see docs/live-balance.md). This starts the app as ``make run`` does
(gunicorn, 2 gthread workers x 4 threads, SQLite), makes ``--cards`` accounts with one
session each, and measures with nothing changing (the idle case, every answer a 304):

1. **backed off**: every card polling every 15 s (card.js's slowest interval), paced
   evenly by a Python client over keep-alive connections: requests/s offered and
   served, answer latency, and the CPU the gunicorn processes used (from /proc) as a
   share of one core.
2. **fast window**: every card at once in its first two minutes (every 1.5 s), paced
   the same way: the worst case, all cards just opened.
3. **ceiling**: wrk (closed loop, cycling through every card's cookie and ETag) for the
   most 304s/s this server gives, and the CPU per poll; and the same for the full card
   page (one session), for the ratio.

    python -m bench.open_cards [--cards 1000] [--seconds 30]

The machine is shared: the load average is printed with the results.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from labs import stack

LUA = Path(__file__).with_name("open_cards.lua")
CLK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(root_pid: int) -> float:
    """utime+stime of gunicorn's master and its workers."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == root_pid or ppid == root_pid:
            total += (int(fields[11]) + int(fields[12])) / CLK
    return total


def prepare(cards: int, env: dict[str, str]) -> list[tuple[str, str, str]]:
    """Schema, stores and ``cards`` accounts (inserted directly: one password hash for
    all), each with an access token and its card's current ETag."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        from sqlalchemy import insert

        from db.seed import seed_stores
        from webapp import create_app
        from webapp.auth.services import hasher
        from webapp.auth.tokens import Principal, issue_access_token
        from webapp.card import services
        from webapp.card.numbers import new_card_number, new_code_secret
        from webapp.clock import utcnow
        from webapp.commands import upgrade_schema
        from webapp.config import parse_jwt_keys
        from webapp.database.schema import accounts, wallets
        from webapp.database.schema import cards as cards_table
        from webapp.extensions import db

        app = create_app({
            "SECRET_KEY": env["SECRET_KEY"], "JWT_KEYS": parse_jwt_keys(env["JWT_KEYS"]),
            "JWT_ACTIVE_KID": env["JWT_ACTIVE_KID"], "DATABASE_URL": env["LOYALTY_DATABASE_URL"],
            "HTTPS": False, "RATELIMIT_STORAGE_URI": "memory://",
        })
        sessions = []
        with app.app_context():
            upgrade_schema()
            seed_stores()
            password_hash = hasher.hash("open-cards-bench-1")
            now = utcnow()

            def make(conn, i: int) -> int:
                account_id = conn.execute(insert(accounts).values(
                    email=f"open{i}@example.com", name=f"Open {i}", password_hash=password_hash,
                    home_region="us", role="customer", created_at=now)).inserted_primary_key[0]
                wallet_id = conn.execute(insert(wallets).values(
                    account_id=account_id, balance=0, updated_at=now)).inserted_primary_key[0]
                return conn.execute(insert(cards_table).values(
                    account_id=account_id, wallet_id=wallet_id, slot=0, number=new_card_number(),
                    display_name=f"Open {i}", code_secret=new_code_secret(), created_at=now,
                )).inserted_primary_key[0], account_id

            for i in range(cards):
                card_id, account_id = db.write(lambda conn, i=i: make(conn, i), name="bench")
                token, _ = issue_access_token(account_id, "customer", f"Open {i}")
                etag = services.live_version(Principal(account_id, "customer", f"Open {i}"),
                                             card_id)
                sessions.append((f"/card/{card_id}/live", f"access_token={token}", etag))
        return sessions
    finally:
        os.environ.clear()
        os.environ.update(saved)


def paced(port: int, sessions: list, rate: float, seconds: float, pid: int,
          clients: int = 8) -> dict:
    """``rate`` polls/s spread evenly over ``clients`` keep-alive connections."""
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    start = time.monotonic() + 0.5
    per_client = rate / clients

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        sent = 0
        while True:
            due = start + sent / per_client + index / rate
            if due > start + seconds:
                break
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            path, cookie, etag = sessions[(sent * clients + index) % len(sessions)]
            began = time.monotonic()
            try:
                conn.request("GET", path, headers={"Cookie": cookie, "If-None-Match": etag})
                response = conn.getresponse()
                response.read()
                status = response.status
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                status = 0
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(time.monotonic() - began)
            sent += 1

    cpu_before, wall_before = _cpu_seconds(pid), time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu, wall = _cpu_seconds(pid) - cpu_before, time.monotonic() - wall_before
    latencies.sort()
    done = sum(statuses.values())
    return {"offered_rps": round(rate, 1), "served_rps": round(done / wall, 1),
            "statuses": statuses, "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
            "server_cpu_pct_of_one_core": round(100 * cpu / wall, 1),
            "cpu_ms_per_request": round(1000 * cpu / max(done, 1), 3),
            "loadavg": os.getloadavg()[0]}


def ceiling(url: str, pid: int, seconds: int, env: dict[str, str] | None = None,
            headers: dict[str, str] | None = None) -> dict:
    command = ["wrk", "-t2", "-c8", f"-d{seconds}s"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if env:
        command += ["-s", str(LUA)]
    command.append(url)
    cpu_before, wall_before = _cpu_seconds(pid), time.monotonic()
    out = subprocess.run(command, capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})}).stdout
    cpu, wall = _cpu_seconds(pid) - cpu_before, time.monotonic() - wall_before
    if env:
        result = json.loads(re.search(r"WRK_JSON (.*)", out).group(1))
    else:
        result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    requests = result.get("requests") or result["rps"] * seconds
    result.update(server_cpu_pct_of_one_core=round(100 * cpu / wall, 1),
                  cpu_ms_per_request=round(1000 * cpu / max(requests, 1), 3),
                  loadavg=os.getloadavg()[0])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", 8765)))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        env = stack.production_env("us", {"LOYALTY_DATABASE_URL": f"sqlite:///{tmp}/open.db"},
                                   ACCESS_TOKEN_TTL_SECONDS="3600")  # noqa: S106
        sessions = prepare(args.cards, env)
        cards_file = Path(tmp) / "sessions.tsv"
        cards_file.write_text("".join("\t".join(s) + "\n" for s in sessions))
        server = stack.AppServer("open-cards", args.port, env, workers=2, threads=4,
                                 worker_class="gthread", access_log=False,
                                 log_dir=Path(tmp))
        with stack.running([server]):
            pid = server.proc.pid
            report = {"cards": args.cards}
            report["backed_off_15s"] = paced(args.port, sessions, args.cards / 15, args.seconds,
                                             pid)
            report["fast_window_1_5s"] = paced(args.port, sessions, args.cards / 1.5,
                                               args.seconds, pid)
            report["ceiling_304"] = ceiling(server.url + "/", pid, int(args.seconds),
                                            env={"OPEN_CARDS_FILE": str(cards_file)})
            report["ceiling_card_page"] = ceiling(
                server.url + "/card", pid, int(args.seconds),
                headers={"Cookie": sessions[0][1]})
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
