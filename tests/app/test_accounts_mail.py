"""Registration with a verified address, password reset, password and email changes:
real mail over a real SMTP server (aiosmtpd in this process), links followed from the
messages that arrived, on SQLite and on the Galera lab.
"""

from __future__ import annotations

import re
import statistics
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tests.helpers import PASSWORD, AuthActions, csrf_token
from tests.mail_helpers import confirm_link, outbox, path_of, verify_via_outbox
from webapp.auth import links
from webapp.clock import utcnow
from webapp.database.schema import account_tokens, accounts, mail_outbox
from webapp.extensions import db

NEW_PASSWORD = "a-brand-new-password"
BASE = "https://loyalty.test"



@pytest.fixture
def mail(app, smtp_server):
    """The app delivers to the test's SMTP server; links point at BASE."""
    app.config.update(smtp_server.config(), PUBLIC_BASE_URL=BASE,
                      MAIL_SENDER="Café Loyalty <hello@loyalty.test>")
    return smtp_server


def send_mail(app) -> str:
    """What the production mail worker does, once: ``flask mail send``."""
    result = app.test_cli_runner().invoke(args=["mail", "send"])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def _rows(app, table, *where):
    with app.app_context():
        return db.read(
            lambda conn: [dict(r) for r in conn.execute(select(table).where(*where)).mappings()],
            name="test.rows", causal=True)


def _write(app, statement):
    with app.app_context():
        db.write(lambda conn: conn.execute(statement), name="test.write")


def _register_page(client, email, *, password=PASSWORD, name="Ana Silva", headers=None):
    page = client.get("/register", headers=headers or {}).get_data(as_text=True)
    return client.post("/register", headers=headers or {}, data={
        "csrf_token": csrf_token(page), "name": name, "email": email, "password": password,
        "region": "ie"})


def _forgot(client, email):
    page = client.get("/password/forgot").get_data(as_text=True)
    return client.post("/password/forgot", data={"csrf_token": csrf_token(page),
                                                 "email": email})


def _normalized(html: str) -> str:
    return re.sub(r'(value="|"X-CSRFToken": ")[^"]{20,}"', r'\1TOKEN"', html)


def _answer(client, response) -> tuple[int, str, int, str]:
    """Status, Location, then the status and body of the page it leads to."""
    follow = client.get(response.headers["Location"])
    return (response.status_code, response.headers["Location"], follow.status_code,
            _normalized(follow.get_data(as_text=True)))


# -- registration -------------------------------------------------------------------


def test_registration_mail_arrives_and_its_link_verifies_and_signs_in(app, client, mail):
    response = _register_page(client, "Ana@Example.com",
                              headers={"Host": "attacker.example"})
    assert (response.status_code, response.headers["Location"]) == (302, "/register/sent")
    assert client.get_cookie("access_token") is None  # registering never signs in
    assert send_mail(app) == "mail: 1 sent, 0 failed"

    [received] = mail.to("ana@example.com")
    message = received.message
    assert message["From"] == "Café Loyalty <hello@loyalty.test>"
    assert received.envelope_from == "hello@loyalty.test"
    assert message["Subject"] == "Confirm your email address"
    assert message.get_body(preferencelist=("plain",)) is not None
    assert message.get_body(preferencelist=("html",)) is not None
    url = received.link("/verify/")
    # Built from PUBLIC_BASE_URL, never from the Host header the client sent.
    assert url.startswith(BASE + "/verify/")
    assert "attacker.example" not in received.text + received.html
    assert url in received.html
    # Delivered: the row is marked sent and no longer holds the link.
    [row] = outbox(app, "ana@example.com")
    assert row["sent_at"] is not None
    assert row["body_text"] == row["body_html"] == ""

    # Opening the link changes nothing (mail scanners follow links); the button does.
    page = client.get(path_of(url))
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    [account] = _rows(app, accounts)
    assert account["email_verified_at"] is None
    response = confirm_link(client, url)
    assert (response.status_code, response.headers["Location"]) == (302, "/card")
    assert client.get("/card").status_code == 200
    [account] = _rows(app, accounts)
    assert account["email_verified_at"] is not None
    assert account["email"] == "ana@example.com"


