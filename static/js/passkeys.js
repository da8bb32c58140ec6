// Passkeys: sign in on the login page, add one on the account page. The server sends
// WebAuthn options as JSON (binary fields base64url) and checks what comes back; this
// file only converts between JSON and the ArrayBuffers the browser API wants.
"use strict";
(function () {
  if (!window.PublicKeyCredential || !navigator.credentials) return;

  function toBuffer(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "===".slice((base64.length + 3) % 4);
    const binary = atob(padded);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function csrfToken() {
    // base.html puts the token in htmx's headers on <body>.
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await response.json(); } catch (error) { data = {}; }
    if (!response.ok) throw new Error(data.error || "Something went wrong. Please try again.");
    return data;
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return Object.assign({}, item, { id: toBuffer(item.id) });
    });
  }

  function credentialJson(credential) {
    const response = credential.response;
    const out = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      response: { clientDataJSON: toText(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      out.response.attestationObject = toText(response.attestationObject);
      if (response.getTransports) out.response.transports = response.getTransports();
    } else {
      out.response.authenticatorData = toText(response.authenticatorData);
      out.response.signature = toText(response.signature);
      if (response.userHandle) out.response.userHandle = toText(response.userHandle);
    }
    return out;
  }

  function showError(element, error) {
    element.textContent = error && error.name === "NotAllowedError"
      ? "The passkey request was cancelled or timed out."
      : (error && error.message) || "Something went wrong. Please try again.";
    element.hidden = false;
  }

  // A passkey block (#<id>, its #<id>-button and #<id>-error): shown only where the
  // browser has passkeys. A click fetches the options and runs ``ceremony`` (the browser's
  // part, then the answer to the server), then follows the server's redirect.
  function passkeyButton(id, ceremony) {
    const block = document.getElementById(id);
    if (!block) return;
    block.hidden = false;
    const button = document.getElementById(id + "-button");
    const errorBox = document.getElementById(id + "-error");
    button.addEventListener("click", async function () {
      errorBox.hidden = true;
      button.disabled = true;
      try {
        const options = await post(block.dataset.optionsUrl);
        options.challenge = toBuffer(options.challenge);
        const result = await ceremony(block, options);
        window.location.assign(result.redirect);
      } catch (error) {
        showError(errorBox, error);
      } finally {
        button.disabled = false;
      }
    });
  }

  passkeyButton("passkey-signin", async function (block, options) {
    options.allowCredentials = descriptors(options.allowCredentials);
    const credential = await navigator.credentials.get({ publicKey: options });
    return post(block.dataset.verifyUrl, {
      credential: credentialJson(credential), next: block.dataset.next || undefined,
    });
  });

  passkeyButton("passkey-add", async function (block, options) {
    options.user.id = toBuffer(options.user.id);
    options.excludeCredentials = descriptors(options.excludeCredentials);
    const credential = await navigator.credentials.create({ publicKey: options });
    return post(block.dataset.registerUrl, {
      credential: credentialJson(credential),
      name: document.getElementById("passkey-name").value,
    });
  });
})();
