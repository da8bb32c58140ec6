"""Store-local days: a Bengaluru (Asia/Kolkata) and a New York (America/New_York) store
book transactions either side of their own midnights; the reports' days and months, the
store's day and the audit log's local times follow each store's zone, not the UTC day.
Run on SQLite and on the Galera lab (the ``app`` fixture)."""

from __future__ import annotations

import csv
import io
import secrets
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from tests.conftest import PASSWORD, AuthActions
from tests.helpers import Clock
from webapp.auth.services import register
from webapp.auth.tokens import Principal
from webapp.database.schema import cards, stores
from webapp.extensions import db
from webapp.ledger import services as ledger_services
from webapp.staff import console, create_staff, reports

# UTC instant -> (store, amount in minor units). Each amount earns a distinct number of
# coins (USD and INR stores at their seeded rates), so a figure names its transactions.
BLR, NYC = "IN-BLR-01", "US-NYC-01"
BOOKINGS = [
    # Bengaluru: midnight 1 December IST is 18:30 UTC on 30 November.
    (datetime(2026, 11, 30, 18, 0), BLR, 8000 * 1),      # 23:30 IST 30 Nov
    (datetime(2026, 11, 30, 19, 0), BLR, 8000 * 2),      # 00:30 IST 1 Dec
    # New York: midnight 1 December EST is 05:00 UTC on 1 December.
    (datetime(2026, 12, 1, 4, 30), NYC, 100 * 4),        # 23:30 EST 30 Nov
    (datetime(2026, 12, 1, 5, 30), NYC, 100 * 8),        # 00:30 EST 1 Dec
    # Across New York's change back from daylight time (06:00 UTC, 1 November).
    (datetime(2026, 11, 1, 3, 30), NYC, 100 * 16),       # 23:30 EDT 31 Oct
    (datetime(2026, 11, 2, 4, 30), NYC, 100 * 32),       # 23:30 EST 1 Nov
]
NOW = datetime(2026, 11, 30, 19, 0)  # the clock after the bookings
EXPECTED_DAYS = {
    ("2026-11-30", BLR): 1, ("2026-12-01", BLR): 2,
    ("2026-11-30", NYC): 4, ("2026-12-01", NYC): 8,
    ("2026-10-31", NYC): 16, ("2026-11-01", NYC): 32,
}
EXPECTED_MONTHS = {("2026-11", BLR): 1, ("2026-12", BLR): 2, ("2026-11", NYC): 4 + 32,
                   ("2026-12", NYC): 8, ("2026-10", NYC): 16}


def _principal(account) -> Principal:
    return Principal(account["id"], account["role"], account["name"])


def _book(monkeypatch) -> tuple[dict, dict, dict[str, int]]:
    clock = Clock.install(monkeypatch, BOOKINGS[0][0])
    for module in ("webapp.staff.console", "webapp.staff.reports", "webapp.audit"):
        monkeypatch.setattr(f"{module}.utcnow", clock)
    admin = register(name="Glen", email=f"g{secrets.token_hex(3)}@example.com",
                     password=PASSWORD, region="us", role="admin")
    baristas = {code: create_staff(email=f"b{secrets.token_hex(3)}@example.com",
                                   store_code=code, name=f"B{code}", password=PASSWORD)
                for code in (BLR, NYC)}
    person = register(name="Cleo", email=f"c{secrets.token_hex(3)}@example.com",
                      password=PASSWORD, region="us")
    card = db.read(lambda conn: conn.execute(select(cards.c.number).where(
        cards.c.account_id == person["id"])).scalar(), name="test", causal=True)
    currency = {BLR: "INR", NYC: "USD"}
    for moment, code, amount in BOOKINGS:
        clock.set(moment)
        ledger_services.earn(card=card, store_code=code, amount_minor=amount,
                             currency=currency[code], idempotency_key=secrets.token_hex(8),
                             staff_id=baristas[code]["id"])
    clock.set(NOW)
    ids = db.read(lambda conn: dict(conn.execute(select(stores.c.code, stores.c.id))
                                    .all()), name="test")
    return admin, baristas, ids


def _by_store(report) -> dict[tuple[str, str], int]:
    return {(r["period"], r["store"]): r["issued"] for r in report["rows"]}


