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
