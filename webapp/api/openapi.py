"""Each API operation is declared once, with :func:`operation`: the same declaration
authenticates the caller, parses the request with the pydantic models, serializes the
reply, and becomes the operation's entry in the OpenAPI 3.1 document, which is built
from the app's real URL map. An API route without a declaration fails the document.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from flask import Flask, current_app, request
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from webapp.errors import AppError, NotFound, Unauthorized, ValidationFailed
from webapp.extensions import limiter
from webapp.problems import PROBLEM_BASE

from . import schemas
from .auth import Access, authenticate, confirm_session, signed_out_in_view

API_PREFIX = "/api/v1"
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
ModelType = type[BaseModel]


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    access: Access = "account"
    body: ModelType | None = None
    query: ModelType | None = None
    # Success statuses and their body model (None: no content).
    responses: Mapping[int, ModelType | None] = field(default_factory=lambda: {200: None})
    # Problems the operation's rules can answer with, besides those that follow from its
    # declaration (401/403 from access, 400/422 from input, 429 from a rate limit).
    problems: tuple[int, ...] = ()
    idempotent: bool = False
    # The Idempotency-Key may be left out (the server then makes one for the request, so
    # its own retries are safe, but a client's re-send is a new request).
    idempotency_optional: bool = False
    # A Flask-Limiter decorator, e.g. webapp.auth.throttle.sign_in_limited: its bucket is
    # shared with the page that does the same thing.
    rate_limit: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None
    # A second limit keyed by the email address in the body (registration).
    address_rate_limit: Callable[[], str] | None = None
    uses_database: bool = True
    # The service checks the device's session in its own first statement (the staff
    # rulebook's read) instead of a transaction of its own before the view; fail-closed
    # (webapp.api.auth.authenticate).
    checks_session_itself: bool = False
    # Text, or a function of the app's config for facts set per deployment (bounds).
    description: str | Callable[[Mapping[str, Any]], str] = ""

    def problem_statuses(self) -> list[int]:
        statuses = set(self.problems)
        if self.access != "public":
            statuses.add(401)
        if self.access == "staff":
            statuses.add(403)
        if self.body is not None:
            statuses.update((400, 415))
        if self.body is not None or self.query is not None or self.idempotent:
            statuses.add(422)
        if self.rate_limit is not None or self.address_rate_limit is not None:
            statuses.add(429)
        if self.uses_database:
            statuses.add(503)
        return sorted(statuses)


Reply = BaseModel | tuple[BaseModel | None, int] | tuple[BaseModel | None, int, dict] | None


def operation(**declaration: Any) -> Callable[[Callable[..., Reply]], Callable[..., Any]]:
    """Declares an API view. The view receives its path arguments plus ``body``,
    ``query`` and ``idempotency_key`` as declared, and returns a model, ``(model,
    status)``, ``(model, status, headers)`` or None (204)."""
    op = Operation(**declaration)

    def decorate(view: Callable[..., Reply]) -> Callable[..., Any]:
        @functools.wraps(view)
        def handle(**path: Any) -> Any:
            authenticate(op.access, defer_session_check=op.checks_session_itself)
            try:
                if any(isinstance(value, int) and value > schemas.MAX_ID
                       for value in path.values()):
                    raise NotFound("No such resource.")
                reply = view(**path, **_parse_request(op))
            except Unauthorized:
                if op.checks_session_itself:
                    signed_out_in_view()  # the view's own session check refused it
                raise
            except Exception:
                confirm_session()  # a signed-out device learns that, not why it failed
                raise
            confirm_session()
            return _respond(reply)

        handle.api_operation = op  # type: ignore[attr-defined]
        if op.rate_limit is not None:
            handle = op.rate_limit(handle)
            handle.api_operation = op  # type: ignore[attr-defined]
        if op.address_rate_limit is not None:
            from webapp.auth.limits import address_key

            handle = limiter.limit(op.address_rate_limit, key_func=address_key)(handle)
            handle.api_operation = op  # type: ignore[attr-defined]
        return handle

    return decorate


def _parse_request(op: Operation) -> dict[str, Any]:
    """All of the request's input, with every invalid field reported at once."""
    if op.body is not None and request.mimetype != schemas.JSON_MEDIA_TYPE:
        raise schemas.UnsupportedMediaType(request.method)
    parsed: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    steps: list[tuple[str, Callable[[], Any]]] = []
    if op.idempotent:
        steps.append(("idempotency_key", lambda: _idempotency_key(op.idempotency_optional)))
    if op.query is not None:
        steps.append(("query", lambda: schemas.parse_query(op.query, request.args.to_dict())))
    if op.body is not None:
        steps.append(("body", lambda: schemas.parse_json(op.body, request.get_data())))
    for name, parse in steps:
        try:
            parsed[name] = parse()
        except ValidationFailed as error:
            for key, messages in error.errors.items():
                errors.setdefault(key, []).extend(messages)
    if errors:
        raise ValidationFailed(errors)
    return parsed


