"""stores get a time zone and a locale

The card's history shows each movement in its store's time zone (a Bengaluru redemption
in IST), and the till formats money and coins in its store's locale. Existing stores get
their region's defaults (webapp.config.REGION_TIMEZONES / REGION_LOCALES, copied here
because a migration must not change when the app's settings do); an operator corrects a
store elsewhere with ``flask --app webapp stores set CODE --timezone ...``.

The ledger needs nothing for expiry: ``kind`` is plain text without a CHECK constraint.

Plain ADD COLUMN with a constant default: in place on SQLite, MariaDB and MySQL.

Revision ID: 0004_expiry
Revises: 0002_websec_email_key
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_expiry"
down_revision = "0002_websec_email_key"

DEFAULTS = {
    "us": ("America/New_York", "en_US"),
    "ie": ("Europe/Dublin", "en_IE"),
    "in": ("Asia/Kolkata", "en_IN"),
}


def upgrade() -> None:
    op.add_column("stores", sa.Column("timezone", sa.String(length=40), nullable=False,
                                      server_default="UTC"))
    op.add_column("stores", sa.Column("locale", sa.String(length=10), nullable=False,
                                      server_default="en_US"))
    stores = sa.table("stores", sa.column("region", sa.String), sa.column("timezone", sa.String),
                      sa.column("locale", sa.String))
    for region, (timezone, locale) in DEFAULTS.items():
        op.execute(stores.update().where(stores.c.region == region)
                   .values(timezone=timezone, locale=locale))


def downgrade() -> None:
    with op.batch_alter_table("stores") as batch:  # a table copy on old SQLite versions
        batch.drop_column("locale")
        batch.drop_column("timezone")
