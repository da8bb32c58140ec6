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

  const signin = document.getElementById("passkey-signin");
  if (signin) {
    signin.hidden = false;
    const button = document.getElementById("passkey-signin-button");
    const errorBox = document.getElementById("passkey-signin-error");
    button.addEventListener("click", async function () {
      errorBox.hidden = true;
      button.disabled = true;
      try {
        const options = await post(signin.dataset.optionsUrl);
        options.challenge = toBuffer(options.challenge);
        options.allowCredentials = descriptors(options.allowCredentials);
        const credential = await navigator.credentials.get({ publicKey: options });
        const result = await post(signin.dataset.verifyUrl, {
          credential: credentialJson(credential), next: signin.dataset.next || undefined,
        });
        window.location.assign(result.redirect);
      } catch (error) {
        showError(errorBox, error);
      } finally {
        button.disabled = false;
      }
    });
  }

  const add = document.getElementById("passkey-add");
  if (add) {
    add.hidden = false;
    const button = document.getElementById("passkey-add-button");
    const errorBox = document.getElementById("passkey-add-error");
    const nameInput = document.getElementById("passkey-name");
    button.addEventListener("click", async function () {
      errorBox.hidden = true;
      button.disabled = true;
      try {
        const options = await post(add.dataset.optionsUrl);
        options.challenge = toBuffer(options.challenge);
        options.user.id = toBuffer(options.user.id);
        options.excludeCredentials = descriptors(options.excludeCredentials);
        const credential = await navigator.credentials.create({ publicKey: options });
        const result = await post(add.dataset.registerUrl, {
          credential: credentialJson(credential), name: nameInput.value,
        });
        window.location.assign(result.redirect);
      } catch (error) {
        showError(errorBox, error);
      } finally {
        button.disabled = false;
      }
    });
  }
})();
