"""Server-side QR codes as inline SVG.

Cached per card number: a card's static QR never changes, and segno spends most of a
card-page request's CPU building it.
"""

from __future__ import annotations

import functools

import segno


@functools.lru_cache(maxsize=4096)
def card_qr_svg(number: str) -> str:
    qr = segno.make(number, error="m", micro=False)
    # Pure black on white with a 4-module quiet zone: the most reliable scan in sunlight.
    return qr.svg_inline(
        scale=8, border=4, dark="#000", light="#fff", omitsize=True,
        title=None, desc=None, svgclass="qr", lineclass=None,
    )


def link_qr_svg(url: str) -> str:
    """A link as a QR for another phone's camera (an invite: not cached, shown once)."""
    return segno.make(url, error="m", micro=False).svg_inline(
        scale=4, border=4, dark="#000", light="#fff", omitsize=True,
        title=None, desc=None, svgclass="qr", lineclass=None,
    )
