// The card page: replaces the static QR (card number only) with a rotating one,
// "LC1.<number>.<code>", where the code is RFC 6238 TOTP (HMAC-SHA1, 30 s, 6 digits)
// over the card's secret, the same as webapp/card/codes.py computes on the server.
// Everything happens on the phone, so the card keeps rotating offline. Without Web
// Crypto (an insecure context) or without the QR library, the static QR stays.
//
// The page holds the card's secret, so it must not be shown once the session is over:
// when the browser brings it back from its back/forward cache (pageshow, persisted), or
// when it is opened while the account cookie names someone else (a copy kept offline),
// the card, its secret and its QR leave the page and the sign-in page takes its place.
"use strict";
(function () {
  const STEP_SECONDS = 30;
  const DIGITS = 6;
  const QUIET_ZONE = 4; // modules of white around the code, as the QR spec asks
  const SVG_NS = "http://www.w3.org/2000/svg";

  const SIGN_IN = "/login";

  const frame = document.getElementById("card-qr");
  const box = frame && frame.querySelector(".qr");
  const status = document.getElementById("code-status");
  const subtle = window.crypto && window.crypto.subtle;
  if (!frame || !box) return;
  const number = frame.dataset.number || "";
  const account = frame.dataset.account || "";
  const accountCookie = frame.dataset.accountCookie || "account";
  let secret = frame.dataset.secret || "";
  let key = null;
  let shownStep = null;
  let timer = null;

  function signedInAccount() {
    const prefix = accountCookie + "=";
    const found = document.cookie.split("; ").find(function (c) { return c.startsWith(prefix); });
    return found ? decodeURIComponent(found.slice(prefix.length)) : "";
  }

  // The session is over (or is someone else's): nothing of the card stays on the page.
  function dropCard() {
    clearTimeout(timer);
    key = null;
    secret = "";
    frame.removeAttribute("data-secret");
    box.replaceChildren();
    const main = document.getElementById("main") || document.body;
    const notice = document.createElement("p");
    notice.className = "notice";
    notice.setAttribute("role", "status");
    notice.textContent = "You are signed out. Sign in to show your card.";
    main.replaceChildren(notice);
    const worker = navigator.serviceWorker && navigator.serviceWorker.controller;
    if (worker) worker.postMessage("forget-card");
    window.location.replace(SIGN_IN);
  }

  function stillSignedIn() {
    if (!account || signedInAccount() !== account) return Promise.resolve(false);
    return fetch("/session", { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) return false;
        if (!response.ok) return true; // the service is struggling, not the session
        return response.json().then(function (body) { return body.account === account; });
      }, function () {
        return true; // offline: the account cookie is all there is to go by
      });
  }

  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    stillSignedIn().then(function (yes) { if (!yes) dropCard(); });
  });
  if (account && signedInAccount() !== account) {
    dropCard();
    return;
  }

  if (!subtle || typeof window.qrcode !== "function") return;
  if (!/^\d{12}$/.test(number) || !secret) return;

  function base32Decode(text) {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const clean = text.toUpperCase().replace(/=+$/, "");
    const bytes = [];
    let bits = 0;
    let value = 0;
    for (const char of clean) {
      const index = alphabet.indexOf(char);
      if (index < 0) throw new Error("not base32");
      value = (value << 5) | index;
      bits += 5;
      if (bits >= 8) {
        bytes.push((value >>> (bits - 8)) & 0xff);
        bits -= 8;
      }
    }
    return new Uint8Array(bytes);
  }

  function counterBytes(step) {
    // 8-byte big-endian counter; steps stay far below 2^53, so two 32-bit halves do.
    const buffer = new ArrayBuffer(8);
    const view = new DataView(buffer);
    view.setUint32(0, Math.floor(step / 0x100000000));
    view.setUint32(4, step >>> 0);
    return buffer;
  }

  async function totp(key, step) {
    const mac = new Uint8Array(await subtle.sign("HMAC", key, counterBytes(step)));
    const offset = mac[mac.length - 1] & 0x0f;
    const value = ((mac[offset] & 0x7f) << 24) | (mac[offset + 1] << 16) |
      (mac[offset + 2] << 8) | mac[offset + 3];
    return String(value % Math.pow(10, DIGITS)).padStart(DIGITS, "0");
  }

  function qrSvg(payload) {
    // Error level M like the server's static QR; the type number is picked to fit.
    const qr = window.qrcode(0, "M");
    qr.addData(payload);
    qr.make();
    const count = qr.getModuleCount();
    const size = count + 2 * QUIET_ZONE;
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + size + " " + size);
    svg.setAttribute("class", "qr");
    svg.setAttribute("shape-rendering", "crispEdges");
    svg.setAttribute("aria-hidden", "true");
    const background = document.createElementNS(SVG_NS, "rect");
    background.setAttribute("width", String(size));
    background.setAttribute("height", String(size));
    background.setAttribute("fill", "#fff");
    svg.appendChild(background);
    let path = "";
    for (let row = 0; row < count; row += 1) {
      for (let col = 0; col < count; col += 1) {
        if (qr.isDark(row, col)) {
          path += "M" + (col + QUIET_ZONE) + " " + (row + QUIET_ZONE) + "h1v1h-1z";
        }
      }
    }
    const modules = document.createElementNS(SVG_NS, "path");
    modules.setAttribute("d", path);
    modules.setAttribute("fill", "#000");
    svg.appendChild(modules);
    return svg;
  }

  function secondsLeft(nowMs) {
    return STEP_SECONDS - Math.floor(nowMs / 1000) % STEP_SECONDS;
  }

  async function refresh() {
    if (!key) return;
    const now = Date.now();
    const step = Math.floor(now / 1000 / STEP_SECONDS);
    if (step !== shownStep) {
      const payload = "LC1." + number + "." + await totp(key, step);
      // Swap the picture inside the same box: the box keeps its size, nothing moves.
      box.replaceChildren(qrSvg(payload));
      box.dataset.payload = payload;
      box.dataset.step = String(step);
      box.setAttribute("aria-label", "Live QR code of card " + number + ", changes every 30 seconds");
      shownStep = step;
    }
    if (status) status.textContent = "Live code · new code in " + secondsLeft(now) + " s";
  }

  function schedule() {
    clearTimeout(timer);
    if (!key) return; // the card was dropped
    // Tick on the second boundary so the countdown and the step change stay in sync.
    timer = setTimeout(function () {
      refresh().then(schedule, schedule);
    }, 1000 - Date.now() % 1000 + 20);
  }

  subtle.importKey("raw", base32Decode(secret), { name: "HMAC", hash: "SHA-1" }, false, ["sign"])
    .then(function (imported) {
      key = imported;
      return refresh();
    })
    .then(schedule)
    .catch(function () {
      // Keep the static QR: the till can still take the card number.
    });

  document.addEventListener("visibilitychange", function () {
    // Timers sleep in a background tab: show the current code at once on return.
    if (document.visibilityState === "visible" && key) refresh().then(schedule, schedule);
  });
})();

