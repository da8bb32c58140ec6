"""Reports: every figure equals the ledger's sums (per period, region and store, and the
liability equals the wallets' balances), each role sees its own scope only, the CSV and
the charts are served (the SVG with its own CSP and no script), and the same holds on
all three Galera nodes after a concurrent run from three regions' apps."""

from __future__ import annotations

import csv
import io
import secrets
import threading
from collections import defaultdict
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from tests.conftest import PASSWORD, AuthActions
from tests.helpers import Clock
from webapp.auth.services import register
from webapp.auth.tokens import Principal
from webapp.clock import utcnow
from webapp.config import REGION_TIMEZONES
from webapp.database.schema import accounts, cards, ledger, stores, wallets
from webapp.errors import Forbidden, ValidationFailed
from webapp.extensions import db
from webapp.ledger import services as ledger_services
from webapp.staff import create_staff, reports

STORES = {"us": ("US-NYC-01", "USD", 1000), "ie": ("IE-DUB-01", "EUR", 1000),
          "in": ("IN-BLR-01", "INR", 80000)}
SIGNS = {"earn": ("issued", 1), "redeem": ("redeemed", -1), "reversal": ("reversed", 1),
         "adjustment": ("adjusted", 1), "expiry": ("expired", -1)}


def _principal(account) -> Principal:
    return Principal(account["id"], account["role"], account["name"])


def _customer(region: str, n: int) -> tuple[dict, str, int]:
    person = register(name=f"C{region}{n}", email=f"c{region}{n}-{secrets.token_hex(3)}"
                      "@example.com", password=PASSWORD, region=region)
    card, wallet = db.read(lambda conn: conn.execute(
        select(cards.c.number, cards.c.wallet_id).where(
            cards.c.account_id == person["id"])).one(), name="test", causal=True)
    return person, card, wallet


def _earn_at_home(card: str, region: str, amount_minor: int, key: str, baristas) -> None:
    """An earn at the region's store, booked by the region's barista."""
    store, currency, _amount = STORES[region]
    ledger_services.earn(card=card, store_code=store, amount_minor=amount_minor,
                         currency=currency, idempotency_key=key,
                         staff_id=baristas[region]["id"])


def _activity(region: str, rounds: int, barista_id: int) -> None:
    """Earns, redeems, a reversal and adjustments at the region's store."""
    store, currency, amount = STORES[region]
    for n in range(rounds):
        _person, card, wallet = _customer(region, n)
        key = secrets.token_hex(8)
        ledger_services.earn(card=card, store_code=store, amount_minor=amount,
                             currency=currency, idempotency_key=key + "e",
                             staff_id=barista_id)
        redeemed = ledger_services.redeem(card=card, store_code=store, coins=3,
                                          confirmed=True,
                                          idempotency_key=key + "r", staff_id=barista_id)
        if n % 2:
            ledger_services.reverse(transaction_id=redeemed.transaction_id,
                                    idempotency_key=key + "v", staff_id=barista_id)
        ledger_services.adjust(wallet_id=wallet, coins=2 if n % 3 else -1, reason="Goodwill",
                               label="A gift", idempotency_key=key + "a",
                               staff_id=barista_id, store_code=store, region=region)


def _ledger_truth(conn, fmt_len: int) -> dict:
    """Straight from the rows, in Python: (period, region, store_id) -> figures, the
    period being the store's local day (the region's zone for rows with no store)."""
    truth: dict = defaultdict(lambda: defaultdict(int))
    wallets_seen: dict = defaultdict(set)
    store_zones = dict(conn.execute(select(stores.c.id, stores.c.timezone)).all())
    for row in conn.execute(select(ledger)).mappings():
        zone = ZoneInfo(store_zones.get(row["store_id"])
                        or REGION_TIMEZONES[row["region"]])
        local = row["created_at"].replace(tzinfo=UTC).astimezone(zone)
        key = (local.date().isoformat()[:fmt_len], row["region"], row["store_id"])
        figure, sign = SIGNS.get(row["kind"], ("other", 1))
        truth[key][figure] += sign * row["coins"]
        truth[key]["net"] += row["coins"]
        truth[key]["transactions"] += 1
        wallets_seen[key].add(row["wallet_id"])
    for key, seen in wallets_seen.items():
        truth[key]["active_wallets"] = len(seen)
    return truth


