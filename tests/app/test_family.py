"""Family members: up to four extra cards on one wallet; add, rename, remove; htmx gets
the #family block alone, plain forms get the page or a redirect. That the limit holds
when many phones add at once through two app instances on two Galera nodes:
``tests/cluster/test_family_race.py``."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from tests.helpers import AuthActions, csrf_token
from webapp.database.schema import accounts, cards
from webapp.errors import NotFound
from webapp.extensions import db
from webapp.ledger import services as ledger

HTMX = {"HX-Request": "true", "HX-Target": "family", "HX-Current-URL": "http://localhost/family"}


def _token(client) -> str:
    return csrf_token(client.get("/family").get_data(as_text=True))


def _account_id(app, email="ana@example.com") -> int:
    with app.app_context():
        return db.read(lambda conn: conn.execute(
            select(accounts.c.id).where(accounts.c.email == email)).scalar(), name="test")


def _all_cards(app, account_id: int) -> list[dict]:
    with app.app_context():
        return db.read(lambda conn: [dict(r) for r in conn.execute(
            select(cards).where(cards.c.account_id == account_id).order_by(cards.c.id)
        ).mappings()], name="test", causal=True)


def _members(app, account_id: int) -> list[dict]:
    return [c for c in _all_cards(app, account_id) if c["slot"] not in (None, 0)]


def add(client, name: str, *, htmx: bool = False, birthday: str = ""):
    data = {"csrf_token": _token(client), "name": name, "birthday": birthday}
    return client.post("/family", data=data, headers=HTMX if htmx else {})


@pytest.fixture
def signed_in(client, auth):
    auth.register()
    return client


def test_add_four_members_then_the_fifth_is_refused(app, signed_in):
    for i, name in enumerate(["Tom", "Zoë", "Li Wei", "Aoife"], start=1):
        response = add(signed_in, name, birthday=f"2015-06-0{i}")
        assert response.status_code == 302
        assert response.headers["Location"] == "/family"
        page = signed_in.get("/family").get_data(as_text=True)
        assert f"{name} now has a card." in page
        assert f"Members ({i} of 4)" in page

    response = add(signed_in, "Fifth")
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "A family can have at most 4 members besides you." in html
    assert "<html" in html  # a plain form post gets the whole page back
    members = _members(app, _account_id(app))
    assert sorted(m["slot"] for m in members) == [1, 2, 3, 4]
    assert "Fifth" not in {m["display_name"] for m in members}
    page = signed_in.get("/family").get_data(as_text=True)
    assert "Your family is full (4 members)" in page
    assert 'action="/family" class="panel"' not in page  # no add form when full


def test_fifth_member_through_htmx_gets_the_partial_with_the_message(app, signed_in):
    for name in ("A", "B", "C", "D"):
        assert add(signed_in, name, htmx=True).status_code == 200
    response = add(signed_in, "E", htmx=True)
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<section id="family"')
    assert "<html" not in html
    assert "<body" not in html
    assert "at most 4 members" in html
    assert len(_members(app, _account_id(app))) == 4


def test_htmx_gets_only_the_family_block_and_plain_requests_the_page(app, signed_in):
    response = add(signed_in, "Tom", htmx=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<section id="family"')
    assert html.rstrip().endswith("</section>")
    assert "<html" not in html
    assert "<head" not in html
    assert "<h1>" not in html
    assert "Tom now has a card." in html
    assert "Members (1 of 4)" in html

    full = signed_in.get("/family").get_data(as_text=True)
    assert full.lstrip().lower().startswith("<!doctype html>")
    assert '<section id="family"' in full
    # A boosted navigation wants the whole page, not the fragment.
    boosted = signed_in.get("/family", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert "<html" in boosted.get_data(as_text=True)
    partial = signed_in.get("/family", headers=HTMX).get_data(as_text=True)
    assert "<html" not in partial
    assert '<section id="family"' in partial


def test_rename_a_member(app, signed_in):
    add(signed_in, "Tom")
    [tom] = _members(app, _account_id(app))
    response = signed_in.post(f"/family/{tom['id']}", data={
        "csrf_token": _token(signed_in), f"m{tom['id']}-name": "Thomas",
        f"m{tom['id']}-birthday": "2014-02-03"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/family"
    [renamed] = _members(app, _account_id(app))
    assert (renamed["display_name"], str(renamed["birthday"])) == ("Thomas", "2014-02-03")
    assert (renamed["number"], renamed["slot"]) == (tom["number"], tom["slot"])
    assert "Thomas" in signed_in.get(f"/card?card={tom['id']}").get_data(as_text=True)

    response = signed_in.post(f"/family/{tom['id']}", headers=HTMX, data={
        "csrf_token": _token(signed_in), f"m{tom['id']}-name": "Tommy"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert 'value="Tommy"' in html
    assert "Saved." in html


def test_rename_with_invalid_name_shows_the_error_and_keeps_the_name(app, signed_in):
    add(signed_in, "Tom")
    [tom] = _members(app, _account_id(app))
    response = signed_in.post(f"/family/{tom['id']}", headers=HTMX, data={
        "csrf_token": _token(signed_in), f"m{tom['id']}-name": ""})
    assert response.status_code == 422
    assert "This field is required." in response.get_data(as_text=True)
    assert _members(app, _account_id(app))[0]["display_name"] == "Tom"


def test_the_holder_card_cannot_be_renamed_or_removed_here(app, signed_in):
    [holder] = _all_cards(app, _account_id(app))
    rename = signed_in.post(f"/family/{holder['id']}", data={
        "csrf_token": _token(signed_in), f"m{holder['id']}-name": "Hacked"})
    remove = signed_in.post(f"/family/{holder['id']}/remove",
                            data={"csrf_token": _token(signed_in)})
    assert (rename.status_code, remove.status_code) == (404, 404)
    [after] = _all_cards(app, _account_id(app))
    assert after == holder


def test_remove_frees_the_slot_stops_the_card_and_keeps_history(app, signed_in):
    for name in ("Tom", "Zoë", "Li", "Aoife"):
        add(signed_in, name)
    account_id = _account_id(app)
    zoe = next(m for m in _members(app, account_id) if m["display_name"] == "Zoë")
    with app.app_context():
        ledger.earn(card=zoe["number"], store_code="IE-DUB-01", amount_minor=750,
                    currency="EUR", idempotency_key=uuid.uuid4().hex, staff_id=None)

    response = signed_in.post(f"/family/{zoe['id']}/remove", data={
        "csrf_token": _token(signed_in)})
    assert response.status_code == 302
    page = signed_in.get("/family").get_data(as_text=True)
    assert "Family member removed." in page
    assert "Members (3 of 4)" in page

    # The card stops working at the till...
    with app.app_context(), pytest.raises(NotFound):
        ledger.lookup(zoe["number"])
    # ...its row stays (history names it), without a slot...
    removed = next(c for c in _all_cards(app, account_id) if c["id"] == zoe["id"])
    assert removed["slot"] is None
    assert removed["removed_at"] is not None
    card_page = signed_in.get("/card").get_data(as_text=True)
    assert "Earn · Zoë" in card_page
    # ...its card page is gone (falls back to the holder's)...
    assert f"card={zoe['id']}" not in card_page
    # ...and the freed slot takes a new member.
    assert add(signed_in, "Noor").status_code == 302
    members = _members(app, account_id)
    assert sorted(m["slot"] for m in members) == [1, 2, 3, 4]
    assert next(m for m in members if m["display_name"] == "Noor")["slot"] == zoe["slot"]
    # Removing twice is a clean 404, not a crash.
    again = signed_in.post(f"/family/{zoe['id']}/remove", data={"csrf_token": _token(signed_in)})
    assert again.status_code == 404


def test_remove_through_htmx_returns_the_block(app, signed_in):
    add(signed_in, "Tom")
    [tom] = _members(app, _account_id(app))
    response = signed_in.post(f"/family/{tom['id']}/remove", headers=HTMX,
                              data={"csrf_token": _token(signed_in)})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert "No family members yet." in html


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_another_accounts_member_is_not_found(app, signed_in, htmx):
    add(signed_in, "Tom")
    [tom] = _members(app, _account_id(app))
    mallory = app.test_client()
    AuthActions(mallory).register(email="mallory@example.com", name="Mallory")
    headers = HTMX if htmx else {}

    rename = mallory.post(f"/family/{tom['id']}", headers=headers, data={
        "csrf_token": _token(mallory), f"m{tom['id']}-name": "Owned"})
    remove = mallory.post(f"/family/{tom['id']}/remove", headers=headers,
                          data={"csrf_token": _token(mallory)})
    assert (rename.status_code, remove.status_code) == (404, 404)
    assert "No such family member." in remove.get_data(as_text=True)
    assert ("<html" in remove.get_data(as_text=True)) is not htmx
    assert _members(app, _account_id(app)) == [tom]
    # Nor can Mallory show Tom's card: it falls back to her own.
    page = mallory.get(f"/card?card={tom['id']}").get_data(as_text=True)
    assert tom["number"][-4:] not in page
    assert "Mallory" in page


@pytest.mark.parametrize("card_id", ["0", "99999999", "9223372036854775807",
                                     "99999999999999999999999999"])
def test_unknown_member_ids_are_not_found(app, signed_in, card_id):
    for path in (f"/family/{card_id}", f"/family/{card_id}/remove"):
        response = signed_in.post(path, data={"csrf_token": _token(signed_in),
                                              f"m{card_id}-name": "X"})
        assert response.status_code == 404, path


def test_family_pages_need_sign_in(client):
    assert client.get("/family").headers["Location"].startswith("/login")
    response = client.get("/family", headers=HTMX)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"].startswith("/login")


def test_renaming_or_removing_someone_elses_or_no_card_is_not_found(app):
    """Another account's family card is "no such family member", like a missing one."""
    from tests.ledger_helpers import new_customer
    from webapp.family import services as family

    with app.app_context():
        ana = new_customer("ana.nf@example.com")["account"]["id"]
        bo = new_customer("bo.nf@example.com")["account"]["id"]
        kid = family.add(ana, "Kid", None).card["id"]
        for call in (lambda: family.rename(bo, kid, "Other", None),
                     lambda: family.rename(ana, 999_999, "Other", None),
                     lambda: family.remove(bo, kid),
                     lambda: family.remove(ana, 999_999)):
            with pytest.raises(NotFound, match=r"^No such family member\.$"):
                call()
        assert [m["display_name"] for m in family.members(ana)] == ["Kid"]


def test_an_add_is_no_replay_and_its_request_id_sent_again_is(app):
    from tests.ledger_helpers import new_customer
    from webapp.family import services as family

    with app.app_context():
        ana = new_customer("ana.rp@example.com")["account"]["id"]
        request_id = family.new_request_id()
        first = family.add(ana, "Kid", None, request_id)
        again = family.add(ana, "Kid", None, request_id)
        assert (first.replayed, again.replayed) == (False, True)
        assert again.card["id"] == first.card["id"]
        assert [m["display_name"] for m in family.members(ana)] == ["Kid"]
