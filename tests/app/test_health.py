"""Liveness, and what pages do while the database can't be reached (readiness:
test_readyz.py)."""

from __future__ import annotations

import socket

import pytest

from tests.helpers import csrf_token
from webapp import create_app
from webapp.auth import tokens
from webapp.extensions import db


def test_healthz_is_json_ok(app, client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.is_json
    assert response.get_json() == {"status": "ok", "region": app.config["REGION"]}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def unreachable_app():
    url = f"mysql+pymysql://loyalty:secret@127.0.0.1:{_closed_port()}/loyalty"
    app = create_app({"PROFILE": "test", "DATABASE_URL": url, "DB_RETRY_BUDGET": 1,
                      "DB_CONNECT_TIMEOUT": 1})
    yield app
    db.dispose()


def test_healthz_stays_up_while_the_database_is_down(unreachable_app):
    response = unreachable_app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_pages_say_service_unavailable_not_500_while_the_database_is_down(unreachable_app):
    client = unreachable_app.test_client()
    with unreachable_app.test_request_context():
        access, _ = tokens.issue_access_token(1, "customer", "Ana")
    client.set_cookie("access_token", access)
    response = client.get("/card")
    assert response.status_code == 503
    assert "Your card still works for scanning." in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0

    anonymous = unreachable_app.test_client()
    page = anonymous.get("/login")
    assert page.status_code == 200  # the form itself needs no database
    response = anonymous.post("/login", data={
        "csrf_token": csrf_token(page.get_data(as_text=True)),
        "email": "ana@example.com", "password": "correct-horse-battery"})
    assert response.status_code == 503
    assert "Traceback" not in response.get_data(as_text=True)
