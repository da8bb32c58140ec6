"""Numbers in API requests, as JSON Schema reads them: an ``integer`` may be written 5.0
(the schema counts it as an integer, so the server must too), never 5.5 or "5"; and an
id filter far beyond any real id is a 422, not a database overflow."""

from __future__ import annotations

import pytest

from tests.helpers import PASSWORD
from webapp.staff import create_staff


@pytest.fixture
def client(app):
    with app.app_context():
        create_staff(email="admin@example.com", store_code="IE-DUB-01", name="Ada",
                     password=PASSWORD, role="admin")
    return app.test_client()


def _admin(client) -> dict[str, str]:
    token = client.post("/api/v1/auth/token", json={"email": "admin@example.com",
                                                    "password": PASSWORD}).get_json()
    return {"Authorization": f"Bearer {token['access_token']}"}


def _store(code: str, minor_per_coin) -> dict:
    return {"code": code, "name": "Numbers", "region": "ie", "currency": "EUR",
            "minor_per_coin": minor_per_coin}


def test_a_whole_number_written_with_a_point_zero_is_an_integer(client):
    headers = _admin(client)
    response = client.post("/api/v1/console/stores", headers=headers,
                           json=_store("IE-NUM-01", 250.0))
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["minor_per_coin"] == 250
    assert isinstance(response.get_json()["minor_per_coin"], int)


@pytest.mark.parametrize("value", [250.5, "250", 1e300, True])
def test_a_fraction_text_or_boolean_is_not_an_integer(client, value):
    response = client.post("/api/v1/console/stores", headers=_admin(client),
                           json=_store("IE-NUM-02", value))
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert "minor_per_coin" in response.get_json()["errors"]


@pytest.mark.parametrize("query", ["actor=10000000000000000000000000",
                                   "store=10000000000000000000000000", "actor=-1",
                                   "action=" + "x" * 200])
def test_an_audit_filter_out_of_range_is_a_clear_422(client, query):
    response = client.get(f"/api/v1/console/audit?{query}", headers=_admin(client))
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PUT", "/api/v1/console/stores/{id}", {"name": "Big", "region": "ie", "currency": "EUR",
                                            "minor_per_coin": 100, "version": 1}),
    ("POST", "/api/v1/console/customers/{id}/adjustments",
     {"coins": 5, "reason": "Goodwill", "label": "Sorry"}),
    ("PUT", "/api/v1/console/cards/{id}/block", {"blocked": False}),
    ("POST", "/api/v1/transactions/{id}/reversal", None),
])
def test_an_id_in_the_path_beyond_any_real_id_is_not_found(client, method, path, body):
    response = client.open(path.format(id=10**25), method=method, json=body,
                           headers={**_admin(client), "Idempotency-Key": "huge-id"})
    assert response.status_code == 404, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
