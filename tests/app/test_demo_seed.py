"""`flask --app webapp demo seed` (what `make run` loads): a demo family with history."""

from __future__ import annotations

from sqlalchemy import select

from webapp.card.queries import active_cards
from webapp.database.schema import accounts, wallets
from webapp.extensions import db


def test_demo_seed_loads_a_family_with_history_once(app, runner):
    first = runner.invoke(args=["demo", "seed"])
    assert first.exit_code == 0, first.output
    assert "demo data loaded" in first.output
    again = runner.invoke(args=["demo", "seed"])
    assert "already present" in again.output

    with app.app_context():
        def read(conn):
            account = conn.execute(select(accounts).where(
                accounts.c.email == "demo@example.com")).mappings().one()
            balance = conn.execute(select(wallets.c.balance).where(
                wallets.c.account_id == account["id"])).scalar_one()
            return [c["display_name"] for c in active_cards(conn, account["id"])], balance

        names, balance = db.read(read, name="t", causal=True)
    assert names == ["Dana Demo", "Alex Demo", "Robin Demo"]
    # EUR 12.50 and USD 23.75 earned, 5 coins redeemed; then history for the reports:
    # USD 18.00, EUR 9.50, USD 42.00, INR 960.00 (80.00 a coin), EUR 22.00.
    assert balance == 12 + 23 - 5 + 18 + 9 + 42 + 12 + 22
