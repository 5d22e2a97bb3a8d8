// sladaemon board: live updates. The page reads without this script; with it, the rows are
// fetched again whenever the server's event stream says the board changed.
"use strict";
(function () {
  var live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  var query = live.getAttribute("data-query");
  var url = "/rows" + (query ? "?" + query : "");
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); throw new Error("signed out"); }
        return r.text();
      })
      .then(function (html) { live.innerHTML = html; live.setAttribute("data-updated", Date.now()); })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var seen = null;
  var events = new EventSource("/events");
  events.onmessage = function (e) {
    if (e.data !== seen) { seen = e.data; refresh(); }
  };
})();