def test_unverified_sign_in_is_answered_exactly_like_a_wrong_password(app, client):
    _register_page(client, "ana@example.com")
    actions = AuthActions(app.test_client())
    unverified = actions.login(password=PASSWORD)
    wrong = actions.login(password="not-the-password")
    assert unverified.status_code == wrong.status_code == 401
    assert _normalized(unverified.get_data(as_text=True)) == _normalized(
        wrong.get_data(as_text=True))
    assert "access_token" not in unverified.headers.get("Set-Cookie", "")


def test_each_registration_link_sets_its_own_password(app, client):
    """Two registrations of one unverified address: whoever opens a link gets the
    password chosen with that link, never a later registration's."""
    _register_page(client, "ana@example.com", password="first-password-1")
    _register_page(app.test_client(), "ana@example.com", password="second-password-2")
    first, second = [m for m in outbox(app, "ana@example.com") if m["kind"] == "verify"]
    assert len(_rows(app, accounts)) == 1
    confirm_link(client, re.search(r"http\S+/verify/\S+", first["body_text"]).group())
    assert AuthActions(app.test_client()).login(password="first-password-1").status_code == 302
    assert AuthActions(app.test_client()).login(password="second-password-2").status_code == 401
    # The other link is still single use and now finds the address verified.
    other = app.test_client()
    confirm_link(other, re.search(r"http\S+/verify/\S+", second["body_text"]).group())
    assert AuthActions(app.test_client()).login(password="first-password-1").status_code == 302


def test_registration_rerun_after_a_lost_commit_gives_the_same_answer(app, client,
                                                                       monkeypatch):
    """The router re-runs a unit of work whose COMMIT acknowledgement was lost. Here every
    registration and verification is run twice, the second time after the first
    committed: the re-run must recognise its own rows, not report the address as taken,
    queue a second mail, or refuse its own link as used."""
    router = app.extensions["loyalty_db.router"]
    original = router.run

    def run_twice(work, *, name, **options):
        result = original(work, name=name, **options)
        if name in ("account.start_registration", "account.verify",
                    "account.reset_password"):
            result = original(work, name=name, **options)
        return result

    monkeypatch.setattr(router, "run", run_twice)
    response = _register_page(client, "ana@example.com")
    assert response.headers["Location"] == "/register/sent"
    assert [m["kind"] for m in outbox(app)] == ["verify"]
    response = confirm_link(client, re.search(r"http\S+/verify/\S+",
                                              outbox(app)[0]["body_text"]).group())
    assert (response.status_code, response.headers["Location"]) == (302, "/card")
    assert len(_rows(app, accounts)) == 1

    _forgot(app.test_client(), "ana@example.com")
    reset = [m for m in outbox(app) if m["kind"] == "reset"]
    assert len(reset) == 1
    response = confirm_link(app.test_client(),
                            re.search(r"http\S+/password/reset/\S+",
                                      reset[0]["body_text"]).group(), password=NEW_PASSWORD)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert [m["kind"] for m in outbox(app)].count("password_changed") == 1


def test_registration_and_reset_answer_the_same_for_known_and_unknown(app, client,
                                                                      monkeypatch):
    """Status, redirect and page are equal for a verified address, an unverified one and
    a new one; the time each takes is measured and printed (medians), not asserted."""
    monkeypatch.undo()  # the real argon2id cost: the timing is the point here
    AuthActions(client).register(email="known@example.com")
    _register_page(app.test_client(), "pending@example.com")
    answers: dict[str, dict[str, tuple]] = {"register": {}, "reset": {}}
    timings: dict[str, list[float]] = {}
    rounds = 5
    for who in ("known", "pending", "unknown"):
        for round_ in range(rounds):
            visitor = app.test_client()
            address = f"{who}@example.com" if who != "unknown" else f"new{round_}@example.com"
            started = time.perf_counter()
            response = _register_page(visitor, address)
            timings.setdefault(f"register {who}", []).append(time.perf_counter() - started)
            answers["register"].setdefault(who, _answer(visitor, response))
            started = time.perf_counter()
            response = _forgot(visitor, address if who != "unknown" else "nobody@example.com")
            timings.setdefault(f"reset {who}", []).append(time.perf_counter() - started)
            answers["reset"].setdefault(who, _answer(visitor, response))
    for kind, by_who in answers.items():
        assert by_who["known"] == by_who["pending"] == by_who["unknown"], kind
    print("\nmedian seconds per request (not asserted):")
    for name, values in timings.items():
        print(f"  {name:<18} {statistics.median(values):.4f}  (n={len(values)})")


