"""One error hierarchy for the whole app, rendered as a friendly page or as a
problem+json document (RFC 9457) by the API. Services raise these; views never build
error responses by hand.
"""

from __future__ import annotations

from typing import ClassVar


class AppError(Exception):
    """An error the user can act on. ``slug`` becomes the stable problem ``type``."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str | None = None, **extra: object) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class ValidationFailed(AppError):
    status = 422
    slug = "validation-error"
    title = "Some fields are not valid"

    def __init__(self, errors: dict[str, list[str]], detail: str | None = None) -> None:
        super().__init__(detail or "Please correct the highlighted fields.", errors=errors)
        self.errors = errors


class Unauthorized(AppError):
    status = 401
    slug = "unauthorized"
    title = "Sign in required"


class InvalidCredentials(Unauthorized):
    slug = "invalid-credentials"
    title = "Email or password is incorrect"


class TooManyAttempts(AppError):
    """Sign-in for this account from this address is locked for ``retry_after`` seconds
    after repeated failures (webapp/auth/throttle.py). Answered before the password is
    checked, so it says nothing about whether the password or the account exists."""

    status = 429
    slug = "too-many-attempts"
    title = "Too many sign-in attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many failed sign-ins for this account from here. "
            f"Try again in {retry_after} seconds.", retry_after=retry_after)
        self.retry_after = retry_after


class Forbidden(AppError):
    status = 403
    slug = "forbidden"
    title = "Not allowed"


class StoreNotAllowed(Forbidden):
    """A barista named a store other than the one they work at."""

    slug = "store-not-allowed"
    title = "Not your store"


class NotYourTransaction(Forbidden):
    slug = "not-your-transaction"
    title = "Not your transaction"


class OwnWallet(Forbidden):
    """Staff booking on their own (or their family's) wallet: someone else must."""

    slug = "own-wallet"
    title = "Your own wallet"


class PurchaseLimitExceeded(Forbidden):
    slug = "purchase-limit"
    title = "Above the purchase limit"


class NotFound(AppError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(AppError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class CardBlocked(Conflict):
    """A card support blocked (lost phone): the till refuses it."""

    slug = "card-blocked"
    title = "Card blocked"


class StaleEdit(Conflict):
    """An edit made from an older version of the record than the one stored."""

    slug = "stale-edit"
    title = "Changed by someone else"


class PasswordChangeRequired(Forbidden):
    """A staff account still on its temporary password: change it first."""

    slug = "password-change-required"
    title = "Change your temporary password"


class StaffLimitExceeded(Forbidden):
    """Above a barista's coins-per-hour limit at their store: a manager books it."""

    slug = "staff-limit"
    title = "Above the hourly limit"


class FamilyFull(Conflict):
    slug = "family-full"
    title = "Family is full"


class EmailTaken(Conflict):
    slug = "email-taken"
    title = "Cannot register with this email"


class InsufficientCoins(Conflict):
    slug = "insufficient-coins"
    title = "Not enough coins"


class AlreadyReversed(Conflict):
    slug = "already-reversed"
    title = "Transaction already reversed"


class IdempotencyMismatch(AppError):
    status = 422
    slug = "idempotency-key-reused"
    title = "Idempotency key reused with a different request"


class CardCodeRejected(AppError):
    status = 422
    slug = "card-code-rejected"
    title = "Card code not accepted"


class ConfirmationRequired(AppError):
    status = 428
    slug = "confirmation-required"
    title = "Confirmation required"


class ServiceUnavailable(AppError):
    """No cluster member accepts the request (quorum lost, all members down)."""

    status = 503
    slug = "service-unavailable"
    title = "Loyalty service unavailable"
    retry_after = 5


class OutcomeUnknown(ServiceUnavailable):
    """The database lost the connection after COMMIT was sent, and the work could not be
    safely re-run: it may or may not have been applied. Unlike a plain refusal, the client
    must retry with the *same* idempotency key (never a new one), or it may book twice."""

    slug = "outcome-unknown"
    title = "Outcome unknown: retry with the same Idempotency-Key"


class BadLink(AppError):
    """A mailed link that can't be used. Each reason has its own words, and the page
    says what to do next (``action``/``action_label``)."""

    status = 400
    slug = "bad-link"
    title = "This link can't be used"


class LinkInvalid(BadLink):
    status = 404
    slug = "link-invalid"
    title = "This link is not valid"


class LinkExpired(BadLink):
    status = 410
    slug = "link-expired"
    title = "This link has expired"


class LinkUsed(BadLink):
    status = 410
    slug = "link-used"
    title = "This link was already used"


class LinkReplaced(BadLink):
    status = 410
    slug = "link-replaced"
    title = "A newer link replaced this one"


class LinkOtherAccount(BadLink):
    status = 403
    slug = "link-other-account"
    title = "This link belongs to another account"
