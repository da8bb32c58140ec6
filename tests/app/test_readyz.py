"""/readyz is public (load balancers, Route 53, the region lab's front read it): the
public answer says ready or not and a short reason code, nothing about the database
members. Their hosts, ports, versions, roles and error texts are for operators: sent only
with the operator token (``LOYALTY_OPERATOR_TOKEN``) as a Bearer token.
"""

from __future__ import annotations

import re
import socket

import pytest

from webapp import create_app
from webapp.extensions import db

TOKEN = "operator-token-for-tests-0123456789abcdef"
PUBLIC_KEYS = {"status", "region", "reason"}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def operator_app(app):
    app.config["OPERATOR_TOKEN"] = TOKEN
    return app


@pytest.fixture
def unreachable_app():
    port = _closed_port()
    url = f"mysql+pymysql://loyalty:secret@127.0.0.1:{port}/loyalty"
    app = create_app({"PROFILE": "test", "DATABASE_URL": url, "DB_RETRY_BUDGET": 1,
                      "DB_CONNECT_TIMEOUT": 1, "OPERATOR_TOKEN": TOKEN})
    app.config["TEST_PORT"] = port
    yield app
    db.dispose()


def _leaks(app, text: str) -> list[str]:
    """What of the members' details a public answer shows."""
    found = []
    with app.app_context():
        members = db.status()
    for member in members:
        for key in ("address", "version", "error", "backend", "name"):
            value = member.get(key)
            if value and str(value) in text and key != "name":
                found.append(f"{key}={value}")
    for word in ("members", "address", "version", "latency", "127.0.0.1", "mariadb",
                 "sqlite", "primary"):
        if word in text.lower():
            found.append(word)
    return found


def test_public_answer_is_ready_and_nothing_else(app, client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body == {"status": "ready", "region": app.config["REGION"]}
    assert _leaks(app, response.get_data(as_text=True)) == []


def test_public_answer_when_not_ready_is_a_reason_code(unreachable_app):
    response = unreachable_app.test_client().get("/readyz")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    body = response.get_json()
    assert set(body) == PUBLIC_KEYS
    assert body["status"] == "unavailable"
    assert body["reason"] == "database-unreachable"
    text = response.get_data(as_text=True)
    assert str(unreachable_app.config["TEST_PORT"]) not in text
    assert "Error" not in text  # the driver's exception name, e.g. OperationalError


def test_operator_token_shows_the_members(app, operator_app):
    client = operator_app.test_client()
    response = client.get("/readyz", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready"
    assert body["members"], body
    for member in body["members"]:
        assert member["name"]
        assert member["state"] == "up"
    if app.config.get("CLUSTER"):  # the Galera lab: all three regions, each up
        assert sorted(m["region"] for m in body["members"]) == ["ie", "in", "us"]
        assert all(re.fullmatch(r"127\.0\.0\.1:\d+", m["address"]) for m in body["members"])
        assert all(m["version"] for m in body["members"])
    assert "no-store" in response.headers["Cache-Control"]


def test_operator_token_shows_why_the_database_is_unreachable(unreachable_app):
    response = unreachable_app.test_client().get(
        "/readyz", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 503
    body = response.get_json()
    assert body["reason"] == "database-unreachable"
    assert [m["state"] for m in body["members"]] == ["down"]
    assert body["members"][0]["error"]


@pytest.mark.parametrize("authorization", [
    f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer ", TOKEN,
    f"Bearer {TOKEN.upper()}",
], ids=["short", "long", "basic", "empty", "no-scheme", "case"])
def test_a_wrong_token_gets_no_details(app, operator_app, authorization):
    response = operator_app.test_client().get("/readyz", headers={
        "Authorization": authorization})
    assert response.status_code == 401
    assert "members" not in response.get_json()
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert _leaks(app, response.get_data(as_text=True)) == []


def test_without_a_configured_token_no_one_gets_details(app, client):
    assert not app.config.get("OPERATOR_TOKEN")
    response = client.get("/readyz", headers={"Authorization": "Bearer "})
    assert response.status_code == 401
    response = client.get("/readyz", headers={"Authorization": "Bearer anything-at-all"})
    assert response.status_code == 401
    assert "members" not in response.get_json()


def test_a_short_operator_token_is_refused_at_start():
    with pytest.raises(RuntimeError, match="OPERATOR_TOKEN"):
        create_app({"PROFILE": "test", "OPERATOR_TOKEN": "too-short"})
