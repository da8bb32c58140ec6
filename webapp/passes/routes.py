"""The wallet buttons' endpoints, and Apple's pass web service (``/wallet/apple/v1/...``).

The web service answers as Apple's "Wallet Passes web service" reference says: plain
status codes (201 new registration, 200 known, 204 nothing changed, 304 not modified,
401 wrong token) with empty bodies, never an HTML error page, since a phone reads them.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC

from flask import Response, jsonify, redirect, request, url_for

from webapp.auth.session import current_principal, login_required
from webapp.errors import AppError, Unauthorized
from webapp.extensions import limiter

from . import APPLE_WEB_SERVICE_PREFIX, apple_ws, bp, services
from .apple import MEDIA_TYPE

log = logging.getLogger(__name__)
# What a phone sends as its device library identifier and a pass type id: letters,
# digits and dots/dashes/underscores (Apple's are hex and reverse-DNS names).
_IDENTIFIER = re.compile(r"^[A-Za-z0-9._-]{1,100}$", re.ASCII)
_SERIAL = re.compile(r"^[0-9]{1,18}$", re.ASCII)
MAX_LOG_LINES = 20


def _web_service_url() -> str:
    """Where phones reach the web service; Apple appends ``/v1/...``."""
    return request.url_root.rstrip("/") + APPLE_WEB_SERVICE_PREFIX


def _private(response: Response) -> Response:
    # A pass carries the card number (and a Google link its TOTP key): never cached.
    response.headers["Cache-Control"] = "no-store"
    return response


# --- The customer's buttons ----------------------------------------------------------------


@bp.route("/card/<int:card_id>/apple-wallet.pkpass")
@login_required
def apple_pass(card_id: int):
    body, modified = services.apple_pass(current_principal().account_id, card_id,
                                         _web_service_url())
    response = Response(body, mimetype=MEDIA_TYPE)
    response.headers["Content-Disposition"] = 'attachment; filename="loyalty-card.pkpass"'
    response.last_modified = modified.replace(tzinfo=UTC)
    return _private(response)


@bp.route("/card/<int:card_id>/google-wallet")
@login_required
def google_pass(card_id: int):
    url = services.google_save_url(
        current_principal().account_id, card_id,
        origin=request.host_url.rstrip("/"),
        logo_url=url_for("static", filename="icons/icon-512.png", _external=True))
    return _private(redirect(url, code=303))


# --- Apple's pass web service --------------------------------------------------------------


@apple_ws.errorhandler(AppError)
def _status_only(error: AppError):
    return Response(status=error.status)


def _check(*identifiers: str, serial: str | None = None) -> None:
    if not all(_IDENTIFIER.match(value) for value in identifiers) or (
            serial is not None and not _SERIAL.match(serial)):
        # Not something we ever issued: the same answer as a wrong token.
        raise Unauthorized("Not one of our passes.")


@apple_ws.route("/v1/devices/<device_id>/registrations/<pass_type_id>/<serial>",
                methods=["POST"])
def register_device(device_id: str, pass_type_id: str, serial: str):
    _check(device_id, pass_type_id, serial=serial)
    body = request.get_json(silent=True)
    push_token = body.get("pushToken") if isinstance(body, dict) else None
    if not isinstance(push_token, str):
        return Response(status=400)
    created = services.register_device(device_id, pass_type_id, serial, push_token,
                                       request.headers.get("Authorization"))
    return Response(status=201 if created else 200)


@apple_ws.route("/v1/devices/<device_id>/registrations/<pass_type_id>/<serial>",
                methods=["DELETE"])
def unregister_device(device_id: str, pass_type_id: str, serial: str):
    _check(device_id, pass_type_id, serial=serial)
    services.unregister_device(device_id, pass_type_id, serial,
                               request.headers.get("Authorization"))
    return Response(status=200)


@apple_ws.route("/v1/devices/<device_id>/registrations/<pass_type_id>")
def updated_serials(device_id: str, pass_type_id: str):
    _check(device_id, pass_type_id)
    updated = services.updated_serials(device_id, pass_type_id,
                                       request.args.get("passesUpdatedSince"))
    if updated is None:
        return Response(status=204)
    return jsonify(serialNumbers=updated.serials, lastUpdated=updated.last_updated)


@apple_ws.route("/v1/passes/<pass_type_id>/<serial>")
def latest_pass(pass_type_id: str, serial: str):
    _check(pass_type_id, serial=serial)
    since = request.if_modified_since
    latest = services.latest_pass(
        pass_type_id, serial, request.headers.get("Authorization"),
        since.astimezone(UTC).replace(tzinfo=None) if since else None, _web_service_url())
    response = (Response(status=304) if latest.body is None
                else Response(latest.body, mimetype=MEDIA_TYPE))
    response.last_modified = latest.last_modified.replace(tzinfo=UTC)
    return _private(response)


@apple_ws.route("/v1/log", methods=["POST"])
@limiter.limit("30 per minute")
def device_log():
    """Wallet reports its problems with our passes here (a bad signature, a 401...)."""
    body = request.get_json(silent=True)
    lines = body.get("logs") if isinstance(body, dict) else None
    if not isinstance(lines, list):
        return Response(status=400)
    for line in lines[:MAX_LOG_LINES]:
        log.warning("Apple Wallet device log: %.500s", str(line))
    return Response(status=200)
