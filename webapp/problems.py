"""RFC 9457 problem documents: the API's one error format."""

from __future__ import annotations

from flask import current_app, request

PROBLEM_BASE = "https://loyalty.example/problems/"


def problem_response(status: int, slug: str, title: str, detail: str | None = None,
                     **extra: object):
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body["instance"] = request.path
    body.update({k: v for k, v in extra.items() if v is not None})
    response = current_app.json.response(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response
