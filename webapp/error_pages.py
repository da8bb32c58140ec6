"""Errors become a friendly page, or a problem document under /api/. Never a trace."""

from __future__ import annotations

import logging
import math
import time

from flask import Flask, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, TooManyRequests

from webapp.errors import (
    AppError,
    BadLink,
    OutcomeUnknown,
    PasswordChangeRequired,
    ServiceUnavailable,
    TooManyAttempts,
    Unauthorized,
)
from webapp.extensions import limiter
from webapp.problems import problem_response

log = logging.getLogger(__name__)

FRIENDLY = {
    400: "That request could not be understood.",
    401: "Please sign in.",
    403: "You don't have access to this page.",
    404: "We couldn't find that page.",
    405: "That action isn't available here.",
    413: "That request is too large.",
    429: "Too many attempts. Please wait a minute and try again.",
    500: "Something went wrong on our side. Your coins are safe; please try again.",
    503: "We can't reach the loyalty service right now. Your card still works for scanning.",
}
# Not "nothing happened": the connection was lost while saving.
OUTCOME_UNKNOWN = (
    "We lost the connection while saving, so we can't tell whether it was saved. "
    "Please check before you try again."
)


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _page(status: int, message: str, headers: dict | None = None, *, title: str | None = None,
          action: str | None = None, action_label: str | None = None):
    return render_template("errors/error.html", status=status, message=message, title=title,
                           action=action, action_label=action_label), status, (headers or {})


def _limit_retry_after() -> int:
    """Seconds until the breached per-address limit lets one more attempt through."""
    try:
        breached = limiter.current_limit
        if breached is not None:
            return max(1, math.ceil(breached.window.reset_time - time.time()))
    except Exception:  # the limiter's store went away meanwhile: the longest window
        log.warning("could not read the breached limit's reset time", exc_info=True)
    return 60


def _signed_out():
    """A page found the session no longer stands for an account (deleted since the token
    was issued): the session ends here, and the user goes to sign in."""
    from webapp.auth.session import clear_session_cookies, redirect_to_login

    response = redirect_to_login()
    clear_session_cookies(response)
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(AppError)
    def app_error(error: AppError):
        headers = dict(getattr(error, "headers", None) or {})
        if isinstance(error, ServiceUnavailable | TooManyAttempts):
            headers["Retry-After"] = str(error.retry_after)
        if _is_api():
            response = problem_response(error.status, error.slug, error.title, error.detail,
                                        **error.extra)
            response.headers.update(headers)
            return response
        if isinstance(error, Unauthorized):
            return _signed_out()
        if isinstance(error, PasswordChangeRequired) and request.method == "GET":
            return redirect(url_for("admin.password"))
        if isinstance(error, OutcomeUnknown):
            message = OUTCOME_UNKNOWN
        elif isinstance(error, ServiceUnavailable):
            message = FRIENDLY[503]
        else:
            message = error.detail
        if isinstance(error, BadLink):
            return _page(error.status, message, headers, title=error.title,
                         action=error.extra.get("action"),
                         action_label=error.extra.get("action_label"))
        return _page(error.status, message, headers)

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        if _is_api():
            return problem_response(400, "csrf", "CSRF token missing or invalid",
                                    error.description)
        return _page(400, "This form has expired. Please go back, reload and try again.")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        status = error.code or 500
        # Keep what the exception says about itself: Allow on a 405 (RFC 9110 requires
        # it), Retry-After on a 429.
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        if isinstance(error, TooManyRequests):
            headers["Retry-After"] = str(_limit_retry_after())
        if _is_api():
            response = problem_response(status, f"http-{status}", error.name,
                                        error.description)
            response.headers.update(headers)
            return response
        return _page(status, FRIENDLY.get(status, error.name), headers)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _is_api():
            return problem_response(500, "internal", "Internal error",
                                    "Something went wrong on our side.")
        return _page(500, FRIENDLY[500])
