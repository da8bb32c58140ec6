// The till page: scan a card QR with the camera and hand the text to the lookup form.
// BarcodeDetector where the browser has it (Android Chrome), otherwise jsQR, loaded
// only when needed (Linux and desktop Chromium have no BarcodeDetector). The lookup
// form is a normal form: typing the number works without any of this.
"use strict";
(function () {
  const SCAN_INTERVAL_MS = 120; // ~8 decodes a second is plenty and spares the CPU
  const MAX_DECODE_SIDE = 800; // jsQR on a downscaled frame: fast, still reads a phone
  const CARD_TEXT = /^(LC1\.\d{12}\.\d{6}|\d{12})$/;

  const scanner = document.getElementById("scanner");
  const video = document.getElementById("scan-video");
  const startButton = document.getElementById("scan-start");
  const stopButton = document.getElementById("scan-stop");
  const status = document.getElementById("scan-status");
  const lookup = document.getElementById("lookup");
  const input = lookup && lookup.querySelector("input[name=card]");

  function say(text) {
    if (status) status.textContent = text;
  }

  function showError(text) {
    const result = document.getElementById("till-result");
    if (!result) return say(text);
    let alert = document.getElementById("till-client-error");
    if (!alert) {
      alert = document.createElement("p");
      alert.id = "till-client-error";
      alert.className = "alert";
      alert.setAttribute("role", "alert");
      result.prepend(alert);
    }
    alert.textContent = text;
  }

  // 4xx partials that carry #till-result are swapped by app.js; anything else (a CSRF or
  // error page) becomes a short message instead of a whole page inside the till.
  document.body.addEventListener("htmx:responseError", function (event) {
    const code = event.detail.xhr.status;
    if (code === 400) showError("This page has expired. Reload the till and try again.");
    else if (code === 403) showError("You are no longer signed in as staff. Reload the page.");
    else showError("Something went wrong. Press the button again: it will not be booked twice.");
  });
  document.body.addEventListener("htmx:sendError", function () {
    showError("No connection. Check the network, then press the button again: " +
      "it will not be booked twice.");
  });
  document.body.addEventListener("htmx:afterSwap", function (event) {
    const config = event.detail.requestConfig;
    if (!config || config.elt !== lookup || !document.getElementById("customer")) return;
    // Found: clear the scanned code from the form and go straight to the amount.
    if (input) input.value = "";
    const amount = document.getElementById("earn-amount");
    if (amount) amount.focus();
  });

  if (!scanner || !video || !startButton || !lookup || !input) return;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return;

  let stream = null;
  let decode = null;
  let timer = null;

  function loadJsQR() {
    return new Promise(function (resolve, reject) {
      if (typeof window.jsQR === "function") return resolve();
      const script = document.createElement("script");
      script.src = scanner.dataset.jsqr;
      script.onload = function () { resolve(); };
      script.onerror = function () { reject(new Error("jsQR did not load")); };
      document.head.appendChild(script);
    });
  }

  async function makeDecoder() {
    if ("BarcodeDetector" in window) {
      try {
        const formats = await window.BarcodeDetector.getSupportedFormats();
        if (formats.indexOf("qr_code") !== -1) {
          const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
          return async function () {
            const found = await detector.detect(video);
            return found.length ? found[0].rawValue : null;
          };
        }
      } catch (error) {
        // Fall through to jsQR.
      }
    }
    await loadJsQR();
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", { willReadFrequently: true });
    return async function () {
      const width = video.videoWidth;
      const height = video.videoHeight;
      if (!width || !height) return null;
      const scale = Math.min(1, MAX_DECODE_SIDE / Math.max(width, height));
      canvas.width = Math.round(width * scale);
      canvas.height = Math.round(height * scale);
      context.drawImage(video, 0, 0, canvas.width, canvas.height);
      const image = context.getImageData(0, 0, canvas.width, canvas.height);
      const code = window.jsQR(image.data, image.width, image.height,
        { inversionAttempts: "dontInvert" });
      return code ? code.data : null;
    };
  }

  function stop() {
    clearTimeout(timer);
    if (stream) stream.getTracks().forEach(function (track) { track.stop(); });
    stream = null;
    video.srcObject = null;
    video.hidden = true;
    stopButton.hidden = true;
    startButton.hidden = false;
  }

  function found(text) {
    stop();
    say("Card scanned.");
    input.value = text;
    // requestSubmit fires the submit event, so htmx sends it (or the browser does).
    lookup.requestSubmit();
  }

  function tick() {
    timer = setTimeout(async function () {
      if (!stream) return;
      let text = null;
      try {
        text = await decode();
      } catch (error) {
        text = null;
      }
      if (!stream) return;
      text = text ? text.trim() : "";
      if (CARD_TEXT.test(text)) return found(text);
      if (text) say("That QR code is not a loyalty card.");
      tick();
    }, SCAN_INTERVAL_MS);
  }

  async function start() {
    if (stream) return;
    say("Starting the camera…");
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: false,
        video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 },
          height: { ideal: 720 } },
      });
    } catch (error) {
      stream = null;
      say(error && error.name === "NotAllowedError"
        ? "The camera is blocked for this site: type the card number instead."
        : "No camera available: type the card number instead.");
      return;
    }
    video.srcObject = stream;
    video.hidden = false;
    startButton.hidden = true;
    stopButton.hidden = false;
    try {
      await video.play();
      decode = decode || await makeDecoder();
    } catch (error) {
      stop();
      say("The scanner could not start: type the card number instead.");
      return;
    }
    say("Point the camera at the customer's QR code.");
    tick();
  }

  startButton.hidden = false;
  startButton.addEventListener("click", start);
  stopButton.addEventListener("click", function () {
    stop();
    say("");
  });
  // A camera left running in a background tab drains the tablet and shows the light.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden" && stream) stop();
  });
  window.addEventListener("pagehide", stop);
})();
