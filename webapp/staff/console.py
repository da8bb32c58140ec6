"""The rulebook for the operator console: stores, staff, rewards, customer support, the
audit log and the store's day. The /admin pages, their htmx partials and API v1 all call
these functions with the signed-in principal; none of them decides who may do what.

Every function starts from :func:`~webapp.staff.services.current_actor` (the staff
record read causally at this request) and checks the actor's scope:

| action | barista | manager | regional admin | global admin |
|---|---|---|---|---|
| stores: list | - | own store | region | all |
| stores: create, edit | - | - | region | all |
| staff: list, create, reset, change, disable | - | baristas of own store | region | all |
| rewards: list, create, edit | - | - | region | all |
| support: search, open, adjust, reverse, block, reissue | - | yes (bounded adjust) | region | all |
| audit log | - | own store | region | all |
| store's day | - | own store | region | all |
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Connection, and_, func, insert, or_, select, update
from sqlalchemy import exc as sa_exc

from webapp import audit
from webapp.auth.services import hasher, register
from webapp.auth.tokens import Principal
from webapp.card.numbers import new_card_number
from webapp.clock import utcnow
from webapp.config import REGION_LOCALES, REGION_TIMEZONES
from webapp.database import after_unknown_commit
from webapp.database.schema import accounts, audit_log, cards, ledger, rewards, stores, wallets
from webapp.errors import Conflict, Forbidden, NotFound, StaleEdit, ValidationFailed
from webapp.extensions import db
from webapp.i18n import formatting
from webapp.ledger import services as ledger_services
from webapp.money import CURRENCY_DECIMALS
from webapp.reports import zones

from .accounts import STAFF_NAME_MAX
from .roles import ADMIN, BARISTA, MANAGER, Actor, require
from .services import current_actor, scoped_key

REGIONS = ("us", "ie", "in")
STALE = "This was changed by someone else since you opened it. Reload and edit again."
STORE_FIELDS = ("name", "region", "currency", "minor_per_coin", "timezone", "active",
                "max_purchase_minor", "coins_per_hour")
PAGE_SIZE = 25


@dataclass(frozen=True)
class Powers:
    """What the console lets an actor do beyond seeing their scope. The pages show their
    controls by these fields, and the functions below refuse by the same ones, so a page
    never offers what the service would refuse."""

    grants: tuple[str, ...]  # the roles this actor may give a new staff member
    reassigns_staff: bool  # change a barista's or manager's role and store
    names_admins: bool  # create admins, regional or global
    edits_stores: bool  # create and edit stores (in the actor's region)
    runs_catalogue: bool  # the rewards catalogue


def powers(actor: Actor) -> Powers:
    return Powers(
        grants=(BARISTA,) + ((MANAGER,) if actor.is_admin else ())
        + ((ADMIN,) if actor.is_global else ()),
        reassigns_staff=actor.is_admin,
        names_admins=actor.is_global,
        edits_stores=actor.is_admin,
        runs_catalogue=actor.is_admin,
    )


def _forbid(message: str = "You can't do that with your role.") -> None:
    raise Forbidden(message)


def _audit_in(conn: Connection, actor: Actor, action: str, **fields: Any) -> None:
    audit.record_in(conn, actor_id=actor.account_id, actor_role=actor.role, action=action,
                    **fields)


def console_actor(principal: Principal | None) -> Actor:
    """The console is for managers and admins (baristas have the till)."""
    actor = current_actor(principal)
    require(actor.is_admin or actor.is_manager, "The console is for managers and admins.")
    return actor


def change_own_password(principal: Principal | None, *, current: str, new: str) -> None:
    """A staff member replaces their (temporary) password; clears must_change_password."""
    from webapp.auth.services import _verify

    from .queries import staff_record
    from .roles import actor_from

    if principal is None:
        raise Forbidden("Sign in first.")
    record = db.read(lambda conn: staff_record(conn, principal.account_id),
                     name="staff.record", causal=True)
    actor = actor_from(record, password_ok=True)
    if len(new or "") < 12:
        raise ValidationFailed({"new": ["Use at least 12 characters."]})
    if new == current:
        raise ValidationFailed({"new": ["Choose a password different from the temporary one."]})
    email = db.read(lambda conn: conn.execute(select(accounts.c.email).where(
        accounts.c.id == actor.account_id)).scalar(), name="account")
    try:
        _verify(email, current)
    except Exception as error:
        raise ValidationFailed({"current": ["That is not your current password."]}) from error
    password_hash = hasher.hash(new)

    def change(conn: Connection) -> None:
        conn.execute(update(accounts).where(accounts.c.id == actor.account_id).values(
            password_hash=password_hash, must_change_password=False))

    # Idempotent: writing the same hash again is the same state.
    db.write(change, name="staff.password", idempotent=True)


# -- stores -------------------------------------------------------------------------


def _scope_stores(actor: Actor):
    query = select(stores).order_by(stores.c.region, stores.c.code)
    if actor.is_admin:
        if actor.admin_region:
            query = query.where(stores.c.region == actor.admin_region)
    elif actor.is_manager:
        query = query.where(stores.c.id == (actor.store["id"] if actor.store else -1))
    else:
        _forbid("The console is for managers and admins.")
    return query


def list_stores(principal: Principal | None) -> list[dict[str, Any]]:
    actor = current_actor(principal)
    query = _scope_stores(actor)
    return db.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()],
                   name="console.stores")


def get_store(principal: Principal | None, store_id: int) -> dict[str, Any]:
    actor = current_actor(principal)
    store = db.read(lambda conn: _store(conn, store_id), name="console.store", causal=True)
    if store is None:
        raise NotFound("No such store.")
    require(actor.covers_store(store), "That store is outside your scope.")
    return store


def _store(conn: Connection, store_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(stores).where(stores.c.id == store_id)).mappings().first()
    return dict(row) if row else None


def _clean_store(values: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    if creating:
        code = str(values.get("code") or "").strip().upper()
        if not code or len(code) > 20 or not all(c.isalnum() or c == "-" for c in code):
            errors["code"] = ["Use 1–20 letters, digits and dashes, e.g. IN-DEL-01."]
        clean["code"] = code
    name = str(values.get("name") or "").strip()
    if not name or len(name) > 80:
        errors["name"] = ["Enter a name of at most 80 characters."]
    clean["name"] = name
    region = str(values.get("region") or "").strip().lower()
    if region not in REGIONS:
        errors["region"] = [f"Choose one of {', '.join(REGIONS)}."]
    clean["region"] = region
    currency = str(values.get("currency") or "").strip().upper()
    if currency not in CURRENCY_DECIMALS:
        errors["currency"] = ["Choose a currency we take."]
    clean["currency"] = currency
    zone_name = str(values.get("timezone") or "").strip()
    if zone_name:
        if len(zone_name) > 40 or zone_name != formatting.zone(zone_name).key:
            errors["timezone"] = ["Use an IANA time zone such as Asia/Kolkata or "
                                  "America/New_York."]
        clean["timezone"] = zone_name
    elif creating:  # the region's zone; an edit without one keeps the store's
        clean["timezone"] = REGION_TIMEZONES.get(region, "UTC")
    for field, label, optional in (("minor_per_coin", "the money (minor units) per coin", False),
                                   ("max_purchase_minor", "the purchase limit", True),
                                   ("coins_per_hour", "the coins per hour", True)):
        raw = values.get(field)
        if raw in (None, "") and optional:
            clean[field] = None
            continue
        try:
            number = int(raw)
            if not 0 < number <= 100_000_000:
                raise ValueError
        except (TypeError, ValueError):
            errors[field] = [f"Enter {label} as a whole number above 0."]
            continue
        clean[field] = number
    return _with_active(clean, values, errors)


def _with_active(clean: dict[str, Any], values: dict[str, Any],
                 errors: dict[str, list[str]]) -> dict[str, Any]:
    """Ends a form's cleaning: the "active" box (absent = active) and every error at once."""
    clean["active"] = values.get("active") not in (False, "0", "false", "off", None, "") \
        if "active" in values else True
    if errors:
        raise ValidationFailed(errors)
    return clean


