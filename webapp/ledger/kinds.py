"""The kinds of ledger movement, in one place (the schema stores them as plain text)."""

from __future__ import annotations

EARN = "earn"
REDEEM = "redeem"
REVERSAL = "reversal"
ADJUSTMENT = "adjustment"
EXPIRY = "expiry"
ERASURE = "erasure"  # forfeits the balance of an erased account

KINDS = (EARN, REDEEM, REVERSAL, ADJUSTMENT, EXPIRY, ERASURE)
# What keeps a wallet's coins alive (webapp/expiry): something a person in the family, or
# an operator, did. A reversal only undoes one of these, and an expiry is the timer itself.
ACTIVITY = (EARN, REDEEM, ADJUSTMENT)
