// The authcore dashboard: every API call goes through /proxy/ on this origin, with the
// HttpOnly session cookie sent by the browser (credentials: "same-origin"). No token is
// ever visible to this script.
"use strict";

const $ = (id) => document.getElementById(id);

async function call(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  if (response.status !== 204) {
    try { data = await response.json(); } catch (_) { data = null; }
  }
  if (response.status === 401 && path.startsWith("/proxy/")) {
    showLogin();
  }
  if (!response.ok) {
    const title = data && data.title ? data.title : `HTTP ${response.status}`;
    throw new Error(title);
  }
  return data;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;  // textContent, never innerHTML: names come from users
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

// --- usage charts ------------------------------------------------------------------------
// Stacked bars drawn as inline SVG by this script (no library, no inline style: the CSP
// forbids both). Each series differs by more than colour: its own fill pattern (solid,
// diagonal stripes, dots), a fixed place in the stack (allowed at the bottom), and a text
// label in the legend. The colours are from the Okabe-Ito palette, which stays distinct with
// the common colour-vision deficiencies. Every bar carries its numbers in data-* attributes
// and a <title>, and a visually hidden table lists them for screen readers.

const SVG = "http://www.w3.org/2000/svg";
const SERIES = [
  { key: "allowed", label: "Allowed", color: "#0072B2", pattern: "solid" },
  { key: "refused", label: "Refused", color: "#D55E00", pattern: "stripes" },
  { key: "rate_limited", label: "Rate limited", color: "#E69F00", pattern: "dots" },
];
const SPANS = { minute: 60, hour: 3600, day: 86400 };
const RANGES = {
  day: { granularity: "hour", seconds: 86400, words: "last 24 hours, hourly" },
  hour: { granularity: "minute", seconds: 3600, words: "last hour, by minute" },
};
let range = "day";
let chartCount = 0;

function svg(name, attributes, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [attribute, value] of Object.entries(attributes || {})) {
    element.setAttribute(attribute, String(value));
  }
  if (parent) parent.appendChild(element);
  return element;
}

// One <pattern> per series, ids unique to the chart (several charts share the page).
function definePatterns(root, prefix) {
  const defs = svg("defs", {}, root);
  const ids = {};
  for (const series of SERIES) {
    const id = `${prefix}-${series.pattern}`;
    ids[series.key] = id;
    const pattern = svg("pattern", { id, width: 6, height: 6, patternUnits: "userSpaceOnUse" }, defs);
    svg("rect", { width: 6, height: 6, fill: series.color }, pattern);
    if (series.pattern === "stripes") {
      svg("path", { d: "M-1,1 l2,-2 M0,6 l6,-6 M5,7 l2,-2", stroke: "#fff", "stroke-width": 1.4 }, pattern);
    } else if (series.pattern === "dots") {
      svg("circle", { cx: 3, cy: 3, r: 1.3, fill: "#1d2430" }, pattern);
    }
  }
  return ids;
}

// The three series of one bucket's outcomes: refused is every outcome but the other two.
function splitOutcomes(outcomes) {
  const counts = { allowed: 0, refused: 0, rate_limited: 0 };
  const refusals = [];
  for (const [outcome, count] of Object.entries(outcomes || {})) {
    if (outcome === "allowed" || outcome === "rate_limited") {
      counts[outcome] += count;
    } else {
      counts.refused += count;
      refusals.push(`${outcome} ${count}`);
    }
  }
  return { counts, refusals };
}

function utc(seconds, withDate) {
  const text = new Date(seconds * 1000).toISOString();
  return withDate ? `${text.slice(0, 10)} ${text.slice(11, 16)}` : text.slice(11, 16);
}

function describe(counts) {
  return `${counts.allowed} allowed, ${counts.refused} refused, ${counts.rate_limited} rate limited`;
}

// Every bucket of the answer's window, oldest first, the empty ones included.
function bucketsOf(data) {
  const span = SPANS[data.granularity];
  const found = new Map(data.buckets.map((bucket) => [bucket.start, bucket.outcomes]));
  const buckets = [];
  const end = Math.ceil(data.until / span) * span;
  for (let start = data.since - (data.since % span); start < end; start += span) {
    buckets.push({ start, ...splitOutcomes(found.get(start)) });
  }
  return buckets;
}

