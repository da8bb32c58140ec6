"""Liveness and readiness for load balancers and operators.

``/readyz`` is public: the ALB, Route 53 and the region lab's front poll it, and all they
need is ready or not (the status code) and a short reason code. Which database members
exist, where they listen, what version they run and why they failed is for operators:
only with the operator token (``LOYALTY_OPERATOR_TOKEN``) as a Bearer token, or
``flask cluster status`` on the host.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, jsonify, request

from webapp.extensions import db

bp = Blueprint("health", __name__)

# Reason codes of a 503: stable strings a health check or a dashboard can match on.
UNREACHABLE = "database-unreachable"  # no member answers at all
NOT_WRITABLE = "no-writable-member"  # members answer, but none accepts writes


@bp.route("/healthz")
def healthz():
    return jsonify(status="ok", region=current_app.config["REGION"])


@bp.route("/readyz")
def readyz():
    """Ready when some member accepts writes."""
    operator = _operator()
    if operator is False:
        return _answer({"status": "unauthorized",
                        "detail": "Member details need the operator token."}, 401,
                       {"WWW-Authenticate": 'Bearer realm="operator"', "Cache-Control": "no-store"})
    members = db.status()
    writable = [m for m in members if m["state"] == "up" and m.get("role") != "read-only"]
    body: dict = {"status": "ready" if writable else "unavailable",
                  "region": current_app.config["REGION"]}
    headers: dict[str, str] = {}
    if not writable:
        body["reason"] = NOT_WRITABLE if any(m["state"] == "up" for m in members) else UNREACHABLE
        headers["Retry-After"] = "5"
    if operator:
        body["members"] = members
        headers["Cache-Control"] = "no-store"
    return _answer(body, 200 if writable else 503, headers)


def _operator() -> bool | None:
    """True for the operator's token, None for no Authorization header (the public
    answer), False for any other credentials (including when no token is configured)."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, presented = header.partition(" ")
    expected = current_app.config.get("OPERATOR_TOKEN") or ""
    # Constant time, so the comparison does not tell how much of a guess was right.
    matches = hmac.compare_digest(presented.strip().encode(), expected.encode())
    return bool(expected) and scheme.lower() == "bearer" and matches


def _answer(body: dict, status: int, headers: dict[str, str]):
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response
