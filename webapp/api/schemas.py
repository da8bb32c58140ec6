"""The API's request and response bodies: one set of pydantic models that validates the
JSON and generates the OpenAPI schemas, so the document cannot drift from the code.

Requests are strict (no "5" for 5, no 12.5 for "12.50") and refuse unknown fields, so a
typo in a field name is an error rather than a silently ignored option.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
    model_validator,
)

from webapp import money, names
from webapp.clock import utcnow
from webapp.config import FAMILY_SLOTS, REGIONS
from webapp.errors import AppError, ValidationFailed
from webapp.ledger.kinds import KINDS
from webapp.ledger.services import KEY_MAX_LENGTH, MAX_REDEEM_COINS

JSON_MEDIA_TYPE = "application/json"
# Ids are BIGINT: anything larger can't exist, and SQLite would overflow binding it.
MAX_ID = 2**63 - 1
PAGE_LIMIT_MAX = 100
# The client's key is stored scoped per staff member, "api:<staff id>:<key>" (the same
# for the till's forms; webapp.staff.services.scoped_key), which must fit the ledger column.
IDEMPOTENCY_KEY_MAX = 64
IDEMPOTENCY_KEY_PATTERN = "^[!-~]{1,64}$"  # visible ASCII: safe in a header and a log line
assert IDEMPOTENCY_KEY_MAX + len(f"api:{MAX_ID}:") <= KEY_MAX_LENGTH


class MalformedJson(AppError):
    status = 400
    slug = "malformed-json"
    title = "The request body is not valid JSON"


class UnsupportedMediaType(AppError):
    """A body not declared ``application/json``. Browsers send text/plain, form and
    multipart bodies across sites without a CORS preflight; JSON needs one, which this API
    never grants. So a body is read only when it says it is JSON."""

    status = 415
    slug = "unsupported-media-type"
    title = "Send the body as application/json"

    def __init__(self, method: str) -> None:
        super().__init__("Send the request body with 'Content-Type: application/json'.")
        # RFC 9110 15.5.16: say which media types would have been accepted.
        self.headers = {"Accept-Patch" if method == "PATCH" else "Accept-Post":
                        JSON_MEDIA_TYPE}


# -- building blocks ---------------------------------------------------------------


def _clean_name(value: str) -> str:
    return names.clean_name(value)  # the pages' rule too; its ValueError is a field error


def _check_email(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(str(error)) from error


def _check_birthday(value: date | None) -> date | None:
    if value is not None and value > utcnow().date():
        raise ValueError("A birthday can't be in the future.")
    if value is not None and value.year < 1900:
        raise ValueError("Enter a birthday after 1900.")
    return value


Name = Annotated[
    str,
    Field(min_length=1, max_length=names.MAX_LENGTH,
          json_schema_extra={"pattern": names.PATTERN},
          description="Printable text without < or >, with at least one visible character; "
                      "invisible formatting characters are removed.",
          examples=["Ana Silva"]),
    AfterValidator(_clean_name),
]
Email = Annotated[
    str,
    Field(min_length=3, max_length=254, json_schema_extra={"format": "email"},
          examples=["ana@example.com"]),
    AfterValidator(_check_email),
]
Birthday = Annotated[
    date | None,
    Field(description="YYYY-MM-DD, not in the future, after 1900."),
    AfterValidator(_check_birthday),
]
CardText = Annotated[
    str,
    Field(min_length=1, max_length=64,
          description="What the till scanned or typed: the 12-digit card number (spaces and "
                      "dashes allowed) or the rotating QR payload LC1.<number>.<code>.",
          examples=["4929 1234 5678", "LC1.492912345678.123456"]),
]
StoreCode = Annotated[
    str,
    Field(min_length=1, max_length=20, pattern="^[A-Z0-9-]+$",
          description="The staff account's home store, which is also the default. A "
                      "barista naming any other store gets 403 (`store-not-allowed`) and "
                      "nothing is booked; an admin may name any store.",
          examples=["IE-DUB-01"]),
]


def _whole(value: Any) -> Any:
    """JSON Schema counts 5.0 as an ``integer`` (clients and schema-driven generators
    send it), so the API does too; 5.5 and "5" stay wrong."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_ID:
        return int(value)
    return value


