"""One app per region on a Galera lab: the production shape, for tests, drills and load.

Two ways to run the apps, both told their region so the cluster router prefers the
region's own node and fails over to the others:

* in process (:func:`cluster_apps`, :func:`cluster_app`): Flask apps on the whole
  cluster, driven through their service layer or test client; the fault drills
  (tests), the routing tests and ``bench/failover.py`` use these;
* under gunicorn (:class:`AppServer`, :func:`running`) with ``deploy/gunicorn.conf.py``,
  for the load tests and benchmarks (``jmeter/run.py``, ``bench/bench.py``,
  ``scripts/lighthouse_card.py``), with demo data plus per-region load-test customers
  (:func:`seed`).

Everything binds to 127.0.0.1 and is stopped by the caller (or the context manager).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from db.seed import DEMO_PASSWORD
from labs import ROOT
from webapp.config import REGIONS

if TYPE_CHECKING:
    from flask import Flask

    from labs.galera import GaleraLab

VENV_BIN = Path(sys.executable).parent
PASSWORD = DEMO_PASSWORD  # every demo and load-test account signs in with it
# What a barista at each region's demo store rings up: the store's currency, and an
# amount worth a handful of coins at its earn rate.
TILL = {"us": ("USD", "12.50"), "ie": ("EUR", "9.80"), "in": ("INR", "1250.00")}


# ---------------------------------------------------------------------- in process
def cluster_app(lab: GaleraLab, region: str = "us", **settings: Any) -> Flask:
    """An app of ``region`` (test profile) on the whole cluster, as production runs it."""
    from webapp import create_app

    return create_app(
        {
            "PROFILE": "test",
            "CLUSTER": lab.members_env(),
            "CLUSTER_KIND": "galera",
            "REGION": region,
            # Migrations and test resets run as the schema owner, as in production.
            "SCHEMA_DATABASE_URL": lab.schema_dsn(0),
            **settings,
        }
    )


def router_of(app: Flask) -> Any:
    """The app's database router (its members, health checker and counters)."""
    return app.extensions["loyalty_db.router"]


@contextlib.contextmanager
def cluster_apps(
    lab: GaleraLab, regions: tuple[str, ...] = REGIONS, **settings: Any
) -> Iterator[dict[str, Flask]]:
    """One in-process app per region on the lab; their routers are disposed at the end
    (health checkers stopped, pools closed) whatever happens."""
    apps: dict[str, Flask] = {}
    try:
        for region in regions:
            apps[region] = cluster_app(lab, region, **settings)
        yield apps
    finally:
        for app in apps.values():
            router_of(app).dispose()