def _check_against_ledger(principal, *, grain: str) -> dict:
    # No "today": the default span ends on the latest local today in scope (Bengaluru's
    # day may already be tomorrow in UTC terms), so everything booked just now is in it.
    report = reports.report(principal, grain=grain)
    truth = db.read(lambda conn: _ledger_truth(conn, 10 if grain == "day" else 7),
                    name="test", causal=True)
    got = {(r["period"], r["region"], r["store_id"]): r for r in report["rows"]}
    assert set(got) == set(truth)
    for key, figures in truth.items():
        for name in reports.FIGURES:
            assert got[key][name] == figures[name], (key, name)
    # The per-period totals add up the rows; the liability equals balances and ledger.
    for total in report["totals"]:
        lines = [r for r in report["rows"] if r["period"] == total["period"]]
        for name in ("issued", "redeemed", "reversed", "adjusted", "expired", "net"):
            assert total[name] == sum(r[name] for r in lines)
    balance, summed = db.read(lambda conn: (
        conn.execute(select(func.coalesce(func.sum(wallets.c.balance), 0))).scalar(),
        conn.execute(select(func.coalesce(func.sum(ledger.c.coins), 0))).scalar()),
        name="test", causal=True)
    assert report["liability"]["balance"] == report["liability"]["ledger"] == balance \
        == summed
    assert sum(t["net"] for t in report["totals"]) == summed  # everything is from today
    return report


def _people():
    admin = register(name="Glen", email=f"g{secrets.token_hex(3)}@example.com",
                     password=PASSWORD, region="us", role="admin")
    baristas = {region: create_staff(email=f"b{region}{secrets.token_hex(3)}@example.com",
                                     store_code=STORES[region][0], name=f"B{region}",
                                     password=PASSWORD)
                for region in STORES}
    return admin, baristas


def test_report_figures_equal_ledger_sums_and_scopes(app):
    with app.app_context():
        admin, baristas = _people()
        for region in STORES:
            _activity(region, 3, baristas[region]["id"])
        report = _check_against_ledger(_principal(admin), grain="day")
        assert {r["region"] for r in report["rows"]} == {"us", "ie", "in"}
        assert sum(t["redeemed"] for t in report["totals"]) > 0
        assert sum(t["reversed"] for t in report["totals"]) > 0
        _check_against_ledger(_principal(admin), grain="month")

        # A regional admin sees only their region; a manager only their store, no liability.
        regional = register(name="Asha", email="asha@example.com", password=PASSWORD,
                            region="in", role="admin")
        db.write(lambda conn: conn.execute(update(accounts).where(
            accounts.c.id == regional["id"]).values(admin_region="in")), name="test")
        seen = reports.report(_principal(regional))
        assert {r["region"] for r in seen["rows"]} == {"in"}
        # The scope's totals count the scope's wallets only (three customers per region).
        assert sum(t["active_wallets"] for t in seen["totals"]) == 3
        assert [r["region"] for r in seen["liability"]["by_region"]] == ["in"]
        manager = create_staff(email="m@example.com", store_code="IE-DUB-01", name="M",
                               password=PASSWORD, role="manager")
        seen = reports.report(_principal(manager))
        assert {r["store"] for r in seen["rows"]} == {"IE-DUB-01"}
        assert sum(t["active_wallets"] for t in seen["totals"]) == 3
        assert seen["liability"] is None
        with pytest.raises(Forbidden):
            reports.report(_principal(baristas["us"]))
        with pytest.raises(ValidationFailed):
            reports.report(_principal(admin), grain="year")
        with pytest.raises(ValidationFailed):
            reports.report(_principal(admin), since=date(2026, 2, 1), until=date(2026, 1, 1))

    client = app.test_client()
    assert AuthActions(client).login(admin["email"]).status_code == 302
    page = client.get("/admin/reports")
    assert page.status_code == 200
    assert b"Outstanding coins (liability)" in page.data
    bad = client.get("/admin/reports?since=yesterday")
    assert bad.status_code == 422
    assert b"Use a date like" in bad.data
    rows = list(csv.reader(io.StringIO(client.get("/admin/reports.csv").get_data(
        as_text=True))))
    assert rows[0][:4] == ["period", "region", "store", "issued"]
    assert {r[2] for r in rows[1:] if len(r) > 3 and r[1] != "*"} >= {"US-NYC-01"}
    for chart in ("flows", "liability"):
        svg = client.get(f"/admin/reports/{chart}.svg")
        assert svg.status_code == 200
        assert svg.mimetype == "image/svg+xml"
        assert svg.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert b"<script" not in svg.data
        assert b"<svg" in svg.data
    assert "style-src 'self'" in page.headers["Content-Security-Policy"]
    token = client.post("/api/v1/auth/token", json={"email": admin["email"],
                                                    "password": PASSWORD}).get_json()
    answer = client.get("/api/v1/console/reports",
                        headers={"Authorization": f"Bearer {token['access_token']}"})
    assert answer.status_code == 200
    assert answer.get_json()["liability"]["balance"] == report["liability"]["balance"]


