// Service worker: the app shell is precached; the last card page viewed is kept so the
// card (QR and number) shows offline at the till; other pages fall back to /offline.
"use strict";
// Rendered by the server (webapp/pwa): the shell URLs carry the files' content hashes,
// so a deploy that changes any of them changes this file and the phone updates the cache.
const VERSION = "v3-{{ shell_version }}";
const SHELL = "shell-" + VERSION;
const CARD = "card-v3";
const SHELL_URLS = {{ shell_urls | tojson }};

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

async function cardNetworkFirst(request) {
  const cache = await caches.open(CARD);
  try {
    const response = await fetch(request);
    const landed = response.url ? new URL(response.url).pathname : "";
    if (response.ok && landed === "/card") {
      await cache.put("/card", response.clone());
    } else if (response.redirected && landed === "/login") {
      // Signed out, or a family member's access was revoked: the card leaves the phone.
      await caches.delete(CARD);
    } else if (response.status === 503) {
      // The loyalty service lost its database quorum: the card itself still scans.
      return (await cache.match("/card")) || response;
    }
    return response;
  } catch (error) {
    return (await cache.match("/card")) || (await caches.match("/offline"));
  }
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
