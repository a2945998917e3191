/**
 * The status page itself: one HTML document with its CSS and script inline (edge nodes are often offline,
 * so nothing is fetched but this origin's /events). Every value is put into the page as text, never as
 * markup: stream ids come from topics anyone allowed to publish can choose.
 */
export const statusPageHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sentinel</title>
<style>
:root { --bg:#f6f7f9; --card:#fff; --ink:#1c2430; --dim:#677489; --line:#e1e5eb; --bad:#c62828; --warn:#b26a00; --ok:#2e7d32; --accent:#1f5fbf; }
@media (prefers-color-scheme: dark) { :root { --bg:#10141a; --card:#1a2029; --ink:#e6ebf2; --dim:#93a0b4; --line:#2b3440; --bad:#ef6b6b; --warn:#f0a840; --ok:#5cc06a; --accent:#6ea8ff; } }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background:var(--bg); color:var(--ink); }
header { display:flex; flex-wrap:wrap; gap:.5rem 1.5rem; align-items:baseline; padding:.8rem 1.2rem; border-bottom:1px solid var(--line); background:var(--card); }
header h1 { font-size:1.15rem; margin:0; }
.dim { color:var(--dim); }
.pill { display:inline-block; padding:0 .5rem; border-radius:1rem; font-size:.8rem; border:1px solid currentColor; }
.ok { color:var(--ok); } .bad { color:var(--bad); } .warn { color:var(--warn); }
main { display:grid; grid-template-columns:repeat(auto-fit, minmax(330px, 1fr)); gap:1rem; padding:1rem 1.2rem; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:.7rem .9rem; min-width:0; }
section.wide { grid-column:1 / -1; }
h2 { font-size:.8rem; text-transform:uppercase; letter-spacing:.05em; color:var(--dim); margin:0 0 .5rem; }
table { width:100%; border-collapse:collapse; }
th, td { text-align:left; padding:.25rem .4rem; border-top:1px solid var(--line); vertical-align:top; }
th { font-weight:600; color:var(--dim); font-size:.8rem; border-top:0; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
.stats { display:grid; grid-template-columns:repeat(auto-fit, minmax(110px, 1fr)); gap:.6rem; }
.stat b { display:block; font-size:1.35rem; font-variant-numeric:tabular-nums; }
.stat span { color:var(--dim); font-size:.8rem; }
.empty { color:var(--dim); font-style:italic; }
.mono { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; font-size:.85rem; word-break:break-all; }
.bar { display:flex; height:.6rem; border-radius:.3rem; overflow:hidden; background:var(--line); margin:.3rem 0; }
svg.spark { display:block; }
svg.spark polyline { fill:none; stroke:var(--accent); stroke-width:1.5; }
svg.spark line { stroke:var(--bad); stroke-dasharray:2 2; stroke-width:1; }
tr.raised td:first-child { border-left:3px solid var(--bad); }
</style>
</head>
<body>
<header>
  <h1>Sentinel <span id="node" class="mono"></span></h1>
  <span id="live" class="pill warn">connecting…</span>
  <span>broker <span id="broker" class="pill">?</span></span>
  <span class="dim">version <span id="version">?</span></span>
  <span class="dim">up since <span id="started">?</span></span>
  <span class="dim">updated <span id="updated">never</span></span>
</header>
<main>
  <section class="wide"><h2>Rates</h2><div class="stats" id="stats"></div></section>
  <section class="wide"><h2>Open alerts <span id="alert-count"></span></h2><div id="alerts"></div></section>
  <section class="wide"><h2>Top streams by score</h2><div id="streams"></div></section>
  <section><h2>Models</h2><div id="models"></div></section>
  <section><h2>Rejected readings by reason</h2><div id="rejects"></div></section>
  <section><h2>Drift and input quality</h2><div id="drift"></div></section>
</main>
<script>
"use strict";
var $ = function (id) { return document.getElementById(id); };
function h(tag, attrs) {
  var el = document.createElement(tag);
  for (var k in attrs || {}) { if (k === "text") el.textContent = attrs[k]; else el.setAttribute(k, attrs[k]); }
  for (var i = 2; i < arguments.length; i++) { var c = arguments[i]; if (c == null) continue; el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c))); }
  return el;
}
function fill(id, node) { var el = $(id); el.replaceChildren(node); }
function num(v, digits) { return v == null ? "–" : Number(v).toLocaleString(undefined, { maximumFractionDigits: digits == null ? 2 : digits }); }
function sci(v) { return v == null ? "–" : Math.abs(v) >= 1e6 ? Number(v).toExponential(2) : num(v, 3); }
function time(ms) { return new Date(ms).toLocaleTimeString(); }
function table(head, rows, empty) {
  if (rows.length === 0) return h("p", { class: "empty", text: empty });
  var tr = h("tr"); head.forEach(function (c) { tr.appendChild(h("th", { text: c })); });
  var body = h("tbody"); rows.forEach(function (r) { body.appendChild(r); });
  return h("table", null, h("thead", null, tr), body);
}
function row(cells, cls) {
  var tr = h("tr", cls ? { class: cls } : null);
  cells.forEach(function (c) { tr.appendChild(c instanceof Node && c.nodeName === "TD" ? c : h("td", null, c)); });
  return tr;
}
function td(v, cls) { return h("td", { class: cls == null ? "num" : cls }, v); }
var SVG = "http://www.w3.org/2000/svg";
function spark(history, raise) {
  var w = 140, hgt = 26, pts = [], max = raise || 0, min = 0;
  history.forEach(function (v) { if (v != null) { if (v > max) max = v; if (v < min) min = v; } });
  var span = max - min || 1, step = w / Math.max(history.length - 1, 1);
  history.forEach(function (v, i) { if (v != null) pts.push((i * step).toFixed(1) + "," + (hgt - 2 - ((v - min) / span) * (hgt - 4)).toFixed(1)); });
  var svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark"); svg.setAttribute("width", w); svg.setAttribute("height", hgt); svg.setAttribute("viewBox", "0 0 " + w + " " + hgt);
  if (raise != null) {
    var y = (hgt - 2 - ((raise - min) / span) * (hgt - 4)).toFixed(1), line = document.createElementNS(SVG, "line");
    line.setAttribute("x1", 0); line.setAttribute("x2", w); line.setAttribute("y1", y); line.setAttribute("y2", y); svg.appendChild(line);
  }
  var poly = document.createElementNS(SVG, "polyline"); poly.setAttribute("points", pts.join(" ")); svg.appendChild(poly);
  return svg;
}
function stat(value, label) { return h("div", { class: "stat" }, h("b", { text: value }), h("span", { text: label })); }

function render(s) {
  document.title = "Sentinel " + s.nodeName + (s.alerts.open > 0 ? " (" + s.alerts.open + " open)" : "");
  $("node").textContent = s.nodeName;
  $("version").textContent = s.version;
  $("started").textContent = new Date(s.startedAt).toLocaleString();
  $("updated").textContent = time(s.atMs);
  var b = $("broker"); b.textContent = s.broker.connected ? "connected" : "disconnected"; b.className = "pill " + (s.broker.connected ? "ok" : "bad");

  var stats = h("div", { class: "stats" });
  [[num(s.rates.messagesPerSecond, 1), "messages/s"], [num(s.rates.windowsPerSecond, 1), "windows/s"], [num(s.rates.alertsPerMinute, 1), "alerts raised/min"],
   [num(s.queue.depth, 0) + " / " + num(s.queue.capacity, 0), "queue depth / capacity"], [num(s.counters.received, 0), "messages received"],
   [num(s.counters.scored, 0), "windows scored"], [num(s.counters.raised, 0), "alerts raised"], [num(s.counters.rejected, 0), "readings rejected"],
   [num(s.counters.dropped, 0), "readings dropped"]].forEach(function (x) { stats.appendChild(stat(x[0], x[1])); });
  fill("stats", stats);

  var thresholds = {};
  s.models.forEach(function (m) { thresholds[m.model] = m.raiseThreshold; });
  $("alert-count").textContent = s.alerts.open > s.alerts.shown.length ? "(" + s.alerts.shown.length + " of " + s.alerts.open + ")" : "(" + s.alerts.open + ")";
  fill("alerts", table(["stream", "model", "score", "latest", "raise / clear", "top channels", "evidence", "since"], s.alerts.shown.map(function (a) {
    var channels = a.topChannels.map(function (c) { return c.channel + " " + sci(c.contribution); }).join(", ");
    var evidence = (a.evidence || []).map(function (e) { return e.test + " " + sci(e.score) + " (" + e.channels.join(", ") + ")"; }).join("; ");
    return row([td(a.streamId, "mono"), td(a.model.name + " " + a.model.version, ""), td(sci(a.score)), td(sci(a.latest)),
      td(sci(a.thresholds.raise) + " / " + sci(a.thresholds.clear)), td(channels || "–", ""), td(evidence || "–", ""), td(time(Date.parse(a.detectedAt)), "")], "raised alert");
  }), "no open alerts"));

  fill("streams", table(["stream", "model", "score", "last " + (s.streams[0] ? s.streams[0].history.length : 0) + " ticks", "alert"], s.streams.map(function (st) {
    return row([td(st.streamId, "mono"), td(st.model, ""), td(sci(st.score)), td(spark(st.history, thresholds[st.model]), ""), td(st.raised ? "open" : "", st.raised ? "bad" : "")], st.raised ? "raised" : "");
  }), "no stream scored yet"));

  fill("models", table(["model", "name", "version", "provider", "raise / clear"], s.models.map(function (m) {
    return row([td(m.model, "mono"), td(m.name || "–", ""), td(m.version || (m.loaded ? "–" : "not loaded"), ""), td(m.provider || "–", ""),
      td(m.raiseThreshold == null ? "–" : sci(m.raiseThreshold) + " / " + sci(m.clearThreshold))]);
  }), "no model"));

  var reasons = Object.keys(s.rejects).filter(function (r) { return s.rejects[r] > 0; }).sort(function (x, y) { return s.rejects[y] - s.rejects[x]; });
  fill("rejects", table(["reason", "readings"], reasons.map(function (r) { return row([td(r, "mono"), td(num(s.rejects[r], 0))]); }), "none rejected"));

  var drift = h("div");
  var colours = { warming: "var(--line)", ok: "var(--ok)", moderate: "var(--warn)", severe: "var(--bad)", poor: "var(--bad)" };
  function bands(title, counts) {
    var total = 0, bar = h("div", { class: "bar" }), legend = [];
    Object.keys(counts).forEach(function (k) { total += counts[k]; });
    Object.keys(counts).forEach(function (k) {
      if (counts[k] > 0) bar.appendChild(h("div", { style: "width:" + (100 * counts[k] / total) + "%;background:" + colours[k], title: k + " " + counts[k] }));
      legend.push(k + " " + counts[k]);
    });
    return h("div", null, h("span", { class: "dim", text: title + ": " + legend.join(", ") }), bar);
  }
  Object.keys(s.drift).forEach(function (model) {
    var d = s.drift[model];
    drift.appendChild(h("h3", { style: "font-size:.9rem;margin:.4rem 0", text: model }));
    drift.appendChild(bands("drift", d.bands));
    drift.appendChild(bands("input quality", d.quality));
    if (d.top.length > 0) drift.appendChild(table(["stream", "band", "channel", "drift σ", "rejected"], d.top.map(function (t) {
      return row([td(t.streamId, "mono"), td(t.band + " / " + t.quality, ""), td(t.channel || "–", "mono"), td(sci(t.drift)), td(num(100 * t.rejectedShare, 1) + "%")]);
    }), ""));
  });
  fill("drift", Object.keys(s.drift).length > 0 ? drift : h("p", { class: "empty", text: "drift tracking off" }));
}

var source = null, watchdog = null;
function live(ok) { var el = $("live"); el.textContent = ok ? "live" : "reconnecting…"; el.className = "pill " + (ok ? "ok" : "warn"); }
function connect() {
  source = new EventSource("events");
  source.onopen = function () { live(true); };
  source.onmessage = function (e) { live(true); try { render(JSON.parse(e.data)); } catch (err) { console.error(err); } };
  source.onerror = function () {
    live(false);
    // EventSource retries by itself after a dropped stream; one answered with an error (503: too many
    // clients) stays closed, so open a new one a little later.
    if (source.readyState === EventSource.CLOSED && watchdog === null) watchdog = setTimeout(function () { watchdog = null; connect(); }, 3000);
  };
}
connect();
</script>
</body>
</html>
`;
