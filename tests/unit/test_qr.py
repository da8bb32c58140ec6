"""The card's QR code, drawn by qrcode, decoded the way a till's scanner would."""

from __future__ import annotations

import re

from tests.helpers import decode_qr_svg, qr_modules
from webapp.card.qr import card_qr_svg


def test_the_qr_decoder_really_reads_the_modules():
    for number in ("400000000002", "123456789015"):
        assert decode_qr_svg(card_qr_svg(number)) == [number]
    blank = re.sub(r'(<path d=")[^"]+', r"\1M0,0", card_qr_svg("400000000002"))
    assert decode_qr_svg(blank) == []


def test_the_qr_is_black_on_white_with_a_four_module_quiet_zone():
    svg = card_qr_svg("400000000002")
    assert '<rect fill="white"' in svg
    grid = qr_modules(svg)
    assert len(grid) == 21 + 2 * 4  # version 1 (12 digits at level M) and the quiet zone
    for edge in (grid[:4], grid[-4:], [row[:4] for row in grid], [row[-4:] for row in grid]):
        assert not any(any(row) for row in edge)
    # The top-left finder pattern's outer ring: its top and bottom rows are all dark.
    assert all(grid[4][4:11])
    assert all(grid[10][4:11])
