"""Console pages. Each view parses its form, calls the console rulebook
(:mod:`webapp.staff.console`) and renders the answer; a refused or invalid request is
shown on the same page with its status and changes nothing. Writes redirect after
success (so reloading never repeats them); money-moving forms carry an idempotency key.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flask import Response, redirect, request, url_for

from webapp.auth.session import current_principal, staff_required
from webapp.errors import AppError, Forbidden, ValidationFailed
from webapp.pages import is_htmx_partial_request, render_page
from webapp.staff import console
from webapp.staff.roles import ROLE_NAMES

from . import bp


@bp.after_request
def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


def _errors(error: AppError) -> tuple[str, dict[str, list[str]]]:
    fields = getattr(error, "errors", None) or {}
    message = error.detail if not fields else "Please correct the fields marked below."
    return message, fields


@dataclass
class _Post:
    """A console form's POST run through the rulebook: ``done`` with the rulebook's
    ``result``, or refused with what the page shows (``shown``: error, fields) and its
    status. A GET is neither."""

    done: bool = False
    result: Any = None
    status: int = 200
    shown: dict[str, Any] = field(default_factory=lambda: {"error": None, "fields": {}})


def _post(act: Callable[[], Any]) -> _Post:
    if request.method != "POST":
        return _Post()
    try:
        return _Post(done=True, result=act())
    except AppError as exc:
        error, fields = _errors(exc)
        return _Post(status=exc.status, shown={"error": error, "fields": fields})


def _page(template: str, status: int = 200, *, partial: str = "main", **context: Any):
    """The page, or under htmx its ``partial`` block alone (the same template and
    context, so a fragment and its page cannot disagree)."""
    actor = console.console_actor(current_principal())
    context.setdefault("done", request.args.get("done"))
    return render_page(template, partial=partial, actor=actor, can=console.powers(actor),
                       roles=ROLE_NAMES,
                       new_key=secrets.token_urlsafe(16), **context), status


def _int(name: str) -> int | None:
    raw = request.form.get(name, request.args.get(name, ""))
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def _day(name: str) -> date | None:
    raw = request.args.get(name) or ""
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        raise ValidationFailed({name: ["Use a date like 2026-11-29."]}) from None


# -- home and password --------------------------------------------------------------


@bp.get("")
@staff_required
def index():
    console.console_actor(current_principal())
    return _page("admin/index.html")


@bp.route("/password", methods=["GET", "POST"])
@staff_required
def password():
    post = _post(lambda: console.change_own_password(
        current_principal(), current=request.form.get("current", ""),
        new=request.form.get("new", "")))
    if post.done:
        return redirect(url_for("auth.index"))
    return render_page("admin/password.html", **post.shown), post.status


# -- stores -------------------------------------------------------------------------


@bp.route("/stores", methods=["GET", "POST"])
@staff_required
def stores():
    post = _post(lambda: console.create_store(current_principal(), request.form.to_dict()))
    if post.done:
        return redirect(url_for("admin.stores", done=f"Store {post.result['code']} created."))
    return _page("admin/stores.html", post.status,
                 stores=console.list_stores(current_principal()), form=request.form,
                 **post.shown)


@bp.route("/stores/<int:store_id>", methods=["GET", "POST"])
@staff_required
def store(store_id: int):
    error, fields, status = None, {}, 200
    principal = current_principal()
    if request.method == "POST":
        try:
            saved = console.update_store(principal, store_id, _int("version") or 0,
                                         request.form.to_dict())
        except AppError as exc:
            (error, fields), status = _errors(exc), exc.status
        else:
            if is_htmx_partial_request():  # the form, with the new version, in place
                return _page("admin/store.html", partial="store_edit", store=saved,
                             error=None, fields={}, done="Saved.")
            return redirect(url_for("admin.store", store_id=store_id, done="Saved."))
    return _page("admin/store.html", status, partial="store_edit",
                 store=console.get_store(principal, store_id), error=error, fields=fields)


@bp.get("/stores/<int:store_id>/day")
@staff_required
def store_day(store_id: int):
    return _page("admin/day.html", **console.store_day(current_principal(), store_id,
                                                         _day("day")))


# -- staff --------------------------------------------------------------------------


@bp.route("/staff", methods=["GET", "POST"])
@staff_required
def staff():
    principal = current_principal()
    form = request.form
    post = _post(lambda: console.create_staff(
        principal, email=form.get("email", ""), name=form.get("name", ""),
        role=form.get("role", ""), store_code=form.get("store") or None,
        admin_region=form.get("admin_region") or None))
    created = None
    if post.done:
        account, temporary = post.result
        created = {"email": account["email"], "password": temporary}
    return _page("admin/staff.html", 201 if post.done else post.status,
                 members=console.list_staff(principal), stores=console.list_stores(principal),
                 created=created, form=form, **post.shown)


@bp.post("/staff/<int:account_id>")
@staff_required
def staff_member(account_id: int):
    form = request.form
    disabled = {"disable": True, "enable": False}.get(form.get("action", ""))
    console.update_staff(current_principal(), account_id, role=form.get("role") or None,
                         store_code=form.get("store") or None, disabled=disabled,
                         change_key=form.get("key") or secrets.token_urlsafe(8))
    return redirect(url_for("admin.staff", done="Saved."))


@bp.post("/staff/<int:account_id>/reset")
@staff_required
def staff_reset(account_id: int):
    temporary = console.reset_password(current_principal(), account_id)
    principal = current_principal()
    members = console.list_staff(principal)
    # Named by the address they sign in with: the admin reads it out to them.
    email = next((m["email"] for m in members if m["id"] == account_id),
                 f"account {account_id}")
    return _page("admin/staff.html", members=members,
                 stores=console.list_stores(principal), error=None, fields={},
                 created={"email": email, "password": temporary}, form={})


# -- rewards ------------------------------------------------------------------------


@bp.route("/rewards", methods=["GET", "POST"])
@staff_required
def rewards():
    principal = current_principal()
    post = _post(lambda: console.save_reward(principal, request.form.to_dict(),
                                             reward_id=_int("reward_id"),
                                             version=_int("version")))
    if post.done:
        return redirect(url_for("admin.rewards", done="Saved."))
    return _page("admin/rewards.html", post.status, rewards=console.list_rewards(principal),
                 form=request.form, **post.shown)


@bp.route("/rewards/<int:reward_id>", methods=["GET", "POST"])
@staff_required
def reward(reward_id: int):
    """Edit one reward (name, cost, active, sort); the form names the version it was
    made from, so a concurrent edit is refused rather than overwritten."""
    error, fields, status = None, {}, 200
    principal = current_principal()
    if request.method == "POST":
        try:
            console.save_reward(principal, request.form.to_dict(), reward_id=reward_id,
                                version=_int("version"))
        except AppError as exc:
            (error, fields), status = _errors(exc), exc.status
        else:
            return redirect(url_for("admin.rewards", done="Saved."))
    return _page("admin/reward.html", status, reward=console.get_reward(principal, reward_id),
                 error=error, fields=fields, form=request.form)


# -- customer support ------------------------------------------------------------------


@bp.get("/support")
@staff_required
def support():
    query = request.args.get("q", "")
    results, error, status = None, None, 200
    console.support_actor(current_principal())
    if query:
        try:
            results = console.search_customers(current_principal(), query)
        except AppError as exc:
            error, status = _errors(exc)[0] + " " + " ".join(
                m for ms in (getattr(exc, "errors", None) or {}).values() for m in ms), exc.status
    return _page("admin/support.html", status, partial="support_results", query=query,
                 results=results, error=error)


def _customer_page(account_id: int, *, error: str | None = None, status: int = 200,
                   receipt: Any = None, fields: dict[str, list[str]] | None = None,
                   adjusting: dict[str, str] | None = None):
    """The customer's record; ``fields`` and ``adjusting`` (the adjustment form's
    values) when the adjustment was invalid."""
    record = console.open_customer(current_principal(), account_id,
                                   before_id=_int("before"))
    return _page("admin/customer.html", status, error=error, receipt=receipt,
                 fields=fields or {}, form=adjusting or {}, **record)


@bp.get("/support/<int:account_id>")
@staff_required
def customer(account_id: int):
    return _customer_page(account_id)


@bp.post("/support/<int:account_id>/adjust")
@staff_required
def adjust(account_id: int):
    form = request.form
    coins = _int("coins")
    try:
        if coins is None:
            raise ValidationFailed({"coins": ["Enter whole coins, e.g. 10 or -10."]})
        console.adjust(current_principal(), account_id, coins=coins,
                       reason=form.get("reason", ""), label=form.get("label", ""),
                       key=form.get("key", ""))
    except AppError as exc:
        message, fields = _errors(exc)
        if fields:  # marked at the form's fields (and kept in them)
            return _customer_page(account_id, error=message, status=exc.status,
                                  fields=fields, adjusting=request.form.to_dict())
        return _refused(account_id, message, exc.status)
    return redirect(url_for("admin.customer", account_id=account_id, done="Adjusted."))


def _refused(account_id: int, message: str, status: int):
    # Refusals (403) are shown without re-opening the record: the caller may not see it.
    if status == 403:
        return _page("admin/index.html", status, error=message)
    return _customer_page(account_id, error=message, status=status)


@bp.post("/support/<int:account_id>/reverse")
@staff_required
def support_reverse(account_id: int):
    try:
        console.support_reverse(current_principal(), _int("transaction") or 0,
                                reason=request.form.get("reason", ""),
                                key=request.form.get("key", ""))
    except AppError as exc:
        message, fields = _errors(exc)
        detail = " ".join(m for ms in fields.values() for m in ms)
        return _refused(account_id, f"{message} {detail}".strip(), exc.status)
    return redirect(url_for("admin.customer", account_id=account_id, done="Reversed."))


@bp.post("/cards/<int:card_id>/block")
@staff_required
def block_card(card_id: int):
    blocked = request.form.get("action", "block") == "block"
    card = console.set_card_blocked(current_principal(), card_id, blocked=blocked,
                                    reason=request.form.get("reason", ""))
    return redirect(url_for("admin.customer", account_id=card["account_id"],
                            done="Card blocked." if blocked else "Card unblocked."))


@bp.post("/cards/<int:card_id>/reissue")
@staff_required
def reissue_card(card_id: int):
    card = console.reissue_card(current_principal(), card_id)
    return redirect(url_for("admin.customer", account_id=card["account_id"],
                            done="New card number issued."))


# -- audit log -----------------------------------------------------------------------


def _audit_filters() -> dict[str, Any]:
    return {"actor_id": _int("actor"), "store_id": _int("store"),
            "action": request.args.get("action") or None,
            "since": _day("since"), "until": _day("until")}


@bp.get("/audit")
@staff_required
def audit_log():
    from webapp.audit import ACTIONS

    entries, error, status = [], None, 200
    try:
        entries = console.audit_entries(current_principal(), **_audit_filters())
    except ValidationFailed as exc:
        error, status = " ".join(m for ms in exc.errors.values() for m in ms), exc.status
    return _page("admin/audit.html", status, partial="audit_entries", entries=entries,
                 actions=ACTIONS, args=request.args, error=error)


CSV_COLUMNS = ("id", "created_at", "actor_id", "actor_role", "action", "region", "store_id",
               "subject_id", "target", "client_ip", "details", "local_time", "timezone")


@bp.get("/audit.csv")
@staff_required
def audit_csv():
    entries = console.audit_entries(current_principal(), limit=10_000, **_audit_filters())
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        writer.writerow([entry[c] for c in CSV_COLUMNS])
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": "attachment; filename=audit.csv"})


# -- reports -------------------------------------------------------------------------


def _report() -> dict[str, Any]:
    from webapp.staff import reports

    return reports.report(current_principal(), grain=request.args.get("grain") or "day",
                          since=_day("since"), until=_day("until"))


@bp.get("/reports")
@staff_required
def reports_page():
    error, fields, status, report = None, {}, 200, None
    try:
        report = _report()
    except ValidationFailed as exc:
        (error, fields), status = _errors(exc), exc.status
    return _page("admin/reports.html", status, partial="report_body", report=report,
                 args=request.args, error=error, fields=fields)


REPORT_COLUMNS = ("period", "region", "store", "issued", "redeemed", "reversed", "adjusted",
                  "expired", "other", "net", "transactions", "active_wallets", "timezone")


@bp.get("/reports.csv")
@staff_required
def reports_csv():
    report = _report()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(REPORT_COLUMNS)
    for row in report["rows"]:
        writer.writerow([row[c] for c in REPORT_COLUMNS])
    for total in report["totals"]:
        # A total is the sum of the stores' local days: no one zone.
        writer.writerow([total["period"], "*", "*", *(total[c] for c in REPORT_COLUMNS[3:-1]),
                         "*"])
    if report["liability"] is not None:
        writer.writerow([])
        writer.writerow(("home_region", "wallets", "outstanding_coins", "ledger_sum"))
        for row in report["liability"]["by_region"]:
            writer.writerow((row["region"], row["wallets"], row["balance"], row["ledger"]))
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": "attachment; filename=report.csv"})


@bp.get("/reports/<any(flows, liability):chart>.svg")
@staff_required
def report_chart(chart: str):
    from webapp.reports import charts

    report = _report()
    if chart == "liability" and report["liability"] is None:
        raise Forbidden("Outstanding coins are reported to admins.")
    svg = charts.flows_svg(report) if chart == "flows" else charts.liability_svg(report)
    # Its own policy (see webapp.reports.charts): the page-wide one is set only if absent.
    return Response(svg, mimetype="image/svg+xml",
                    headers={"Content-Security-Policy": charts.SVG_CSP})
