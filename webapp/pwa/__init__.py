"""The installable app: manifest, service worker at the root scope, offline page."""

from __future__ import annotations

from flask import Blueprint, current_app, send_from_directory

from webapp.pages import render_page

bp = Blueprint("pwa", __name__)


@bp.route("/manifest.webmanifest")
def manifest():
    return send_from_directory(current_app.static_folder, "manifest.webmanifest",
                                   mimetype="application/manifest+json", max_age=3600)


@bp.route("/sw.js")
def service_worker():
    # Served from the root so its scope is the whole app; never cached long, or a fix
    # to the worker would take a year to reach phones.
    response = send_from_directory(current_app.static_folder, "js/sw.js",
                                   mimetype="text/javascript", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Service-Worker-Allowed"] = "/"
    return response


@bp.route("/offline")
def offline():
    return render_page("pwa/offline.html")
