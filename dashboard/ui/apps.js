// The panels of a Stream's companions (see src/apps.rs): a counter's
// events over time as line charts (by type and by destination, over 1 min,
// 5 min or 1 h), and a load simulator's runs with a form to start one. Both
// read the app through the dashboard (api/streams/{ns}/{name}/apps/{app}/…);
// they are built once per Stream and keep what the user typed while the
// rest of the page redraws. `json` and the drawing helpers are app.js's.
"use strict";

const PALETTE = ["#1a73e8", "#d93025", "#1e8e3e", "#f29900", "#a142f4", "#12b5cb", "#e8710a", "#5f6368",
  "#9334e6", "#188038", "#c5221f", "#185abc"];
const COUNTER_EVERY_MS = 5000;
const RUNS_EVERY_MS = 2000;
const RUN_FIELDS = [
  ["orders", "Orders", 100, "1"], ["ratePerSecond", "Orders / s", 10, "0.1"],
  ["failureShare", "Designed to fail (0–1)", 0, "0.05"], ["accounts", "Accounts", 10, "1"],
  ["concurrency", "In flight", 32, "1"],
];

let panels = { key: null, timers: [] };

function appUrl(stream, app, path) {
  const [ns, name] = stream.split("/");
  return `api/streams/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/apps/${encodeURIComponent(app)}/${path}`;
}

// One line per series; `series` maps a name to its points, oldest first.
function lineChart(kind, points, step, series) {
  const width = 560, height = 170, left = 44, bottom = 20, top = 10;
  const names = Object.keys(series).sort();
  const max = Math.max(1, ...names.flatMap((n) => series[n]));
  const x = (i) => left + (i * (width - left - 8)) / Math.max(1, points - 1);
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", "data-chart": kind });
  root.append(svg("line", { x1: left, y1: y(0), x2: width - 8, y2: y(0), class: "axis" }));
  root.append(svg("text", { x: left - 6, y: y(max) + 4, class: "tick", "text-anchor": "end" }, String(max)));
  root.append(svg("text", { x: left - 6, y: y(0) + 4, class: "tick", "text-anchor": "end" }, "0"));
  const span = points * step;
  root.append(svg("text", { x: left, y: height - 4, class: "tick" }, `−${span >= 3600 ? `${span / 3600} h` : span >= 60 ? `${span / 60} min` : `${span} s`}`));
  root.append(svg("text", { x: width - 8, y: height - 4, class: "tick", "text-anchor": "end" }, "now"));
  const legend = el("ul", { class: "legend" });
  names.forEach((n, i) => {
    const colour = PALETTE[i % PALETTE.length];
    const values = series[n];
    const total = values.reduce((a, b) => a + b, 0);
    root.append(svg("polyline", { points: values.map((v, j) => `${x(j)},${y(v)}`).join(" "), stroke: colour,
      class: "series", "data-series": n, "data-total": total }));
    legend.append(el("li", {}, el("span", { class: "swatch", style: `background:${colour}` }), `${n} `, el("b", {}, String(total))));
  });
  const unit = step === 1 ? "per second" : `per ${step >= 60 ? `${step / 60} min` : `${step} s`}`;
  return el("figure", { "data-figure": kind },
    el("figcaption", {}, `Events by ${kind} (${unit})`), root, names.length ? legend : el("p", { class: "empty" }, "no events in this window"));
}

function counterPanel(stream, app) {
  let chosen = "5m";
  const charts = el("div", { class: "charts" });
  const status = el("p", { class: "cond" });
  const buttons = ["1m", "5m", "1h"].map((w) => {
    const b = el("button", { type: "button", "data-window": w }, w === "1m" ? "1 min" : w === "5m" ? "5 min" : "1 h");
    b.addEventListener("click", () => { chosen = w; update(); });
    return b;
  });
  async function update() {
    buttons.forEach((b) => b.classList.toggle("on", b.dataset.window === chosen));
    try {
      const [s, counts] = await Promise.all([
        json(appUrl(stream, app, `v1/counts/series?window=${chosen}`)),
        json(appUrl(stream, app, "v1/counts")),
      ]);
      const parts = [lineChart("type", s.points, s.step, s.byType ?? {})];
      if (s.byDestination) parts.push(lineChart("destination", s.points, s.step, s.byDestination));
      charts.replaceChildren(...parts);
      const feeds = Object.entries(counts.feeds ?? {}).map(([d, f]) => `${d}: ${f.state}`).join(", ");
      status.replaceChildren(`${counts.total} events counted in all`, feeds ? ` · rebuilt from feeds (${feeds})` : "");
      status.setAttribute("data-counter-total", counts.total);
    } catch (err) {
      status.textContent = `${app} did not answer: ${err.message}`;
    }
  }
  update();
  panels.timers.push(setInterval(update, COUNTER_EVERY_MS));
  return el("section", { class: "panel", "data-counter": app },
    el("h3", {}, `Counters (${app})`), el("div", { class: "buttons" }, ...buttons), status, charts);
}