# The integer of a request body (strict, as every field, apart from the above).
Whole = Annotated[int, BeforeValidator(_whole)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# -- auth ---------------------------------------------------------------------------


class RegisterRequest(Request):
    name: Name
    email: Email
    password: str = Field(min_length=10, max_length=128)
    region: Literal[REGIONS] = Field(description="Home region.")  # type: ignore[valid-type]


class TokenRequest(Request):
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=128)


class RefreshRequest(Request):
    refresh_token: str = Field(min_length=1, max_length=200)


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str | None = Field(
        description="The next refresh token; the one sent is spent. Null when the same token "
                    "was rotated moments ago by a concurrent request: keep that response's.")
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the RFC 6750 scheme name
    expires_in: int = Field(description="Seconds until the access token expires.")


class Account(BaseModel):
    id: int
    email: str
    name: str
    role: Literal["customer", "staff", "manager", "admin"]
    home_region: str

    @classmethod
    def of(cls, row: dict[str, Any]) -> Account:
        return cls(id=row["id"], email=row["email"], name=row["name"], role=row["role"],
                   home_region=row["home_region"])


class RegistrationAccepted(BaseModel):
    """The one answer to a registration, whether or not the address had an account."""

    status: Literal["check-your-inbox"] = "check-your-inbox"
    detail: str = Field(examples=["We have sent a message to the address you gave. Open the "
                                  "link in it to finish."])


# -- cards and family ---------------------------------------------------------------


class FamilyMember(BaseModel):
    id: int
    number: str
    display_name: str
    slot: int = Field(ge=1, le=FAMILY_SLOTS)
    birthday: date | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> FamilyMember:
        return cls(id=row["id"], number=row["number"], display_name=row["display_name"],
                   slot=row["slot"], birthday=row["birthday"])


class Card(FamilyMember):
    slot: int = Field(ge=0, le=FAMILY_SLOTS, description="0 is the account holder's own card.")
    code_secret: str = Field(
        description="Base32 secret for the rotating QR code (RFC 6238: SHA-1, 30 s, 6 digits; "
                    "payload LC1.<number>.<code>), so the card works offline.")

    @classmethod
    def of(cls, row: dict[str, Any]) -> Card:
        return cls(id=row["id"], number=row["number"], display_name=row["display_name"],
                   slot=row["slot"], birthday=row["birthday"], code_secret=row["code_secret"])


class Me(BaseModel):
    account: Account
    cards: list[Card]
    balance: int = Field(description="Coins in the wallet all the cards share.")


class FamilyList(BaseModel):
    members: list[FamilyMember]
    limit: int


class FamilyMemberCreate(Request):
    name: Name
    birthday: Birthday = None


def _name_without_default(schema: dict[str, Any]) -> None:
    """``name`` is optional but may not be null: leave it out to keep the value."""
    schema["properties"]["name"].pop("default", None)


class FamilyMemberUpdate(Request):
    """Fields left out keep their value; ``birthday: null`` clears it."""

    model_config = ConfigDict(json_schema_extra=_name_without_default)

    name: Name = None
    birthday: Birthday = None


# -- transactions -------------------------------------------------------------------


class EarnRequest(Request):
    kind: Literal["earn"]
    card: CardText
    amount: str = Field(max_length=30, json_schema_extra={"pattern": money.AMOUNT_PATTERN},
                        description="Money spent, as a decimal string in the currency's "
                                    "units, at most as many decimals as the currency has.",
                        examples=["12.50"])
    currency: str = Field(pattern="^[A-Z]{3}$", description="Must be the store's currency.",
                          examples=["EUR"])
    store: StoreCode | None = None

    @model_validator(mode="after")
    def _amount_fits_currency(self) -> EarnRequest:
        if self.currency not in money.CURRENCY_DECIMALS:
            raise ValidationFailed({"currency": [f"We don't take {self.currency}."]})
        try:
            money.to_minor(self.amount, self.currency)
        except money.AmountError as error:
            raise ValidationFailed({"amount": [str(error)]}) from error
        return self

    @property
    def amount_minor(self) -> int:
        return money.to_minor(self.amount, self.currency)


