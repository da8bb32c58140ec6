"""API v1 for the operator console: the same rulebook (:mod:`webapp.staff.console`) as
the /admin pages. Staff access; the rulebook narrows it by role and scope (403)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from webapp.config import REGIONS
from webapp.ledger.services import MAX_REDEEM_COINS
from webapp.money import CURRENCY_DECIMALS
from webapp.staff import console

from . import bp
from .auth import current_principal
from .openapi import operation
from .routes import _receipt_reply
from .schemas import MAX_ID, Email, Receipt, Request, StoreCode, Whole, _aware

# The service layer's rules, stated in the schema so that what the document calls valid is
# what the server accepts (and a client can generate a valid request from it).
Region = Literal[REGIONS]  # type: ignore[valid-type]
Currency = Literal[tuple(CURRENCY_DECIMALS)]  # type: ignore[valid-type]
VISIBLE = r"\S"  # the services strip the text: it needs at least one visible character
WHOLE_MAX = 100_000_000  # the services' bound on store numbers


def _iso_date(value: Any) -> Any:
    # Query strings are parsed leniently, and pydantic would read "0" as a Unix time:
    # a date here is YYYY-MM-DD and nothing else.
    if isinstance(value, str) and not (len(value) == 10 and value[4] == value[7] == "-"):
        raise ValueError("Use YYYY-MM-DD.")
    return value


IsoDate = Annotated[date | None, BeforeValidator(_iso_date),
                    Field(json_schema_extra={"format": "date"})]

SCOPE = (" Managers see their own store; admins their region (or all, when global); "
         "baristas and customers get 403.")


class ConsoleStore(BaseModel):
    id: int
    code: str
    name: str
    region: str
    currency: str
    minor_per_coin: int
    timezone: str = Field(description=(
        "IANA zone: the store's day and its report periods. Set in the console (/admin); "
        "a store created here gets its region's zone."))
    active: bool
    max_purchase_minor: int | None = None
    coins_per_hour: int | None = None
    version: int = Field(description="Send it back with an edit: a stale edit is 409.")

    @classmethod
    def of(cls, row: dict[str, Any]) -> ConsoleStore:
        return cls(**{k: row[k] for k in cls.model_fields})


class ConsoleStoreList(BaseModel):
    stores: list[ConsoleStore]


class StoreFields(Request):
    name: str = Field(min_length=1, max_length=80, pattern=VISIBLE)
    region: Region
    currency: Currency
    minor_per_coin: Whole = Field(gt=0, le=WHOLE_MAX)
    active: bool = True
    max_purchase_minor: Whole | None = Field(default=None, gt=0, le=WHOLE_MAX)
    coins_per_hour: Whole | None = Field(default=None, gt=0, le=WHOLE_MAX)


class StoreCreate(StoreFields):
    code: str = Field(min_length=1, max_length=20, pattern="^[A-Z0-9-]+$",
                      description="Unique: an existing code is 422.")


class StoreUpdate(StoreFields):
    version: Whole = Field(ge=1)


class StaffMember(BaseModel):
    id: int
    name: str
    role: str
    store_code: str | None = None
    admin_region: str | None = None
    disabled: bool


class StaffList(BaseModel):
    staff: list[StaffMember]


class StaffCreate(Request):
    name: str = Field(min_length=1, max_length=console.STAFF_NAME_MAX, pattern=VISIBLE)
    email: Email
    role: Literal["staff", "manager", "admin"]
    store: StoreCode | None = Field(default=None, description=(
        "The store's code: required for staff and managers, ignored for admins."))
    admin_region: Region | None = Field(default=None, description=(
        "Admins only: their region, or null for a global admin."))


class StaffCreated(BaseModel):
    id: int
    temporary_password: str = Field(description="Shown once; changed at first sign-in.")


class Reward(BaseModel):
    id: int
    region: str
    name: str
    coins: int
    active: bool
    sort: int
    version: int


class RewardList(BaseModel):
    rewards: list[Reward]


class RewardCreate(Request):
    region: Region
    name: str = Field(min_length=1, max_length=60, pattern=VISIBLE,
                      description="Unique in its region: a taken name is 422.")
    coins: Whole = Field(gt=0, le=1_000_000)
    sort: Whole = Field(default=0, ge=-(2**31), le=2**31 - 1)  # an INTEGER column
    active: bool = True


class RewardUpdate(RewardCreate):
    version: Whole = Field(ge=1)


class AdjustmentRequest(Request):
    coins: Whole = Field(ge=-MAX_REDEEM_COINS, le=MAX_REDEEM_COINS, description=(
        "+ adds, - takes away; never 0. At most the caller's bound either way (see the "
        "operation): more is 422 with a `coins` field error naming the bound."))
    reason: str = Field(min_length=3, max_length=200, description="Staff-facing.")
    label: str = Field(min_length=3, max_length=80, description="Shown to the customer.")


class CardBlock(Request):
    blocked: bool
    reason: str = Field(default="", max_length=200,
                        description="Required (3 to 200 characters) when blocking.")


class CardState(BaseModel):
    id: int
    blocked: bool


class AuditEntry(BaseModel):
    id: int
    created_at: datetime
    actor_id: int | None
    actor_role: str | None
    action: str
    region: str | None
    store_id: int | None
    subject_id: int | None
    target: str | None
    client_ip: str | None
    details: str | None
    local_time: datetime = Field(description=(
        "The same instant in the zone where it happened, with its UTC offset."))
    timezone: str = Field(description=(
        "That zone: the store's, else the entry's region's, else UTC."))


class AuditList(BaseModel):
    entries: list[AuditEntry]


class AuditQuery(BaseModel):
    # An unknown parameter is refused, as on the other queries: "?actr=5" is a bug.
    model_config = ConfigDict(extra="forbid")

    action: str | None = Field(default=None, max_length=40)  # the column's width
    actor: int | None = Field(default=None, ge=1, le=MAX_ID)
    store: int | None = Field(default=None, ge=1, le=MAX_ID)


@bp.get("/console/stores")
@operation(summary="Stores in the caller's scope, with settings", tag="console",
           access="staff", responses={200: ConsoleStoreList}, description=SCOPE)
def console_stores():
    return ConsoleStoreList(stores=[ConsoleStore.of(s)
                                    for s in console.list_stores(current_principal())])


@bp.post("/console/stores")
@operation(summary="Create a store", tag="console", access="staff", body=StoreCreate,
           responses={201: ConsoleStore}, description="Admins, in their region.")
def console_create_store(body: StoreCreate):
    return ConsoleStore.of(console.create_store(current_principal(), body.model_dump())), 201


@bp.put("/console/stores/<int:store_id>")
@operation(summary="Edit a store (optimistic: send the version you read)", tag="console",
           access="staff", body=StoreUpdate, responses={200: ConsoleStore},
           problems=(404, 409),
           description="409 `stale-edit` when someone else changed it since; a retry of "
                       "your own edit after a lost answer is not a conflict.")
def console_update_store(store_id: int, body: StoreUpdate):
    values = body.model_dump(exclude={"version"})
    return ConsoleStore.of(console.update_store(current_principal(), store_id, body.version,
                                                values))


@bp.get("/console/staff")
@operation(summary="Staff in the caller's scope", tag="console", access="staff",
           responses={200: StaffList}, description=SCOPE)
def console_staff():
    return StaffList(staff=[StaffMember(
        id=m["id"], name=m["name"], role=m["role"], store_code=m["store_code"],
        admin_region=m["admin_region"], disabled=m["disabled_at"] is not None)
        for m in console.list_staff(current_principal())])


@bp.post("/console/staff")
@operation(summary="Create a staff member with a temporary password", tag="console",
           access="staff", body=StaffCreate, responses={201: StaffCreated}, problems=(409,),
           description="Managers create baristas at their store; admins in their region.")
def console_create_staff(body: StaffCreate):
    account, password = console.create_staff(
        current_principal(), email=body.email, name=body.name, role=body.role,
        store_code=body.store, admin_region=body.admin_region)
    return StaffCreated(id=account["id"], temporary_password=password), 201


@bp.get("/console/rewards")
@operation(summary="The rewards catalogue in the caller's region", tag="console",
           access="staff", responses={200: RewardList}, description="Admins.")
def console_rewards():
    return RewardList(rewards=[Reward(**{k: r[k] for k in Reward.model_fields})
                               for r in console.list_rewards(current_principal())])


@bp.post("/console/rewards")
@operation(summary="Add a reward", tag="console", access="staff", body=RewardCreate,
           responses={201: Reward}, description="Admins, in their region.")
def console_create_reward(body: RewardCreate):
    row = console.save_reward(current_principal(), body.model_dump())
    return Reward(**{k: row[k] for k in Reward.model_fields}), 201


@bp.put("/console/rewards/<int:reward_id>")
@operation(summary="Edit a reward (optimistic: send the version you read)", tag="console",
           access="staff", body=RewardUpdate, responses={200: Reward}, problems=(404, 409),
           description="Admins, in their region. `active: false` retires it: the till stops "
                       "offering it. 409 `stale-edit` when someone else changed it since; a "
                       "retry of your own edit after a lost answer is not a conflict.")
def console_update_reward(reward_id: int, body: RewardUpdate):
    row = console.save_reward(current_principal(), body.model_dump(exclude={"version"}),
                              reward_id=reward_id, version=body.version)
    return Reward(**{k: row[k] for k in Reward.model_fields})


@bp.post("/console/customers/<int:account_id>/adjustments")
@operation(summary="Adjust a customer's coins with a reason", tag="console",
           access="staff", body=AdjustmentRequest, idempotent=True,
           responses={201: Receipt, 200: Receipt}, problems=(404, 409),
           description=lambda config: (
               "Managers and admins of the customer's region, each within a bound (coins "
               f"either way): managers {config['MANAGER_MAX_ADJUST']}, admins "
               f"{config['ADMIN_MAX_ADJUST']} (this server's `MANAGER_MAX_ADJUST` and "
               "`ADMIN_MAX_ADJUST`). Above it: 422 `validation-error` with a `coins` "
               "field error naming the bound; the balance never goes below 0 (409)."))
def console_adjust(account_id: int, body: AdjustmentRequest, idempotency_key: str):
    return _receipt_reply(console.adjust(current_principal(), account_id, coins=body.coins,
                                         reason=body.reason, label=body.label,
                                         key=idempotency_key))


@bp.put("/console/cards/<int:card_id>/block")
@operation(summary="Block or unblock a card", tag="console", access="staff",
           body=CardBlock, responses={200: CardState}, problems=(404,),
           description="A blocked card is refused at the till (409 `card-blocked`).")
def console_block_card(card_id: int, body: CardBlock):
    card = console.set_card_blocked(current_principal(), card_id, blocked=body.blocked,
                                    reason=body.reason)
    return CardState(id=card["id"], blocked=card["blocked_at"] is not None)


@bp.get("/console/audit")
@operation(summary="The audit log, newest first", tag="console", access="staff",
           query=AuditQuery, responses={200: AuditList}, description=SCOPE)
def console_audit(query: AuditQuery):
    entries = console.audit_entries(current_principal(), action=query.action,
                                    actor_id=query.actor, store_id=query.store)
    return AuditList(entries=[AuditEntry(**{k: e[k] for k in AuditEntry.model_fields
                                            if k != "created_at"},
                                         created_at=_aware(e["created_at"]))
                              for e in entries])


class ReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grain: str = Field(default="day", pattern="^(day|month)$")
    since: IsoDate = None
    until: IsoDate = None


class ReportFigures(BaseModel):
    period: str
    issued: int
    redeemed: int = Field(description="Positive: coins taken by redemptions.")
    reversed: int = Field(description="Signed: what reversals did to balances.")
    adjusted: int = Field(description="Signed.")
    expired: int = Field(description="Positive; 0 until coins expire.")
    other: int = Field(description="Any other kind (e.g. erasure), signed.")
    net: int = Field(description="The ledger's sum.")
    transactions: int
    active_wallets: int


class ReportRow(ReportFigures):
    region: str
    store_id: int | None
    store: str
    timezone: str = Field(description=(
        "The zone whose days (months) `period` counts: the store's, or the region's for "
        "rows with no store (expiries, an admin's adjustments)."))


class LiabilityRow(BaseModel):
    region: str
    wallets: int
    balance: int = Field(description="Sum of wallet balances.")
    ledger: int = Field(description="Sum of ledger rows (equals balance).")


class Liability(BaseModel):
    balance: int
    ledger: int
    by_region: list[LiabilityRow]


class Report(BaseModel):
    grain: str
    since: date
    until: date
    timezone: Literal["local"] = Field(description=(
        "`local`: each row's period is a day (month) in that row's `timezone`; a total is "
        "the sum of its rows' local days, not one UTC span."))
    scope: str
    totals: list[ReportFigures]
    rows: list[ReportRow]
    liability: Liability | None = Field(description="Admins only (null for managers).")


@bp.get("/console/reports")
@operation(summary="Coins issued, redeemed, reversed, adjusted, expired; liability",
           tag="console", access="staff", query=ReportQuery, responses={200: Report},
           description=SCOPE + " Outstanding coins (liability) are reported to admins "
                               "only, by the wallet owner's home region.")
def console_reports(query: ReportQuery):
    from webapp.staff import reports

    report = reports.report(current_principal(), grain=query.grain, since=query.since,
                            until=query.until)
    return Report(**report)
