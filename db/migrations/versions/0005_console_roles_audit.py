"""console: staff roles and scope, store settings with a version, rewards, card blocks,
adjustment reasons on the ledger, and the append-only audit log

- accounts: ``admin_region`` (an admin's scope; NULL = global), ``disabled_at``,
  ``must_change_password`` (a temporary password set by an admin or manager).
- stores: ``version`` (optimistic locking for console edits), ``active``, per-store limits
  ``max_purchase_minor`` and ``coins_per_hour`` (NULL = the configured default).
- ledger: ``reason`` (staff-facing, required for adjustments and support reversals),
  ``label`` (customer-facing text of an adjustment), ``reward_id``.
- cards: ``blocked_at`` (a lost phone: the till refuses the card).
- rewards: the catalogue, per region.
- audit_log: who did what, append-only: triggers refuse UPDATE and DELETE on SQLite,
  MariaDB and MySQL alike, so the application cannot rewrite history even by mistake.

Revision ID: 0005_console
Revises: 0006_cardlive
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.migrations.shared import (
    Id,
    Timestamp,
    create_append_only_triggers,
    drop_append_only_triggers,
)

revision = "0005_console"
down_revision = "0002_chaos"

APPEND_ONLY = ("audit_log",)  # joins schema.APPEND_ONLY: INSERT/SELECT only, triggers


def upgrade() -> None:
    op.add_column("accounts", sa.Column("admin_region", sa.String(2), nullable=True))
    op.add_column("accounts", sa.Column("disabled_at", Timestamp, nullable=True))
    op.add_column("accounts", sa.Column("must_change_password", sa.Boolean(),
                                        nullable=False, server_default=sa.false()))
    op.add_column("stores", sa.Column("version", sa.Integer(), nullable=False,
                                      server_default="1"))
    op.add_column("stores", sa.Column("active", sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
    op.add_column("stores", sa.Column("max_purchase_minor", sa.BigInteger(), nullable=True))
    op.add_column("stores", sa.Column("coins_per_hour", sa.Integer(), nullable=True))
    op.add_column("ledger", sa.Column("reason", sa.String(200), nullable=True))
    op.add_column("ledger", sa.Column("label", sa.String(80), nullable=True))
    op.add_column("ledger", sa.Column("reward_id", Id, nullable=True))
    op.add_column("cards", sa.Column("blocked_at", Timestamp, nullable=True))
    op.create_index("ix_ledger_store_created", "ledger", ["store_id", "created_at"])
    op.create_index("ix_ledger_staff_created", "ledger", ["staff_id", "created_at"])
    op.create_table(
        "rewards",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("region", sa.String(2), nullable=False),
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("coins", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("sort", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.CheckConstraint("coins > 0", name="ck_rewards_coins_positive"),
        sa.UniqueConstraint("region", "name", name="uq_rewards_region_name"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("actor_id", Id, nullable=True),
        sa.Column("actor_role", sa.String(10), nullable=True),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("region", sa.String(2), nullable=True),
        sa.Column("store_id", Id, nullable=True),
        sa.Column("subject_id", Id, nullable=True),
        sa.Column("target", sa.String(80), nullable=True),
        sa.Column("client_ip", sa.String(45), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        # One event once: a retried action (same key) finds its row instead of a second.
        sa.Column("event_key", sa.String(120), nullable=False),
        sa.UniqueConstraint("event_key", name="uq_audit_log_event_key"),
    )
    op.create_index("ix_audit_log_created", "audit_log", ["created_at"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor_id", "created_at"])
    op.create_index("ix_audit_log_store", "audit_log", ["store_id", "created_at"])
    create_append_only_triggers(APPEND_ONLY)


def downgrade() -> None:
    drop_append_only_triggers(APPEND_ONLY)
    op.drop_table("audit_log")
    op.drop_table("rewards")
    op.drop_index("ix_ledger_staff_created", table_name="ledger")
    op.drop_index("ix_ledger_store_created", table_name="ledger")
    with op.batch_alter_table("cards") as batch:
        batch.drop_column("blocked_at")
    with op.batch_alter_table("ledger") as batch:
        for column in ("reward_id", "label", "reason"):
            batch.drop_column(column)
    with op.batch_alter_table("stores") as batch:
        for column in ("coins_per_hour", "max_purchase_minor", "active", "version"):
            batch.drop_column(column)
    with op.batch_alter_table("accounts") as batch:
        for column in ("must_change_password", "disabled_at", "admin_region"):
            batch.drop_column(column)
