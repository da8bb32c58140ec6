"""Liveness and readiness for load balancers and operators."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from webapp.extensions import db

bp = Blueprint("health", __name__)


@bp.route("/healthz")
def healthz():
    return jsonify(status="ok", region=current_app.config["REGION"])


@bp.route("/readyz")
def readyz():
    """Ready when some member accepts writes; the member list says which and how."""
    members = db.status()
    writable = [m for m in members if m["state"] == "up" and m.get("role") != "read-only"]
    body = {
        "status": "ready" if writable else "unavailable",
        "region": current_app.config["REGION"],
        "members": members,
    }
    if not writable:
        body["reason"] = "no database member accepts writes"
        response = jsonify(body)
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return response
    return jsonify(body)
