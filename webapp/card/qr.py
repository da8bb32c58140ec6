"""Server-side QR codes as inline SVG, drawn by ``qrcode`` (its single-path SVG image).

Cached per card number: a card's static QR never changes, and drawing it costs more CPU
than the rest of a card-page request.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from qrcode.image.svg import SvgPathFillImage


def _qr_svg(data: str) -> str:
    # Pure black on white with a 4-module quiet zone: the most reliable scan in sunlight.
    # One SVG unit per module (box_size 10 = 1 mm), so the path has whole numbers only.
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=10, border=4,
                       image_factory=SvgPathFillImage)
    qr.add_data(data)
    qr.make(fit=True)
    svg = qr.make_image().get_image()
    # The page's CSS sizes it (.qr), so no fixed millimetre size; no id to clash with.
    for attribute in ("width", "height", "version"):
        svg.attrib.pop(attribute, None)
    svg.set("class", "qr")
    for path in svg.iter("path"):
        path.attrib.pop("id", None)
    return ET.tostring(svg, encoding="unicode")


@functools.lru_cache(maxsize=4096)
def card_qr_svg(number: str) -> str:
    return _qr_svg(number)


def link_qr_svg(url: str) -> str:
    """A link as a QR for another phone's camera (an invite: not cached, shown once)."""
    return _qr_svg(url)
