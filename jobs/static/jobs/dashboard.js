// The queues dashboard refreshes its numbers every few seconds without reloading the page,
// and stops asking while the tab is hidden. Everything it loads comes from this site.
(function () {
  "use strict";
  var root = document.getElementById("cv-dashboard");
  if (!root) {
    return;
  }
  var url = root.dataset.refreshUrl;
  var every = (parseInt(root.dataset.interval, 10) || 5) * 1000;
  var state = document.getElementById("cv-refresh-state");
  var timer = null;
  var busy = false;

  function say(text) {
    if (state) {
      state.textContent = text;
    }
  }

  function refresh() {
    if (document.hidden || busy) {
      return;
    }
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        root.innerHTML = html;
        root.dataset.refreshes = String((parseInt(root.dataset.refreshes, 10) || 0) + 1);
        say("refreshes every " + every / 1000 + " s, paused while this tab is hidden");
      })
      .catch(function (error) {
        say("refresh failed (" + error.message + "); trying again");
      })
      .finally(function () {
        busy = false;
      });
  }

  function start() {
    stop();
    timer = window.setInterval(refresh, every);
  }

  function stop() {
    if (timer !== null) {
      window.clearInterval(timer);
      timer = null;
    }
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      stop();
      say("paused while this tab is hidden");
    } else {
      refresh();
      start();
    }
  });
  start();
})();
