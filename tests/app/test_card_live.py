"""The live card: the conditional endpoint the card page polls (304 while nothing
changed, the new wallet block after an earn, 401 once the caller may not see the card)."""

from __future__ import annotations

import re

from .test_card import _earn, family  # noqa: F401 - the fixture is used by name


def _live(html: str) -> tuple[str, str]:
    match = re.search(r'id="wallet"[^>]*data-live="([^"]+)" data-etag="([^"]+)"', html)
    assert match, "the card page does not say where to poll"
    return match.group(1), match.group(2).replace("&#34;", '"')


def test_live_answers_304_until_the_wallet_changes_then_the_new_row(app, family):  # noqa: F811
    client = family["client"]
    url, etag = _live(client.get(f"/card?card={family['tom']['id']}").get_data(as_text=True))
    unchanged = client.get(url, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.get_data() == b""
    assert unchanged.headers["ETag"] == etag
    assert "no-store" in unchanged.headers["Cache-Control"]

    _earn(app, family["tom"]["number"], 1250)  # 12 coins at Dublin
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    html = changed.get_data(as_text=True)
    assert '<strong id="balance">12</strong>' in html
    assert 'data-announce="+12 coins at Dublin, Grafton Street"' in html
    new_url, new_etag = _live(html)
    assert new_url == url
    assert new_etag == changed.headers["ETag"] != etag
    assert client.get(url, headers={"If-None-Match": new_etag}).status_code == 304
    # Another family member's earn changes the shared balance: the card updates too.
    _earn(app, family["zoe"]["number"], 500)
    assert client.get(url, headers={"If-None-Match": new_etag}).status_code == 200


def test_live_refuses_a_card_that_is_not_the_callers(app, family, client):  # noqa: F811
    other = app.test_client()
    from tests.conftest import AuthActions

    AuthActions(other).register(email="eve@example.com", name="Eve")
    response = other.get(f"/card/{family['tom']['id']}/live")
    assert response.status_code == 401
    assert b"Tom" not in response.get_data()


def test_live_without_a_session_is_401_not_a_redirect(app):
    response = app.test_client().get("/card/1/live")
    assert response.status_code == 401
    assert "Location" not in response.headers
