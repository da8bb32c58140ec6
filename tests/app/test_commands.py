"""The operator's CLI, through Flask's test runner against the real database."""

from __future__ import annotations

import pytest

from webapp.auth.queries import account_by_email
from webapp.extensions import db
from webapp.ledger.queries import store_by_code


def test_staff_create_makes_a_staff_account_at_the_store(app, runner):
    result = runner.invoke(args=["staff", "create", "new.barista@example.com", "--store",
                                 "IE-DUB-01"], input="a-long-password-1\na-long-password-1\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        account = db.read(lambda c: account_by_email(c, "new.barista@example.com"), name="t")
        store = db.read(lambda c: store_by_code(c, "IE-DUB-01"), name="t")
    assert account["role"] == "staff"
    assert account["store_id"] == store["id"]
    assert account["home_region"] == "ie"
    assert account["password_hash"].startswith("$argon2id$")


def test_staff_create_refuses_an_unknown_store_without_a_traceback(app, runner):
    result = runner.invoke(args=["staff", "create", "x@example.com", "--store", "NOPE"],
                           input="a-long-password-1\na-long-password-1\n")
    assert result.exit_code != 0
    assert "Unknown store" in result.output
    assert "Traceback" not in result.output
    with app.app_context():
        assert db.read(lambda c: account_by_email(c, "x@example.com"), name="t") is None


def test_stores_create_and_list(app, runner):
    created = runner.invoke(args=["stores", "create", "IE-COR-01", "--name", "Cork",
                                  "--region", "ie", "--currency", "eur",
                                  "--minor-per-coin", "100"])
    assert created.exit_code == 0, created.output
    again = runner.invoke(args=["stores", "create", "IE-COR-01", "--name", "Cork",
                                "--region", "ie", "--currency", "EUR",
                                "--minor-per-coin", "100"])
    assert again.exit_code != 0
    assert "already exists" in again.output
    listed = runner.invoke(args=["stores", "list"])
    assert "IE-COR-01" in listed.output
    assert "EUR" in listed.output


@pytest.mark.parametrize("profile", ["production"])
def test_demo_data_never_loads_outside_demo(tmp_path, profile):
    from webapp import create_app

    app = create_app({"PROFILE": profile, "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
                      "SECRET_KEY": "s" * 40, "JWT_KEYS": {"k": "k" * 40},
                      "JWT_ACTIVE_KID": "k", "RATELIMIT_STORAGE_URI": "memory://"})
    result = app.test_cli_runner().invoke(args=["demo", "seed"])
    assert result.exit_code != 0
    assert "only with LOYALTY_ENV=demo" in result.output
    db.dispose()


def test_production_refuses_to_start_without_secrets(tmp_path):
    from webapp import create_app

    with pytest.raises(RuntimeError, match="missing required settings"):
        create_app({"PROFILE": "production", "SECRET_KEY": None, "JWT_KEYS": {},
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}"})
