"""What a signed-in device is called on the account page: "Chrome Mobile on Android"."""

from __future__ import annotations

import functools

from flask import has_request_context, request

MAX_LENGTH = 120


@functools.cache
def _parser():
    # The lazy rule set: compiling every rule up front cost 0.5 s at a worker's first
    # sign-in; lazily it is a fraction of that, and each rule compiles once.
    from ua_parser import BasicResolver, Parser, load_lazy_builtins

    return Parser(BasicResolver(load_lazy_builtins()))


def summarise(user_agent: str) -> str | None:
    """Browser and system only: the full header identifies a device more than we need."""
    if not user_agent:
        return None
    parser = _parser()
    browser = parser.parse_user_agent(user_agent)
    system = parser.parse_os(user_agent)
    name = browser.family if browser else "Unknown browser"
    if system and system.family and system.family != "Other":
        name = f"{name} on {system.family}"
    return name[:MAX_LENGTH]


def describe_client() -> str | None:
    if not has_request_context():
        return None
    return summarise(request.headers.get("User-Agent", ""))