def create_store(principal: Principal | None, values: dict[str, Any]) -> dict[str, Any]:
    actor = current_actor(principal)
    clean = _clean_store(values, creating=True)
    require(powers(actor).edits_stores and actor.covers_region(clean["region"]),
            "You can create stores only in your region.")
    # Like the stores `flask stores create` makes: the region's money format (the column's
    # default, en_US, would show a Delhi store's rupees the American way); the time zone
    # is the form's or the region's (_clean_store).
    clean.setdefault("locale", REGION_LOCALES[clean["region"]])

    def create(conn: Connection) -> dict[str, Any]:
        existing = conn.execute(select(stores).where(stores.c.code == clean["code"])
                                ).mappings().first()
        if existing is not None:
            if after_unknown_commit(conn) and all(existing[k] == v for k, v in clean.items()):
                return dict(existing)  # ours: the COMMIT answer was lost
            raise ValidationFailed({"code": ["A store with this code exists."]})
        store_id = conn.execute(insert(stores).values(**clean, version=1)
                                ).inserted_primary_key[0]
        _audit_in(conn, actor, "store.create", region=clean["region"], store_id=store_id,
                  target=f"store:{store_id}", details={"after": clean},
                  event_key=f"store.create:{clean['code']}")
        return _store(conn, store_id)

    # Idempotent: a re-run recognises the store it created (same code, same values).
    return db.write(create, name="console.store.create", idempotent=True)


