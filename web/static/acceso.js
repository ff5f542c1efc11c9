document.addEventListener("click", function (event) {
  var button = event.target.closest(".toggle-password");
  if (!button) return;
  var input = document.getElementById(button.dataset.target);
  if (input) input.type = input.type === "password" ? "text" : "password";
});

(function () {
  // Idle sign-out warning: a minute before the server ends an idle session, offer to stay.
  // Typing or clicking counts as presence, so a half-filled form is kept alive without asking.
  var box = document.getElementById("idle-warning");
  if (!box) return;
  var idleMs = parseInt(box.dataset.idleSeconds, 10) * 1000;
  if (!(idleMs > 0)) return;
  var warnBefore = Math.min(60000, idleMs / 2);
  var lastSeen = Date.now();
  var lastActivity = 0;
  var warnTimer = null;
  var endTimer = null;
  var ended = false;

  function show(part) {
    box.hidden = false;
    box.querySelector("[data-idle-soon]").hidden = part !== "soon";
    box.querySelector("[data-idle-ended]").hidden = part !== "ended";
  }

  function schedule() {
    clearTimeout(warnTimer);
    clearTimeout(endTimer);
    warnTimer = setTimeout(warn, Math.max(idleMs - warnBefore, 0));
    endTimer = setTimeout(function () {
      ended = true;
      show("ended");
    }, idleMs);
  }

  function keepAlive() {
    return fetch(box.dataset.keepaliveUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": box.dataset.csrfToken, Accept: "application/json" },
      redirect: "manual"
    }).then(function (response) {
      if (!response.ok) throw new Error("session ended");
      return response.json();
    }).then(function (body) {
      if (body.idle_seconds) idleMs = body.idle_seconds * 1000;
      lastSeen = Date.now();
      box.hidden = true;
      schedule();
    }).catch(function () {
      ended = true;
      show("ended");
    });
  }

  function warn() {
    if (ended) return;
    if (lastActivity > lastSeen) {
      keepAlive();
    } else {
      show("soon");
    }
  }

  ["keydown", "input", "click"].forEach(function (name) {
    document.addEventListener(name, function () { lastActivity = Date.now(); }, true);
  });
  box.querySelector("[data-idle-stay]").addEventListener("click", keepAlive);
  schedule();
})();

(function () {
  // Passkeys: the server's WebAuthn options (bytes as base64url) in, the credential as JSON out.
  function toBytes(value) {
    var text = atob(value.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((value.length + 3) % 4));
    var bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return bytes.buffer;
  }
  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var text = "";
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function descriptors(list) {
    return (list || []).map(function (d) { return Object.assign({}, d, { id: toBytes(d.id) }); });
  }
  function post(box, url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": box.dataset.csrfToken, "Content-Type": "application/json" },
      body: body ? JSON.stringify(body) : "{}"
    }).then(function (response) {
      return response.json().then(function (json) {
        if (!response.ok && !json.redirect) throw new Error(json.error || "refused");
        if (!response.ok) { window.location = json.redirect; throw new Error("redirected"); }
        return json;
      });
    });
  }
  function credentialJSON(credential) {
    var r = credential.response;
    var response = { clientDataJSON: toText(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toText(r.attestationObject);
      if (r.getTransports) response.transports = r.getTransports();
    } else {
      response.authenticatorData = toText(r.authenticatorData);
      response.signature = toText(r.signature);
      if (r.userHandle) response.userHandle = toText(r.userHandle);
    }
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: response,
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment || undefined
    };
  }
  function wire(box, ceremony) {
    var error = box.querySelector("[data-passkey-error]");
    box.querySelector("[data-passkey-start]").addEventListener("click", function () {
      error.hidden = true;
      post(box, box.dataset.optionsUrl).then(function (options) {
        options.challenge = toBytes(options.challenge);
        if (ceremony === "create") {
          options.user.id = toBytes(options.user.id);
          options.excludeCredentials = descriptors(options.excludeCredentials);
          return navigator.credentials.create({ publicKey: options });
        }
        options.allowCredentials = descriptors(options.allowCredentials);
        return navigator.credentials.get({ publicKey: options });
      }).then(function (credential) {
        return post(box, box.dataset.verifyUrl, credentialJSON(credential));
      }).then(function (result) {
        window.location = result.redirect;
      }).catch(function (problem) {
        if (problem && problem.message === "redirected") return;
        error.hidden = false;
      });
    });
  }
  var register = document.querySelector("[data-passkey-register]");
  if (register && window.PublicKeyCredential) wire(register, "create");
  var login = document.querySelector("[data-passkey-login]");
  if (login && window.PublicKeyCredential) wire(login, "get");
})();
