"""The family limit holds when many phones add at once, on the real Galera lab, through
two app instances (each its own process, pool and router, like two gunicorns) on two
different nodes."""

from __future__ import annotations

import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from labs.stack import AppServer, database_env, production_env
from tests.helpers import PASSWORD, csrf_token
from tests.mail_helpers import link_in, path_of

pytestmark = pytest.mark.mariadb


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _race(urls: list[str], cookies: dict, token: str, names: list[str]) -> list[int]:
    barrier = threading.Barrier(len(names))

    def one(i: int) -> int:
        with requests.Session() as session:
            session.cookies.update(cookies)
            barrier.wait(30)
            response = session.post(f"{urls[i % len(urls)]}/family", allow_redirects=False,
                                    data={"csrf_token": token, "name": names[i]}, timeout=60)
            return response.status_code

    with ThreadPoolExecutor(len(names)) as pool:
        return list(pool.map(one, range(len(names))))


def _verify_from_lab_outbox(lab, session, url: str, email: str) -> None:
    """Opens the verification link the app queued (registering no longer signs in)."""
    with lab.admin_connect(0) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION wsrep_sync_wait = 1")
        cur.execute("SELECT body_text FROM loyalty.mail_outbox WHERE recipient = %s "
                    "AND kind = 'verify'", (email,))
        [(text,)] = cur.fetchall()
    path = path_of(link_in(text, "/verify/"))
    page = session.get(url + path, timeout=30).text
    response = session.post(url + path, data={"csrf_token": csrf_token(page)},
                            allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text


def _active_slots(lab, email: str) -> list[tuple[int, str]]:
    # Read on a third node, after it has applied everything committed anywhere.
    with lab.admin_connect(2) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION wsrep_sync_wait = 1")
        cur.execute(
            "SELECT c.slot, c.display_name FROM loyalty.cards c "
            "JOIN loyalty.accounts a ON a.id = c.account_id "
            "WHERE a.email = %s AND c.slot > 0 ORDER BY c.slot", (email,))
        return list(cur.fetchall())


def test_concurrent_adds_on_two_nodes_never_exceed_four(galera_schema, galera_clean, tmp_path):
    lab = galera_clean
    # Each instance on one node only ("single"), so the two really write on two members.
    instances = [
        AppServer(f"app-{region}", _free_port(),
                  production_env(region, database_env(lab, region, "single")),
                  workers=1, threads=8, log_dir=tmp_path)
        for region in ("us", "ie")
    ]
    try:
        for instance in instances:
            instance.start()
        for instance in instances:
            instance.wait_ready()
        urls = [instance.url for instance in instances]
        with requests.Session() as session:
            page = session.get(f"{urls[0]}/register", timeout=30).text
            response = session.post(f"{urls[0]}/register", allow_redirects=False, timeout=30,
                                    data={"csrf_token": csrf_token(page), "name": "Ana",
                                          "email": "race@example.com",
                                          "password": PASSWORD, "region": "us"})
            assert response.status_code == 302
            _verify_from_lab_outbox(lab, session, urls[0], "race@example.com")
            family_page = session.get(f"{urls[1]}/family", timeout=30)  # the other node
            assert family_page.status_code == 200
            token = csrf_token(family_page.text)
            cookies = session.cookies.get_dict()

        statuses = _race(urls, cookies, token, [f"Racer {i}" for i in range(12)])
        assert sorted(statuses) == [302] * 4 + [409] * 8, statuses
        slots = _active_slots(lab, "race@example.com")
        assert [slot for slot, _ in slots] == [1, 2, 3, 4]
        assert len({name for _, name in slots}) == 4

        # Two members leave; ten phones race for the two free slots.
        with requests.Session() as session:
            session.cookies.update(cookies)
            page = session.get(f"{urls[0]}/family", timeout=30).text
            ids = re.findall(r'action="/family/(\d+)/remove"', page)[:2]
            for card_id in ids:
                response = session.post(f"{urls[0]}/family/{card_id}/remove", timeout=30,
                                        data={"csrf_token": token}, allow_redirects=False)
                assert response.status_code == 302
        statuses = _race(urls, cookies, token, [f"Second {i}" for i in range(10)])
        assert sorted(statuses) == [302] * 2 + [409] * 8, statuses
        slots = _active_slots(lab, "race@example.com")
        assert [slot for slot, _ in slots] == [1, 2, 3, 4]
        assert sum(name.startswith("Second") for _, name in slots) == 2
    finally:
        for instance in instances:
            instance.stop()
    for instance in instances:
        log = Path(tmp_path, f"{instance.name}-error.log")
        assert "Traceback" not in log.read_text(), f"an app instance failed: {log}"
