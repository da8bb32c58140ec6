"""Apple Wallet pass registrations (the pass web service's devices and push tokens)

One new table, nothing else touched: safe to run while the app serves.

Revision ID: 0003_passes
Revises: 0002_dbcontract
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.migrations.shared import Id, Timestamp

revision = "0003_passes"
down_revision = "0002_accounts"



def upgrade() -> None:
    op.create_table(
        "apple_pass_registrations",
        sa.Column("device_id", sa.String(length=100), nullable=False),
        sa.Column("pass_type_id", sa.String(length=100), nullable=False),
        sa.Column("serial", sa.String(length=20), nullable=False),
        sa.Column("card_id", Id, nullable=False),
        sa.Column("push_token", sa.String(length=200), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "pass_type_id", "serial",
                                name=op.f("pk_apple_pass_registrations")),
    )
    op.create_index("ix_apple_pass_registrations_card_id", "apple_pass_registrations",
                    ["card_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_apple_pass_registrations_card_id", table_name="apple_pass_registrations")
    op.drop_table("apple_pass_registrations")
