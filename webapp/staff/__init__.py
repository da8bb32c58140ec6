"""Café staff: their accounts and stores (:mod:`.accounts`, for the CLI and the demo
seed) and the rulebook for what they may do at the till (:mod:`.services`), which the
till pages and the API both call."""

from .accounts import create_staff, create_store, home_store
from .services import (
    CardSummary,
    earn,
    lookup,
    purchase_limit,
    redeem,
    reverse,
    scoped_key,
    working_store,
)

__all__ = [
    "CardSummary", "create_staff", "create_store", "earn", "home_store", "lookup",
    "purchase_limit", "redeem", "reverse", "scoped_key", "working_store",
]