// Live balance: after a till's earn the new balance and history line appear by
// themselves. The script polls a tiny endpoint with If-None-Match (signed-in pages are
// not stored, so the browser would not send it): the server answers 304 from one index
// probe while nothing changed. Fast (1.5 s) for two minutes after the card is shown,
// brought back or changed, then backing off to 15 s; nothing at all while the page is
// hidden; offline, it just tries again later without a word.
(function () {
  const FAST_MS = 1500;
  const FAST_FOR_MS = 120000;
  const SLOWEST_MS = 15000;
  const announcer = document.getElementById("live-announce");
  let wallet = document.getElementById("wallet");
  if (!wallet || !wallet.dataset.live || !window.fetch) return;
  const url = wallet.dataset.live;
  let etag = wallet.dataset.etag || "";
  let fastUntil = 0;
  let delay = FAST_MS;
  let timer = null;
  let busy = false;

  function lastId(block) {
    const first = block.querySelector("li[data-id]");
    return first ? Number(first.dataset.id) : 0;
  }

  function announce(fresh, before) {
    const lines = [];
    fresh.querySelectorAll("li[data-id]").forEach(function (row) {
      if (Number(row.dataset.id) > before) lines.push(row.dataset.announce);
    });
    const balance = fresh.querySelector("#balance");
    if (!lines.length && balance) lines.push("Balance now " + balance.textContent + " coins");
    if (announcer && lines.length) announcer.textContent = lines.join(". ");
  }

  function swap(html) {
    const holder = document.createElement("div");
    holder.innerHTML = html;
    const fresh = holder.querySelector("#wallet");
    if (!fresh) return;
    const before = lastId(wallet);
    wallet.replaceWith(fresh);
    if (window.htmx) window.htmx.process(fresh);
    wallet = fresh;
    etag = fresh.dataset.etag || etag;
    announce(fresh, before);
  }

  function forgetCard() {
    // Signed out or access revoked: no copy of the card may stay on this phone.
    const purge = window.caches ? caches.keys().then(function (keys) {
      return Promise.all(keys.filter(function (k) { return k.indexOf("card-") === 0; })
        .map(function (k) { return caches.delete(k); }));
    }) : Promise.resolve();
    purge.then(function () { location.assign("/card"); }, function () { location.assign("/card"); });
  }

  function schedule() {
    clearTimeout(timer);
    if (document.visibilityState !== "visible") return;
    const now = Date.now();
    delay = now < fastUntil ? FAST_MS : Math.min(SLOWEST_MS, Math.max(delay * 2, FAST_MS * 2));
    timer = setTimeout(poll, delay);
  }

  function hurry() {
    fastUntil = Date.now() + FAST_FOR_MS;
    delay = FAST_MS;
  }

  function poll() {
    if (busy || document.visibilityState !== "visible") return;
    busy = true;
    fetch(url, { headers: { "If-None-Match": etag }, cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 401) { forgetCard(); return null; }
        if (response.status === 200) {
          return response.text().then(function (html) { swap(html); hurry(); });
        }
        return null;  // 304, or a busy server: try again later
      })
      .catch(function () { /* offline: the card still scans; try again later */ })
      .then(function () { busy = false; schedule(); });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") { hurry(); poll(); } else clearTimeout(timer);
  });
  window.addEventListener("online", function () { hurry(); poll(); });
  hurry();
  schedule();
})();

