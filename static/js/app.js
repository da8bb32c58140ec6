// Registers the service worker that keeps the card available offline.
"use strict";
if ("serviceWorker" in navigator) {
  window.addEventListener("load", function () {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () {
      // Without a worker the site still works online; nothing to tell the user.
    });
  });
}

// htmx 2 does not swap 4xx/5xx responses. Ours that carry the requested block (a form
// with its validation message, "family is full", the till's "may already be booked: try
// again" after a 503) are meant to be shown; anything else (a CSRF or error page) is not
// swapped into a fragment.
document.addEventListener("htmx:beforeSwap", function (event) {
  const detail = event.detail;
  const status = detail.xhr.status;
  if (((status >= 400 && status < 500) || status === 503) && detail.target && detail.target.id &&
      String(detail.serverResponse).indexOf('id="' + detail.target.id + '"') !== -1) {
    detail.shouldSwap = true;
    detail.isError = false;
  }
});