@pytest.mark.mariadb
def test_reports_equal_ledger_on_every_galera_node_after_concurrent_run(cluster_apps):
    apps = {region: cluster_apps(region) for region in STORES}
    with apps["us"].app_context():
        admin, baristas = _people()
    errors = []

    def run(region):
        try:
            with apps[region].app_context():
                _activity(region, 4, baristas[region]["id"])
        except Exception as error:  # reported below, with the region
            errors.append((region, error))

    threads = [threading.Thread(target=run, args=(r,)) for r in STORES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # Each app reads from its own region's node first: the report is checked on all three.
    for region, app in apps.items():
        with app.app_context():
            report = _check_against_ledger(_principal(admin), grain="day")
            # The stores' local days may differ (Bengaluru is 5.5 hours ahead): all totals.
            assert sum(t["transactions"] for t in report["totals"]) >= 3 * 4 * 3, region


def test_the_report_window_defaults_and_limits():
    today = date(2026, 11, 30)
    assert reports.window("day", None, None, today) == (date(2026, 11, 17), today)  # 14 days
    assert reports.window("month", None, None, today) == (date(2025, 11, 1), today)
    assert reports.window("day", None, date(2026, 1, 14), today) == (
        date(2026, 1, 1), date(2026, 1, 14))
    assert reports.window("day", date(2026, 11, 1), None, today) == (date(2026, 11, 1), today)
    assert reports.window("day", today, today, today) == (today, today)
    # A month report starts on the first of the month.
    assert reports.window("month", date(2026, 1, 15), date(2026, 2, 3), today) == (
        date(2026, 1, 1), date(2026, 2, 3))
    # The longest spans: 400 days, 3,700 for months.
    first = date(2026, 1, 1)
    assert reports.window("day", first, date(2027, 2, 5), today) == (first, date(2027, 2, 5))
    assert reports.window("month", first, date(2036, 2, 18), today) == (
        first, date(2036, 2, 18))
    refusals = [
        (("year", None, None), {"grain": ["Choose day or month."]}),
        (("day", date(2026, 2, 2), date(2026, 2, 1)),
         {"since": ["The first day must not be after the last."]}),
        (("day", first, date(2027, 2, 6)),
         {"since": ["That is too long a span; choose fewer days."]}),
        (("month", first, date(2036, 2, 19)),
         {"since": ["That is too long a span; choose fewer days."]})]
    for args, errors in refusals:
        with pytest.raises(ValidationFailed) as caught:
            reports.window(*args, today)
        assert caught.value.errors == errors, args


def test_a_report_names_its_scope_and_lists_rows_without_a_store_last(app, monkeypatch):
    # 20:00 in New York is already tomorrow in Bengaluru: the default last day is the
    # latest local "today" in scope.
    monkeypatch.setattr("webapp.staff.reports.utcnow", lambda: datetime(2026, 11, 29, 20, 0))
    with app.app_context():
        admin, baristas = _people()
        _person, card, wallet = _customer("us", 1)
        _earn_at_home(card, "us", 500, "scope-e", baristas)
        for key, coins in (("scope-a", 2), ("scope-b", -2)):  # they cancel out: 0, not none
            ledger_services.adjust(wallet_id=wallet, coins=coins, reason="Goodwill",
                                   label="A gift", idempotency_key=key, staff_id=admin["id"],
                                   store_code=None, region="us")
        report = reports.report(_principal(admin), grain="month")
        assert (report["until"], report["since"]) == (date(2026, 11, 30), date(2025, 11, 1))
        assert (report["scope"], report["timezone"], report["grain"]) == (
            "admin (global)", "local", "month")
        # The rows of the real month (the clock above is only the default's).
        month = utcnow().strftime("%Y-%m")
        report = reports.report(_principal(admin), grain="month", since=utcnow().date(),
                                until=utcnow().date())
        rows = [(r["period"], r["region"], r["store"], r["timezone"], r["issued"],
                 r["adjusted"], r["net"], r["transactions"], r["active_wallets"])
                for r in report["rows"]]
        assert rows == [(month, "us", "US-NYC-01", "America/New_York", 5, 0, 5, 1, 1),
                        (month, "us", "—", "America/New_York", 0, 0, 0, 2, 1)]
        assert report["totals"] == [{"period": month, "issued": 5, "redeemed": 0,
                                     "reversed": 0, "adjusted": 0, "expired": 0, "other": 0,
                                     "net": 5, "transactions": 3, "active_wallets": 1}]
        assert report["liability"]["balance"] == report["liability"]["ledger"] == 5
        manager = create_staff(email="m@example.com", store_code="US-NYC-01", name="M",
                               password=PASSWORD, role="manager")
        # Another wallet active at another store of the region: not the manager's.
        _other, seattle_card, _w = _customer("us", 2)
        ledger_services.earn(card=seattle_card, store_code="US-SEA-01", amount_minor=500,
                             currency="USD", idempotency_key="scope-s",
                             staff_id=baristas["us"]["id"])
        seen = reports.report(_principal(manager), grain="month", since=utcnow().date())
        assert seen["scope"] == "manager (US-NYC-01)"
        assert [r["store"] for r in seen["rows"]] == ["US-NYC-01"]
        assert [(t["net"], t["active_wallets"]) for t in seen["totals"]] == [(5, 1)]
        with pytest.raises(Forbidden, match=r"^Reports are for managers and admins\.$"):
            reports.report(_principal(baristas["us"]))


def test_an_erasure_counts_as_other(app):
    # The ledger's kinds the report does not name (an erasure forfeits a balance) are
    # "other", so the figures still add up to the ledger's sum.
    from webapp.account.services import erase_now

    with app.app_context():
        admin, baristas = _people()
        person, card, _wallet = _customer("ie", 1)
        _earn_at_home(card, "ie", 700, "erase-e", baristas)
        assert erase_now(person["id"]) == 7
        report = _check_against_ledger(_principal(admin), grain="day")
        assert sum(t["other"] for t in report["totals"]) == -7
        assert sum(t["issued"] for t in report["totals"]) == 7
        assert sum(t["net"] for t in report["totals"]) == 0


def test_rows_come_in_period_order_then_region(app, monkeypatch):
    clock = Clock.install(monkeypatch, datetime(2026, 3, 10, 12, 0))
    with app.app_context():
        admin, baristas = _people()
        _person, us_card, _wallet = _customer("us", 1)
        _person, ie_card, _wallet = _customer("ie", 1)
        _earn_at_home(us_card, "us", 300, "order-us", baristas)
        clock.set(datetime(2026, 3, 11, 12, 0))
        _earn_at_home(ie_card, "ie", 400, "order-ie", baristas)
        report = reports.report(_principal(admin), since=date(2026, 3, 10),
                                until=date(2026, 3, 11))
    assert [(r["period"], r["region"], r["issued"]) for r in report["rows"]] == [
        ("2026-03-10", "us", 3), ("2026-03-11", "ie", 4)]
    assert [(t["period"], t["issued"]) for t in report["totals"]] == [
        ("2026-03-10", 3), ("2026-03-11", 4)]
