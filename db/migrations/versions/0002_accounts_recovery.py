"""accounts: email verification, mailed tokens, mail outbox, passkeys, devices, erasure

Revision ID: 0002_accounts
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.migrations.shared import Id, Timestamp, create_table, token_lifetime

revision = "0002_accounts"
down_revision = "0002_dbcontract"


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("email_verified_at", Timestamp, nullable=True))
        batch.add_column(sa.Column("erased_at", Timestamp, nullable=True))
    # Accounts made before verification existed keep signing in.
    op.execute("UPDATE accounts SET email_verified_at = created_at WHERE email_verified_at IS NULL")

    with op.batch_alter_table("refresh_tokens") as batch:
        batch.add_column(sa.Column("user_agent", sa.String(length=120), nullable=True))
        batch.add_column(sa.Column("region", sa.String(length=2), nullable=True))

    create_table(
        "account_tokens",
        sa.Column("account_id", Id, nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        *token_lifetime(),
        sa.UniqueConstraint("token_hash", name=op.f("uq_account_tokens_token_hash")),
    )
    op.create_index(op.f("ix_account_tokens_account_id"), "account_tokens", ["account_id"])

    create_table(
        "mail_outbox",
        sa.Column("message_key", sa.String(length=64), nullable=False),
        sa.Column("account_id", Id, nullable=True),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("next_attempt_at", Timestamp, nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("claimed_until", Timestamp, nullable=True),
        sa.Column("sent_at", Timestamp, nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.UniqueConstraint("message_key", name=op.f("uq_mail_outbox_message_key")),
    )
    op.create_index(op.f("ix_mail_outbox_account_id"), "mail_outbox", ["account_id"])
    op.create_index(op.f("ix_mail_outbox_next_attempt_at"), "mail_outbox", ["next_attempt_at"])

    create_table(
        "passkeys",
        sa.Column("account_id", Id, nullable=False),
        sa.Column("credential_hash", sa.String(length=64), nullable=False),
        sa.Column("credential_id", sa.Text(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("transports", sa.String(length=100), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("last_used_at", Timestamp, nullable=True),
        sa.UniqueConstraint("credential_hash", name=op.f("uq_passkeys_credential_hash")),
    )
    op.create_index(op.f("ix_passkeys_account_id"), "passkeys", ["account_id"])

    create_table(
        "webauthn_challenges",
        sa.Column("challenge_hash", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("account_id", Id, nullable=True),
        *token_lifetime(revocable=False),
        sa.UniqueConstraint("challenge_hash", name=op.f("uq_webauthn_challenges_challenge_hash")),
    )


def downgrade() -> None:
    op.drop_table("webauthn_challenges")
    op.drop_index(op.f("ix_passkeys_account_id"), table_name="passkeys")
    op.drop_table("passkeys")
    op.drop_index(op.f("ix_mail_outbox_next_attempt_at"), table_name="mail_outbox")
    op.drop_index(op.f("ix_mail_outbox_account_id"), table_name="mail_outbox")
    op.drop_table("mail_outbox")
    op.drop_index(op.f("ix_account_tokens_account_id"), table_name="account_tokens")
    op.drop_table("account_tokens")
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("region")
        batch.drop_column("user_agent")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("erased_at")
        batch.drop_column("email_verified_at")