# ---------------------------------------------------------------------- under gunicorn
def production_env(region: str, database: Mapping[str, str], **extra: str) -> dict[str, str]:
    """Environment of one app instance: the production profile, plain HTTP on loopback,
    fresh throwaway secrets (the same for every region, so tokens work everywhere)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOYALTY_", "OTEL_"))}
    env.update(_RUN_SECRETS)
    env.update(
        LOYALTY_ENV="production",
        LOYALTY_HTTPS="0",
        LOYALTY_REGION=region,
        # Every virtual user signs in from 127.0.0.1: the per-address login limit would
        # turn a load test into a rate-limit test.
        LOYALTY_LOGIN_RATE_LIMIT="100000 per minute",
        # A load test's barista issues coins far faster than a person: with the limit of
        # a real till (5,000 an hour) every earn after the first seconds was a 403. The
        # check still runs (the same reads), it just does not trip.
        LOYALTY_COINS_PER_BARISTA_HOUR="1000000000",
        # One app process per region here; what this measures is not the limiter store.
        LOYALTY_RATELIMIT_STORAGE_URI="memory://",
        # No mail server in a lab: mail stays in the outbox table, where tests read links.
        LOYALTY_MAIL_BACKEND="outbox",
        LOYALTY_PUBLIC_BASE_URL="http://localhost",
        PYTHONPATH=str(ROOT),
    )
    env.update(database)
    env.update(extra)
    return env


_RUN_SECRETS = {
    "SECRET_KEY": secrets.token_urlsafe(32),
    "JWT_KEYS": "k1:" + secrets.token_urlsafe(40),
    "JWT_ACTIVE_KID": "k1",
}


def database_env(lab: Any, region: str, mode: str = "auto") -> dict[str, str]:
    """``cluster``: the whole lab with this region preferred (the router's job);
    ``single``: only this region's node. ``auto`` picks cluster when the router exists."""
    if mode == "auto":
        mode = "cluster" if (ROOT / "webapp" / "database" / "routing.py").exists() else "single"
    node = REGIONS.index(region)
    owner = {"LOYALTY_SCHEMA_DATABASE_URL": lab.schema_dsn(node)}
    if mode == "cluster":
        return {"LOYALTY_CLUSTER": lab.members_env(), "LOYALTY_CLUSTER_KIND": "galera", **owner}
    return {"LOYALTY_DATABASE_URL": lab.dsn(node), **owner}


@dataclass
class AppServer:
    """One gunicorn (deploy/gunicorn.conf.py) on 127.0.0.1:port."""

    name: str
    port: int
    env: dict[str, str]
    workers: int | None = None  # None: the config's default (2 x CPUs)
    threads: int | None = None
    worker_class: str | None = None
    app: str | None = None  # default: the config's wsgi_app, webapp:create_app()
    log_dir: Path = field(default_factory=lambda: ROOT / "reports")
    access_log: bool = True
    ready_path: str = "/healthz"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AppServer:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(self.env, HOST="127.0.0.1", PORT=str(self.port),
                   GUNICORN_ACCESSLOG=str(self.log_dir / f"{self.name}-access.log")
                   if self.access_log else "/dev/null",
                   GUNICORN_ERRORLOG=str(self.log_dir / f"{self.name}-error.log"))
        if self.workers:
            env["GUNICORN_WORKERS"] = str(self.workers)
        if self.threads:
            env["GUNICORN_THREADS"] = str(self.threads)
        command = [str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "deploy" / "gunicorn.conf.py")]
        if self.worker_class:
            command += ["--worker-class", self.worker_class]
        if self.app:
            command.append(self.app)
        # The child keeps its own copy of the log's descriptor; ours is closed at once.
        with (self.log_dir / f"{self.name}-stdout.log").open("ab") as output:
            self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        path = self.ready_path
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see "
                                   f"{self.log_dir / (self.name + '-error.log')}")
            with contextlib.suppress(OSError), urllib.request.urlopen(  # noqa: S310
                    self.url + path, timeout=2) as response:
                if response.status == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not answer {path} within {timeout:.0f} s")

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # gunicorn's graceful stop
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@contextlib.contextmanager
def running(servers: list[AppServer]) -> Iterator[list[AppServer]]:
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


def seed(
    dsn: str, customers_per_region: int, schema_dsn: str | None = None
) -> dict[str, list[str]]:
    """Schema (migrated as ``schema_dsn``'s account, the owner, when given), demo data
    (stores, baristas, the demo family) and ``load.<region>.<n>`` customers; returns each
    region's card numbers. Running it twice changes nothing."""
    from db.seed import seed_demo
    from webapp import create_app
    from webapp.auth.queries import account_by_email
    from webapp.auth.services import register
    from webapp.card.queries import active_cards
    from webapp.commands import upgrade_schema
    from webapp.extensions import db

    app = create_app(
        {"PROFILE": "test", "DATABASE_URL": dsn, "CLUSTER": None, "SCHEMA_DATABASE_URL": schema_dsn}
    )
    cards: dict[str, list[str]] = {}
    with app.app_context():
        upgrade_schema()
        seed_demo()
        for region in REGIONS:
            cards[region] = []
            for n in range(1, customers_per_region + 1):
                email = f"load.{region}.{n}@example.com"
                account = db.read(lambda conn, e=email: account_by_email(conn, e), name="seed")
                if account is None:
                    account = register(name=f"Load {region.upper()} {n}", email=email,
                                       password=PASSWORD, region=region)
                number = db.read(lambda conn, a=account: active_cards(conn, a["id"])[0]["number"],
                                 name="seed")
                cards[region].append(number)
    db.dispose()
    return cards


