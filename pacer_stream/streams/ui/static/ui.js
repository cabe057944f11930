// pacer-stream operator page: refresh the <main id="live"> fragment by polling.
// The server renders (and escapes) the HTML; this file only fetches it. No framework,
// no external request: the endpoint is on the same origin (CSP connect-src 'self').
"use strict";
(function () {
  var main = document.getElementById("live");
  var status = document.getElementById("live-status");
  if (!main || !main.dataset.src) {
    return;
  }
  var src = main.dataset.src;
  var every = Math.max(1, Number(main.dataset.interval || "5")) * 1000;
  var busy = false;

  function show(text, stale) {
    if (status) {
      status.textContent = text;
      status.classList.toggle("stale", stale);
    }
  }

  function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    fetch(src, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (resp) {
        if (!resp.ok) {
          throw new Error("HTTP " + resp.status);
        }
        return resp.json();
      })
      .then(function (body) {
        var open = {};
        main.querySelectorAll("details[id]").forEach(function (d) { open[d.id] = d.open; });
        main.innerHTML = body.html;
        main.querySelectorAll("details[id]").forEach(function (d) {
          if (open[d.id]) { d.open = true; }
        });
        show("live · updated " + body.at, false);
      })
      .catch(function (err) {
        show("not refreshed (" + err.message + "), retrying", true);
      })
      .finally(function () {
        busy = false;
      });
  }

  window.setInterval(refresh, every);
  document.addEventListener("visibilitychange", refresh);
})();
