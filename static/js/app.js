// Registers the service worker that keeps the card available offline.
"use strict";
if ("serviceWorker" in navigator) {
  window.addEventListener("load", function () {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () {
      // Without a worker the site still works online; nothing to tell the user.
    });
  });
}