def update_store(principal: Principal | None, store_id: int, version: int,
                 values: dict[str, Any]) -> dict[str, Any]:
    """Optimistic: the edit names the ``version`` it was made from. Another edit in
    between -> :class:`StaleEdit` (409). A re-run after a lost COMMIT answer finds the
    version it wrote, with its values, and is not a conflict with itself."""
    actor = current_actor(principal)
    clean = _clean_store(values, creating=False)

    def edit(conn: Connection) -> dict[str, Any]:
        before = _store(conn, store_id)
        if before is None:
            raise NotFound("No such store.")
        require(powers(actor).edits_stores and actor.covers_store(before)
                and actor.covers_region(clean["region"]), "That store is outside your scope.")
        if before["version"] != version:
            if (after_unknown_commit(conn) and before["version"] == version + 1
                    and all(before[k] == v for k, v in clean.items())):
                return before  # our own edit, whose COMMIT answer was lost
            raise StaleEdit(STALE)
        changed = conn.execute(update(stores).where(
            stores.c.id == store_id, stores.c.version == version
        ).values(**clean, version=version + 1)).rowcount
        if changed != 1:
            raise StaleEdit(STALE)
        diff = {k: (before[k], v) for k, v in clean.items() if before[k] != v}
        _audit_in(conn, actor, "store.update", region=before["region"], store_id=store_id,
                  target=f"store:{store_id}",
                  details={"before": {k: b for k, (b, _) in diff.items()},
                           "after": {k: a for k, (_, a) in diff.items()}},
                  event_key=f"store.update:{store_id}:{version + 1}")
        return _store(conn, store_id)

    # Idempotent: the version check recognises our own write (above).
    return db.write(edit, name="console.store.update", idempotent=True)


# -- staff --------------------------------------------------------------------------


def _staff_in_scope(actor: Actor, member: dict[str, Any], store: dict[str, Any] | None) -> bool:
    if actor.is_admin:
        if member["role"] == ADMIN:
            return actor.is_global  # only a global admin manages admins
        return (store is not None and actor.covers_region(store["region"])) or actor.is_global
    return (actor.is_manager and member["role"] == BARISTA and store is not None
            and actor.store is not None and store["id"] == actor.store["id"])


def list_staff(principal: Principal | None) -> list[dict[str, Any]]:
    actor = current_actor(principal)
    require(actor.is_admin or actor.is_manager, "The console is for managers and admins.")
    query = (select(accounts.c.id, accounts.c.name, accounts.c.email, accounts.c.role,
                    accounts.c.admin_region, accounts.c.disabled_at,
                    accounts.c.must_change_password, stores.c.code.label("store_code"),
                    stores.c.region.label("store_region"), stores.c.id.label("store_id"))
             .outerjoin(stores, stores.c.id == accounts.c.store_id)
             .where(accounts.c.role.in_((BARISTA, MANAGER, ADMIN)))
             .order_by(stores.c.code, accounts.c.name))
    if actor.is_manager:
        query = query.where(accounts.c.store_id == actor.store["id"],
                            accounts.c.role == BARISTA)
    elif actor.admin_region:
        query = query.where(or_(stores.c.region == actor.admin_region,
                                accounts.c.admin_region == actor.admin_region))
    return db.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()],
                   name="console.staff")


def _temporary_password() -> str:
    return f"{secrets.token_urlsafe(6)}-{secrets.token_urlsafe(6)}"


