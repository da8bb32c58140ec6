"""Real browser, real HTTP: the app is served by werkzeug in a thread on a free port
(SQLite file with demo data), and Debian's Chromium is driven by Playwright.

Playwright's own browser download does not work here (no internet), so the launch uses
Debian's /usr/bin/chromium with the flags below (each one's reason beside it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Playwright
from werkzeug.serving import make_server

from db.seed import seed_demo
from webapp import create_app
from webapp.commands import upgrade_schema

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "tools" / "audit" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root in a container: no user namespace for it
    "--disable-gpu",  # headless on a server with no GPU
    # No internet: background fetches, updates and sync would only wait for timeouts.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",  # the app speaks HTTP/1.1 over TCP; nothing to race QUIC against
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


class LiveServer:
    def __init__(self, app, host: str = "127.0.0.1") -> None:
        self.app = app
        self.server = make_server(host, 0, app, threaded=True)
        self.url = f"http://{host}:{self.server.server_port}"
        # Mailed links lead back here (the port is known only now).
        app.config["PUBLIC_BASE_URL"] = self.url
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> Iterator[LiveServer]:
    """One demo app for the browser session (localhost counts as a secure context, so
    service workers and the camera API work over plain HTTP)."""
    path = tmp_path_factory.mktemp("e2e") / "e2e.db"
    app = create_app({
        "PROFILE": "test",
        "DATABASE_URL": f"sqlite:///{path}",
        "LOAD_DEMO_DATA": True,
        "LOGIN_RATE_LIMIT": "1000 per minute",
        # Mail stays in the outbox and shows at /demo/outbox, as in `make run`.
        "MAIL_BACKEND": "outbox",
    })
    with app.app_context():
        upgrade_schema()
        seed_demo()
    with LiveServer(app) as server:
        yield server


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: run scripts/install_test_deps.sh")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def base_url(live_server) -> str:
    return live_server.url


@pytest.fixture
def pixel7(playwright: Playwright) -> dict:
    """Playwright's Pixel 7 profile, to open a context with (not to pick a browser)."""
    device = dict(playwright.devices["Pixel 7"])
    device.pop("default_browser_type", None)
    return device


@pytest.fixture
def phone(browser: Browser, base_url: str, pixel7: dict) -> Iterator[BrowserContext]:
    """A fresh Pixel 7 browsing context on the live server, closed after the test."""
    context = browser.new_context(**pixel7, base_url=base_url)
    yield context
    context.close()


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's script, installed from npm into tools/audit (git-ignored) by
    ``scripts/audit.sh install-axe`` on first use."""
    if not AXE.exists():
        result = subprocess.run(
            ["bash", str(ROOT / "scripts" / "audit.sh"), "install-axe"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not AXE.exists():
            pytest.fail(
                f"could not install axe-core (scripts/audit.sh install-axe):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
    return AXE.read_text()