function runRow(stream, app, r, update) {
  const o = r.outcomes ?? {};
  const latency = r.latencyMs ?? {};
  const stop = el("td");
  if (r.status === "RUNNING") {
    const b = el("button", { type: "button", "data-action": "stop-run" }, "Stop");
    b.addEventListener("click", async () => {
      await json(appUrl(stream, app, `v1/runs/${r.runId}/commands/stop`), {
        method: "POST", headers: { "content-type": "application/json" }, body: "{}" }).catch(() => {});
      update();
    });
    stop.append(b);
  }
  return el("tr", { "data-run": r.runId, "data-status": r.status },
    el("td", { title: r.runId }, r.runId.slice(0, 8)), el("td", {}, r.status), el("td", {}, age(r.startedAt)),
    el("td", { "data-posted": r.ordersPosted }, `${r.ordersPosted} / ${r.plan?.orders ?? "?"}`),
    el("td", {}, rate(r.ordersPerSecond)), el("td", {}, `${num(latency.p50)} / ${num(latency.p99)} ms`),
    el("td", { "data-succeeded": o.ORDER_SUCCEEDED ?? 0 }, num(o.ORDER_SUCCEEDED)), el("td", {}, num(o.ORDER_FAILED)),
    el("td", {}, num(o.pending)), el("td", {}, num(o.unresolved)), el("td", {}, num(r.requestErrors)), stop);
}

function runsPanel(stream, app) {
  const tbody = el("tbody");
  const message = el("p", { class: "cond", "data-run-message": "" });
  const inputs = RUN_FIELDS.map(([field, label, value, step]) =>
    el("label", {}, `${label} `, el("input", { type: "number", name: field, value, step, min: 0 })));
  const form = el("form", { class: "run-form" }, ...inputs,
    el("button", { type: "submit", "data-action": "start-run" }, "Start a run"));
  async function update() {
    try {
      const runs = (await json(appUrl(stream, app, "v1/runs")))._embedded?.runs ?? [];
      fill(tbody, runs.slice().reverse().map((r) => runRow(stream, app, r, update)));
    } catch (err) {
      message.textContent = `${app} did not answer: ${err.message}`;
    }
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const plan = {};
    for (const input of form.querySelectorAll("input")) if (input.value !== "") plan[input.name] = Number(input.value);
    try {
      const run = await json(appUrl(stream, app, "v1/runs"), {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(plan) });
      message.textContent = `run ${run.runId.slice(0, 8)} started`;
      message.setAttribute("data-started", run.runId);
    } catch (err) {
      message.textContent = `not started: ${err.message}`;
    }
    update();
  });
  update();
  panels.timers.push(setInterval(update, RUNS_EVERY_MS));
  return el("section", { class: "panel", "data-load-simulator": app },
    el("h3", {}, `Load runs (${app})`), form, message,
    el("table", { class: "runs" },
      el("thead", {}, el("tr", {}, ...["Run", "Status", "Started", "Posted", "Orders/s", "p50 / p99", "Succeeded",
        "Failed", "Pending", "Unresolved", "Request errors", ""].map((h) => el("th", {}, h)))), tbody));
}

// Called with each redraw of a Stream's detail; rebuilds the panels only
// when the Stream or its companions change.
function renderCompanions(stream, companions) {
  const key = `${stream} ${JSON.stringify(companions ?? [])}`;
  if (panels.key === key) return;
  panels.timers.forEach(clearInterval);
  panels = { key, timers: [] };
  document.querySelector("#companions").replaceChildren(...(companions ?? []).map((c) =>
    c.kind === "counter" ? counterPanel(stream, c.app) : runsPanel(stream, c.app)));
}
