"""Latency distributions for drills and benchmarks: printed, never asserted on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

BUCKETS_S = (0.1, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)


def distribution(values: Sequence[float]) -> dict[str, Any]:
    """n, p50/p90/p99/max (seconds) and a histogram over :data:`BUCKETS_S`."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)

    histogram: dict[str, int] = {}
    low = 0.0
    for high in (*BUCKETS_S, float("inf")):
        label = f"<{high}s" if high != float("inf") else f">={low}s"
        histogram[label] = sum(low <= v < high for v in values)
        low = high
    return {
        "n": len(values),
        "p50": pct(0.5),
        "p90": pct(0.9),
        "p99": pct(0.99),
        "max": round(ordered[-1], 3),
        "histogram": histogram,
    }
