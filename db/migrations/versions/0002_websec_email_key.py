"""accounts.email_key: a unique index on the normalised email address

Revision ID: 0002_websec_email_key
Revises: 0001

The address was stored as each path received it: the API in NFC, the sign-up page as
typed (lower-cased only), so one address could become two accounts (on SQLite; the
MySQL/MariaDB collations happened to refuse it). From here on an account's identity is
its address in one normal form (webapp.auth.emails), unique in the database.

Existing accounts get their key computed here. Where two or more accounts share one
normal form, the oldest keeps it and the others get none: nothing is merged (their
coins, cards and history stay theirs), they cannot sign in until an operator resolves
them, and the migration logs their ids. ``SELECT id, email FROM accounts WHERE email_key
IS NULL`` lists them at any time.

The unique constraint on the raw address goes: it is the key that decides now, and the
MySQL/MariaDB one compared addresses ignoring accents (jose@ vs josé@).
"""

from __future__ import annotations

import contextlib
import logging
import unicodedata
from collections import defaultdict

import sqlalchemy as sa
from alembic import op
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.dialects import mysql

revision = "0002_websec_email_key"
down_revision = "0005_console"

log = logging.getLogger("alembic.migration.email_key")

EmailKey = sa.String(254).with_variant(mysql.VARCHAR(254, collation="utf8mb4_bin"), "mysql",
                                       "mariadb")


def _normalize(address: str) -> str:
    """webapp.auth.emails.normalize_email as of this migration (kept here, frozen: a
    later change to the app must not change what this migration did)."""
    text = address.strip()
    with contextlib.suppress(EmailNotValidError):
        text = validate_email(text, check_deliverability=False).normalized
    return unicodedata.normalize("NFC", text.lower())


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("email_key", EmailKey, nullable=True))
        batch.drop_constraint("uq_accounts_email", type_="unique")

    conn = op.get_bind()
    accounts = sa.table("accounts", sa.column("id"), sa.column("email"),
                        sa.column("email_key"))
    by_key: dict[str, list[int]] = defaultdict(list)
    for account_id, email in conn.execute(
            sa.select(accounts.c.id, accounts.c.email).order_by(accounts.c.id)):
        by_key[_normalize(email)].append(account_id)
    for key, ids in by_key.items():
        conn.execute(sa.update(accounts).where(accounts.c.id == ids[0])
                     .values(email_key=key))
    for ids in (ids for ids in by_key.values() if len(ids) > 1):
        # Ids, not addresses: logs are no place for them, and the ids find them.
        log.warning(
            "duplicate email address: accounts %s are one address once normalised; "
            "account %s keeps it, the others cannot sign in until an operator resolves "
            "them (nothing was merged)", ", ".join(map(str, ids)), ids[0])

    with op.batch_alter_table("accounts") as batch:
        batch.create_unique_constraint("uq_accounts_email_key", ["email_key"])


def downgrade() -> None:
    # Fails if two accounts share an address as typed: that is for an operator to decide.
    with op.batch_alter_table("accounts") as batch:
        batch.drop_constraint("uq_accounts_email_key", type_="unique")
        batch.drop_column("email_key")
        batch.create_unique_constraint("uq_accounts_email", ["email"])