def sign_in(base_url: str, email: str, password: str = PASSWORD) -> str:
    """An API access token (the same token service as the pages' cookie)."""
    request = urllib.request.Request(  # noqa: S310 - loopback
        base_url + "/api/v1/auth/token", method="POST",
        data=json.dumps({"email": email, "password": password}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.load(response)["access_token"]


def page_cookie(base_url: str, email: str, password: str = PASSWORD) -> str:
    """Signs in through the login form; returns the ``Cookie`` header a browser would send."""
    return "; ".join(f"{c['name']}={c['value']}"
                     for c in page_cookies(base_url, email, password))


def page_cookies(base_url: str, email: str, password: str = PASSWORD) -> list[dict[str, Any]]:
    """Signs in through the login form; returns the session cookies as a browser stores
    them (name, value, url, path, secure, httpOnly, sameSite), ready for a real browser's
    cookie jar, so that the page's own ``fetch`` calls carry them too."""
    import http.cookiejar
    import re

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar),
                                         _NoRedirect())
    with opener.open(base_url + "/login", timeout=30) as response:
        html = response.read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    form = urllib.parse.urlencode({"csrf_token": token, "email": email, "password": password})
    try:
        opener.open(base_url + "/login", data=form.encode(), timeout=30)
    except urllib.error.HTTPError as redirect:
        if redirect.code != 302:
            raise
    # The Flask session only carried the login form's CSRF token: not part of signing in.
    cookies = [c for c in jar if c.name != "session"]
    if not any(c.name == "access_token" for c in cookies):
        raise RuntimeError(f"signing in as {email} set no session cookie")
    return [{"name": c.name, "value": c.value, "url": base_url, "path": c.path or "/",
             "secure": bool(c.secure),
             # Werkzeug spells the attributes "HttpOnly" and "SameSite".
             "httpOnly": c.has_nonstandard_attr("HttpOnly"),
             "sameSite": (c.get_nonstandard_attr("SameSite") or "Lax").capitalize()}
            for c in cookies]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def check_ledger(lab: Any) -> dict[str, Any]:
    """The ledger's invariants on every node: each wallet's balance equals the sum of its
    ledger, no balance is negative, and all three nodes agree."""
    seen: dict[int, tuple] = {}
    problems: list[str] = []
    wallets = rows = 0
    for i, region in enumerate(REGIONS):
        conn = lab.admin_connect(i, database="loyalty")
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION wsrep_sync_wait = 1")  # see every committed write
                cur.execute(
                    "SELECT w.id, w.balance, COALESCE(SUM(l.coins), 0), COUNT(l.id)"
                    " FROM wallets w LEFT JOIN ledger l ON l.wallet_id = w.id"
                    " GROUP BY w.id, w.balance ORDER BY w.id")
                result = tuple((int(a), int(b), int(c), int(d)) for a, b, c, d in cur.fetchall())
                cur.execute("SELECT COUNT(*) FROM ledger WHERE wallet_id NOT IN"
                            " (SELECT id FROM wallets)")
                orphans = cur.fetchone()[0]
        finally:
            conn.close()
        for wallet, balance, total, _count in result:
            if balance != total:
                problems.append(f"{region}: wallet {wallet} balance {balance} != ledger {total}")
            if balance < 0:
                problems.append(f"{region}: wallet {wallet} is negative ({balance})")
        if orphans:
            problems.append(f"{region}: {orphans} ledger rows without a wallet")
        seen[i] = result
        wallets, rows = len(result), sum(r[3] for r in result)
    if len(set(seen.values())) != 1:
        problems.append("the nodes disagree about balances or ledger rows")
    return {"ok": not problems, "problems": problems[:20], "wallets": wallets,
            "ledger_rows": rows}


def ledger_rows(lab: Any, like: str = "api:%") -> int:
    conn = lab.admin_connect(0, database="loyalty")
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION wsrep_sync_wait = 1")
            cur.execute("SELECT COUNT(*) FROM ledger WHERE idempotency_key LIKE %s", (like,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
