"""Demo data: stores in each region, a demo family with some history, three baristas.

Loaded only by ``flask --app webapp demo seed`` under LOYALTY_ENV=demo (or by tests),
never in production. Running it twice changes nothing.
"""

from __future__ import annotations

from webapp.auth.queries import account_by_email
from webapp.auth.services import register
from webapp.extensions import db
from webapp.family import services as family
from webapp.ledger import services as ledger
from webapp.ledger.queries import store_by_code
from webapp.staff import create_staff, create_store

DEMO_PASSWORD = "demo-password-1"  # noqa: S105 - published demo credentials
STORES = [
    # code, name, region, currency, minor units per coin
    ("US-NYC-01", "New York, 5th Avenue", "us", "USD", 100),
    ("US-SEA-01", "Seattle, Pike Place", "us", "USD", 100),
    ("IE-DUB-01", "Dublin, Grafton Street", "ie", "EUR", 100),
    ("IN-BLR-01", "Bengaluru, MG Road", "in", "INR", 8000),
]
BARISTAS = [("us", "US-NYC-01", "Sam"), ("ie", "IE-DUB-01", "Aoife"), ("in", "IN-BLR-01", "Priya")]
# region, name, coins, sort
REWARDS = [("us", "Coffee", 30, 1), ("us", "Pastry", 20, 2), ("ie", "Coffee", 30, 1),
           ("ie", "Scone", 20, 2), ("in", "Chai", 10, 1), ("in", "Samosa", 15, 2)]


def seed_stores() -> None:
    for code, name, region, currency, rate in STORES:
        if db.read(lambda conn, code=code: store_by_code(conn, code), name="seed") is None:
            create_store(code=code, name=name, region=region, currency=currency,
                         minor_per_coin=rate)


def seed_demo() -> str:
    seed_stores()
    if db.read(lambda conn: account_by_email(conn, "demo@example.com"), name="seed"):
        return "demo data already present"
    for region, store, name in BARISTAS:
        create_staff(email=f"barista.{region}@example.com", store_code=store,
                     name=f"{name} (barista)", password=DEMO_PASSWORD)
    create_staff(email="manager.us@example.com", store_code="US-NYC-01",
                 name="Morgan (manager)", password=DEMO_PASSWORD, role="manager")
    register(name="Alex (admin)", email="admin@example.com", password=DEMO_PASSWORD,
             region="us", role="admin")  # admin_region NULL: global
    seed_rewards()
    account = register(name="Dana Demo", email="demo@example.com", password=DEMO_PASSWORD,
                       region="ie")
    family.add(account["id"], "Alex Demo", None)
    kid = family.add(account["id"], "Robin Demo", None)
    holder = db.read(lambda conn: _holder_number(conn, account["id"]), name="seed")
    ledger.earn(card=holder, store_code="IE-DUB-01", amount_minor=1250, currency="EUR",
                idempotency_key="demo-seed-1", staff_id=None)
    ledger.earn(card=kid.card["number"], store_code="US-NYC-01", amount_minor=2375, currency="USD",
                idempotency_key="demo-seed-2", staff_id=None)
    ledger.redeem(card=holder, store_code="IN-BLR-01", coins=5, idempotency_key="demo-seed-3",
                  staff_id=None, confirmed=True)
    for day, (store, amount, currency) in enumerate(
            [("US-NYC-01", 1800, "USD"), ("IE-DUB-01", 950, "EUR"), ("US-SEA-01", 4200, "USD"),
             ("IN-BLR-01", 96000, "INR"), ("IE-DUB-01", 2200, "EUR")]):
        ledger.earn(card=holder, store_code=store, amount_minor=amount, currency=currency,
                    idempotency_key=f"demo-seed-h{day}", staff_id=None)
    return (f"demo data loaded: demo@example.com / {DEMO_PASSWORD} (+ barista.us/.ie/.in, "
            "manager.us, admin)")


def seed_rewards() -> None:
    from sqlalchemy import insert

    from webapp.database.schema import rewards

    def write(conn):
        if conn.execute(rewards.select().limit(1)).first() is None:
            conn.execute(insert(rewards), [
                {"region": region, "name": name, "coins": coins, "sort": sort}
                for region, name, coins, sort in REWARDS])

    # Idempotent: a second run finds the catalogue there.
    db.write(write, name="seed.rewards", idempotent=True)


def _holder_number(conn, account_id: int) -> str:
    from webapp.card.queries import active_cards

    return active_cards(conn, account_id)[0]["number"]
