// The dashboard page: reads /api/overview and /api/streams/{ns}/{name},
// draws tables and the selected Stream's graph (plain SVG, no library), and
// reads again on each server-sent `changed` event — or every 5 s when the
// event stream is down. A Stream's counter and load simulator panels are
// in apps.js.
"use strict";

const HEALTH_COLOURS = {
  idle: "#9aa0a6", healthy: "#1e8e3e", progressing: "#1a73e8", degraded: "#f29900", down: "#d93025",
};
const POLL_MS = 5000;
let selected = null; // "namespace/name"

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

function dot(health) {
  return el("span", { class: `dot ${health}`, title: health });
}

function age(created) {
  if (!created) return "";
  const s = Math.max(0, (Date.now() - Date.parse(created)) / 1000);
  if (s < 120) return `${Math.floor(s)}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

function conditions(list) {
  // Conditions that are not as they should be, with their reasons.
  const off = list.filter((c) => c.status !== "True");
  const shown = off.length ? off : list;
  const text = shown.map((c) => `${c.type}=${c.status}${c.reason ? ` (${c.reason})` : ""}${c.message ? `: ${c.message}` : ""}`).join("; ");
  return el("span", { class: "cond", title: text }, text);
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function num(v) {
  return v === null || v === undefined ? "–" : String(v);
}

function rate(v) {
  return v === null || v === undefined ? "–" : v.toFixed(1);
}

// The JSON at `url`; an error carrying the problem's detail otherwise.
async function json(url, init) {
  const response = await fetch(url, { cache: "no-store", ...init });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(body?.detail ?? `${url}: ${response.status} ${response.statusText}`);
  return body;
}

function renderOverview(o) {
  fill(document.querySelector("#streams tbody"), o.streams.map((s) => {
    const key = `${s.namespace}/${s.name}`;
    const row = el("tr", { class: `selectable${key === selected ? " selected" : ""}`, "data-stream": key, "data-health": s.health },
      el("td", {}, dot(s.health)), el("td", {}, s.namespace), el("td", {}, s.name), el("td", { "data-phase": s.phase }, s.phase),
      el("td", {}, num(s.appsReady)), el("td", {}, num(s.backlog)), el("td", {}, num(s.deadLetters)),
      el("td", {}, num(s.revision)), el("td", {}, age(s.created)), el("td", {}, conditions(s.conditions)));
    row.addEventListener("click", () => select(key));
    return row;
  }));
  fill(document.querySelector("#brokers tbody"), o.brokers.map((b) =>
    el("tr", { "data-broker": `${b.namespace}/${b.name}`, "data-health": b.health },
      el("td", {}, dot(b.health)), el("td", {}, b.namespace), el("td", {}, b.name), el("td", {}, b.mode ?? ""),
      el("td", {}, b.phase), el("td", {}, b.endpoint ?? ""), el("td", {}, age(b.created)), el("td", {}, conditions(b.conditions)))));
  fill(document.querySelector("#events tbody"), o.events.map((e) =>
    el("tr", { class: e.type === "Warning" ? "warning" : "" },
      el("td", {}, age(e.last)), el("td", {}, e.namespace), el("td", {}, e.object), el("td", {}, e.type),
      el("td", {}, e.reason), el("td", {}, e.message), el("td", {}, String(e.count)))));
}

// Apps on the left, destinations on the right; publishing edges run
// app → destination, consuming edges (dashed, one per group) come back.
function renderGraph(g) {
  const boxW = 230, appH = 30 + 16 * 2, destH = 46, gapY = 26, left = 20, right = 520;
  const appY = new Map(), destY = new Map();
  g.apps.forEach((a, i) => appY.set(a.id, 20 + i * (appH + gapY)));
  g.destinations.forEach((d, i) => destY.set(d.id, 20 + i * (destH + gapY)));
  const height = 40 + Math.max(g.apps.length * (appH + gapY), g.destinations.length * (destH + gapY));
  const root = svg("svg", { viewBox: `0 0 ${right + boxW + 20} ${height}`, "data-graph": `${g.namespace}/${g.name}` });
  const edges = svg("g"), labels = svg("g");
  root.append(edges);
  for (const a of g.apps) {
    const y = appY.get(a.id);
    const roles = svg("text", { x: 10, y: 40 });
    a.roles.forEach((r, i) => {
      if (i) roles.append(" · ");
      roles.append(svg("tspan", { "data-role": r.role, "data-ready": num(r.ready), "data-replicas": num(r.replicas) },
        `${r.role} ${num(r.ready)}/${num(r.replicas)}`));
    });
    root.append(svg("g", { class: "node app", "data-app": a.name, "data-health": a.health, transform: `translate(${left},${y})` },
      svg("rect", { width: boxW, height: appH, rx: 6, stroke: HEALTH_COLOURS[a.health] }),
      svg("text", { x: 10, y: 20, class: "title" }, `${a.name}${a.spring ? " (Spring)" : ""}`),
      roles));
  }
  for (const d of g.destinations) {
    const y = destY.get(d.id);
    const links = [...d.publishedBy.map((s) => `← ${s}`), ...d.consumedBy.map((s) => `→ ${s}`)].join(" ");
    root.append(svg("g", { class: "node destination", "data-destination": d.name, "data-health": d.health, transform: `translate(${right},${y})` },
      svg("rect", { width: boxW, height: destH, rx: 18, stroke: HEALTH_COLOURS[d.health] }),
      svg("text", { x: 14, y: 19, class: "title" }, `:${d.name}`),
      svg("text", { x: 14, y: 36 }, links)));
  }
  const labelsOf = new Map(); // consuming edges labelled so far, per app
  g.edges.forEach((e, i) => {
    const publish = e.kind === "publishes";
    const app = publish ? e.from : e.to, dest = publish ? e.to : e.from;
    const ay = appY.get(app) + appH / 2 + (publish ? -8 : 8), dy = destY.get(dest) + destH / 2 + (publish ? -6 : 6);
    const x1 = left + boxW, x2 = right;
    const bend = publish ? 0 : 40 + (i % 4) * 12;
    const path = `M ${x1} ${ay} C ${(x1 + x2) / 2} ${ay + bend}, ${(x1 + x2) / 2} ${dy + bend}, ${x2} ${dy}`;
    edges.append(svg("path", { d: path, class: `edge ${publish ? "publishes" : "consumes"}${e.tap ? " tap" : ""}`,
      style: publish ? "" : `stroke: ${HEALTH_COLOURS[e.health]}`, "data-edge": `${e.from}>${e.to}`, "data-health": e.health }));
    if (!publish) {
      // Labels stack beside their app, where the edges leave it, so that
      // the groups of one app never overlap.
      const k = labelsOf.get(app) ?? 0;
      labelsOf.set(app, k + 1);
      const r = e.readings;
      const label = `${dest.replace("destination:", ":")} ${e.group}${e.tap ? " (tap)" : ""}${r ? ` · backlog ${num(r.backlog)}` : ""}`;
      labels.append(svg("text", { x: x1 + 8, y: appY.get(app) + 12 + k * 13, class: "label", "data-label": `${dest}>${app}` }, label));
    }
  });
  root.append(labels);
  return root;
}

function renderDetail(d) {
  const section = document.querySelector("#detail");
  section.hidden = false;
  document.querySelector("#detail-title").replaceChildren(dot(d.graph.health), ` ${d.row.namespace}/${d.row.name} — ${d.row.phase}`);
  document.querySelector("#graph").replaceChildren(renderGraph(d.graph));
  renderCompanions(`${d.row.namespace}/${d.row.name}`, d.companions);
  fill(document.querySelector("#groups tbody"), d.graph.edges.filter((e) => e.kind === "consumes").map((e) => {
    const r = e.readings ?? {};
    return el("tr", { "data-group": `${e.from.replace("destination:", "")}/${e.group}`, "data-health": e.health },
      el("td", {}, dot(e.health)), el("td", {}, e.from.replace("destination:", "")), el("td", {}, e.group),
      el("td", {}, e.to.replace("app:", "")), el("td", {}, num(r.backlog)), el("td", {}, num(r.unacknowledged)),
      el("td", {}, num(r.consumers)), el("td", {}, num(r.deadLetters)), el("td", {}, rate(r.publishRate)),
      el("td", {}, rate(r.deliverRate)));
  }));
}

async function refresh() {
  try {
    renderOverview(await json("api/overview"));
    if (selected) {
      const [ns, name] = selected.split("/");
      renderDetail(await json(`api/streams/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`));
    }
  } catch (err) {
    document.querySelector("#live").textContent = `error: ${err.message}`;
  }
}

function select(key) {
  selected = key;
  history.replaceState(null, "", `#${key}`);
  refresh().then(() => document.querySelector("#detail").scrollIntoView({ block: "start" }));
}

function live() {
  const status = document.querySelector("#live");
  let poll = null;
  const source = new EventSource("api/updates");
  source.addEventListener("open", () => {
    status.textContent = "live";
    if (poll) { clearInterval(poll); poll = null; }
  });
  source.addEventListener("changed", refresh);
  source.addEventListener("error", () => {
    status.textContent = `polling every ${POLL_MS / 1000} s`;
    if (!poll) poll = setInterval(refresh, POLL_MS);
  });
}

if (location.hash.length > 1) selected = decodeURIComponent(location.hash.slice(1));
refresh();
live();
