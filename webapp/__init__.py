"""Loyalty Card: the app factory. Reading this file tells you everything the app has."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, request, url_for

from webapp.config import Config, profile_from_env


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__, template_folder="../templates", static_folder="../static",
                instance_path=str(Path(__file__).resolve().parent.parent / "instance"))
    profile = profile_from_env()
    if config and "PROFILE" in config:
        from webapp.config import PROFILES

        profile = PROFILES[config["PROFILE"]]
    app.config.from_object(profile)
    if config:
        app.config.from_mapping(config)
    if app.config["ENV_NAME"] == "demo":
        _use_local_demo_secrets(app)
        from webapp.passes import demo as demo_passes

        demo_passes.use_demo_keys(app)
    Config.check(app.config)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(app.config["HTTPS"]),
        PREFERRED_URL_SCHEME="https" if app.config["HTTPS"] else "http",
    )

    if app.config["PROXY_HOPS"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    register_template_helpers(app)
    from webapp import security

    security.init_app(app)
    return app


def register_extensions(app: Flask) -> None:
    from webapp import compression, telemetry
    from webapp.auth import session
    from webapp.extensions import csrf, db, limiter

    compression.init_app(app)  # first, so it runs last: it compresses the final response
    telemetry.init_app(app)  # first, so the database engines are traced
    db.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    session.init_app(app)


def register_blueprints(app: Flask) -> None:
    from webapp import (
        account,
        admin,
        api,
        auth,
        card,
        family,
        health,
        mail,
        passes,
        passkeys,
        pwa,
        till,
    )

    for blueprint in (auth.bp, card.bp, family.bp, till.bp, pwa.bp, health.bp, account.bp,
                      passkeys.bp, mail.bp, admin.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(api.bp, url_prefix="/api/v1")
    passes.init_app(app)


def register_errorhandlers(app: Flask) -> None:
    from webapp import error_pages

    error_pages.init_app(app)


def register_commands(app: Flask) -> None:
    from webapp import commands

    commands.init_app(app)


def register_template_helpers(app: Flask) -> None:
    urls: dict[tuple[str, str], str] = {}

    def static_url(filename: str) -> str:
        """A URL that changes when the file does, so static files can be cached a year.

        Remembered per file (and script root): building it was six url_for calls per page.
        """
        key = (request.script_root, filename)
        if key not in urls or app.debug:
            path = Path(app.static_folder) / filename
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
            urls[key] = url_for("static", filename=filename, v=digest)
        return urls[key]

    app.jinja_env.globals["static_url"] = static_url

    @app.after_request
    def cache_static_files(response):
        """The other half of static_url: only a versioned URL is cached for a year, and
        never revalidated. An unversioned one (the manifest's icons, the service worker's
        shell) is revalidated each time, or a deploy would not reach it for a year."""
        if request.endpoint == "static" and response.status_code in (200, 304):
            if request.args.get("v"):
                response.cache_control.immutable = True
            else:
                response.cache_control.max_age = 0
                response.cache_control.no_cache = True
        return response


def _use_local_demo_secrets(app: Flask) -> None:
    """Demo mode makes its own secrets once and keeps them in instance/ (git-ignored),
    so restarts keep sessions; production refuses to start without real ones."""
    path = Path(app.instance_path) / "demo-secrets.json"
    if path.exists():
        stored = json.loads(path.read_text())
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = {"SECRET_KEY": secrets.token_urlsafe(32), "JWT_KEY": secrets.token_urlsafe(48)}
        path.write_text(json.dumps(stored))
        path.chmod(0o600)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = stored["SECRET_KEY"]
    if not app.config.get("JWT_KEYS"):
        app.config["JWT_KEYS"] = {"demo": stored["JWT_KEY"]}
        app.config["JWT_ACTIVE_KID"] = "demo"
