"""The API reads a body only when it says it is JSON.

A page on another site can make a browser send ``text/plain``, form-encoded or multipart
bodies without asking first (no CORS preflight). If the API parsed those as JSON, such
a page could register accounts or try passwords through ``/auth/register`` and
``/auth/token``. ``application/json`` needs a preflight, which this API never grants:
anything else gets 415, as problem+json, and nothing is written.
"""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from tests.helpers import PASSWORD
from tests.mail_helpers import verify_via_outbox
from webapp.database.schema import accounts, refresh_tokens
from webapp.extensions import db
from webapp.problems import PROBLEM_BASE

API = "/api/v1"
REGISTER = {"name": "Ana Silva", "email": "ana@example.com", "password": PASSWORD,
            "region": "ie"}
NOT_JSON = ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x", "application/xml", "text/json", None]


def _rows(app, table) -> int:
    with app.app_context():
        return db.read(lambda conn: conn.execute(select(func.count()).select_from(table))
                       .scalar(), name="test", causal=True)


def _send(client, path, body, content_type, method="POST", headers=None):
    headers = dict(headers or {})
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.open(API + path, method=method, data=json.dumps(body).encode(),
                       headers=headers)


def _registered_and_verified(app, client) -> None:
    """A customer who can sign in: registered through the API (202, no tokens) and
    verified by the mailed link, so a refused token request is the content type's doing."""
    assert _send(client, "/auth/register", REGISTER, "application/json").status_code == 202
    assert verify_via_outbox(app.test_client(), REGISTER["email"]).status_code == 302


def _unsupported(response) -> dict:
    assert response.status_code == 415, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"] == PROBLEM_BASE + "unsupported-media-type"
    assert "application/json" in problem["detail"]
    return problem


@pytest.mark.parametrize("content_type", NOT_JSON)
def test_register_refuses_a_body_that_is_not_declared_json(app, client, content_type):
    response = _send(client, "/auth/register", REGISTER, content_type)
    _unsupported(response)
    assert response.headers["Accept-Post"] == "application/json"
    assert _rows(app, accounts) == 0


@pytest.mark.parametrize("content_type", NOT_JSON)
def test_token_refuses_a_body_that_is_not_declared_json(app, client, content_type):
    _registered_and_verified(app, client)
    tokens_before = _rows(app, refresh_tokens)
    response = _send(client, "/auth/token", {"email": REGISTER["email"],
                                             "password": PASSWORD}, content_type)
    _unsupported(response)
    assert "access_token" not in response.get_data(as_text=True)
    assert _rows(app, refresh_tokens) == tokens_before


@pytest.mark.parametrize("content_type", ["application/json",
                                          "application/json; charset=utf-8",
                                          "Application/JSON"])
def test_json_is_json_with_or_without_parameters(app, client, content_type):
    assert _send(client, "/auth/register", REGISTER, content_type).status_code == 202
    assert _rows(app, accounts) == 1


def test_every_operation_with_a_body_refuses_text_plain(app, client):
    """Every API operation that declares a body, straight from the URL map."""
    _registered_and_verified(app, client)
    signed_in = _send(client, "/auth/token", {"email": REGISTER["email"],
                                              "password": PASSWORD}, "application/json")
    assert signed_in.status_code == 200, signed_in.get_data(as_text=True)
    bearer = {"Authorization": f"Bearer {signed_in.get_json()['access_token']}"}
    checked = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        operation = getattr(view, "api_operation", None)
        if operation is None or operation.body is None:
            continue
        path = re.sub(r"<int:\w+>", "1", rule.rule.removeprefix(API))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS", "GET"}):
            headers = {} if operation.access == "public" else bearer
            if operation.idempotent:
                headers["Idempotency-Key"] = "content-type-check"
            response = _send(client, path, {}, "text/plain", method=method, headers=headers)
            if operation.access == "staff":
                assert response.status_code == 403  # a customer's token: refused first
            else:
                _unsupported(response)
                allow = "Accept-Patch" if method == "PATCH" else "Accept-Post"
                assert response.headers[allow] == "application/json"
            checked.append(f"{method} {path}")
    assert {"POST /auth/register", "POST /auth/token", "POST /auth/refresh",
            "POST /family", "PATCH /family/1"} <= set(checked), checked


def test_the_openapi_document_lists_415_for_operations_with_a_body(client):
    document = client.get(API + "/openapi.json").get_json()
    operations = [op for item in document["paths"].values() for op in item.values()
                  if isinstance(op, dict) and "responses" in op]
    with_body = [op for op in operations if "requestBody" in op]
    assert with_body
    for op in with_body:
        assert "415" in op["responses"], op["operationId"]
    for op in operations:
        if "requestBody" not in op:
            assert "415" not in op["responses"], op["operationId"]
