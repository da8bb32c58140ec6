"""/account: signed-in devices and signing them out, the profile, the data export and
erasure, and the cleanup of unverified accounts; on SQLite and on the Galera lab."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from tests.helpers import PASSWORD, AuthActions, RoundTrips, csrf_token
from tests.ledger_helpers import assert_invariants
from tests.mail_helpers import link_in, outbox, path_of
from tests.webauthn_helpers import SoftAuthenticator
from webapp.account import services as account_services
from webapp.auth import services as auth_services
from webapp.clock import utcnow
from webapp.database.schema import (
    account_tokens,
    accounts,
    cards,
    family_invites,
    ledger,
    mail_outbox,
    metadata,
    passkeys,
    refresh_tokens,
    wallets,
    webauthn_challenges,
)
from webapp.errors import NotFound
from webapp.extensions import db
from webapp.family import invites
from webapp.family import services as family
from webapp.ledger import services as ledger_services

from .test_passkeys import ORIGIN, _add, _header_token, _sign_in

ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/131.0.0.0 Mobile Safari/537.36")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"



def _device(app, user_agent: str):
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = user_agent
    return client


def _post(client, path, **data):
    page = client.get("/account").get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf_token(page), **data})


def _rows(app, table, *where):
    with app.app_context():
        return db.read(
            lambda conn: [dict(r) for r in conn.execute(select(table).where(*where)).mappings()],
            name="test.rows", causal=True)


def _account_id(app, email="ana@example.com") -> int:
    return _rows(app, accounts, accounts.c.email == email)[0]["id"]


# -- devices ------------------------------------------------------------------------


def test_account_page_lists_signed_in_devices(app):
    phone = _device(app, ANDROID)
    AuthActions(phone).register()
    laptop = _device(app, FIREFOX)
    AuthActions(laptop).login()

    page = phone.get("/account")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert "<strong>Chrome Mobile on Android</strong> (this device)" in html
    assert "<strong>Firefox on Linux</strong></p>" in html
    assert html.count("region us") == 2
    assert ANDROID not in html  # the summary only
    assert len(re.findall(r'action="/account/devices/[0-9a-f]{32}/sign-out"', html)) == 2


def test_signing_out_another_device_takes_effect_on_its_next_request(app):
    phone = _device(app, ANDROID)
    AuthActions(phone).register()
    laptop = _device(app, FIREFOX)
    AuthActions(laptop).login()
    assert laptop.get("/card").status_code == 200

    html = phone.get("/account").get_data(as_text=True)
    laptop_family = re.search(r"Firefox on Linux.*?/account/devices/([0-9a-f]{32})/sign-out",
                              html, re.S).group(1)
    response = _post(phone, f"/account/devices/{laptop_family}/sign-out")
    assert response.status_code == 302
    # The laptop's access token has minutes left; it is refused all the same.
    response = laptop.get("/card")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert laptop.get_cookie("access_token") is None
    assert phone.get("/card").status_code == 200
    assert "Firefox on Linux" not in phone.get("/account").get_data(as_text=True)
    # Someone else's device, or one already signed out: not found, nothing changes.
    assert _post(phone, f"/account/devices/{laptop_family}/sign-out").status_code == 404
    assert _post(phone, f"/account/devices/{'0' * 32}/sign-out").status_code == 404


def test_a_signed_out_device_is_refused_by_every_card_request(app):
    """The card page, its htmx refresh and its live poll check the session inside their
    own statement (checks_session_itself): each refuses a device signed out elsewhere
    on its next request, while its access token still has minutes left."""
    owner = _device(app, ANDROID)
    AuthActions(owner).register()
    assert owner.get("/card").status_code == 200
    card_id = owner.get_cookie("card").value
    etag = owner.get(f"/card/{card_id}/live").headers["ETag"]
    devices = {}
    for name in ("page", "refresh", "poll", "head"):
        devices[name] = _device(app, FIREFOX)
        AuthActions(devices[name]).login()
        assert devices[name].get("/card").status_code == 200
    poll = devices["poll"].get(f"/card/{card_id}/live", headers={"If-None-Match": etag})
    assert poll.status_code == 304  # live, nothing changed

    with app.app_context():
        account_services.sign_out_everywhere(_account_id(app))

    page = devices["page"].get("/card")
    assert (page.status_code, page.headers["Location"][:6]) == (302, "/login")
    refresh = devices["refresh"].get("/card?fresh=1", headers={"HX-Request": "true"})
    assert refresh.status_code == 204
    assert refresh.headers["HX-Redirect"].startswith("/login")
    poll = devices["poll"].get(f"/card/{card_id}/live", headers={"If-None-Match": etag})
    assert poll.status_code == 401  # not the 304 a live session gets
    head = devices["head"].head("/card")
    assert head.status_code == 302
    for device in devices.values():
        assert device.get_cookie("access_token") is None
        assert device.get_cookie("refresh_token") is None


def test_a_view_that_forgets_the_session_check_fails_closed(app):
    """checks_session_itself leaves the check to the view; a view that never makes it
    gets it made for it before anything leaves, and a signed-out device sees nothing."""
    from webapp.auth.session import checks_session_itself, login_required

    @app.route("/test-unchecked", methods=["GET", "POST"])
    @checks_session_itself
    @login_required
    def unchecked():
        return "the card"

    phone = _device(app, ANDROID)
    AuthActions(phone).register()
    assert phone.get("/test-unchecked").get_data(as_text=True) == "the card"
    laptop = _device(app, FIREFOX)
    AuthActions(laptop).login()
    poster = _device(app, FIREFOX)
    AuthActions(poster).login()
    token = csrf_token(poster.get("/account").get_data(as_text=True))
    with app.app_context():
        account_services.sign_out_everywhere(_account_id(app))
    response = laptop.get("/test-unchecked")
    assert response.status_code == 302
    assert "the card" not in response.get_data(as_text=True)
    assert laptop.get_cookie("access_token") is None
    # Only reads defer the check: a POST is refused before the view runs.
    response = poster.post("/test-unchecked", data={"csrf_token": token})
    assert response.status_code == 302
    assert "the card" not in response.get_data(as_text=True)


def test_sign_out_everywhere_ends_every_session_including_the_api(app):
    phone = _device(app, ANDROID)
    AuthActions(phone).register()
    laptop = _device(app, FIREFOX)
    AuthActions(laptop).login()
    api = app.test_client().post("/api/v1/auth/token", json={"email": "ana@example.com",
                                                             "password": PASSWORD}).get_json()
    me = app.test_client().get("/api/v1/me",
                               headers={"Authorization": f"Bearer {api['access_token']}"})
    assert me.status_code == 200

    response = _post(phone, "/account/devices/sign-out")
    assert (response.status_code, response.headers["Location"]) == (302, "/login")
    assert phone.get("/card").status_code == 302
    assert laptop.get("/card").status_code == 302
    me = app.test_client().get("/api/v1/me",
                               headers={"Authorization": f"Bearer {api['access_token']}"})
    assert me.status_code == 401
    assert app.test_client().post("/api/v1/auth/refresh", json={
        "refresh_token": api["refresh_token"]}).status_code == 401


def test_signing_out_this_device_from_the_list(app, client, auth):
    auth.register()
    html = client.get("/account").get_data(as_text=True)
    family_id = re.search(r"/account/devices/([0-9a-f]{32})/sign-out", html).group(1)
    response = _post(client, f"/account/devices/{family_id}/sign-out")
    assert (response.status_code, response.headers["Location"]) == (302, "/login")
    assert client.get("/account").status_code == 302


# -- profile ------------------------------------------------------------------------


def test_profile_corrects_name_and_birthday(app, client, auth):
    auth.register()
    response = _post(client, "/account/profile", name="Ana Sofia Silva", birthday="1990-04-01")
    assert response.status_code == 302
    [account] = _rows(app, accounts)
    [card] = _rows(app, cards)
    assert account["name"] == card["display_name"] == "Ana Sofia Silva"
    assert str(card["birthday"]) == "1990-04-01"
    assert "Ana Sofia Silva" in client.get("/card").get_data(as_text=True)

    bad = _post(client, "/account/profile", name="<b>x</b>", birthday="2999-01-01")
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "without &lt; or &gt;" in html
    assert "can&#39;t be in the future" in html or "can't be in the future" in html
    assert _rows(app, accounts)[0]["name"] == "Ana Sofia Silva"


def test_account_pages_need_sign_in(client):
    for path in ("/account", "/account/delete"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")
    assert client.post("/account/export").status_code in (302, 400)


# -- export -------------------------------------------------------------------------


def _history(app, account_id):
    with app.app_context():
        kid = family.add(account_id, "Robin", None).card
        leaver = family.add(account_id, "Sam", None).card
        family.remove(account_id, leaver["id"])
        holder = _rows(app, cards, cards.c.account_id == account_id, cards.c.slot == 0)[0]
        ledger_services.earn(card=holder["number"], store_code="IE-DUB-01", amount_minor=1250,
                             currency="EUR", idempotency_key="t-1", staff_id=None)
        ledger_services.earn(card=kid["number"], store_code="US-NYC-01", amount_minor=800,
                             currency="USD", idempotency_key="t-2", staff_id=None)
        ledger_services.redeem(card=holder["number"], store_code="IN-BLR-01", coins=3,
                               idempotency_key="t-3", staff_id=None, confirmed=True)
    return holder


ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"


def test_export_holds_everything_about_the_account_and_no_credentials(app, client, auth,
                                                                       monkeypatch):
    app.config["PUBLIC_BASE_URL"] = ORIGIN
    auth.register()
    account_id = _account_id(app)
    holder = _history(app, account_id)
    key = SoftAuthenticator("loyalty.test", ORIGIN)
    assert _add(client, key, name="Ana's phone")[0].status_code == 201
    assert _sign_in(app.test_client(), key)[0].status_code == 200
    with app.app_context():
        account_services.update_profile(account_id, "Ana Silva", date(1990, 4, 1))
        for n in range(4):  # seven entries in all
            ledger_services.earn(card=holder["number"], store_code="IE-DUB-01",
                                 amount_minor=100, currency="EUR",
                                 idempotency_key=f"t-more-{n}", staff_id=None)
    # Pages of three rows: the seven entries take three reads, never one of them all.
    monkeypatch.setattr(account_services, "EXPORT_PAGE", 3)
    with app.app_context(), RoundTrips(app) as trips, trips.counted() as statements:
        account_services.export(account_id)
    assert sum(s.startswith("SELECT ledger.id, ledger.kind") for s in statements) == 3, statements
    response = _post(client, "/account/export")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert re.fullmatch(r'attachment; filename="loyalty-card-data-\d{4}-\d{2}-\d{2}\.json"',
                        response.headers["Content-Disposition"])
    data = json.loads(response.get_data(as_text=True))
    assert data["format"] == "loyalty-card-export/1"
    assert data["account"]["email"] == "ana@example.com"
    assert data["account"]["name"] == "Ana Silva"
    assert [c["display_name"] for c in data["cards"]] == ["Ana Silva", "Robin", "Sam"]
    assert data["cards"][2]["removed_at"] is not None
    assert data["wallet"] == {"id": holder["wallet_id"], "balance": 12 + 8 - 3 + 4}
    assert [(e["kind"], e["coins"], e["store_name"]) for e in data["ledger"]] == [
        ("earn", 12, "Dublin, Grafton Street"), ("earn", 8, "New York, 5th Avenue"),
        ("redeem", -3, "Bengaluru, MG Road")] + [("earn", 1, "Dublin, Grafton Street")] * 4
    assert [e["id"] for e in data["ledger"]] == sorted({e["id"] for e in data["ledger"]})
    [passkey] = data["passkeys"]
    assert passkey["name"] == "Ana's phone"
    assert re.fullmatch(ISO_UTC, passkey["created_at"])
    assert re.fullmatch(ISO_UTC, passkey["last_used_at"])
    # Times are UTC and say so; a birthday is a date.
    for moment in (data["exported_at"], data["account"]["created_at"],
                   data["ledger"][0]["created_at"]):
        assert re.fullmatch(ISO_UTC, moment), moment
    assert data["cards"][0]["birthday"] == "1990-04-01"
    assert data["ledger"][1]["card_number"] == data["cards"][1]["number"]
    assert data["ledger"][0]["amount_minor"] == 1250
    assert len(data["devices"]) >= 1
    assert {m["kind"] for m in data["mail"]} == {"verify"}
    text = json.dumps(data)
    for secret in ("password_hash", "code_secret", "token_hash", "$argon2"):
        assert secret not in text


# -- erasure ------------------------------------------------------------------------


def _erase(client, password=PASSWORD, understood="y"):
    page = client.get("/account/delete")
    data = {"csrf_token": csrf_token(page.get_data(as_text=True)),
            "current_password": password}
    if understood:
        data["understood"] = understood
    return client.post("/account/delete", data=data)


def _rows_mentioning(app, needle: str) -> list[str]:
    """Every row of every table that holds ``needle`` anywhere."""
    found = []
    with app.app_context():
        for table in metadata.sorted_tables:
            rows = db.read(lambda conn, t=table: conn.execute(select(t)).all(), name="t",
                           causal=True)
            found += [f"{table.name}: {row}" for row in rows if needle in repr(tuple(row))]
    return found


def test_erasure_shows_the_loss_needs_the_password_and_leaves_no_trace(app, client, auth):
    auth.register()
    account_id = _account_id(app)
    holder = _history(app, account_id)
    other = app.test_client()
    AuthActions(other).login()

    page = client.get("/account/delete").get_data(as_text=True)
    assert "<strong>17 coins</strong>" in page
    assert "Robin" in page
    assert "Sam" not in page  # already removed

    assert _erase(client, password="wrong-password").status_code == 422
    assert _erase(client, understood=None).status_code == 422
    assert _rows(app, accounts)[0]["erased_at"] is None
    assert AuthActions(app.test_client()).login().status_code == 302

    response = _erase(client)
    assert response.status_code == 200
    assert "its 17 coins are forfeited" in response.get_data(as_text=True)
    assert client.get_cookie("access_token") is None

    # Signed out everywhere, and the password no longer signs in.
    assert other.get("/card").status_code == 302
    assert AuthActions(app.test_client()).login().status_code == 401
    # Every card stops working at the till.
    with app.app_context():
        for card in _rows(app, cards):
            with pytest.raises(NotFound):
                ledger_services.lookup(card["number"])
        # The ledger is untouched but for one erasure row, and still sums to the balance.
        entries = _rows(app, ledger)
        assert [e["kind"] for e in entries] == ["earn", "earn", "redeem", "erasure"]
        assert entries[-1]["coins"] == -17
        assert entries[-1]["balance_after"] == 0
        assert assert_invariants()[holder["wallet_id"]] == 0
    assert _rows(app, wallets)[0]["balance"] == 0
    [account] = _rows(app, accounts)
    assert (account["name"], account["erased_at"] is not None) == ("", True)
    assert {c["display_name"] for c in _rows(app, cards)} == {""}
    assert {c["birthday"] for c in _rows(app, cards)} == {None}
    assert _rows_mentioning(app, "ana@example.com") == []
    assert _rows_mentioning(app, "Ana Silva") == []
    assert _rows_mentioning(app, "Robin") == []

    # Erasing again changes nothing.
    with app.app_context():
        assert account_services.erase_now(account_id) == 17
    assert len(_rows(app, ledger)) == 4
    # The address is free for a new account.
    assert AuthActions(app.test_client()).register().status_code == 302


def test_erasure_of_an_empty_wallet_still_records_the_erasure(app, client, auth):
    auth.register()
    assert _erase(client).status_code == 200
    [entry] = _rows(app, ledger)
    assert (entry["kind"], entry["coins"], entry["balance_after"]) == ("erasure", 0, 0)


def test_erasure_takes_passkeys_old_addresses_and_the_family_members_sign_ins(app, client,
                                                                             auth):
    """Beyond the page's test: the owner had a passkey, moved to a new address (mail went
    to the old one) and a family member uses their card on their own phone. All of it
    goes with the account; the cards are marked removed."""
    app.config["PUBLIC_BASE_URL"] = ORIGIN
    auth.register(email="ana.old@example.com")
    account_id = _account_id(app, "ana.old@example.com")
    assert _add(client, SoftAuthenticator("loyalty.test", ORIGIN), name="Ana's phone")[
        0].status_code == 201
    with app.test_request_context():  # the mailed links are built with url_for
        auth_services.request_email_change(account_id, PASSWORD, "ana@example.com")
        [mail] = outbox(app, "ana@example.com")
        secret = path_of(link_in(mail["body_text"], "/email/confirm/")).rsplit("/", 1)[1]
        auth_services.confirm_email_change(secret, signed_in_as=account_id)
        # Days later the daily cleanup has deleted the spent links, and with them the
        # last row that named the old address, but for the mail sent to it.
        db.write(lambda conn: conn.execute(update(account_tokens).values(
            expires_at=utcnow() - timedelta(minutes=1))), name="t")
        assert account_services.cleanup()["tokens"] == 2
        robin = family.add(account_id, "Robin", date(2015, 6, 1)).card
        invite = invites.create(account_id, robin["id"])
        invites.accept(invite.token, email="robin@example.com", password="robin-own-phone-1")
        sam = family.add(account_id, "Sam", None).card
        pending = invites.create(account_id, sam["id"])
        ledger_services.earn(card=robin["number"], store_code="IE-DUB-01", amount_minor=1250,
                             currency="EUR", idempotency_key="t-robin", staff_id=None)
        assert account_services.erasure_preview(account_id) == account_services.ErasurePreview(
            12, ["Robin", "Sam"], 1)
        assert account_services.erase(account_id, PASSWORD) == 12

    for table in (passkeys, refresh_tokens, account_tokens, webauthn_challenges):
        assert _rows(app, table) == [], table.name
    # Robin's invite was used; Sam's, still open, is revoked with the cards.
    assert [(i["used_at"] is None, i["revoked_at"] is None)
            for i in _rows(app, family_invites)] == [(False, True), (True, False)]
    with app.app_context(), pytest.raises(invites.InviteGone):
        invites.check(pending.token)
    assert all(card["removed_at"] is not None for card in _rows(app, cards))
    for trace in ("ana.old@example.com", "ana@example.com", "Ana's phone", "Robin",
                  "robin@example.com"):
        assert _rows_mentioning(app, trace) == [], trace
    assert AuthActions(app.test_client()).login(
        "robin@example.com", "robin-own-phone-1").status_code == 401


def test_the_account_services_name_what_they_could_not_find(app, client, auth):
    auth.register()
    account_id = _account_id(app)
    with app.app_context():
        family.add(account_id, "Robin", None)
        # The profile form's birthday is the holder's own card's, not a family card's.
        assert account_services.profile(account_id)["holder"]["display_name"] == "Ana Silva"
        with pytest.raises(NotFound, match=r"^That device is not signed in\.$"):
            account_services.sign_out_device(account_id, "0" * 32)
        with pytest.raises(NotFound, match=r"^No such account\.$"):
            account_services.erase_now(account_id + 1000)


# -- cleanup ------------------------------------------------------------------------


def test_cleanup_deletes_unverified_accounts_after_the_configured_time(app, client, auth):
    app.config["PUBLIC_BASE_URL"] = ORIGIN
    auth.register()  # verified
    for email in ("old@example.com", "older@example.com", "new@example.com"):
        visitor = AuthActions(app.test_client())
        assert visitor.register(email=email, verify=False).status_code == 302
    # What else the daily run deletes: a passkey challenge never answered, a device not
    # seen for its whole lifetime, a mail delivered longer ago than MAIL_RETENTION.
    assert client.post("/account/passkeys/options",
                       headers=_header_token(client)).status_code == 200
    ttl = app.config["UNVERIFIED_ACCOUNT_TTL"]
    long_ago = utcnow() - max(ttl, app.config["MAIL_RETENTION"]) - timedelta(minutes=1)
    ana = _account_id(app)
    with app.test_request_context():
        # A reset for an unknown address leaves a placeholder row, no one's mail.
        auth_services.request_password_reset("nobody@example.com")
        db.write(lambda conn: [conn.execute(statement) for statement in (
            update(accounts).where(accounts.c.email.in_(
                ["old@example.com", "older@example.com", "ana@example.com"]))
            .values(created_at=long_ago),
            update(webauthn_challenges).values(expires_at=long_ago),
            update(refresh_tokens).where(refresh_tokens.c.account_id == ana)
            .values(expires_at=long_ago),
            update(mail_outbox).where(mail_outbox.c.account_id == ana).values(sent_at=long_ago),
        )], name="t")
    devices = len(_rows(app, refresh_tokens, refresh_tokens.c.account_id == ana))
    mails = len(_rows(app, mail_outbox, mail_outbox.c.account_id == ana))
    result = app.test_cli_runner().invoke(args=["accounts", "cleanup"])
    assert result.exit_code == 0, result.output
    assert (f"deleted 2 unverified accounts, 1 expired passkey challenges, {devices} expired "
            f"tokens and links, {mails} delivered mails") in result.output
    assert sorted(a["email"] for a in _rows(app, accounts)) == ["ana@example.com",
                                                                "new@example.com"]
    assert len(_rows(app, cards)) == len(_rows(app, wallets)) == 2
    assert outbox(app, "old@example.com") == outbox(app, "older@example.com") == []
    assert [m["kind"] for m in outbox(app)] == ["verify", "none"]  # new@'s, the placeholder
    # One that was verified after the list was read is kept, and not counted.
    with app.app_context():
        assert db.write(lambda conn: account_services._delete_unverified(conn, ana),
                        name="t") is False
    assert _account_id(app) == ana
