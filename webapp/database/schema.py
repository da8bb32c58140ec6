"""The tables, in one place, as SQLAlchemy Core metadata.

Rules that Group Replication (multi-primary) and Galera impose, kept here so nobody
has to rediscover them: every table has a primary key, there are no cascading foreign
keys (GR forbids them in multi-primary mode, and a cascade would hide a coin movement),
and uniqueness that protects money is a database constraint, never only a count check.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql

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
    UniqueConstraint("account_id", "slot"),
    CheckConstraint("slot IS NULL OR (slot >= 0 AND slot <= 4)", name="slot_range"),
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
    CheckConstraint("minor_per_coin > 0", name="rate_positive"),
)

ledger = Table(
    "ledger",
    metadata,
    _id(),
    Column("wallet_id", Id, nullable=False),
    Column("card_id", Id, nullable=True),
    # earn | redeem | reversal | adjustment
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
)

Index("ix_ledger_wallet_history", ledger.c.wallet_id, ledger.c.id)
