"""Sign-in limits against a real redis-server (started here, on a free port):

- the page and the API share one per-address bucket;
- repeated failures lock one account *from one address* with a growing, bounded
  Retry-After, driven by a controllable clock (:func:`webapp.clock.timestamp`) instead of
  waiting, while the same account signs in at once from another address;
- under a real gunicorn with three workers the limits hold across workers (the bug: each
  worker counted in its own memory);
- with the store dead, sign-in still answers (never a 500), limits counting in memory.

SQLite only: the database plays no part in where limits count.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from db.seed import seed_stores
from labs.redis_server import RedisServer, free_port
from tests.conftest import PASSWORD, csrf_token
from tests.helpers import production_env
from tests.lab_plugin import wait_for
from webapp import create_app
from webapp.auth import services
from webapp.commands import upgrade_schema
from webapp.extensions import db

ROOT = Path(__file__).resolve().parents[2]
EMAIL = "ana@example.com"
WRONG = "not-the-password-1"


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(free_port(), tmp_path / "redis").start()
    yield server
    server.stop()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr("webapp.clock.timestamp", fake)
    return fake


def _app(tmp_path, storage_uri: str, limit: str):
    app = create_app({"PROFILE": "test", "DATABASE_URL": f"sqlite:///{tmp_path / 'rl.db'}",
                      "RATELIMIT_STORAGE_URI": storage_uri, "LOGIN_RATE_LIMIT": limit})
    with app.app_context():
        upgrade_schema()
        seed_stores()
        services.register(name="Ana", email=EMAIL, password=PASSWORD, region="ie")
    return app


class SignIn:
    """Signs in from one client address, by the API or by the page (CSRF and all)."""

    def __init__(self, app, address: str) -> None:
        self.client = app.test_client()
        self.environ = {"REMOTE_ADDR": address}

    def api(self, email=EMAIL, password=PASSWORD):
        return self.client.post("/api/v1/auth/token", json={"email": email,
                                                           "password": password},
                                environ_base=self.environ)

    def page(self, email=EMAIL, password=PASSWORD):
        form = self.client.get("/login", environ_base=self.environ).get_data(as_text=True)
        return self.client.post("/login", data={
            "csrf_token": csrf_token(form), "email": email, "password": password},
            environ_base=self.environ)


def _problem_type(response) -> str:
    return response.get_json()["type"].rsplit("/", 1)[-1]


def test_the_page_and_the_api_share_one_sign_in_bucket(tmp_path, redis_server):
    app = _app(tmp_path, redis_server.url, "4 per minute")
    try:
        me = SignIn(app, "198.51.100.7")
        # Unknown emails, so only the per-address bucket is in play.
        statuses = [me.page(email="p1@example.com", password=WRONG).status_code,
                    me.api(email="a1@example.com", password=WRONG).status_code,
                    me.page(email="p2@example.com", password=WRONG).status_code,
                    me.api(email="a2@example.com", password=WRONG).status_code]
        assert statuses == [401, 401, 401, 401]
        page, api = me.page(), me.api()  # even the right password waits now
        assert (page.status_code, api.status_code) == (429, 429)
        assert _problem_type(api) == "http-429"
        assert 0 < int(api.headers["Retry-After"]) <= 60
        assert "Too many attempts" in page.get_data(as_text=True)
        # Registering has a bucket of its own; another address is not limited.
        assert me.client.post("/api/v1/auth/register", json={
            "name": "Bo", "email": "bo@example.com", "password": PASSWORD, "region": "ie"},
            environ_base=me.environ).status_code == 202
        assert SignIn(app, "198.51.100.8").api().status_code == 200
        # The count is in Redis, not in this process.
        assert redis.Redis.from_url(redis_server.url).keys("LIMITS*sign-in*")
    finally:
        db.dispose()


def test_failures_lock_the_account_from_that_address_with_a_growing_bounded_wait(
        tmp_path, redis_server, clock):
    app = _app(tmp_path, redis_server.url, "1000 per minute")
    try:
        attacker, user = SignIn(app, "198.51.100.66"), SignIn(app, "203.0.113.5")
        assert [attacker.api(password=WRONG).status_code for _ in range(4)] == [401] * 4

        waits = []
        for _ in range(10):
            assert attacker.api(password=WRONG).status_code == 401
            locked = attacker.api()  # the right password, while locked
            assert locked.status_code == 429
            assert _problem_type(locked) == "too-many-attempts"
            waits.append(int(locked.headers["Retry-After"]))
            # Nothing is slept on the server: the user at another address is not
            # locked out, and a locked attempt does not extend the lock.
            assert user.api().status_code == 200
            clock.advance(1)
            assert int(attacker.api().headers["Retry-After"]) == waits[-1] - 1
            clock.advance(waits[-1] - 1)
        assert waits == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]

        # The page answers the same lock with the form, the wait and Retry-After.
        assert attacker.api(password=WRONG).status_code == 401
        page = attacker.page()
        assert page.status_code == 429
        assert page.headers["Retry-After"] == "300"
        assert "Try again in 300 seconds" in page.get_data(as_text=True)
        assert 'name="password"' in page.get_data(as_text=True)

        # Once the wait is over, the right password signs in and clears the count.
        clock.advance(300)
        assert attacker.api().status_code == 200
        assert attacker.api(password=WRONG).status_code == 401
        assert attacker.api().status_code == 200

        # An email with no account locks the same way: the lock reveals nothing.
        nobody = [attacker.api(email="nobody@example.com", password=WRONG).status_code
                  for _ in range(6)]
        assert nobody == [401] * 5 + [429]
    finally:
        db.dispose()


def test_sign_in_answers_when_the_limiter_store_is_down(tmp_path, redis_server):
    app = _app(tmp_path, redis_server.url, "6 per minute")
    redis_server.kill()
    try:
        user = SignIn(app, "198.51.100.1")
        assert user.api().status_code == 200
        signed_in = user.page()
        assert signed_in.status_code == 302
        assert signed_in.headers["Location"] == "/card"
        # Both limits go on in this process's memory.
        guesser = SignIn(app, "198.51.100.2")
        assert [guesser.api(password=WRONG).status_code for _ in range(5)] == [401] * 5
        assert _problem_type(guesser.api()) == "too-many-attempts"
        sprayer = SignIn(app, "198.51.100.3")
        statuses = [sprayer.api(email=f"u{i}@example.com", password=WRONG).status_code
                    for i in range(7)]
        assert statuses == [401] * 6 + [429]
    finally:
        db.dispose()


def test_sign_in_answers_when_the_limiter_store_hangs(tmp_path, redis_server):
    """A store that accepts connections but never answers: the half-second socket
    timeouts (RATELIMIT_STORAGE_OPTIONS) turn it into "down", not into a hung sign-in."""
    app = _app(tmp_path, redis_server.url, "1000 per minute")
    redis_server.freeze()
    results: list = []

    def attempts() -> None:
        user = SignIn(app, "198.51.100.4")
        results.append(user.api().status_code)
        results.extend(user.api(password=WRONG).status_code for _ in range(5))
        results.append(_problem_type(user.api()))

    try:
        worker = threading.Thread(target=attempts, daemon=True)
        worker.start()
        worker.join(timeout=120)  # a hang detector, not a latency check
        assert not worker.is_alive(), "sign-in hung on a silent limiter store"
        assert results == [200, 401, 401, 401, 401, 401, "too-many-attempts"]
    finally:
        redis_server.thaw()
        db.dispose()


def test_production_refuses_to_start_without_a_limiter_store():
    secrets = {"SECRET_KEY": "s" * 40, "JWT_KEYS": {"k": "j" * 40}, "JWT_ACTIVE_KID": "k",
               "RATELIMIT_STORAGE_URI": None}
    with pytest.raises(RuntimeError, match="LOYALTY_RATELIMIT_STORAGE_URI"):
        create_app({"PROFILE": "production", **secrets})


# -- a real gunicorn with three workers ---------------------------------------------------


class Gunicorn:
    """The app under gunicorn (deploy/gunicorn.conf.py) with N workers, behind a trusted
    proxy hop so each test can speak from its own client address (X-Forwarded-For)."""

    def __init__(self, scratch: Path, storage_uri: str, limit: str, workers: int = 3):
        # A first lock of 60 s, not 2: this process cannot drive the workers' clock, and
        # on a busy machine 2 s could pass before the locked attempts arrive.
        self.port = free_port()
        self.access_log = scratch / "access.log"
        database = scratch / "loyalty.db"
        env = production_env(
            database,
            LOYALTY_RATELIMIT_STORAGE_URI=storage_uri,
            LOYALTY_LOGIN_RATE_LIMIT=limit,
            LOYALTY_LOGIN_BACKOFF_BASE_SECONDS="60",
            LOYALTY_HTTPS="0",
            LOYALTY_PROXY_HOPS="1",
            PORT=str(self.port),
            GUNICORN_WORKERS=str(workers),
            GUNICORN_THREADS="4",
            GUNICORN_ACCESSLOG=str(self.access_log),
            GUNICORN_ERRORLOG=str(scratch / "error.log"),
        )
        self.error_log = scratch / "error.log"
        # The schema and Ana's account, made the way `flask db upgrade` would.
        app = create_app({"PROFILE": "test", "DATABASE_URL": f"sqlite:///{database}"})
        with app.app_context():
            upgrade_schema()
            seed_stores()
            services.register(name="Ana", email=EMAIL, password=PASSWORD, region="ie")
        db.dispose()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py",
             "--access-logformat", '%(p)s %(s)s "%(r)s"'],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.workers = workers
        wait_for(self._all_workers_booted, 60, f"{workers} gunicorn workers")

    def _all_workers_booted(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"gunicorn exited:\n{self.error_log.read_text()}")
        log = self.error_log.read_text() if self.error_log.exists() else ""
        return len(re.findall(r"Booting worker with pid", log)) >= self.workers and (
            self._get("/healthz")[0] == 200)

    def _get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            return 0, ""

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _open(self, request: urllib.request.Request, opener=None) -> tuple[int, dict, str]:
        opener = opener or urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()

    def api(self, address: str, email=EMAIL, password=PASSWORD) -> tuple[int, dict, str]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1/auth/token",
            data=json.dumps({"email": email, "password": password}).encode(),
            headers={"Content-Type": "application/json", "X-Forwarded-For": address},
            method="POST")
        return self._open(request)

    def page(self, address: str, email=EMAIL, password=PASSWORD) -> tuple[int, dict, str]:
        """GET the form (its session cookie and CSRF token), then POST it: two fresh
        connections, each free to land on any worker."""
        opener = urllib.request.build_opener(
            _NoRedirect, urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        url = f"http://127.0.0.1:{self.port}/login"
        headers = {"X-Forwarded-For": address}
        _, _, form = self._open(urllib.request.Request(url, headers=headers), opener)
        body = urllib.parse.urlencode({"csrf_token": csrf_token(form), "email": email,
                                       "password": password}).encode()
        return self._open(urllib.request.Request(url, data=body, headers=headers,
                                                 method="POST"), opener)

    def pids_that_answered(self, status: int) -> set[str]:
        lines = self.access_log.read_text().splitlines()
        return {line.split()[0] for line in lines if line.split()[1] == str(status)}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def gunicorn_factory(tmp_path):
    started: list[Gunicorn] = []

    def start(storage_uri: str, limit: str, workers: int = 3) -> Gunicorn:
        server = Gunicorn(tmp_path / f"gunicorn{len(started)}", storage_uri, limit, workers)
        started.append(server)
        return server

    for path in ("gunicorn0", "gunicorn1"):
        (tmp_path / path).mkdir()
    yield start
    for server in started:
        server.stop()


def test_limits_hold_across_gunicorn_workers(redis_server, gunicorn_factory):
    app = gunicorn_factory(redis_server.url, "10 per minute")

    # One address, 16 attempts at once, half by the page and half by the API, each for
    # a different unknown email: exactly 10 may try a password (each worker counting
    # alone, every one of them got through).
    def attempt(i: int) -> int:
        if i % 2:
            return app.api("198.51.100.10", email=f"a{i}@example.com", password=WRONG)[0]
        return app.page("198.51.100.10", email=f"p{i}@example.com", password=WRONG)[0]

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = Counter(pool.map(attempt, range(16)))
    assert statuses == Counter({401: 10, 429: 6}), statuses
    assert len(app.pids_that_answered(401) | app.pids_that_answered(429)) >= 2, (
        "every attempt landed on one worker: the test proved nothing")

    # One account from one address: five failures on whichever workers, then every
    # worker refuses the right password for the lock's 60 s (9 attempts: within the
    # address's 10); another address signs in.
    assert [app.api("198.51.100.20", password=WRONG)[0] for _ in range(5)] == [401] * 5
    with ThreadPoolExecutor(max_workers=3) as pool:
        locked = list(pool.map(lambda _: app.api("198.51.100.20"), range(4)))
    assert {status for status, _, _ in locked} == {429}
    assert {json.loads(body)["type"].rsplit("/", 1)[-1] for _, _, body in locked} == {
        "too-many-attempts"}
    assert all(1 <= int(headers["Retry-After"]) <= 60 for _, headers, _ in locked)
    assert app.api("198.51.100.21")[0] == 200


def test_gunicorn_sign_in_answers_when_the_limiter_store_dies(redis_server, gunicorn_factory):
    app = gunicorn_factory(redis_server.url, "1000 per minute", workers=2)
    assert app.api("198.51.100.30")[0] == 200
    assert redis.Redis.from_url(redis_server.url).keys("LIMITS*"), "Redis was not used"
    redis_server.kill()

    with ThreadPoolExecutor(max_workers=4) as pool:
        right = list(pool.map(lambda _: app.api("198.51.100.31")[0], range(4)))
        pages = list(pool.map(lambda _: app.page("198.51.100.32"), range(2)))
        wrong = list(pool.map(
            lambda i: app.api("198.51.100.33", email=f"x{i}@example.com",
                              password=WRONG)[0], range(4)))
    assert right == [200] * 4
    assert [(status, headers.get("Location")) for status, headers, _ in pages] == [
        (302, "/card")] * 2
    assert wrong == [401] * 4
    assert app.pids_that_answered(500) == set()
