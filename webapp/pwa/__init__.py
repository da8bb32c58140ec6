"""The installable app: manifest, service worker at the root scope, offline page."""

from __future__ import annotations

import hashlib

from flask import Blueprint, current_app, render_template, send_from_directory, url_for

from webapp.auth.session import ACCOUNT_COOKIE
from webapp.card.routes import ACCOUNT_HEADER
from webapp.pages import render_page

bp = Blueprint("pwa", __name__)


@bp.route("/manifest.webmanifest")
def manifest():
    return send_from_directory(current_app.static_folder, "manifest.webmanifest",
                                   mimetype="application/manifest+json", max_age=3600)


# What the card needs to show offline; the worker precaches these exact, versioned URLs.
SHELL_FILES = (
    "css/app.css",
    "js/app.js",
    "js/card.js",
    "vendor/htmx-2.0.11.min.js",
    "vendor/qrcode-generator-1.4.4.js",
    "icons/icon-192.png",
)


@bp.route("/sw.js")
def service_worker():
    # Served from the root so its scope is the whole app; never cached long, or a fix
    # to the worker would take a year to reach phones.
    static_url = current_app.jinja_env.globals["static_url"]
    urls = [url_for("pwa.offline"), *(static_url(name) for name in SHELL_FILES)]
    version = hashlib.sha256("\n".join(urls).encode()).hexdigest()[:10]
    body = render_template("pwa/sw.js", shell_urls=urls, shell_version=version,
                           account_cookie=ACCOUNT_COOKIE, account_header=ACCOUNT_HEADER)
    response = current_app.response_class(body, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Service-Worker-Allowed"] = "/"
    return response


@bp.route("/offline")
def offline():
    return render_page("pwa/offline.html")