def create_staff(principal: Principal | None, *, email: str, name: str, role: str,
                 store_code: str | None, admin_region: str | None = None
                 ) -> tuple[dict[str, Any], str]:
    """A staff account with a one-time temporary password (returned once, shown once,
    changed at first sign-in)."""
    actor = current_actor(principal)
    errors: dict[str, list[str]] = {}
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > 254:
        errors["email"] = ["Enter an email address."]
    name = (name or "").strip()
    if not name or len(name) > STAFF_NAME_MAX:
        errors["name"] = [f"Enter a name of at most {STAFF_NAME_MAX} characters."]
    if role not in (BARISTA, MANAGER, ADMIN):
        errors["role"] = ["Choose barista, manager or admin."]
    store = None
    if role in (BARISTA, MANAGER):
        store = db.read(lambda conn: conn.execute(select(stores).where(
            stores.c.code == (store_code or ""))).mappings().first(), name="console.store")
        if store is None:
            errors["store"] = ["Choose the store they work at."]
    if role == ADMIN and admin_region not in (None, *REGIONS):
        errors["admin_region"] = ["Choose a region, or none for a global admin."]
    if errors:
        raise ValidationFailed(errors)
    member = {"role": role}
    require(role in powers(actor).grants
            and (role == ADMIN or _staff_in_scope(actor, member, dict(store) if store else None)),
            "You can't create that staff member.")
    password = _temporary_password()
    region = store["region"] if store else (admin_region or "us")
    account = register(name=name, email=email, password=password, region=region, role=role,
                       store_id=store["id"] if store else None)

    def finish(conn: Connection) -> None:
        conn.execute(update(accounts).where(accounts.c.id == account["id"]).values(
            must_change_password=True, admin_region=admin_region if role == ADMIN else None))
        _audit_in(conn, actor, "staff.create", region=region,
                  store_id=store["id"] if store else None, target=f"account:{account['id']}",
                  details={"after": {"role": role, "store": store_code,
                                     "admin_region": admin_region}},
                  event_key=f"staff.create:{account['id']}")

    # Idempotent: setting the same flags again is the same state; the audit row is keyed.
    db.write(finish, name="console.staff.create", idempotent=True)
    return account, password


def _member(conn: Connection, account_id: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    member = conn.execute(select(accounts).where(accounts.c.id == account_id)
                          ).mappings().first()
    if member is None or member["role"] not in (BARISTA, MANAGER, ADMIN):
        raise NotFound("No such staff member.")
    store = _store(conn, member["store_id"]) if member["store_id"] else None
    return dict(member), store


def update_staff(principal: Principal | None, account_id: int, *, role: str | None = None,
                 store_code: str | None = None, disabled: bool | None = None,
                 change_key: str) -> dict[str, Any]:
    """Change role or store, disable or enable. Takes effect on the member's next request
    (every staff request reads the staff record)."""
    actor = current_actor(principal)
    if role is not None and role not in (BARISTA, MANAGER):
        raise ValidationFailed({"role": ["Choose barista or manager."]})
    require(actor.account_id != account_id, "Ask another admin to change your own account.")

    def change(conn: Connection) -> dict[str, Any]:
        member, store = _member(conn, account_id)
        require(_staff_in_scope(actor, member, store), "That staff member is outside your scope.")
        values: dict[str, Any] = {}
        if role is not None and role != member["role"]:
            require(powers(actor).reassigns_staff, "Only an admin changes roles.")
            values["role"] = role
        if store_code is not None and (store is None or store_code != store["code"]):
            new_store = conn.execute(select(stores).where(stores.c.code == store_code)
                                     ).mappings().first()
            if new_store is None:
                raise ValidationFailed({"store": ["Unknown store."]})
            require(powers(actor).reassigns_staff and actor.covers_region(new_store["region"]),
                    "That store is outside your scope.")
            values["store_id"] = new_store["id"]
        if disabled is not None and (member["disabled_at"] is not None) != disabled:
            values["disabled_at"] = utcnow() if disabled else None
        if values:
            conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))
            _audit_in(conn, actor, "staff.update", region=store["region"] if store else None,
                      store_id=store["id"] if store else None, target=f"account:{account_id}",
                      details={"before": {k: member[k] for k in values},
                               "after": values},
                      event_key=f"staff.update:{account_id}:{change_key}")
        return _member(conn, account_id)[0]

    # Idempotent: setting the same values again changes nothing; the audit row is keyed.
    return db.write(change, name="console.staff.update", idempotent=True)