function drawChart(container, data, title, height) {
  const prefix = `chart${++chartCount}`;
  const buckets = bucketsOf(data);
  const totals = splitOutcomes(data.totals).counts;
  const width = 900;
  const left = 44;
  const bottom = 22;
  const top = 8;
  const plot = height - bottom - top;
  const highest = Math.max(1, ...buckets.map((b) => b.counts.allowed + b.counts.refused + b.counts.rate_limited));
  const step = (width - left) / buckets.length;
  const barWidth = Math.max(1, step - Math.min(4, step * 0.25));
  const summary = `${title}, ${RANGES[range].words}: ${describe(totals)}.`;

  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": summary,
    class: "usage-svg",
    "data-granularity": data.granularity,
    "data-since": data.since,
    "data-until": data.until,
  });
  svg("title", {}, root).textContent = summary;
  const ids = definePatterns(root, prefix);
  // Axes: zero and the highest stack, with a faint line at the top.
  svg("line", { x1: left, x2: width, y1: top + plot, y2: top + plot, class: "axis" }, root);
  svg("line", { x1: left, x2: width, y1: top, y2: top, class: "grid" }, root);
  const yLabel = (value, y) => {
    const text = svg("text", { x: left - 6, y, "text-anchor": "end", class: "tick" }, root);
    text.textContent = String(value);
  };
  yLabel(0, top + plot + 4);
  yLabel(highest, top + 8);

  buckets.forEach((bucket, index) => {
    const x = left + index * step + (step - barWidth) / 2;
    const group = svg("g", {
      class: "bucket",
      "data-start": bucket.start,
      "data-allowed": bucket.counts.allowed,
      "data-refused": bucket.counts.refused,
      "data-rate-limited": bucket.counts.rate_limited,
    }, root);
    const refusals = bucket.refusals.length ? ` (${bucket.refusals.join(", ")})` : "";
    svg("title", {}, group).textContent =
      `${utc(bucket.start, true)} UTC: ${describe(bucket.counts)}${refusals}`;
    // A full-height target, so that the title shows over empty and short bars too.
    svg("rect", { x, y: top, width: barWidth, height: plot, class: "hit" }, group);
    let y = top + plot;
    for (const series of SERIES) {
      const count = bucket.counts[series.key];
      if (count === 0) continue;
      const h = (count / highest) * plot;
      y -= h;
      svg("rect", {
        x, y, width: barWidth, height: h, fill: `url(#${ids[series.key]})`,
        class: "segment", "data-series": series.key, "data-count": count,
      }, group);
    }
  });
  // Time labels: first, middle and last bucket.
  const marks = [0, Math.floor(buckets.length / 2), buckets.length - 1];
  for (const index of new Set(marks)) {
    const x = left + index * step + step / 2;
    const text = svg("text", { x, y: height - 6, "text-anchor": "middle", class: "tick" }, root);
    text.textContent = utc(buckets[index].start, false);
  }

  const table = document.createElement("table");
  table.className = "visually-hidden";
  const caption = document.createElement("caption");
  caption.textContent = `${summary} Buckets with requests, UTC:`;
  table.appendChild(caption);
  const head = document.createElement("tr");
  for (const name of ["Start (UTC)", ...SERIES.map((series) => series.label)]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name;
    head.appendChild(th);
  }
  table.appendChild(head);
  for (const bucket of buckets) {
    if (bucket.counts.allowed + bucket.counts.refused + bucket.counts.rate_limited === 0) continue;
    const row = document.createElement("tr");
    cell(row, utc(bucket.start, true));
    for (const series of SERIES) cell(row, String(bucket.counts[series.key]));
    table.appendChild(row);
  }

  const total = document.createElement("p");
  total.className = "totals";
  total.textContent = `Total: ${describe(totals)}`;
  total.dataset.allowed = totals.allowed;
  total.dataset.refused = totals.refused;
  total.dataset.rateLimited = totals.rate_limited;
  container.replaceChildren(root, table, total);
}