def test_registration_is_limited_per_address_whoever_asks(app):
    app.config["ADDRESS_RATE_LIMIT"] = "2 per hour"
    statuses = [_register_page(app.test_client(), "ana@example.com").status_code
                for _ in range(3)]
    assert statuses == [302, 302, 429]
    # Another address is not affected, and neither is the same address's reset form.
    assert _register_page(app.test_client(), "bob@example.com").status_code == 302
    assert len(outbox(app, "ana@example.com")) == 2


def test_demo_outbox_page_only_when_mail_stays_in_the_outbox(app, client):
    assert client.get("/demo/outbox").status_code == 404
    app.config["MAIL_BACKEND"] = "outbox"
    _register_page(client, "ana@example.com")
    assert send_mail(app) == "mail: 0 sent, 0 failed"  # the demo never sends
    page = client.get("/demo/outbox")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Confirm your email address" in html
    assert 'href="http://localhost/verify/' in html


# -- mail server down ---------------------------------------------------------------


def test_mail_server_down_delays_the_mail_and_never_fails_the_request(app, client, mail):
    mail.stop()
    response = _register_page(client, "ana@example.com")
    assert (response.status_code, response.headers["Location"]) == (302, "/register/sent")
    assert send_mail(app) == "mail: 0 sent, 1 failed"
    [row] = outbox(app)
    assert row["sent_at"] is None
    assert row["attempts"] == 1
    assert "ConnectionRefusedError" in row["last_error"]
    assert row["next_attempt_at"] > utcnow()  # backing off, not hammering the server
    assert send_mail(app) == "mail: 0 sent, 0 failed"  # not due yet

    mail.start()
    _write(app, update(mail_outbox).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    assert send_mail(app) == "mail: 1 sent, 0 failed"
    response = confirm_link(client, mail.to("ana@example.com")[0].link("/verify/"))
    assert response.headers["Location"] == "/card"


def test_a_permanent_refusal_is_given_up_at_once(app, client, mail):
    mail.handler.refuse = {"gone@example.com"}
    _register_page(client, "gone@example.com")
    _register_page(app.test_client(), "ana@example.com")
    assert send_mail(app) == "mail: 1 sent, 1 failed"
    gone = outbox(app, "gone@example.com")[0]
    assert gone["attempts"] == app.config["MAIL_MAX_ATTEMPTS"]
    assert "550" in gone["last_error"]
    _write(app, update(mail_outbox).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    assert send_mail(app) == "mail: 0 sent, 0 failed"


# -- password reset -----------------------------------------------------------------


def _reset_link(mail, address="ana@example.com") -> str:
    return [m for m in mail.to(address) if m.message["Subject"] == "Reset your password"][
        -1].link("/password/reset/")


def test_password_reset_by_mail_signs_every_device_out(app, client, auth, mail):
    auth.register()
    other_device = app.test_client()
    AuthActions(other_device).login()
    api_refresh = app.test_client().post("/api/v1/auth/token", json={
        "email": "ana@example.com", "password": PASSWORD}).get_json()["refresh_token"]

    visitor = app.test_client()
    assert _forgot(visitor, "ana@example.com").headers["Location"] == "/password/forgot/sent"
    send_mail(app)
    url = _reset_link(mail)
    assert url.startswith(BASE + "/password/reset/")
    page = visitor.get(path_of(url))
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    response = confirm_link(visitor, url, password=NEW_PASSWORD)
    assert (response.status_code, response.headers["Location"]) == (302, "/login?reset=1")

    # Every refresh token of the account is revoked, and live access tokens are refused
    # at their next request.
    assert client.get("/card").status_code == 302
    assert other_device.get("/card").status_code == 302
    refused = app.test_client().post("/api/v1/auth/refresh",
                                     json={"refresh_token": api_refresh})
    assert refused.status_code == 401
    assert AuthActions(app.test_client()).login(password=PASSWORD).status_code == 401
    assert AuthActions(app.test_client()).login(password=NEW_PASSWORD).status_code == 302
    send_mail(app)
    assert mail.to("ana@example.com")[-1].message["Subject"] == "Your password was changed"


def _page_reason(response) -> tuple[int, str]:
    html = response.get_data(as_text=True)
    return response.status_code, re.search(r"<h1>([^<]*)</h1>", html).group(1)


def test_bad_reset_links_each_get_their_own_clear_page(app, client, auth, mail):
    auth.register()
    visitor = app.test_client()
    _forgot(visitor, "ana@example.com")
    send_mail(app)
    first = _reset_link(mail)
    _forgot(visitor, "ana@example.com")
    send_mail(app)
    second = _reset_link(mail)
    assert first != second

    # Replaced by the newer request.
    assert _page_reason(visitor.get(path_of(first))) == (410, "A newer link replaced this one")
    # Forged: a token that was never issued, or one cut short.
    assert _page_reason(visitor.get("/password/reset/" + "x" * 43)) == (
        404, "This link is not valid")
    assert _page_reason(visitor.get(path_of(second)[:-5])) == (404, "This link is not valid")
    # Another account's: opened while signed in as someone else.
    bob = app.test_client()
    AuthActions(bob).register(email="bob@example.com", name="Bob", verify=False)
    verify_via_outbox(bob, "bob@example.com")
    assert _page_reason(bob.get(path_of(second))) == (403, "This link belongs to another account")
    # A verify link is not a reset link.
    verify = mail.to("ana@example.com")[0].link("/verify/")
    assert _page_reason(visitor.get("/password/reset/" + verify.rsplit("/", 1)[1])) == (
        404, "This link is not valid")
    # Used: it works once.
    assert confirm_link(visitor, second, password=NEW_PASSWORD).status_code == 302
    assert _page_reason(visitor.get(path_of(second))) == (410, "This link was already used")
    again = visitor.post(path_of(second), data={
        "csrf_token": csrf_token(visitor.get("/password/forgot").get_data(as_text=True)),
        "password": "yet-another-password"})
    assert _page_reason(again) == (410, "This link was already used")
    assert AuthActions(app.test_client()).login(password="yet-another-password").status_code == 401
    # Expired: 30 minutes.
    _forgot(visitor, "ana@example.com")
    send_mail(app)
    third = _reset_link(mail)
    _write(app, update(account_tokens).where(account_tokens.c.purpose == "reset").values(
        expires_at=utcnow() - timedelta(seconds=1)))
    assert _page_reason(visitor.get(path_of(third))) == (410, "This link has expired")


def test_reset_link_is_stored_hashed_and_dies_with_a_password_change(app, client, auth, mail):
    auth.register()
    _forgot(app.test_client(), "ana@example.com")
    send_mail(app)
    url = _reset_link(mail)
    secret = url.rsplit("/", 1)[1]
    [row] = _rows(app, account_tokens, account_tokens.c.purpose == "reset")
    assert row["token_hash"] == links.digest(secret)
    assert row["expires_at"] - row["created_at"] == timedelta(minutes=30)
    assert secret not in str(_rows(app, account_tokens))

    response = _change_password(client, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302
    assert _page_reason(app.test_client().get(path_of(url))) == (
        410, "A newer link replaced this one")


def test_reset_for_an_unknown_address_mails_nobody(app, mail):
    _forgot(app.test_client(), "nobody@example.com")
    assert send_mail(app) == "mail: 0 sent, 0 failed"
    assert mail.messages == []


# -- changing the password and the address -------------------------------------------


def _change_password(client, current, new):
    page = client.get("/account").get_data(as_text=True)
    return client.post("/account/password", data={"csrf_token": csrf_token(page),
                                                   "current_password": current,
                                                   "password": new})


def test_change_password_keeps_this_device_and_signs_out_the_others(app, client, auth, mail):
    auth.register()
    other = app.test_client()
    AuthActions(other).login()
    assert other.get("/card").status_code == 200

    wrong = _change_password(client, "not-my-password", NEW_PASSWORD)
    assert wrong.status_code == 422
    assert "That is not your current password." in wrong.get_data(as_text=True)
    assert AuthActions(app.test_client()).login().status_code == 302

    assert _change_password(client, PASSWORD, NEW_PASSWORD).status_code == 302
    assert client.get("/card").status_code == 200
    assert other.get("/card").status_code == 302  # its access token is still unexpired
    assert AuthActions(app.test_client()).login(password=NEW_PASSWORD).status_code == 302
    send_mail(app)
    [notice] = [m for m in mail.to("ana@example.com")
                if m.message["Subject"] == "Your password was changed"]
    assert "except the one that changed it" in notice.text


def _change_email(client, new, password=PASSWORD):
    page = client.get("/account").get_data(as_text=True)
    return client.post("/account/email", data={"csrf_token": csrf_token(page), "email": new,
                                               "email_password": password})


def test_change_email_is_confirmed_at_the_new_address_and_told_to_the_old(app, client, auth,
                                                                          mail):
    auth.register()
    assert _change_email(client, "ana@example.com").status_code == 422
    assert _change_email(client, "ana.new@example.com", "wrong-password").status_code == 422
    response = _change_email(client, "Ana.New@Example.com")
    assert response.status_code == 302
    send_mail(app)
    [confirm] = mail.to("ana.new@example.com")
    [notice] = mail.to("ana@example.com")[-1:]
    assert notice.message["Subject"] == "A change of your email address was requested"
    # Nothing changes until the new address confirms.
    assert AuthActions(app.test_client()).login().status_code == 302

    response = confirm_link(client, confirm.link("/email/confirm/"))
    assert response.status_code == 200
    assert AuthActions(app.test_client()).login().status_code == 401
    assert AuthActions(app.test_client()).login(email="ana.new@example.com").status_code == 302
    send_mail(app)
    assert mail.to("ana@example.com")[-1].message["Subject"] == "Your email address was changed"
    assert _page_reason(client.get(path_of(confirm.link("/email/confirm/")))) == (
        410, "This link was already used")


def test_change_email_to_a_taken_address_answers_the_same_and_tells_its_owner(app, client,
                                                                              auth, mail):
    AuthActions(app.test_client()).register(email="bob@example.com", name="Bob")
    auth.register()
    taken = _change_email(client, "bob@example.com")
    free = _change_email(client, "free@example.com")
    assert taken.status_code == free.status_code == 302
    send_mail(app)
    bob_mail = [m for m in mail.to("bob@example.com")
                if m.message["Subject"] == "Someone tried to move an account to your address"]
    assert len(bob_mail) == 1
    assert "/email/confirm/" not in bob_mail[0].text
    [account] = _rows(app, accounts, accounts.c.email == "ana@example.com")
    assert account is not None


def test_mail_goes_over_starttls_with_the_configured_login(app, client, tmp_path):
    """TLS and credentials come from config: the relay requires STARTTLS and a login,
    and trusts nothing but the CA file it is given."""
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from tests.mail_helpers import SmtpServer, tls_context

    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login, auth_data.password) == (b"mailer", b"relay-secret")
        logins.append((mechanism, ok))
        return AuthResult(success=ok, handled=False)

    context, ca_file = tls_context(tmp_path)
    server = SmtpServer(tls_context=context, require_starttls=True,
                        authenticator=authenticator, auth_required=True,
                        auth_require_tls=True).start()
    try:
        app.config.update(server.config(), MAIL_SERVER="localhost", MAIL_SECURITY="starttls",
                          MAIL_CA_FILE=str(ca_file), MAIL_USERNAME="mailer",
                          MAIL_PASSWORD="wrong-secret")
        _register_page(client, "ana@example.com")
        assert send_mail(app) == "mail: 0 sent, 1 failed"  # a wrong password is not sent
        assert "SMTPAuthenticationError" in outbox(app)[0]["last_error"]
        app.config["MAIL_PASSWORD"] = "relay-secret"
        _write(app, update(mail_outbox).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        assert send_mail(app) == "mail: 1 sent, 0 failed"
        [received] = server.to("ana@example.com")
        assert received.link("/verify/").startswith("http://localhost/verify/")
        # smtplib tries PLAIN, then LOGIN, with the wrong password; then one good login.
        assert [ok for _, ok in logins][-1] is True
        assert [ok for _, ok in logins].count(True) == 1
    finally:
        server.stop()


def test_openapi_documents_the_one_registration_answer(client):
    document = client.get("/api/v1/openapi.json").get_json()
    responses = document["paths"]["/auth/register"]["post"]["responses"]
    assert "202" in responses
    assert not {"201", "409"} & set(responses)
    schema = document["components"]["schemas"]["RegistrationAccepted"]
    assert schema["properties"]["status"]["const"] == "check-your-inbox"