def reset_password(principal: Principal | None, account_id: int) -> str:
    """A new one-time temporary password, changed at the member's next sign-in."""
    actor = current_actor(principal)
    require(actor.account_id != account_id, "Change your own password on the sign-in page.")
    password = _temporary_password()
    password_hash = hasher.hash(password)

    def reset(conn: Connection) -> None:
        member, store = _member(conn, account_id)
        require(_staff_in_scope(actor, member, store), "That staff member is outside your scope.")
        conn.execute(update(accounts).where(accounts.c.id == account_id).values(
            password_hash=password_hash, must_change_password=True))
        _audit_in(conn, actor, "staff.reset", region=store["region"] if store else None,
                  store_id=store["id"] if store else None, target=f"account:{account_id}",
                  event_key=f"staff.reset:{account_id}:{password_hash[-16:]}")

    # Idempotent: writing the same hash again is the same state.
    db.write(reset, name="console.staff.reset", idempotent=True)
    return password


# -- rewards ------------------------------------------------------------------------


def list_rewards(principal: Principal | None) -> list[dict[str, Any]]:
    from .catalogue import region_rewards

    actor = current_actor(principal)
    require(powers(actor).runs_catalogue, "The rewards catalogue is for admins.")
    return db.read(lambda conn: region_rewards(conn, actor.admin_region, active_only=False),
                   name="console.rewards")


def get_reward(principal: Principal | None, reward_id: int) -> dict[str, Any]:
    """One reward, for its edit form (read causally: the version the edit will name)."""
    from .catalogue import reward_by_id

    actor = current_actor(principal)
    require(powers(actor).runs_catalogue, "The rewards catalogue is for admins.")
    reward = db.read(lambda conn: reward_by_id(conn, reward_id), name="console.reward",
                     causal=True)
    if reward is None:
        raise NotFound("No such reward.")
    require(actor.covers_region(reward["region"]), "That reward is outside your scope.")
    return reward


def _clean_reward(values: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    name = str(values.get("name") or "").strip()
    if not name or len(name) > 60:
        errors["name"] = ["Enter a name of at most 60 characters."]
    region = str(values.get("region") or "").strip().lower()
    if region not in REGIONS:
        errors["region"] = [f"Choose one of {', '.join(REGIONS)}."]
    clean: dict[str, Any] = {"name": name, "region": region}
    for field, label in (("coins", "the coin cost"), ("sort", "the sort order")):
        try:
            number = int(values.get(field) if values.get(field) not in (None, "") else
                         (0 if field == "sort" else ""))
            if field == "coins" and not 0 < number <= 1_000_000:
                raise ValueError
        except (TypeError, ValueError):
            errors[field] = [f"Enter {label} as a whole number" +
                             (" above 0." if field == "coins" else ".")]
            continue
        clean[field] = number
    return _with_active(clean, values, errors)


def save_reward(principal: Principal | None, values: dict[str, Any],
                reward_id: int | None = None, version: int | None = None) -> dict[str, Any]:
    from .catalogue import reward_by_id

    actor = current_actor(principal)
    clean = _clean_reward(values)
    require(powers(actor).runs_catalogue and actor.covers_region(clean["region"]),
            "That region is outside your scope.")

    def save(conn: Connection) -> dict[str, Any]:
        if reward_id is None:
            existing = conn.execute(select(rewards).where(
                rewards.c.region == clean["region"], rewards.c.name == clean["name"])
            ).mappings().first()
            if existing is not None:
                if after_unknown_commit(conn):
                    return dict(existing)
                raise ValidationFailed({"name": ["This region has a reward with this name."]})
            new_id = conn.execute(insert(rewards).values(**clean, version=1)
                                  ).inserted_primary_key[0]
            _audit_in(conn, actor, "reward.create", region=clean["region"],
                      target=f"reward:{new_id}", details={"after": clean},
                      event_key=f"reward.create:{new_id}")
            return reward_by_id(conn, new_id)
        before = reward_by_id(conn, reward_id)
        if before is None:
            raise NotFound("No such reward.")
        require(actor.covers_region(before["region"]), "That reward is outside your scope.")
        if before["version"] != version:
            if (after_unknown_commit(conn) and before["version"] == (version or 0) + 1
                    and all(before[k] == v for k, v in clean.items())):
                return before
            raise StaleEdit(STALE)
        conn.execute(update(rewards).where(rewards.c.id == reward_id,
                                           rewards.c.version == version)
                     .values(**clean, version=version + 1))
        _audit_in(conn, actor, "reward.update", region=clean["region"],
                  target=f"reward:{reward_id}",
                  details={"before": {k: before[k] for k in clean}, "after": clean},
                  event_key=f"reward.update:{reward_id}:{version + 1}")
        return reward_by_id(conn, reward_id)

    try:
        # Idempotent: a re-run recognises its own row or version (above).
        return db.write(save, name="console.reward.save", idempotent=True)
    except sa_exc.IntegrityError as error:
        raise ValidationFailed({"name": ["This region has a reward with this name."]}) from error


# -- customer support ----------------------------------------------------------------


def support_actor(principal: Principal | None) -> Actor:
    actor = current_actor(principal)
    require(actor.is_admin or actor.is_manager, "Customer support is for managers and admins.")
    return actor


def _covers_customer(actor: Actor, customer: dict[str, Any]) -> bool:
    # A customer can walk into any store, so a manager supports anyone; a regional admin
    # supports the customers whose home region is theirs.
    return actor.is_manager or actor.covers_region(customer["home_region"])


def search_customers(principal: Principal | None, text: str) -> list[dict[str, Any]]:
    actor = support_actor(principal)
    text = (text or "").strip()
    if len(text) < 3:
        raise ValidationFailed({"q": ["Enter at least 3 characters: an email, a card "
                                      "number or a name."]})
    digits = "".join(c for c in text if c.isdigit())
    conditions = [accounts.c.email == text.lower(), accounts.c.name.like(f"%{text}%")]
    if len(digits) >= 12:
        conditions.append(accounts.c.id.in_(select(cards.c.account_id).where(
            cards.c.number == digits)))
    query = (select(accounts.c.id, accounts.c.name, accounts.c.email,
                    accounts.c.home_region, accounts.c.role)
             .where(or_(*conditions), accounts.c.role == "customer")
             .order_by(accounts.c.id).limit(PAGE_SIZE))
    if actor.is_admin and actor.admin_region:
        query = query.where(accounts.c.home_region == actor.admin_region)
    return db.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()],
                   name="console.support.search")