def _idempotency_key(optional: bool = False) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None and optional:
        return None
    if not key:
        raise ValidationFailed({"idempotency_key": [
            f"Send an {IDEMPOTENCY_HEADER} header: any unique string per transaction, "
            "reused only to retry that same transaction."]})
    if not re.fullmatch(schemas.IDEMPOTENCY_KEY_PATTERN, key):
        raise ValidationFailed({"idempotency_key": [
            f"Use 1 to {schemas.IDEMPOTENCY_KEY_MAX} visible ASCII characters."]})
    return key


def _respond(reply: Reply) -> Any:
    model, status, headers = None, 204, {}
    if isinstance(reply, tuple):
        model, status, *rest = reply
        headers = rest[0] if rest else {}
    elif reply is not None:
        model, status = reply, 200
    response = current_app.response_class(
        model.model_dump_json() if model is not None else None, status=status,
        mimetype="application/json" if model is not None else None,
    )
    response.headers.update(headers)
    return response


# -- the document -------------------------------------------------------------------

_CONVERTER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
_PATH_SCHEMAS = {
    "int": {"type": "integer", "minimum": 1, "maximum": schemas.MAX_ID, "format": "int64"},
}
_RESPONSE_HEADERS = {
    401: {"WWW-Authenticate": {"required": True, "description": "RFC 6750 challenge.",
                               "schema": {"type": "string"}}},
    403: {"WWW-Authenticate": {"required": False, "schema": {"type": "string"}}},
    429: {"Retry-After": {"required": True, "description": "Seconds to wait.",
                          "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
    503: {"Retry-After": {"required": True, "description": "Seconds to wait.",
                          "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
}
_PROBLEM_NOTES = {
    400: "The body is not JSON.",
    401: "No access token, or an invalid or expired one (see WWW-Authenticate).",
    403: "The token is valid but the account may not do this: a customer calling a staff "
         "operation (`forbidden`), a barista naming a store other than their home store "
         "(`store-not-allowed`), reversing another barista's transaction "
         "(`not-your-transaction`), booking on their own or their family's wallet "
         "(`own-wallet`), or a purchase above the staff limit, which a manager books "
         "(`purchase-limit`). Nothing is changed.",
    404: "Not found, or not yours: other accounts' resources look the same as missing ones.",
    409: "Conflicts with the current state (family full, not enough coins, already done).",
    415: "The body was not sent as `Content-Type: application/json`.",
    422: "Invalid input; `errors` lists the fields. Also an idempotency key reused with a "
         "different request, or a card code that is no longer valid.",
    428: "Redeeming by the static card number needs `confirm_static: true`.",
    429: "Too many attempts; see Retry-After.",
    503: "The loyalty database cannot be reached; see Retry-After. `service-unavailable`: "
         "refused, nothing happened. `outcome-unknown`: the connection was lost while "
         "saving, so it may have happened; send the same request again with the same "
         "Idempotency-Key (never a new one).",
}


def _problem_types() -> list[str]:
    found, pending = [], [AppError]
    while pending:
        cls = pending.pop()
        found.append(PROBLEM_BASE + cls.slug)
        pending.extend(cls.__subclasses__())
    extra = ["malformed-json", "http-404", "http-405", "http-429", "internal"]
    return sorted(set(found) | {PROBLEM_BASE + slug for slug in extra})


def _path_and_parameters(rule_path: str) -> tuple[str, list[dict[str, Any]]]:
    parameters = []
    for converter, name in _CONVERTER.findall(rule_path):
        schema = _PATH_SCHEMAS.get(converter or "default", {"type": "string"})
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    path = _CONVERTER.sub(lambda m: "{" + m.group(2) + "}", rule_path)
    return path.removeprefix(API_PREFIX) or "/", parameters


def _query_parameters(model: ModelType) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        description = prop.pop("description", "")
        # A query parameter is absent or has a value; it can't be JSON null.
        options = [option for option in prop.pop("anyOf", []) if option.get("type") != "null"]
        if len(options) == 1:
            prop.update(options[0])
        if "default" in prop and prop["default"] is None:
            del prop["default"]
        parameters.append({"name": name, "in": "query", "required": name in required,
                           "description": description, "schema": prop})
    return parameters


def _declared_operations(app: Flask) -> list[tuple[str, str, str, Operation]]:
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX + "/"):
            continue
        op = getattr(app.view_functions[rule.endpoint], "api_operation", None)
        if op is None:
            raise RuntimeError(f"API route {rule.rule} has no @operation declaration")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.rule, method.lower(), rule.endpoint.removeprefix("api."), op))
    return found


def document(app: Flask) -> dict[str, Any]:
    operations = _declared_operations(app)
    models: list[tuple[ModelType, str]] = [(schemas.Problem, "serialization")]
    for *_, op in operations:
        if op.body is not None:
            models.append((op.body, "validation"))
        models.extend((model, "serialization") for model in op.responses.values() if model)
    refs, definitions = models_json_schema(
        list(dict.fromkeys(models)), ref_template="#/components/schemas/{model}")
    component_schemas = definitions.get("$defs", {})
    component_schemas["Problem"]["description"] += (
        "\n\nStable `type` values: " + ", ".join(f"`{t}`" for t in _problem_types()) + ".")

    paths: dict[str, dict[str, Any]] = {}
    problem_statuses: set[int] = set()
    for rule_path, method, name, op in operations:
        path, parameters = _path_and_parameters(rule_path)
        if op.idempotent:
            parameters.append({
                "name": IDEMPOTENCY_HEADER, "in": "header",
                "required": not op.idempotency_optional,
                "description": "Unique per transaction; send the same key to retry it safely. "
                               "A replay answers 200 with the first result.",
                "schema": {"type": "string", "minLength": 1,
                           "maxLength": schemas.IDEMPOTENCY_KEY_MAX,
                           "pattern": schemas.IDEMPOTENCY_KEY_PATTERN},
            })
        if op.query is not None:
            parameters.extend(_query_parameters(op.query))
        responses: dict[str, Any] = {}
        for status, model in op.responses.items():
            entry: dict[str, Any] = {"description": HTTPStatus(status).phrase}
            if model is not None:
                entry["content"] = {"application/json": {
                    "schema": refs[(model, "serialization")]}}
            if op.idempotent and status == 200:
                entry["description"] = "A replay: the first request's result, unchanged."
                entry["headers"] = {REPLAYED_HEADER: {"schema": {"type": "string",
                                                                 "enum": ["true"]}}}
            responses[str(status)] = entry
        for status in op.problem_statuses():
            problem_statuses.add(status)
            responses[str(status)] = {"$ref": f"#/components/responses/Problem{status}"}
        entry = {
            "operationId": name,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": parameters,
            "responses": responses,
            "security": [] if op.access == "public" else [{"bearerAuth": []}],
        }
        description = (op.description(app.config) if callable(op.description)
                       else op.description)
        if op.access == "staff":
            description = (description + "\n\nStaff only.").strip()
        if description:
            entry["description"] = description
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": refs[(op.body, "validation")]}}}
        if not parameters:
            del entry["parameters"]
        paths.setdefault(path, {})[method] = entry

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Loyalty Card API",
            "version": "1.0.0",
            "description": (
                "Coins for café purchases, one wallet per family. Authenticate with "
                "`POST /auth/token` and send `Authorization: Bearer <access_token>`. "
                "Errors are RFC 9457 problem documents (`application/problem+json`). "
                "Money amounts are decimal strings, never JSON numbers."),
        },
        "servers": [{"url": API_PREFIX}],
        "paths": paths,
        "components": {
            "schemas": component_schemas,
            "responses": {
                f"Problem{status}": {
                    "description": _PROBLEM_NOTES.get(status, HTTPStatus(status).phrase),
                    "content": {"application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/Problem"}}},
                    **({"headers": _RESPONSE_HEADERS[status]}
                       if status in _RESPONSE_HEADERS else {}),
                }
                for status in sorted(problem_statuses)
            },
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                               "description": "The access_token from /auth/token."},
            },
        },
    }
