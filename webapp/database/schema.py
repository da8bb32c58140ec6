"""The tables, in one place, as SQLAlchemy Core metadata.

Rules that Group Replication (multi-primary) and Galera impose, kept here so nobody
has to rediscover them: every table has a primary key, there are no cascading foreign
keys (GR forbids them in multi-primary mode, and a cascade would hide a coin movement),
and uniqueness that protects money is a database constraint, never only a count check.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.dialects import mysql

from webapp.config import FAMILY_SLOTS

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only autoincrements an INTEGER PRIMARY KEY; MySQL wants BIGINT for ids that grow.
Id = BigInteger().with_variant(Integer(), "sqlite")
# Microsecond timestamps on MySQL/MariaDB, so history orders the way it happened.
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# Compared byte for byte everywhere: MySQL/MariaDB's default collations would call
# "jose@" and "josé@" the same address, SQLite would not.
EmailKey = String(254).with_variant(mysql.VARCHAR(254, collation="utf8mb4_bin"), "mysql",
                                    "mariadb")


def _id() -> Column:
    return Column("id", Id, primary_key=True, autoincrement=True)


accounts = Table(
    "accounts",
    metadata,
    _id(),
    # The address as given; the identity is email_key (webapp.auth.emails), unique. Null
    # only for an account the 0002 migration found sharing its address with an older
    # one: it waits for an operator (see docs/security.md).
    Column("email", String(254), nullable=False),
    Column("email_key", EmailKey, nullable=True, unique=True),
    Column("name", String(80), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("home_region", String(2), nullable=False),
    # customer | staff | admin; staff work at store_id.
    Column("role", String(10), nullable=False, server_default="customer"),
    Column("store_id", Id, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    # NULL until the owner opens the link mailed to the address: an unverified account
    # cannot sign in, and is deleted after UNVERIFIED_ACCOUNT_TTL.
    Column("email_verified_at", Timestamp, nullable=True),
    # Set when the owner erased the account: its personal fields are blank from then on.
    Column("erased_at", Timestamp, nullable=True),
    # role "member": a family member's own sign-in, showing only this card of the
    # owner's wallet; NULL for everyone else and once the owner revoked the access.
    Column("member_card_id", Id, nullable=True),
    # An admin's scope: one region, or NULL for the whole chain (docs/staff.md).
    Column("admin_region", String(2), nullable=True),
    # Staff accounts are disabled, never deleted: the ledger and the audit log name them.
    Column("disabled_at", Timestamp, nullable=True),
    # Set with a temporary password (a new or reset staff account): changed at sign-in.
    Column("must_change_password", Boolean, nullable=False, server_default=false()),
)

wallets = Table(
    "wallets",
    metadata,
    _id(),
    Column("account_id", Id, nullable=False, unique=True),
    Column("balance", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", Timestamp, nullable=False),
    CheckConstraint("balance >= 0", name="balance_not_negative"),
)

cards = Table(
    "cards",
    metadata,
    _id(),
    Column("account_id", Id, nullable=False),
    Column("wallet_id", Id, nullable=False),
    # 0 is the account holder, 1..4 family members. A removed card keeps its row (its
    # history still names it) with slot NULL; the unique key is what makes the family
    # limit hold when two phones add a member at the same moment.
    Column("slot", SmallInteger, nullable=True),
    Column("number", String(16), nullable=False, unique=True),
    Column("display_name", String(60), nullable=False),
    Column("birthday", Date, nullable=True),
    Column("code_secret", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("removed_at", Timestamp, nullable=True),
    # The client's id for the request that added a family card (form field or the API's
    # Idempotency-Key), else one the server made for that call: running the add again
    # after a lost COMMIT answer, or sending it again, finds this card instead of adding
    # a second one. NULL for holders' cards.
    Column("request_id", String(64), nullable=True),
    # A lost phone: support blocks the card and the till refuses it.
    Column("blocked_at", Timestamp, nullable=True),
    UniqueConstraint("account_id", "slot"),
    CheckConstraint(f"slot IS NULL OR (slot >= 0 AND slot <= {FAMILY_SLOTS})", name="slot_range"),
)

stores = Table(
    "stores",
    metadata,
    _id(),
    Column("code", String(20), nullable=False, unique=True),
    Column("name", String(80), nullable=False),
    Column("region", String(2), nullable=False),
    Column("currency", String(3), nullable=False),
    # Money (in minor units: cents, paise) that earns one coin; earning rounds down.
    Column("minor_per_coin", Integer, nullable=False),
    # Optimistic locking: a console edit names the version it was made from.
    Column("version", Integer, nullable=False, server_default="1"),
    Column("active", Boolean, nullable=False, server_default=true()),
    # Per-store limits for baristas; NULL means the configured default.
    Column("max_purchase_minor", BigInteger, nullable=True),
    Column("coins_per_hour", Integer, nullable=True),
    CheckConstraint("minor_per_coin > 0", name="rate_positive"),
)

ledger = Table(
    "ledger",
    metadata,
    _id(),
    Column("wallet_id", Id, nullable=False),
    Column("card_id", Id, nullable=True),
    # earn | redeem | reversal | adjustment | erasure (forfeits the balance of an erased
    # account, so the balance still equals the ledger's sum)
    Column("kind", String(12), nullable=False),
    # Signed: + adds to the wallet, - takes from it. The wallet balance is their sum.
    Column("coins", BigInteger, nullable=False),
    Column("amount_minor", BigInteger, nullable=True),
    Column("currency", String(3), nullable=True),
    Column("store_id", Id, nullable=True),
    Column("region", String(2), nullable=False),
    Column("staff_id", Id, nullable=True),
    # The client's key: a retry with it returns the first result and changes nothing.
    Column("idempotency_key", String(100), nullable=False, unique=True),
    Column("request_hash", String(64), nullable=False),
    # Unique, so a transaction can be reversed once even if two tills try at once.
    Column("reverses_id", Id, nullable=True, unique=True),
    Column("balance_after", BigInteger, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    # Why staff moved coins (adjustments, support reversals) and, for an adjustment, the
    # text the customer sees in their history.
    Column("reason", String(200), nullable=True),
    Column("label", String(80), nullable=True),
    Column("reward_id", Id, nullable=True),  # a redemption of a catalogue reward
)

used_codes = Table(
    "used_codes",
    metadata,
    # A rotating card code spent on a redemption; the primary key refuses a replay.
    Column("card_id", Id, primary_key=True, autoincrement=False),
    Column("step", BigInteger, primary_key=True, autoincrement=False),
    Column("ledger_id", Id, nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    _id(),
    Column("token_hash", String(64), nullable=False, unique=True),
    # Every rotation stays in one family; reuse of a spent token revokes the family.
    Column("family_id", String(32), nullable=False, index=True),
    Column("account_id", Id, nullable=False, index=True),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("used_at", Timestamp, nullable=True),
    Column("revoked_at", Timestamp, nullable=True),
    # Where and on what the token was issued: the account page lists each family as a
    # signed-in device ("Firefox on Android, ie").
    Column("user_agent", String(120), nullable=True),
    Column("region", String(2), nullable=True),
)

account_tokens = Table(
    "account_tokens",
    metadata,
    _id(),
    Column("account_id", Id, nullable=False, index=True),
    # verify | reset | email: what the mailed link may do.
    Column("purpose", String(10), nullable=False),
    # Only the SHA-256 of the link's secret: a database leak opens no account.
    Column("token_hash", String(64), nullable=False, unique=True),
    # verify: the address verified; email: the new address.
    Column("email", String(254), nullable=True),
    # verify: the password chosen with this registration, applied when its link is used,
    # so a second registration of the same unverified address can't swap in its own.
    Column("password_hash", String(255), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("used_at", Timestamp, nullable=True),
    Column("revoked_at", Timestamp, nullable=True),
)

mail_outbox = Table(
    "mail_outbox",
    metadata,
    _id(),
    # Made before the transaction that queues the mail: a retry after an unknown COMMIT
    # outcome finds its own row instead of queueing the mail twice.
    Column("message_key", String(64), nullable=False, unique=True),
    Column("account_id", Id, nullable=True, index=True),
    Column("recipient", String(254), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("body_text", Text, nullable=False),
    Column("body_html", Text, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("next_attempt_at", Timestamp, nullable=False, index=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    # A sender that took the row keeps it until then; another sender waits it out.
    Column("claimed_until", Timestamp, nullable=True),
    Column("sent_at", Timestamp, nullable=True),
    Column("last_error", String(200), nullable=True),
)

passkeys = Table(
    "passkeys",
    metadata,
    _id(),
    Column("account_id", Id, nullable=False, index=True),
    # Credential ids reach 1023 bytes, too long for a unique index everywhere: the
    # index is on their SHA-256.
    Column("credential_hash", String(64), nullable=False, unique=True),
    Column("credential_id", Text, nullable=False),  # base64url
    Column("public_key", Text, nullable=False),  # base64url COSE key
    Column("sign_count", BigInteger, nullable=False, server_default="0"),
    Column("name", String(60), nullable=False),
    Column("transports", String(100), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("last_used_at", Timestamp, nullable=True),
)

webauthn_challenges = Table(
    "webauthn_challenges",
    metadata,
    _id(),
    Column("challenge_hash", String(64), nullable=False, unique=True),
    # register | login
    Column("purpose", String(10), nullable=False),
    Column("account_id", Id, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("used_at", Timestamp, nullable=True),
)

apple_pass_registrations = Table(
    "apple_pass_registrations",
    metadata,
    # A phone that installed a card's Apple Wallet pass and wants to hear when it changes
    # (Apple's pass web service). The key is the protocol's own: device, pass type, serial.
    Column("device_id", String(100), primary_key=True),
    Column("pass_type_id", String(100), primary_key=True),
    Column("serial", String(20), primary_key=True),
    Column("card_id", Id, nullable=False, index=True),
    # Where Apple's push service reaches this device for this pass type.
    Column("push_token", String(200), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

# An owner's invitation for a family member to use their card on their own phone: single
# use, expires, revocable; only the SHA-256 of the token is kept.
family_invites = Table(
    "family_invites",
    metadata,
    _id(),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("account_id", Id, nullable=False),  # the owner
    Column("card_id", Id, nullable=False, index=True),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("used_at", Timestamp, nullable=True),
    Column("revoked_at", Timestamp, nullable=True),
    Column("member_account_id", Id, nullable=True),
)

rewards = Table(
    "rewards",
    metadata,
    _id(),
    Column("region", String(2), nullable=False),
    Column("name", String(60), nullable=False),
    Column("coins", Integer, nullable=False),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("sort", Integer, nullable=False, server_default="0"),
    Column("version", Integer, nullable=False, server_default="1"),
    CheckConstraint("coins > 0", name="coins_positive"),
    UniqueConstraint("region", "name"),
)

# Append-only (database triggers refuse UPDATE and DELETE). Customers appear by id only.
audit_log = Table(
    "audit_log",
    metadata,
    _id(),
    Column("created_at", Timestamp, nullable=False),
    Column("actor_id", Id, nullable=True),
    Column("actor_role", String(10), nullable=True),
    Column("action", String(40), nullable=False),
    Column("region", String(2), nullable=True),
    Column("store_id", Id, nullable=True),
    Column("subject_id", Id, nullable=True),  # the customer account concerned
    Column("target", String(80), nullable=True),  # e.g. "store:5", "ledger:17"
    Column("client_ip", String(45), nullable=True),
    Column("details", Text, nullable=True),  # JSON: reason, before/after
    Column("event_key", String(120), nullable=False, unique=True),
)

Index("ix_ledger_wallet_history", ledger.c.wallet_id, ledger.c.id)
Index("uq_cards_account_request", cards.c.account_id, cards.c.request_id, unique=True)
Index("uq_accounts_member_card_id", accounts.c.member_card_id, unique=True)
Index("ix_ledger_store_created", ledger.c.store_id, ledger.c.created_at)
Index("ix_ledger_staff_created", ledger.c.staff_id, ledger.c.created_at)
Index("ix_audit_log_created", audit_log.c.created_at)
Index("ix_audit_log_actor", audit_log.c.actor_id, audit_log.c.created_at)
Index("ix_audit_log_store", audit_log.c.store_id, audit_log.c.created_at)

# Tables that only ever grow: coins move by appending rows, never by changing or
# removing one. The application's database account may only INSERT and SELECT on them
# (webapp/database/privileges.py grants the rest of the schema in full), and triggers
# refuse UPDATE and DELETE for every account (migration 0002_chaos). A new append-only table
# joins by adding its name here and a migration that creates its triggers
# (the audit log's are in migration 0005_console).
APPEND_ONLY = ("ledger", "used_codes", "audit_log")