// "Show at till": the code full-screen on white, the screen kept awake where the
// browser can (Screen Wake Lock), a hint to raise the brightness; a tap returns.
// Everything is local, so it works offline.
(function () {
  const button = document.getElementById("till-mode");
  const hint = document.getElementById("till-hint");
  const frame = document.getElementById("card-qr");
  if (!button || !frame) return;
  let lock = null;

  function keepAwake() {
    if (!("wakeLock" in navigator)) return;
    navigator.wakeLock.request("screen").then(function (sentinel) { lock = sentinel; },
      function () { /* refused (battery saver): the hint still helps */ });
  }

  function enter() {
    document.body.classList.add("at-till");
    if (hint) hint.hidden = false;
    keepAwake();
  }

  function leave() {
    document.body.classList.remove("at-till");
    if (hint) hint.hidden = true;
    if (lock) { lock.release().catch(function () {}); lock = null; }
    button.focus();
  }

  button.hidden = false;
  button.addEventListener("click", function (event) { event.stopPropagation(); enter(); });
  document.addEventListener("click", function () {
    if (document.body.classList.contains("at-till")) leave();
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && document.body.classList.contains("at-till")) leave();
  });
  document.addEventListener("visibilitychange", function () {
    // The browser drops the lock when the page is hidden: take it again on return.
    if (document.visibilityState === "visible" && document.body.classList.contains("at-till")) {
      keepAwake();
    }
  });
})();