def open_customer(principal: Principal | None, account_id: int, *,
                  before_id: int | None = None) -> dict[str, Any]:
    """The account, its cards, the wallet and a page of history. Opening a customer's
    record is itself audited (by id)."""
    actor = support_actor(principal)

    def read(conn: Connection) -> dict[str, Any]:
        customer = conn.execute(select(accounts).where(accounts.c.id == account_id)
                                ).mappings().first()
        if customer is None or customer["role"] != "customer":
            raise NotFound("No such customer.")
        wallet = conn.execute(select(wallets).where(wallets.c.account_id == account_id)
                              ).mappings().first()
        card_rows = conn.execute(select(cards).where(cards.c.account_id == account_id)
                                 .order_by(cards.c.slot)).mappings().all()
        return {"account": dict(customer), "wallet": dict(wallet),
                "cards": [dict(c) for c in card_rows]}

    record = db.read(read, name="console.support.open", causal=True)
    require(_covers_customer(actor, record["account"]), "That customer is outside your region.")
    record["history"] = ledger_services.history(record["wallet"]["id"], limit=PAGE_SIZE,
                                                before_id=before_id, causal=True)
    record["adjust_bound"] = adjust_bound(actor)  # shown by the form, enforced by adjust
    audit.record(actor_id=actor.account_id, actor_role=actor.role, action="support.open",
                 region=record["account"]["home_region"],
                 store_id=actor.store["id"] if actor.store else None,
                 subject_id=account_id, target=f"account:{account_id}")
    return record


def _customer_wallet(conn: Connection, account_id: int) -> dict[str, Any]:
    row = conn.execute(select(accounts.c.id, accounts.c.role, accounts.c.home_region,
                              wallets.c.id.label("wallet_id"))
                       .join(wallets, wallets.c.account_id == accounts.c.id)
                       .where(accounts.c.id == account_id)).mappings().first()
    if row is None or row["role"] != "customer":
        raise NotFound("No such customer.")
    return dict(row)


def adjust_bound(actor: Actor) -> int:
    """The most coins (either way) the actor may adjust a wallet by."""
    return current_app.config["MANAGER_MAX_ADJUST" if actor.is_manager
                              else "ADMIN_MAX_ADJUST"]


