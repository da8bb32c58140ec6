"""Rendering pages and their htmx partials from one template.

A partial is a named block of the page's own template, rendered alone when htmx asks
for it, so the page and its fragments cannot drift apart.
"""

from __future__ import annotations

from flask import render_template, request
from jinja2_fragments.flask import render_block


def is_htmx_partial_request() -> bool:
    """htmx swapping part of a page. A boosted navigation wants the whole page, and so
    does htmx restoring a pushed URL from history (Back after a filter, with no cache)."""
    headers = request.headers
    return (bool(headers.get("HX-Request")) and not headers.get("HX-Boosted")
            and not headers.get("HX-History-Restore-Request"))


def render_page(template: str, *, partial: str | None = None, **context: object) -> str:
    if partial and is_htmx_partial_request():
        return render_block(template, partial, **context)
    return render_template(template, **context)
