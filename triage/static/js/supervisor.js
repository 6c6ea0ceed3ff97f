/* Supervisor dashboard charts (Chart.js, vendored). Data comes from a JSON endpoint polled every few seconds;
 * no inline script or style (the CSP forbids both): the page passes the URL and interval in data-* attributes.
 * Every chart has the same figures as a table beside it, so nothing depends on this script. */
(function () {
  "use strict";

  var root = document.getElementById("sup-charts");
  if (!root || typeof window.Chart === "undefined") { return; }
  var url = root.getAttribute("data-charts-url");
  var poll = Math.max(parseInt(root.getAttribute("data-poll"), 10) || 30, 5) * 1000;
  var css = window.getComputedStyle(document.documentElement);
  function colour(name, fallback) { return (css.getPropertyValue(name) || "").trim() || fallback; }
  var COLOURS = {
    fever: colour("--fever", "#c2410c"), emergency: colour("--emergency", "#b91c1c"),
    general: colour("--general", "#1d4ed8"), chronic: colour("--chronic", "#047857"),
    untriaged: "#9ca3af", line: "#111827", target: "#b45309", p90: "#6b7280"
  };
  var reduceMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  window.Chart.defaults.animation = reduceMotion ? false : { duration: 300 };
  window.Chart.defaults.font.size = 13;
  window.Chart.defaults.maintainAspectRatio = false;
  var charts = {};

  function make(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas) { return null; }
    return new window.Chart(canvas, config);
  }

  function build(data) {
    var L = data.labels;
    charts.arrivals = make("chart-arrivals", {
      type: "bar",
      data: {
        labels: data.hours,
        datasets: data.arrivals.map(function (s) {
          return { label: s.label, data: s.data, backgroundColor: COLOURS[s.key], stack: "arrivals",
                   pointStyle: "rect" };
        }).concat([{ type: "line", label: L.booked, data: data.booked, borderColor: COLOURS.line,
                     backgroundColor: COLOURS.line, borderDash: [6, 4], borderWidth: 2, pointRadius: 2,
                     pointStyle: "line", tension: 0.2 }])
      },
      options: { scales: { x: { stacked: true, title: { display: true, text: L.hour } },
                           y: { stacked: true, beginAtZero: true, title: { display: true, text: L.patients },
                                ticks: { precision: 0 } } },
                 plugins: { legend: { position: "bottom", labels: { usePointStyle: true } } } }
    });
    charts.waits = make("chart-waits", {
      type: "line",
      data: { labels: data.hours, datasets: [{ label: L.median_wait, data: data.wait_by_hour, spanGaps: true,
                                               borderColor: COLOURS.general, backgroundColor: COLOURS.general,
                                               pointRadius: 3, tension: 0.2 }] },
      options: { scales: { x: { title: { display: true, text: L.hour } },
                           y: { beginAtZero: true, title: { display: true, text: L.minutes } } },
                 plugins: { legend: { position: "bottom" } } }
    });
    charts.mix = make("chart-mix", {
      type: "doughnut",
      data: { labels: data.mix.map(function (m) { return m.label; }),
              datasets: [{ data: data.mix.map(function (m) { return m.value; }),
                           backgroundColor: data.mix.map(function (m) { return COLOURS[m.key]; }) }] },
      options: { plugins: { legend: { position: "bottom" } } }
    });
    charts.acuity = make("chart-acuity", {
      type: "bar",
      data: {
        labels: data.wait_groups.map(function (g) { return g.label; }),
        datasets: [
          { label: L.median, data: data.wait_groups.map(function (g) { return g.median; }),
            backgroundColor: COLOURS.general },
          { label: L.p90, data: data.wait_groups.map(function (g) { return g.p90; }), backgroundColor: COLOURS.p90 },
          { type: "line", label: L.target, data: data.wait_groups.map(function (g) { return g.target; }),
            borderColor: COLOURS.target, backgroundColor: COLOURS.target, showLine: false, pointStyle: "line",
            pointRadius: 14, pointBorderWidth: 3 }
        ]
      },
      options: { scales: { y: { beginAtZero: true, title: { display: true, text: L.minutes } } },
                 plugins: { legend: { position: "bottom" } } }
    });
  }

  function update(data) {
    if (!charts.arrivals) { build(data); return; }
    data.arrivals.forEach(function (s, i) { charts.arrivals.data.datasets[i].data = s.data; });
    charts.arrivals.data.datasets[data.arrivals.length].data = data.booked;
    charts.waits.data.datasets[0].data = data.wait_by_hour;
    charts.mix.data.datasets[0].data = data.mix.map(function (m) { return m.value; });
    charts.acuity.data.datasets[0].data = data.wait_groups.map(function (g) { return g.median; });
    charts.acuity.data.datasets[1].data = data.wait_groups.map(function (g) { return g.p90; });
    charts.acuity.data.datasets[2].data = data.wait_groups.map(function (g) { return g.target; });
    Object.keys(charts).forEach(function (k) { if (charts[k]) { charts[k].update(); } });
  }

  function load() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.redirected || !r.ok) { throw new Error("status " + r.status); }
        return r.json();
      })
      .then(function (data) { update(data); root.removeAttribute("data-stale"); })
      .catch(function () { root.setAttribute("data-stale", "true"); });
  }

  load();
  window.setInterval(function () { if (!document.hidden) { load(); } }, poll);
})();
