// Service worker: the app shell is precached; the last card page viewed is kept so the
// card (QR and number) shows offline at the till; other pages fall back to /offline.
//
// The kept card holds the card's code secret, so it must not outlive the session or be
// shown to anyone else: it is stored under the account it belongs to (the server names
// the account in a header and in a script-readable cookie, a keyed hash, not a secret),
// served only while that account is the one signed in, and deleted as soon as the
// server answers /card with a redirect to sign-in (the session ended, however it did).
"use strict";
// Rendered by the server (webapp/pwa): the shell URLs carry the files' content hashes,
// so a deploy that changes any of them changes this file and the phone updates the cache.
const VERSION = "v3-{{ shell_version }}";
const SHELL = "shell-" + VERSION;
const CARD = "card-v4";
const SHELL_URLS = {{ shell_urls | tojson }};
const ACCOUNT_COOKIE = {{ account_cookie | tojson }};
const ACCOUNT_HEADER = {{ account_header | tojson }};

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(SHELL).then(function (cache) { return cache.addAll(SHELL_URLS); })
      .then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (keys) {
      return Promise.all(keys.filter(function (k) { return k !== SHELL && k !== CARD; })
        .map(function (k) { return caches.delete(k); }));
    }).then(function () { return self.clients.claim(); })
  );
});

function isCardPage(url) {
  return url.pathname === "/card" || url.pathname === "/";
}

function cardKey(account) {
  return "/card?account=" + encodeURIComponent(account);
}

// Who is signed in, by the account cookie: null when nobody is, undefined where this
// browser's workers cannot read cookies (no Cookie Store API). There the card script
// makes the same check in the page and asks the worker to forget a card not theirs.
async function signedInAccount() {
  if (!self.cookieStore) return undefined;
  try {
    const cookie = await self.cookieStore.get(ACCOUNT_COOKIE);
    return cookie ? cookie.value : null;
  } catch (error) {
    return undefined;
  }
}

function forgetCard() {
  return caches.delete(CARD);
}

async function keepCard(account, response) {
  await forgetCard(); // one card on the phone: the signed-in account's
  const cache = await caches.open(CARD);
  await cache.put(cardKey(account), response);
}

// The kept card, if it belongs to whoever is signed in now.
async function cachedCard() {
  const account = await signedInAccount();
  const cache = await caches.open(CARD);
  const kept = await cache.keys();
  if (account === undefined) return kept.length ? cache.match(kept[0]) : undefined;
  const mine = account === null ? undefined : await cache.match(cardKey(account));
  if (!mine && kept.length) await forgetCard(); // signed out, or another account's card
  return mine;
}

function endsTheSession(response) {
  // A navigation's redirects come back unfollowed ("opaqueredirect"); /card redirects
  // only to the sign-in page.
  return response.type === "opaqueredirect" || response.redirected || response.status === 401;
}

async function cardNetworkFirst(request) {
  const url = new URL(request.url);
  let response;
  try {
    response = await fetch(request);
  } catch (error) {
    return (await cachedCard()) || (await caches.match("/offline")) || Response.error();
  }
  const account = response.headers.get(ACCOUNT_HEADER);
  if (response.ok && account && new URL(response.url).pathname === "/card") {
    await keepCard(account, response.clone());
  } else if (response.status === 503) {
    // The loyalty service lost its database quorum: the card itself still scans.
    return (await cachedCard()) || response;
  } else if (url.pathname === "/card" && endsTheSession(response)) {
    await forgetCard();
  }
  return response;
}

async function pageNetworkFirst(request) {
  try {
    return await fetch(request);
  } catch (error) {
    return (await caches.match("/offline")) || Response.error();
  }
}

async function staticCacheFirst(request) {
  const exact = await caches.match(request);
  if (exact) return exact;
  try {
    const response = await fetch(request);
    if (response.ok) {
      const cache = await caches.open(SHELL);
      await cache.put(request, response.clone());
    }
    return response;
  } catch (error) {
    // Offline with a new cache-busting version: the unversioned copy is close enough.
    return (await caches.match(request, { ignoreSearch: true })) || Response.error();
  }
}

// The card script found the page's card is not the signed-in account's (see card.js).
self.addEventListener("message", function (event) {
  if (event.data === "forget-card") event.waitUntil(forgetCard());
});

self.addEventListener("fetch", function (event) {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.method === "POST" && url.pathname === "/logout") {
    // Signing out must not leave the card readable offline on this phone.
    event.respondWith(caches.delete(CARD).then(function () { return fetch(request); }));
    return;
  }
  if (request.method !== "GET" || url.pathname.startsWith("/api/")) return;
  if (request.headers.get("HX-Request")) return;
  if (url.pathname.startsWith("/static/")) {
    event.respondWith(staticCacheFirst(request));
  } else if (request.mode === "navigate" && isCardPage(url)) {
    event.respondWith(cardNetworkFirst(request));
  } else if (request.mode === "navigate") {
    event.respondWith(pageNetworkFirst(request));
  }
});