def adjust(principal: Principal | None, account_id: int, *, coins: int, reason: str,
           label: str, key: str) -> ledger_services.Receipt:
    """+/- coins on a customer's wallet with a reason (staff-facing) and a label (shown
    to the customer). A manager's adjustments are bounded by MANAGER_MAX_ADJUST."""
    actor = support_actor(principal)
    errors: dict[str, list[str]] = {}
    reason, label = (reason or "").strip(), (label or "").strip()
    if not 3 <= len(reason) <= 200:
        errors["reason"] = ["Say why, in 3 to 200 characters."]
    if not 3 <= len(label) <= 80:
        errors["label"] = ["Enter what the customer will see, in 3 to 80 characters."]
    if errors:
        raise ValidationFailed(errors)
    customer = db.read(lambda conn: _customer_wallet(conn, account_id),
                       name="console.adjust.check", causal=True)
    require(_covers_customer(actor, customer), "That customer is outside your region.")
    require(customer["id"] != actor.account_id, "You can't adjust your own wallet.")
    bound = adjust_bound(actor)
    if isinstance(coins, int) and abs(coins) > bound:
        # The caller may adjust; this amount is out of range for their role: a field
        # error naming the bound (422), which the form and the API show alike.
        more = " Larger adjustments need an admin." if actor.is_manager else ""
        raise ValidationFailed({"coins": [f"At most {bound} coins either way.{more}"]},
                               detail=f"Adjustments are limited to {bound} coins.")
    store = actor.store
    receipt = ledger_services.adjust(
        wallet_id=customer["wallet_id"], coins=coins, reason=reason, label=label,
        idempotency_key=scoped_key(principal, key), staff_id=actor.account_id,
        store_code=store["code"] if store else None,
        region=store["region"] if store else customer["home_region"])
    audit.record(actor_id=actor.account_id, actor_role=actor.role, action="adjustment",
                 region=receipt.region, store_id=store["id"] if store else None,
                 subject_id=account_id, target=f"ledger:{receipt.transaction_id}",
                 details={"coins": coins, "reason": reason, "label": label},
                 event_key=f"ledger:{receipt.transaction_id}")
    return receipt


def set_card_blocked(principal: Principal | None, card_id: int, *, blocked: bool,
                     reason: str) -> dict[str, Any]:
    """Block a card (a lost phone: the till refuses it) or unblock it."""
    actor = support_actor(principal)
    reason = (reason or "").strip()
    if blocked and not 3 <= len(reason) <= 200:
        raise ValidationFailed({"reason": ["Say why, in 3 to 200 characters."]})

    def change(conn: Connection) -> dict[str, Any]:
        card, holder = _card_in_reach(conn, actor, card_id)
        if (card["blocked_at"] is not None) != blocked:
            conn.execute(update(cards).where(cards.c.id == card_id).values(
                blocked_at=utcnow() if blocked else None))
            _audit_in(conn, actor, "card.block", region=holder["home_region"],
                      subject_id=holder["id"], target=f"card:{card_id}",
                      details={"blocked": blocked, "reason": reason or None},
                      event_key=f"card.block:{card_id}:{blocked}:{secrets.token_hex(6)}")
        return dict(conn.execute(select(cards).where(cards.c.id == card_id)).mappings().one())

    # Not marked idempotent: the audit key is random per call; a re-run would add a second
    # audit row for one block. Blocking is cheap to press again.
    return db.write(change, name="console.card.block")


def _card_in_reach(conn: Connection, actor, card_id: int) -> tuple[dict, dict]:
    """The card and its holder's wallet, if the actor's region covers the holder."""
    card = conn.execute(select(cards).where(cards.c.id == card_id)).mappings().first()
    if card is None:
        raise NotFound("No such card.")
    holder = _customer_wallet(conn, card["account_id"])
    require(_covers_customer(actor, holder), "That customer is outside your region.")
    return card, holder


def reissue_card(principal: Principal | None, card_id: int) -> dict[str, Any]:
    """A new card number for a blocked card (the old number stops working for good;
    history stays on the same card row). The customer shows the new number."""
    actor = support_actor(principal)
    number = new_card_number()

    def change(conn: Connection) -> dict[str, Any]:
        card, holder = _card_in_reach(conn, actor, card_id)
        if card["number"] == number:
            return dict(card)  # ours, after a lost COMMIT answer
        if card["blocked_at"] is None:
            raise Conflict("Block the card first: a new number replaces a lost one.")
        conn.execute(update(cards).where(cards.c.id == card_id).values(
            number=number, blocked_at=None))
        _audit_in(conn, actor, "card.reissue", region=holder["home_region"],
                  subject_id=holder["id"], target=f"card:{card_id}",
                  event_key=f"card.reissue:{card_id}:{number}")
        return dict(conn.execute(select(cards).where(cards.c.id == card_id)).mappings().one())

    # Idempotent: a re-run finds the number it wrote.
    return db.write(change, name="console.card.reissue", idempotent=True)


