"""scripts/mutation.py matches surviving mutants to docs/testing.md's table by the
function's name as people write it: a method must read ``Class.method``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import mutation


def test_function_labels_read_as_written():
    assert mutation.function_label("webapp.ledger.services.x_reverse") == \
        "webapp.ledger.services.reverse"
    assert mutation.function_label("webapp.ledger.services.x__receipt") == \
        "webapp.ledger.services._receipt"
    assert mutation.function_label("webapp.ledger.services.xǁ_Attemptsǁis_own") == \
        "webapp.ledger.services._Attempts.is_own"
    assert mutation.function_label("webapp.staff.roles.xǁActorǁregion_scope") == \
        "webapp.staff.roles.Actor.region_scope"
