"""Staff roles and scope: who a staff member is *now*, read from the database.

The access token names a role, but a role change or a disabled account must take effect
on the next request, not when the token expires ten minutes later. So every staff
action reads the staff record (:func:`webapp.staff.queries.staff_record`: one primary-key
read joined to the home store) with the same consistency as the action it guards, and
decides by that. The token's role is only a quick first filter for customers.

Stored roles (``accounts.role``):

- ``staff``: a **barista** (the stored name predates the other roles and is kept, so
  tokens, the API's ``role`` field and existing rows need no migration);
- ``manager``: one store, like a barista, plus the store's reversals, adjustments and
  baristas;
- ``admin``: stores, staff, rewards, support, reports and audit in ``admin_region``, or
  the whole chain when that is NULL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webapp.errors import Forbidden, PasswordChangeRequired

BARISTA = "staff"
MANAGER = "manager"
ADMIN = "admin"
CUSTOMER = "customer"
STAFF_ROLES = (BARISTA, MANAGER, ADMIN)
ROLE_NAMES = {CUSTOMER: "customer", BARISTA: "barista", MANAGER: "manager", ADMIN: "admin"}
DISABLED = "Your staff account is disabled; ask a manager."


@dataclass(frozen=True)
class Actor:
    """A staff member as the database has them at this request."""

    account_id: int
    role: str
    name: str
    store: dict[str, Any] | None  # the home store (baristas and managers)
    admin_region: str | None  # an admin's region; None = global

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    @property
    def is_manager(self) -> bool:
        return self.role == MANAGER

    @property
    def is_global(self) -> bool:
        return self.is_admin and self.admin_region is None

    @property
    def scope(self) -> str:
        if self.is_admin:
            return f"admin ({self.admin_region or 'global'})"
        store = self.store["code"] if self.store else "no store"
        return f"{ROLE_NAMES.get(self.role, self.role)} ({store})"

    def covers_region(self, region: str | None) -> bool:
        """An admin's scope includes ``region``."""
        return self.is_admin and (self.admin_region is None or self.admin_region == region)

    def covers_store(self, store: dict[str, Any] | None) -> bool:
        """May run ``store``: an admin of its region, or its own manager."""
        if store is None:
            return False
        if self.is_admin:
            return self.covers_region(store["region"])
        return (self.is_manager and self.store is not None
                and self.store["id"] == store["id"])

    def region_scope(self) -> str | None:
        """The one region this actor sees, or None for every region (global admin)."""
        if self.is_admin:
            return self.admin_region
        return self.store["region"] if self.store else "--"

    def store_scope(self) -> int | None:
        """The one store a manager sees; None for admins (their region decides)."""
        if self.is_admin:
            return None
        return self.store["id"] if self.store else -1


def actor_from(record: dict[str, Any] | None, *, password_ok: bool = False) -> Actor:
    """The :class:`Actor` of a staff record, or 403 when it is not (or no longer) staff,
    or still on a temporary password (unless ``password_ok``: changing it)."""
    if record is None or record["role"] not in STAFF_ROLES:
        raise Forbidden("This is for café staff.")
    if record["disabled_at"] is not None:
        raise Forbidden(DISABLED)
    if record.get("must_change_password") and not password_ok:
        raise PasswordChangeRequired("Change your temporary password before you start.")
    return Actor(record["id"], record["role"], record["name"], record["store"],
                 record["admin_region"])


def require(condition: bool, message: str = "You can't do that with your role.") -> None:
    if not condition:
        raise Forbidden(message)
