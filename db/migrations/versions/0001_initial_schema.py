"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 20:33:17.677983
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.migrations.shared import Id, Timestamp, create_table, token_lifetime

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_table(
        "accounts",
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("home_region", sa.String(length=2), nullable=False),
        sa.Column("role", sa.String(length=10), server_default="customer", nullable=False),
        sa.Column("store_id", Id, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.UniqueConstraint("email", name=op.f("uq_accounts_email")),
    )
    create_table(
        "cards",
        sa.Column("account_id", Id, nullable=False),
        sa.Column("wallet_id", Id, nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=True),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("display_name", sa.String(length=60), nullable=False),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("code_secret", sa.String(length=64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("removed_at", Timestamp, nullable=True),
        sa.CheckConstraint(
            "slot IS NULL OR (slot >= 0 AND slot <= 4)", name=op.f("ck_cards_slot_range")
        ),
        sa.UniqueConstraint("account_id", "slot", name=op.f("uq_cards_account_id_slot")),
        sa.UniqueConstraint("number", name=op.f("uq_cards_number")),
    )
    create_table(
        "ledger",
        sa.Column("wallet_id", Id, nullable=False),
        sa.Column("card_id", Id, nullable=True),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("coins", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("store_id", Id, nullable=True),
        sa.Column("region", sa.String(length=2), nullable=False),
        sa.Column("staff_id", Id, nullable=True),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("reverses_id", Id, nullable=True),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_ledger_idempotency_key")),
        sa.UniqueConstraint("reverses_id", name=op.f("uq_ledger_reverses_id")),
    )
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_wallet_history", ["wallet_id", "id"], unique=False)

    create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", Id, nullable=False),
        *token_lifetime(),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
    )
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_refresh_tokens_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_refresh_tokens_family_id"), ["family_id"], unique=False
        )

    create_table(
        "stores",
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("region", sa.String(length=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("minor_per_coin", sa.Integer(), nullable=False),
        sa.CheckConstraint("minor_per_coin > 0", name=op.f("ck_stores_rate_positive")),
        sa.UniqueConstraint("code", name=op.f("uq_stores_code")),
    )
    op.create_table(
        "used_codes",
        sa.Column("card_id", Id, autoincrement=False, nullable=False),
        sa.Column("step", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ledger_id", Id, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("card_id", "step", name=op.f("pk_used_codes")),
    )
    create_table(
        "wallets",
        sa.Column("account_id", Id, nullable=False),
        sa.Column("balance", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_wallets_balance_not_negative")),
        sa.UniqueConstraint("account_id", name=op.f("uq_wallets_account_id")),
    )


def downgrade() -> None:
    op.drop_table("wallets")
    op.drop_table("used_codes")
    op.drop_table("stores")
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refresh_tokens_family_id"))
        batch_op.drop_index(batch_op.f("ix_refresh_tokens_account_id"))

    op.drop_table("refresh_tokens")
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_wallet_history")

    op.drop_table("ledger")
    op.drop_table("cards")
    op.drop_table("accounts")