function drawLegend() {
  const legend = $("usage-legend");
  legend.replaceChildren();
  for (const series of SERIES) {
    const item = document.createElement("li");
    item.dataset.series = series.key;
    const swatch = svg("svg", { viewBox: "0 0 18 12", width: 18, height: 12, "aria-hidden": "true" });
    const patterns = definePatterns(swatch, `legend-${series.key}`);
    svg("rect", { width: 18, height: 12, fill: `url(#${patterns[series.key]})`, class: "swatch" }, swatch);
    const words = { solid: "solid", stripes: "striped", dots: "dotted" }[series.pattern];
    const label = document.createElement("span");
    label.textContent = `${series.label} (${words})`;
    item.append(swatch, label);
    legend.appendChild(item);
  }
}

function usageQuery() {
  const chosen = RANGES[range];
  const params = new URLSearchParams({ granularity: chosen.granularity });
  if (range !== "day") {
    params.set("since", String(Math.floor(Date.now() / 1000) - chosen.seconds));
  }
  return params.toString();
}

async function loadUsage() {
  $("usage-error").textContent = "";
  try {
    const data = await call("GET", `/proxy/v1/usage?${usageQuery()}`);
    drawChart($("usage-chart"), data, "Workspace usage", 190);
  } catch (error) {
    $("usage-error").textContent = error.message;
  }
}

async function loadKeyUsage(keyId) {
  const row = document.querySelector(`tr.usage-row[data-usage-for="${CSS.escape(keyId)}"]`);
  if (!row) return;
  const container = row.querySelector(".chart");
  const error = row.querySelector(".error");
  error.textContent = "";
  try {
    const data = await call("GET", `/proxy/v1/keys/${encodeURIComponent(keyId)}/usage?${usageQuery()}`);
    drawChart(container, data, `Usage of key ${keyId}`, 130);
  } catch (failure) {
    error.textContent = failure.message;
  }
}

async function setRange(chosen) {
  range = chosen;
  for (const button of document.querySelectorAll("button.range")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === chosen));
  }
  await Promise.all([loadUsage(), ...[...expanded].map(loadKeyUsage)]);
}

// Keys whose usage row is open (kept across reloads of the key list).
const expanded = new Set();

function usageRow(key, columns) {
  const row = document.createElement("tr");
  row.className = "usage-row";
  row.id = `usage-${key.key_id}`;
  row.dataset.usageFor = key.key_id;
  const td = cell(row, "");
  td.colSpan = columns;
  const chart = document.createElement("div");
  chart.className = "chart";
  const error = document.createElement("p");
  error.className = "error";
  error.setAttribute("role", "alert");
  td.append(chart, error);
  return row;
}

function toggleUsage(key, row, button, columns) {
  const open = expanded.has(key.key_id);
  if (open) {
    expanded.delete(key.key_id);
    row.nextElementSibling.remove();
  } else {
    expanded.add(key.key_id);
    row.after(usageRow(key, columns));
    loadKeyUsage(key.key_id);
  }
  button.setAttribute("aria-expanded", String(!open));
  button.textContent = open ? "Usage" : "Hide usage";
}

function lastUsed(seconds) {
  return seconds === null || seconds === undefined ? "never" : utc(seconds, true);
}

function showLogin() {
  $("app-view").hidden = true;
  $("who").hidden = true;
  $("login-view").hidden = false;
}

async function showApp(me) {
  userGrants = me.permissions || [];
  buildPortalOptions(userGrants);
  $("who-user").textContent = me.user_id;
  $("who-org").textContent = me.org_id;
  $("who").hidden = false;
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  await Promise.all([loadKeys(), loadAudit(), loadUsage(), loadIdentities(false)]);
}

const KEY_COLUMNS = 7;

// Every page of a list: the API answers a bounded page and the relative link of the next one
// ("next", null on the last), which the proxy serves under /proxy.
async function callPages(path, items) {
  const all = [];
  let link = path;
  while (link) {
    const data = await call("GET", link);
    all.push(...data[items]);
    link = data.next ? `/proxy${data.next}` : null;
  }
  return all;
}

