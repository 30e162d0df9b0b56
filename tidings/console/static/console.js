// The console's only script: re-render parts of a page from the server, no framework.
// An element with data-refresh="/fragments/..." is replaced every data-every ms by the
// HTML the server renders for it; data-until-finished stops once the fragment says its
// job has finished. Forms with a [data-run] button are sent once (no double submit).
(function () {
  "use strict";

  function refresher(element) {
    var every = parseInt(element.getAttribute("data-every") || "2000", 10);
    var until = element.hasAttribute("data-until-finished");
    var busy = false;
    function tick() {
      if (busy || document.hidden) { return schedule(); }
      busy = true;
      fetch(element.getAttribute("data-refresh"), {credentials: "same-origin",
                                                   headers: {"Accept": "text/html"}})
        .then(function (response) {
          if (response.status === 401) { window.location = "/login"; return null; }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== undefined) { element.innerHTML = html; }
        })
        .catch(function () { /* the next tick tries again */ })
        .then(function () {
          busy = false;
          if (until && element.querySelector("[data-job-state=finished]")) { return; }
          schedule();
        });
    }
    function schedule() { window.setTimeout(tick, every); }
    if (!(until && element.querySelector("[data-job-state=finished]"))) { schedule(); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-refresh]"), refresher);
    Array.prototype.forEach.call(document.querySelectorAll("form.confirm"), function (form) {
      form.addEventListener("submit", function () {
        var button = form.querySelector("[data-run]");
        if (button) {
          window.setTimeout(function () { button.disabled = true; }, 0);
        }
      });
    });
  });
})();
