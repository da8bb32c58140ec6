"""What the browser tests share: reading the QR off the screen, console watching."""

from __future__ import annotations

import json
import re
import struct
import zlib

import zxingcpp
from playwright.sync_api import Page

from db.seed import DEMO_PASSWORD


def png_to_gray(data: bytes) -> memoryview:
    """A Chromium screenshot (8-bit RGB/RGBA PNG, not interlaced) as a grayscale image
    that zxing-cpp reads, without an imaging library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat = 8, b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8
            assert color in (0, 2, 4, 6)
            assert interlace == 0
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    stride = width * channels
    raw = zlib.decompress(idat)
    previous = bytearray(stride)
    gray = bytearray(width * height)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                corner = previous[x - channels] if x >= channels else 0
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                best = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[x] = (line[x] + best) & 0xFF
        if channels >= 3:
            gray[y * width : (y + 1) * width] = bytes(
                (line[i] + line[i + 1] + line[i + 2]) // 3 for i in range(0, stride, channels))
        else:
            gray[y * width : (y + 1) * width] = line[::channels]
        previous = line
    return memoryview(bytes(gray)).cast("B", (height, width))


def scan_qr(page: Page) -> str:
    """What a till's scanner reads off the card on screen right now."""
    shot = page.locator("#card-qr > .qr").screenshot(scale="css", animations="disabled")
    results = zxingcpp.read_barcodes(png_to_gray(shot), formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(results) == 1, "exactly one QR code should be readable on the card"
    return results[0].text


def wait_until(page: Page, predicate: str, timeout_ms: int = 15_000) -> None:
    """Polls ``predicate`` (a JS function) from Python: Playwright's wait_for_function
    evaluates strings with eval, which our CSP (rightly) refuses."""
    waited = 0
    while not page.evaluate(predicate):
        assert waited < timeout_ms, f"timed out waiting for {predicate}"
        page.wait_for_timeout(100)
        waited += 100


def watch_console(page: Page) -> list[str]:
    """Script errors and CSP refusals (a 4xx answer is logged too but is not a fault)."""
    errors: list[str] = []

    def on_console(message) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def axe_violations(page: Page) -> list[str]:
    """What axe-core (every rule it runs by default) finds on the page as it is now; the
    page's context needs ``bypass_csp`` and ``page.axe_source`` (the axe_source fixture)."""
    page.wait_for_load_state("load")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=page.axe_source)  # type: ignore[attr-defined]
    found = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} -- "
        + json.dumps([node["target"] for node in v["nodes"]][:5])
        for v in found["violations"]
    ]


def login_staff(page: Page, email: str, password: str = DEMO_PASSWORD) -> None:
    """Signs a staff member in through the login form, by its labels; the caller waits
    for where it leads (the till, the console or the password change)."""
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/(till|admin|admin/password)$"))


def login(page: Page, email: str) -> None:
    """Signs in a demo account through the login form."""
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/(card|till)$"))


def submit_registration(page: Page, name: str, email: str, password: str) -> None:
    """Fills and sends the registration form (an Irish card); the caller waits for
    where it leads."""
    page.goto("/register")
    page.fill("#name", name)
    page.fill("#email", email)
    page.fill("#password", password)
    page.check("input[name=region][value=ie]")
    page.get_by_role("button", name="Create card").click()


def verify_in_demo_mailbox(page: Page, email: str) -> None:
    """Opens the verification mail for ``email`` in the demo mailbox (/demo/outbox, newest
    first) and confirms the address, as a new user of ``make run`` would."""
    page.goto("/demo/outbox")
    mail = page.locator("article.mail", has_text=email).first
    link = mail.locator("a[href*='/verify/']").first.get_attribute("href")
    assert link, f"no verification link for {email}"
    page.goto(link)
    page.get_by_role("button", name="Confirm and open my card").click()
    page.wait_for_url(re.compile(r"/card$"))
