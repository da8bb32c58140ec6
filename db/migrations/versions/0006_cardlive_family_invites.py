"""family members on their own phones: invites and member sign-ins

``family_invites`` keeps each invitation (only the token's SHA-256); a member's own
account has role ``member`` and ``accounts.member_card_id`` names the one card it shows.
A unique index keeps one sign-in per card (NULLs never collide, on every database).

Revision ID: 0006_cardlive
Revises: 0003_passes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.migrations.shared import Id, token_lifetime

revision = "0006_cardlive"
down_revision = "0003_passes"



def upgrade() -> None:
    op.add_column("accounts", sa.Column("member_card_id", Id, nullable=True))
    op.create_index("uq_accounts_member_card_id", "accounts", ["member_card_id"], unique=True)
    op.create_table(
        "family_invites",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("account_id", Id, nullable=False),
        sa.Column("card_id", Id, nullable=False, index=True),
        *token_lifetime(),
        sa.Column("member_account_id", Id, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("family_invites")
    op.drop_index("uq_accounts_member_card_id", table_name="accounts")
    op.drop_column("accounts", "member_card_id")
