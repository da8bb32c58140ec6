"""Add to Apple Wallet and Save to Google Wallet: the card as a wallet pass.

Two blueprints: ``bp`` serves the signed-in customer's buttons; ``apple_ws`` is Apple's
pass web service, which phones call with an ``ApplePass`` token instead of a session
(so it is exempt from CSRF, like the API).
"""

from flask import Blueprint, Flask, current_app

from webapp.extensions import csrf

bp = Blueprint("passes", __name__)
APPLE_WEB_SERVICE_PREFIX = "/wallet/apple"
apple_ws = Blueprint("apple_ws", __name__, url_prefix=APPLE_WEB_SERVICE_PREFIX)
csrf.exempt(apple_ws)

from . import routes  # noqa: E402,F401


def init_app(app: Flask) -> None:
    from .cli import passes_cli

    configure(app)
    app.register_blueprint(bp)
    app.register_blueprint(apple_ws)
    app.cli.add_command(passes_cli)

    @app.context_processor
    def wallet_buttons():
        return {"wallet_passes": current_app.extensions["wallet_passes"]}


def configure(app: Flask) -> None:
    """Reads the operator's keys from the app's config (once: a bad or half-given
    setting stops the start, with its name)."""
    from . import keys

    app.extensions["wallet_passes"] = keys.load(app.config)