def support_reverse(principal: Principal | None, transaction_id: int, *, reason: str,
                    key: str) -> ledger_services.Receipt:
    from .services import reverse

    support_actor(principal)
    reason = (reason or "").strip()
    if not 3 <= len(reason) <= 200:
        raise ValidationFailed({"reason": ["Say why, in 3 to 200 characters."]})
    return reverse(principal, transaction_id=transaction_id, key=key, reason=reason)


# -- audit log and the store's day ---------------------------------------------------


def audit_entries(principal: Principal | None, *, actor_id: int | None = None,
                  store_id: int | None = None, action: str | None = None,
                  since: date | None = None, until: date | None = None,
                  limit: int = 200) -> list[dict[str, Any]]:
    actor = current_actor(principal)
    require(actor.is_admin or actor.is_manager, "The audit log is for managers and admins.")
    query = (select(audit_log, accounts.c.name.label("actor_name"),
                    stores.c.code.label("store_code"), stores.c.timezone.label("timezone"))
             .outerjoin(accounts, accounts.c.id == audit_log.c.actor_id)
             .outerjoin(stores, stores.c.id == audit_log.c.store_id)
             .order_by(audit_log.c.id.desc()).limit(limit))
    if actor.is_manager:
        query = query.where(audit_log.c.store_id == actor.store["id"])
    elif actor.admin_region:
        query = query.where(audit_log.c.region == actor.admin_region)
    if actor_id:
        query = query.where(audit_log.c.actor_id == actor_id)
    if store_id:
        query = query.where(audit_log.c.store_id == store_id)
    if action:
        query = query.where(audit_log.c.action == action)
    if since:
        query = query.where(audit_log.c.created_at >= datetime.combine(since, datetime.min.time()))
    if until:
        query = query.where(audit_log.c.created_at < datetime.combine(
            until + timedelta(days=1), datetime.min.time()))
    entries = db.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()],
                      name="console.audit")
    for entry in entries:
        entry["timezone"] = _place_zone(entry["timezone"], entry["region"])
        entry["local_time"] = formatting.local(entry["created_at"], entry["timezone"])
    return entries


def _place_zone(store_zone: str | None, region: str | None) -> str:
    """Where an entry happened, for its local time: the store's zone, else the region's
    (an admin's action with no store), else UTC."""
    return store_zone or REGION_TIMEZONES.get(region or "", "UTC")


def store_day(principal: Principal | None, store_id: int,
              day: date | None = None) -> dict[str, Any]:
    """A store's transactions on ``day``, the store's local day (midnight to midnight in
    its ``timezone``; today there when not given), with totals per staff member."""
    store = get_store(principal, store_id)
    day = day or zones.local_today(store["timezone"], utcnow())
    start = zones.utc_of_local_midnight(store["timezone"], day)
    end = zones.utc_of_local_midnight(store["timezone"], day + timedelta(days=1))

    def read(conn: Connection) -> dict[str, Any]:
        window = and_(ledger.c.store_id == store_id, ledger.c.created_at >= start,
                      ledger.c.created_at < end)
        rows = conn.execute(select(ledger.c.id, ledger.c.kind, ledger.c.coins,
                                   ledger.c.amount_minor, ledger.c.currency,
                                   ledger.c.created_at, ledger.c.reason,
                                   accounts.c.name.label("staff_name"))
                            .outerjoin(accounts, accounts.c.id == ledger.c.staff_id)
                            .where(window).order_by(ledger.c.id)).mappings().all()
        totals = conn.execute(select(accounts.c.name.label("staff_name"), ledger.c.kind,
                                     func.count().label("count"),
                                     func.sum(ledger.c.coins).label("coins"))
                              .outerjoin(accounts, accounts.c.id == ledger.c.staff_id)
                              .where(window).group_by(accounts.c.name, ledger.c.kind)
                              .order_by(accounts.c.name, ledger.c.kind)).mappings().all()
        return {"rows": [{**r, "local_time": formatting.local(r["created_at"],
                                                              store["timezone"])}
                         for r in rows],
                "totals": [dict(t) for t in totals]}

    return {"store": store, "day": day, **db.read(read, name="console.day", causal=True)}