def test_reports_count_each_stores_local_day_and_month(app, monkeypatch):
    with app.app_context():
        admin, _baristas, _ids = _book(monkeypatch)
        daily = reports.report(_principal(admin), grain="day", since=date(2026, 10, 30),
                               until=date(2026, 12, 2))
        assert _by_store(daily) == EXPECTED_DAYS
        zones_seen = {r["store"]: r["timezone"] for r in daily["rows"]}
        assert zones_seen == {BLR: "Asia/Kolkata", NYC: "America/New_York"}
        # A total is the sum of the stores' local days.
        totals = {t["period"]: t["issued"] for t in daily["totals"]}
        assert totals == {"2026-10-31": 16, "2026-11-01": 32, "2026-11-30": 1 + 4,
                          "2026-12-01": 2 + 8}
        monthly = reports.report(_principal(admin), grain="month", since=date(2026, 10, 1),
                                 until=date(2026, 12, 31))
        assert _by_store(monthly) == EXPECTED_MONTHS
        # The span's edges are local too: 1 December alone holds the two after midnight.
        one_day = reports.report(_principal(admin), grain="day", since=date(2026, 12, 1),
                                 until=date(2026, 12, 1))
        assert _by_store(one_day) == {("2026-12-01", BLR): 2, ("2026-12-01", NYC): 8}

    # The page and the CSV say the same.
    client = app.test_client()
    assert AuthActions(client).login(admin["email"]).status_code == 302
    rows = list(csv.DictReader(io.StringIO(client.get(
        "/admin/reports.csv?since=2026-12-01&until=2026-12-01").get_data(as_text=True))))
    stores_rows = {(r["period"], r["store"], r["timezone"]): r["issued"] for r in rows
                   if r["period"].startswith("2026") and r["store"] != "*"}
    assert stores_rows == {("2026-12-01", BLR, "Asia/Kolkata"): "2",
                           ("2026-12-01", NYC, "America/New_York"): "8"}


def test_store_day_is_the_stores_local_day(app, monkeypatch):
    with app.app_context():
        admin, _baristas, ids = _book(monkeypatch)
        manager = create_staff(email=f"m{secrets.token_hex(3)}@example.com", store_code=NYC,
                               name="Mo", password=PASSWORD, role="manager")
        day = console.store_day(_principal(manager), ids[NYC], date(2026, 11, 30))
        assert [r["coins"] for r in day["rows"]] == [4]
        assert day["rows"][0]["local_time"].strftime("%H:%M %Z") == "23:30 EST"
        assert [(t["kind"], t["coins"]) for t in day["totals"]] == [("earn", 4)]
        blr = console.store_day(_principal(admin), ids[BLR], date(2026, 12, 1))
        assert [r["coins"] for r in blr["rows"]] == [2]
        # No day given: today where the store is. At 19:00 UTC on 30 November it is
        # already 1 December in Bengaluru and still 30 November in New York.
        assert console.store_day(_principal(admin), ids[BLR])["day"] == date(2026, 12, 1)
        assert console.store_day(_principal(manager), ids[NYC])["day"] == date(2026, 11, 30)

    client = app.test_client()
    assert AuthActions(client).login(admin["email"]).status_code == 302
    page = client.get(f"/admin/stores/{ids[NYC]}/day?day=2026-11-30")
    assert page.status_code == 200
    assert b"23:30:00 EST" in page.data
    assert b"America/New_York" in page.data


def test_audit_entries_show_utc_and_the_stores_local_time(app, monkeypatch):
    with app.app_context():
        _admin, _baristas, ids = _book(monkeypatch)
        manager = create_staff(email=f"m{secrets.token_hex(3)}@example.com", store_code=BLR,
                               name="Mira", password=PASSWORD, role="manager")
        person = register(name="Dev", email=f"d{secrets.token_hex(3)}@example.com",
                          password=PASSWORD, region="in")
        console.adjust(_principal(manager), person["id"], coins=5, reason="Spilt chai",
                       label="Sorry!", key=secrets.token_hex(8))  # at NOW
        entry = next(e for e in console.audit_entries(_principal(manager))
                     if e["action"] == "adjustment")
        assert entry["store_id"] == ids[BLR]
        assert entry["timezone"] == "Asia/Kolkata"
        assert entry["created_at"] == datetime(2026, 11, 30, 19, 0)
        assert entry["local_time"] == datetime(2026, 11, 30, 19, 0, tzinfo=UTC).astimezone(
            ZoneInfo("Asia/Kolkata"))
        assert entry["local_time"].strftime("%Y-%m-%d %H:%M") == "2026-12-01 00:30"

    client = app.test_client()
    assert AuthActions(client).login(manager["email"]).status_code == 302
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "2026-11-30 19:00:00 UTC" in page
    assert "2026-12-01 00:30 IST" in page
    token = client.post("/api/v1/auth/token", json={"email": manager["email"],
                                                    "password": PASSWORD}).get_json()
    answer = client.get("/api/v1/console/audit",
                        headers={"Authorization": f"Bearer {token['access_token']}"})
    api_entry = next(e for e in answer.get_json()["entries"] if e["action"] == "adjustment")
    assert api_entry["local_time"] == "2026-12-01T00:30:00+05:30"
    assert api_entry["timezone"] == "Asia/Kolkata"
