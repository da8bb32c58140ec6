"""family cards remember the request that added them (request_id)

A family add that lost its COMMIT answer, or that the client sends again, finds the
card its request id already added instead of adding a second one.

Plain ADD COLUMN and CREATE UNIQUE INDEX: both run in place on SQLite, MariaDB and
MySQL (no table copy), and NULLs (holders' cards, cards added before this) never
collide in a unique index on any of them.

Revision ID: 0002_dbcontract
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_dbcontract"
down_revision = "0001"


def upgrade() -> None:
    op.add_column("cards", sa.Column("request_id", sa.String(length=64), nullable=True))
    op.create_index("uq_cards_account_request", "cards", ["account_id", "request_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_cards_account_request", table_name="cards")
    op.drop_column("cards", "request_id")