async function loadKeys() {
  $("keys-error").textContent = "";
  const body = $("keys-body");
  try {
    const data = { keys: await callPages("/proxy/v1/keys", "keys") };
    body.replaceChildren();
    for (const key of data.keys) {
      const row = document.createElement("tr");
      row.dataset.keyId = key.key_id;
      cell(row, key.name || "—");
      cell(row, key.key_id).className = "mono";
      cell(row, key.start + "…");
      cell(row, key.permissions.join(", "));
      const revoked = key.revoked_at !== null;
      cell(row, revoked ? "revoked" : "active", revoked ? "status-revoked" : "status-active");
      const used = cell(row, lastUsed(key.last_used_at), "last-used");
      used.dataset.lastUsed = key.last_used_at === null ? "" : String(key.last_used_at);
      const actions = cell(row, "", "actions");
      const usageButton = document.createElement("button");
      usageButton.type = "button";
      usageButton.className = "link usage-toggle";
      usageButton.textContent = "Usage";
      usageButton.setAttribute("aria-expanded", "false");
      usageButton.setAttribute("aria-controls", `usage-${key.key_id}`);
      usageButton.addEventListener("click", () => toggleUsage(key, row, usageButton, KEY_COLUMNS));
      actions.appendChild(usageButton);
      if (!revoked) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "danger";
        button.textContent = "Revoke";
        button.addEventListener("click", () => revokeKey(key.key_id));
        actions.appendChild(button);
      }
      body.appendChild(row);
      if (expanded.has(key.key_id)) {
        expanded.delete(key.key_id);
        toggleUsage(key, row, usageButton, KEY_COLUMNS);
      }
    }
    if (data.keys.length === 0) {
      const row = document.createElement("tr");
      cell(row, "No keys yet.", "muted").colSpan = KEY_COLUMNS;
      body.appendChild(row);
    }
  } catch (error) {
    $("keys-error").textContent = error.message;
  }
}

async function loadAudit() {
  $("audit-error").textContent = "";
  const body = $("audit-body");
  try {
    const data = await call("GET", "/proxy/v1/audit-logs?limit=50");
    body.replaceChildren();
    for (const event of data.events) {
      const row = document.createElement("tr");
      cell(row, new Date(event.time * 1000).toISOString().replace(".000Z", "Z"));
      cell(row, event.action);
      cell(row, `${event.actor.type}:${event.actor.id}`);
      cell(row, event.targets.map((t) => `${t.type}:${t.id}`).join(", "));
      body.appendChild(row);
    }
  } catch (error) {
    $("audit-error").textContent = error.message;
  }
}

async function revokeKey(keyId) {
  try {
    await call("DELETE", `/proxy/v1/keys/${encodeURIComponent(keyId)}`);
  } catch (error) {
    $("keys-error").textContent = error.message;
  }
  await Promise.all([loadKeys(), loadAudit(), loadUsage()]);
}

async function createKey(event) {
  event.preventDefault();
  $("create-error").textContent = "";
  $("new-key").hidden = true;
  const permissions = $("create-permissions").value.split(/[\s,]+/).filter((p) => p.length > 0);
  const body = { name: $("create-name").value, permissions };
  const expires = $("create-expires").value;
  if (expires !== "") body.expires_in = Number(expires);
  try {
    const created = await call("POST", "/proxy/v1/keys", body);
    $("new-key-id").textContent = created.key_id;
    $("new-key-value").textContent = created.key;
    $("new-key").hidden = false;
    $("create-form").reset();
  } catch (error) {
    $("create-error").textContent = error.message;
  }
  await Promise.all([loadKeys(), loadAudit(), loadUsage()]);
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const me = await call("POST", "/login", {
      user_id: $("login-user").value,
      password: $("login-password").value,
    });
    $("login-password").value = "";
    await showApp(me);
  } catch (error) {
    $("login-error").textContent = error.message;
  }
}

async function logout() {
  try { await call("POST", "/logout"); } catch (_) { /* the session is gone either way */ }
  $("new-key").hidden = true;
  userGrants = [];
  $("identities-body").replaceChildren();
  showLogin();
}

async function start() {
  $("login-form").addEventListener("submit", login);
  $("create-form").addEventListener("submit", createKey);
  $("logout").addEventListener("click", logout);
  $("refresh").addEventListener("click", () => Promise.all([loadKeys(), loadAudit(), loadUsage()]));
  $("identities-refresh").addEventListener("click", () => loadIdentities(false));
  $("identities-more").addEventListener("click", () => loadIdentities(true));
  for (const button of document.querySelectorAll("button.range")) {
    button.addEventListener("click", () => setRange(button.dataset.range));
  }
  drawLegend();
  try {
    await showApp(await call("GET", "/session"));
  } catch (_) {
    showLogin();
  }
}

document.addEventListener("DOMContentLoaded", start);