class RedeemRequest(Request):
    kind: Literal["redeem"]
    card: CardText
    coins: Whole | None = Field(default=None, ge=1, le=MAX_REDEEM_COINS,
                              description="Free-form coins; or send `reward` instead.")
    reward: Whole | None = Field(
        default=None, ge=1, description="A reward of the store's region (its id in "
        "`/console/rewards`): its price is redeemed and the ledger row records it.")
    confirm_static: bool = Field(
        default=False,
        description="Redeeming by the static card number (not the rotating code) needs the "
                    "barista's confirmation that they checked the customer.")
    store: StoreCode | None = None

    # Before the fields: a body with neither is refused for its coins, as when coins
    # was the only way (the other fields' errors come with the next attempt).
    @model_validator(mode="before")
    @classmethod
    def _coins_or_reward(cls, data: Any) -> Any:
        if isinstance(data, dict) and (data.get("coins") is None) == (
                data.get("reward") is None):
            raise ValidationFailed({"coins": ["Send either coins or a reward id."]})
        return data


class LookupRequest(Request):
    card: CardText


class CardLookup(BaseModel):
    """A scanned card as the till shows it: never the full number or the holder's
    surname."""

    first_name: str
    card_last4: str = Field(pattern="^[0-9]{4}$")
    balance: int = Field(description="The wallet's balance, shared by the family.")
    live_code: bool = Field(description="Scanned as a live rotating code, not a typed number "
                                        "(a redemption by number needs `confirm_static`).")
    own_wallet: bool = Field(description="The card is on the caller's own wallet: the caller "
                                         "may not book on it (403); a colleague must.")

    @classmethod
    def of(cls, card: Any) -> CardLookup:
        return cls(first_name=card.first_name, card_last4=card.last4, balance=card.balance,
                   live_code=card.rotating, own_wallet=card.own_wallet)


class TransactionRequest(RootModel[Annotated[EarnRequest | RedeemRequest,
                                             Field(discriminator="kind")]]):
    pass


