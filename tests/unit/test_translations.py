"""The catalogs and the formats, without a database.

The catalogs are committed (the .po for translators, the compiled .mo for the app), so
these fail when someone adds a text and forgets ``make translations``, when a Hindi
message is missing, fuzzy or drops a placeholder, or when the .mo is older than its .po.
"""

from __future__ import annotations

import re
from datetime import datetime
from io import BytesIO

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from tests.helpers import ROOT
from webapp.config import LOCALES
from webapp.i18n import formatting

CATALOGS = ROOT / "webapp" / "translations"
LANGUAGES = ["hi"]
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def _ids(message) -> tuple[str, ...]:
    return tuple(message.id) if isinstance(message.id, (list, tuple)) else (message.id,)


def extracted() -> set[str]:
    """What ``make translations`` would extract now (same mapping file and keywords)."""
    with open(ROOT / "babel.cfg") as config:
        method_map, options_map = parse_mapping_cfg(config)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "_l": None}
    return {message[2] if isinstance(message[2], str) else message[2][0]
            for message in extract_from_dir(str(ROOT), method_map, options_map,
                                            keywords=keywords)}


def po(language: str):
    with open(CATALOGS / language / "LC_MESSAGES" / "messages.po", "rb") as file:
        return read_po(file, locale=language)


def test_the_template_catalog_has_every_text_of_the_code_and_templates():
    with open(CATALOGS / "messages.pot", "rb") as file:
        template = {_ids(m)[0] for m in read_po(file) if m.id}
    missing = extracted() - template
    assert not missing, f"run `make translations`: not in messages.pot: {sorted(missing)}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated_with_its_placeholders(language):
    catalog = po(language)
    needed = extracted()
    found = {_ids(m)[0]: m for m in catalog if m.id}
    assert not needed - set(found), f"not in {language}: {sorted(needed - set(found))}"
    for message in found.values():
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), f"{language}: untranslated {message.id!r}"
        assert not message.fuzzy, f"{language}: fuzzy {message.id!r}"
        wanted = sorted(PLACEHOLDER.findall(_ids(message)[-1]))
        for string in strings:
            assert sorted(PLACEHOLDER.findall(string)) == wanted, (message.id, string)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_committed_mo_is_the_compiled_po(language):
    compiled = BytesIO()
    write_mo(compiled, po(language))
    compiled.seek(0)
    with open(CATALOGS / language / "LC_MESSAGES" / "messages.mo", "rb") as file:
        committed = read_mo(file)
    fresh = read_mo(compiled)
    assert _pairs(committed) == _pairs(fresh), "run `make translations` (compile)"


def _pairs(catalog) -> dict:
    return {_ids(m): tuple(m.string) if isinstance(m.string, (list, tuple)) else m.string
            for m in catalog if m.id}


# ------------------------------------------------------------------------- formats
def test_money_and_coins_follow_the_locale():
    assert formatting.money(12_345_600, "INR", "en_IN") == "₹1,23,456.00"
    assert formatting.money(12_345_600, "INR", "hi_IN") == "₹1,23,456.00"
    assert formatting.money(12_345_600, "INR", "en_US") == "₹123,456.00"
    assert formatting.money(123_450, "EUR", "en_IE") == "€1,234.50"
    assert formatting.money(1250, "USD", "en_US") == "$12.50"
    assert formatting.money(1250, "JPY", "en_US") == "¥1,250"  # no minor unit
    assert formatting.coins(1_001_543, "en_IN") == "10,01,543"
    assert formatting.coins(1_001_543, "en_US") == "1,001,543"
    assert formatting.signed_coins(-100_000, "hi_IN") == "-1,00,000"
    assert formatting.signed_coins(12, "en_US") == "+12"


@pytest.mark.parametrize(("moment", "zone", "expected"), [
    (datetime(2026, 1, 12, 9, 30), "Asia/Kolkata", "Jan 12, 3:00\u202fPM IST"),
    (datetime(2026, 7, 12, 9, 30), "Asia/Kolkata", "Jul 12, 3:00\u202fPM IST"),
    (datetime(2026, 1, 12, 9, 30), "Europe/Dublin", "Jan 12, 9:30\u202fAM GMT"),
    # Irish Standard Time in summer (the tz database's name; CLDR gets Dublin wrong).
    (datetime(2026, 7, 12, 9, 30), "Europe/Dublin", "Jul 12, 10:30\u202fAM IST"),
    (datetime(2026, 1, 12, 9, 30), "America/New_York", "Jan 12, 4:30\u202fAM EST"),
    (datetime(2026, 7, 12, 9, 30), "America/New_York", "Jul 12, 5:30\u202fAM EDT"),
    (datetime(2026, 1, 12, 9, 30), None, "Jan 12, 9:30\u202fAM UTC"),
    (datetime(2026, 1, 12, 9, 30), "Mars/Olympus_Mons", "Jan 12, 9:30\u202fAM UTC"),
])
def test_times_are_shown_where_they_happened(moment, zone, expected):
    assert formatting.when(moment, zone, "en_US") == expected


def test_dates_follow_the_locale():
    moment = datetime(2026, 1, 12, 9, 30)
    assert formatting.day(moment, "Europe/Dublin", "en_IE") == "12 Jan"
    assert formatting.day(moment, "America/New_York", "en_US") == "Jan 12"
    assert formatting.day(moment, "Asia/Kolkata", "hi_IN") == "12 जन॰"
    # A date is the local one: 20:00 in New York is already tomorrow in Bengaluru.
    assert formatting.day(datetime(2026, 1, 12, 20, 0), "Asia/Kolkata", "en_IN") == "13 Jan"


def test_every_offered_locale_is_one_babel_knows():
    from babel import Locale

    assert [str(Locale.parse(code)) for code in LOCALES] == list(LOCALES)
