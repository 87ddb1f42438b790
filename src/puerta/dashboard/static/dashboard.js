// Puerta dashboard: times in the viewer's time zone, and parts of a page that refresh
// themselves. No framework and no build step. Every page works without this script: it only
// rewrites <time data-local> into local time and re-fetches [data-refresh] regions by polling
// (every data-refresh-every ms) while the tab is visible.
(function () {
  "use strict";

  var format = new Intl.DateTimeFormat(undefined, {
    weekday: "short", year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", timeZoneName: "short"
  });

  function localTimes(root) {
    var times = root.querySelectorAll("time[data-local]");
    for (var i = 0; i < times.length; i++) {
      var when = new Date(times[i].getAttribute("datetime"));
      if (isNaN(when.getTime())) continue;
      if (!times[i].title) times[i].title = times[i].textContent; // the UTC text, as a tooltip
      times[i].textContent = format.format(when);
    }
  }

  // The browser's own serialisation of some HTML, so that fetched and rendered markup compare.
  function normalise(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.innerHTML;
  }

  function poll(region, initial) {
    var url = region.getAttribute("data-refresh");
    var every = Math.max(1000, parseInt(region.getAttribute("data-refresh-every"), 10) || 5000);
    var last = initial; // replace the region only when its content changed (quiet for aria-live)
    var timer = null;
    var busy = false;

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(tick, every);
    }

    function tick() {
      if (busy || document.hidden) return; // visibilitychange starts it again
      if (region.contains(document.activeElement)) { // never yank what someone is using
        schedule();
        return;
      }
      busy = true;
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" } })
        .then(function (response) {
          if (response.status === 401) { // the session ended: the page sends you to sign in
            window.location.reload();
            return null;
          }
          return response.ok ? response.text() : null; // on errors keep what is shown
        })
        .then(function (html) {
          if (html === null) return;
          var fresh = normalise(html);
          if (fresh !== last) {
            last = fresh;
            region.innerHTML = fresh;
            localTimes(region);
          }
        })
        .catch(function () { /* offline for a moment: try again next time */ })
        .then(function () {
          busy = false;
          schedule();
        });
    }

    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) {
        clearTimeout(timer);
        tick();
      }
    });
    schedule();
  }

  var regions = document.querySelectorAll("[data-refresh]");
  var initial = [];
  for (var i = 0; i < regions.length; i++) initial.push(regions[i].innerHTML.trim());
  localTimes(document);
  for (var j = 0; j < regions.length; j++) poll(regions[j], initial[j]);
})();
