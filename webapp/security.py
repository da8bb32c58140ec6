"""Security headers on every response."""

from __future__ import annotations

from flask import Flask, g, request

# No inline script anywhere: htmx and our JS come from /static. Inline SVG (the QR) is
# markup, not script, so it needs no exception.
CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "manifest-src 'self'",
    "worker-src 'self'",
    "media-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])


def init_app(app: Flask) -> None:
    https = bool(app.config["HTTPS"])

    @app.after_request
    def add_security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Permissions-Policy", "camera=(self), geolocation=(), microphone=()")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if https or request.is_secure:
            headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
        if g.get("stale_read"):
            # Served by a member outside the quorum (LOYALTY_ALLOW_STALE_READS): say so.
            headers["X-Loyalty-Stale-Read"] = "1"
        if "Vary" in headers and "Cookie" not in headers["Vary"]:
            headers["Vary"] += ", Cookie"
        return response