def _aware(moment: datetime) -> datetime:
    """Stored times are naive UTC; on the wire they carry their zone."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _money(minor: int | None, currency: str | None) -> str | None:
    return None if minor is None or currency is None else money.to_decimal_string(minor,
                                                                                   currency)


class Receipt(BaseModel):
    """A ledger entry as the till sees it; a replay returns the same document."""

    id: int
    kind: Literal["earn", "redeem", "reversal", "adjustment"]
    coins: int = Field(description="Signed: positive added to the wallet, negative taken.")
    balance: int = Field(description="The wallet's balance right after this transaction.")
    card_number: str | None
    amount: str | None = Field(description="Money spent (earns only), decimal string.")
    currency: str | None
    store_code: str | None
    region: str
    created_at: datetime
    reverses_id: int | None

    @classmethod
    def of(cls, receipt: Any) -> Receipt:
        return cls(
            id=receipt.transaction_id, kind=receipt.kind, coins=receipt.coins,
            balance=receipt.balance, card_number=receipt.card_number,
            amount=_money(receipt.amount_minor, receipt.currency), currency=receipt.currency,
            store_code=receipt.store_code, region=receipt.region,
            created_at=_aware(receipt.created_at), reverses_id=receipt.reverses_id,
        )


class EntryCard(BaseModel):
    number: str
    display_name: str


class LedgerEntry(BaseModel):
    id: int
    kind: Literal[KINDS]  # type: ignore[valid-type]
    coins: int = Field(description="Signed: positive added to the wallet, negative taken.")
    balance_after: int
    card: EntryCard | None
    amount: str | None
    currency: str | None
    store_code: str | None
    store_name: str | None
    region: str
    created_at: datetime
    reverses_id: int | None
    reward_id: int | None = Field(None, description="The catalogue reward a redemption paid for.")
    reward_name: str | None = Field(None, description="That reward's name, e.g. \"Chai\".")
    label: str | None = Field(
        None, description="An adjustment's text for the customer (support's reason for it "
                          "stays with staff).")

    @classmethod
    def of(cls, row: dict[str, Any]) -> LedgerEntry:
        card = (EntryCard(number=row["card_number"], display_name=row["card_name"])
                if row.get("card_number") else None)
        return cls(
            id=row["id"], kind=row["kind"], coins=row["coins"],
            balance_after=row["balance_after"], card=card,
            amount=_money(row["amount_minor"], row["currency"]), currency=row["currency"],
            store_code=row.get("store_code"), store_name=row.get("store_name"),
            region=row["region"], created_at=_aware(row["created_at"]),
            reverses_id=row.get("reverses_id"), reward_id=row.get("reward_id"),
            reward_name=row.get("reward_name"), label=row.get("label"),
        )


class TransactionPage(BaseModel):
    items: list[LedgerEntry] = Field(description="Newest first.")
    next_cursor: int | None = Field(
        description="Pass as ?cursor= for the next (older) page; null on the last page.")


class HistoryQuery(BaseModel):
    # Query strings are text: "20" must mean 20 here, so this model is not strict. An
    # unknown parameter is refused like an unknown field: "?limt=5" is a bug to report.
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=PAGE_LIMIT_MAX)
    cursor: int | None = Field(default=None, ge=1, le=MAX_ID,
                               description="next_cursor of the previous page.")


# -- stores -------------------------------------------------------------------------


class Store(BaseModel):
    code: str
    name: str
    region: str
    currency: str
    money_per_coin: str = Field(description="How much spent earns one coin, e.g. \"1.00\".")

    @classmethod
    def of(cls, row: dict[str, Any]) -> Store:
        return cls(code=row["code"], name=row["name"], region=row["region"],
                   currency=row["currency"],
                   money_per_coin=money.to_decimal_string(row["minor_per_coin"],
                                                          row["currency"]))


class StoreList(BaseModel):
    stores: list[Store]


class OpenApiDocument(RootModel[dict[str, Any]]):
    """An OpenAPI 3.1 document."""


# -- errors -------------------------------------------------------------------------


class Problem(BaseModel):
    """RFC 9457 problem details. ``type`` is stable; match on it, not on ``title``."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["https://loyalty.example/problems/validation-error"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: dict[str, list[str]] | None = Field(
        default=None, description="Validation errors: field name -> messages.")


# -- parsing ------------------------------------------------------------------------


def _field_name(error: dict[str, Any], tagged: bool) -> str:
    loc = [str(part) for part in error["loc"]]
    if tagged and loc:
        loc = loc[1:]  # the discriminated union puts the tag ("earn") first
    if not loc:
        return "kind" if error["type"].startswith("union_tag") else "body"
    return ".".join(loc)


def validation_failed(error: ValidationError, *, tagged: bool = False) -> ValidationFailed:
    """Pydantic's errors as ``{field: [messages]}``."""
    fields: dict[str, list[str]] = {}
    for item in error.errors(include_url=False):
        if item["type"] == "json_invalid":
            raise MalformedJson(item["msg"]) from error
        message = "Unknown field." if item["type"] == "extra_forbidden" else item["msg"]
        message = message.removeprefix("Value error, ")
        fields.setdefault(_field_name(item, tagged), []).append(message)
    return ValidationFailed(fields)


def parse_json(model: type[BaseModel], raw: bytes) -> BaseModel:
    if not raw.strip():
        raise ValidationFailed({"body": ["A JSON body is required."]})
    try:
        parsed = model.model_validate_json(raw)
    except ValidationError as error:
        raise validation_failed(error, tagged=issubclass(model, RootModel)) from None
    return parsed.root if isinstance(parsed, RootModel) else parsed


def parse_query(model: type[BaseModel], args: dict[str, str]) -> BaseModel:
    try:
        return model.model_validate(args)
    except ValidationError as error:
        raise validation_failed(error) from None
