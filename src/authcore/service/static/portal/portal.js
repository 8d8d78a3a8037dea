// The API-key portal: an end user manages the keys of one identity (one customer of the API).
//
// The operator's link is <service>/portal/#code=pc_...: a one-time code in the URL fragment,
// which the browser never sends to a server. This script removes it from the address bar before
// it makes any request, posts it to ./exchange, and from then on the HttpOnly session cookie
// (which this script cannot read) is the only credential. Nothing is kept in localStorage or
// sessionStorage. Every string from the server is written with textContent, never as HTML.
// Every URL is relative to the page (/portal/), so the portal works under a path prefix too.
"use strict";

const $ = (id) => document.getElementById(id);

const EXPIRED = "This link has expired or was already used. Ask for a new one.";
const LOGGED_OUT = "You are logged out. To come back, ask for a new link.";
const UNAVAILABLE = "The portal cannot be reached right now. Try again in a moment.";
// A code is short; anything longer is not one (and is never sent anywhere).
const MAX_CODE_LENGTH = 200;

// --- the code in the fragment ------------------------------------------------------------

// Read the code and take the fragment out of the address bar (and so out of the history, of
// bookmarks and of screen shares), whatever it held. Returns the code, or null without one.
function takeCode() {
  const hash = window.location.hash;
  if (hash === "" || hash === "#") return null;
  history.replaceState(null, "", window.location.pathname + window.location.search);
  const code = new URLSearchParams(hash.slice(1)).get("code");
  return code === null ? null : code.slice(0, MAX_CODE_LENGTH + 1);
}

// Taken as soon as the script runs: before the page is wired, before any fetch.
const initialCode = takeCode();

// --- HTTP --------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function call(method, path, body) {
  const init = {
    method,
    credentials: "same-origin",
    cache: "no-store",
    headers: { Accept: "application/json" },
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (_) {
    throw new ApiError(0, UNAVAILABLE);
  }
  let data = null;
  if (response.status !== 204) {
    try { data = await response.json(); } catch (_) { data = null; }
  }
  if (!response.ok) {
    const title = data && typeof data.title === "string" ? data.title : `The request failed (HTTP ${response.status}).`;
    if (response.status === 401) sessionEnded();
    throw new ApiError(response.status, title);
  }
  return data;
}

// --- views -------------------------------------------------------------------------------

let me = null;  // the session's identity, from v1/identity
let generation = 0;  // bumped on every start and every end: late answers of a past session are dropped

function show(view) {
  $("loading").hidden = view !== "loading";
  $("message-view").hidden = view !== "message";
  $("app-view").hidden = view !== "app";
  $("who").hidden = view !== "app";
}

function showMessage(text) {
  generation += 1;
  me = null;
  hideNewKey();
  $("keys-body").replaceChildren();
  $("usage-chart").replaceChildren();
  $("message").textContent = text;
  show("message");
}

// Any 401 means the session is over (expired, revoked, logged out in another tab).
function sessionEnded() {
  if (me !== null) showMessage(EXPIRED);
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function button(text, className, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = text;
  if (className) element.className = className;
  element.addEventListener("click", onClick);
  return element;
}

function utc(seconds, withDate = true) {
  const text = new Date(seconds * 1000).toISOString();
  return withDate ? `${text.slice(0, 10)} ${text.slice(11, 16)}` : text.slice(11, 16);
}

// Whether a grant covers a permission: "*" as a whole segment matches one segment, "*" alone
// matches all (authcore.permissions). Only for what the page offers: the API decides.
function covers(grant, permission) {
  if (grant === "*") return true;
  const want = permission.split(".");
  const have = grant.split(".");
  return have.length === want.length && have.every((segment, i) => segment === "*" || segment === want[i]);
}

function can(permission) {
  return me !== null && me.permissions.some((grant) => covers(grant, permission));
}

// --- usage charts (plain SVG, drawn here: no library, no inline style) ---------------------

const SVG = "http://www.w3.org/2000/svg";
// Okabe-Ito colours (distinct with the common colour-vision deficiencies), and each series has
// its own pattern too, so colour is never the only difference.
const SERIES = [
  { key: "allowed", label: "Allowed", color: "#0072B2", pattern: "solid" },
  { key: "refused", label: "Refused", color: "#D55E00", pattern: "stripes" },
  { key: "rate_limited", label: "Rate limited", color: "#E69F00", pattern: "dots" },
];
const SPANS = { minute: 60, hour: 3600, day: 86400 };
let chartCount = 0;

function svg(name, attributes, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [attribute, value] of Object.entries(attributes || {})) {
    element.setAttribute(attribute, String(value));
  }
  if (parent) parent.appendChild(element);
  return element;
}

function definePatterns(root) {
  const prefix = `portal-chart${++chartCount}`;
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

// The three series of one bucket: refused is every outcome but the other two.
function split(outcomes) {
  const counts = { allowed: 0, refused: 0, rate_limited: 0 };
  for (const [outcome, count] of Object.entries(outcomes || {})) {
    if (outcome === "allowed" || outcome === "rate_limited") counts[outcome] += count;
    else counts.refused += count;
  }
  return counts;
}

function sum(counts) {
  return counts.allowed + counts.refused + counts.rate_limited;
}

function describe(counts) {
  return `${counts.allowed} allowed, ${counts.refused} refused, ${counts.rate_limited} rate limited`;
}

// Every bucket of the answer's window, oldest first, the empty ones included.
function bucketsOf(data) {
  const span = SPANS[data.granularity] || 3600;
  const found = new Map(data.buckets.map((bucket) => [bucket.start, bucket.outcomes]));
  const buckets = [];
  const end = Math.ceil(data.until / span) * span;
  for (let start = data.since - (data.since % span); start < end; start += span) {
    buckets.push({ start, counts: split(found.get(start)) });
  }
  return buckets;
}

// A stacked bar chart of one usage answer, with a legend and its totals in words.
function drawChart(container, data) {
  const buckets = bucketsOf(data);
  const totals = split(data.totals);
  const width = 900;
  const height = 150;
  const left = 40;
  const top = 8;
  const bottom = 22;
  const plot = height - top - bottom;
  const highest = Math.max(1, ...buckets.map((bucket) => sum(bucket.counts)));
  const step = (width - left) / Math.max(1, buckets.length);
  const barWidth = Math.max(1, step - Math.min(4, step * 0.25));
  const summary = `Requests in the last 24 hours: ${describe(totals)}.`;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": summary, class: "usage-svg" });
  svg("title", {}, root).textContent = summary;
  const ids = definePatterns(root);
  svg("line", { x1: left, x2: width, y1: top + plot, y2: top + plot, class: "axis" }, root);
  svg("line", { x1: left, x2: width, y1: top, y2: top, class: "grid" }, root);
  for (const [value, y] of [[0, top + plot + 4], [highest, top + 8]]) {
    svg("text", { x: left - 6, y, "text-anchor": "end", class: "tick" }, root).textContent = String(value);
  }
  buckets.forEach((bucket, index) => {
    const x = left + index * step + (step - barWidth) / 2;
    const group = svg("g", { class: "bucket", "data-start": bucket.start, "data-total": sum(bucket.counts) }, root);
    svg("title", {}, group).textContent = `${utc(bucket.start)} UTC: ${describe(bucket.counts)}`;
    svg("rect", { x, y: top, width: barWidth, height: plot, class: "hit" }, group);
    let y = top + plot;
    for (const series of SERIES) {
      const count = bucket.counts[series.key];
      if (count === 0) continue;
      const h = (count / highest) * plot;
      y -= h;
      svg("rect", { x, y, width: barWidth, height: h, fill: `url(#${ids[series.key]})`, class: "segment" }, group);
    }
  });
  if (buckets.length > 0) {
    for (const index of new Set([0, Math.floor(buckets.length / 2), buckets.length - 1])) {
      const x = left + index * step + step / 2;
      svg("text", { x, y: height - 6, "text-anchor": "middle", class: "tick" }, root).textContent = utc(buckets[index].start, false);
    }
  }
  const legend = document.createElement("ul");
  legend.className = "legend";
  for (const series of SERIES) {
    const item = document.createElement("li");
    const swatch = svg("svg", { viewBox: "0 0 18 12", width: 18, height: 12, "aria-hidden": "true" });
    svg("rect", { width: 18, height: 12, fill: `url(#${definePatterns(swatch)[series.key]})`, class: "swatch" }, swatch);
    const label = document.createElement("span");
    label.textContent = series.label;
    item.append(swatch, label);
    legend.appendChild(item);
  }
  const total = document.createElement("p");
  total.className = "totals";
  total.textContent = `Total: ${describe(totals)}`;
  total.dataset.total = String(sum(totals));
  container.replaceChildren(legend, root, total);
}

// A key's last 24 hours as a tiny bar chart, and its total in words beside it.
function drawSparkline(container, data) {
  const buckets = bucketsOf(data);
  const totals = split(data.totals);
  const width = 96;
  const height = 24;
  const highest = Math.max(1, ...buckets.map((bucket) => sum(bucket.counts)));
  const step = width / Math.max(1, buckets.length);
  const summary = `${sum(totals)} requests in the last 24 hours: ${describe(totals)}`;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": summary, class: "spark" });
  svg("title", {}, root).textContent = summary;
  svg("line", { x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5, class: "axis" }, root);
  buckets.forEach((bucket, index) => {
    const total = sum(bucket.counts);
    if (total === 0) return;
    const h = Math.max(1, (total / highest) * (height - 2));
    const refusedShare = (bucket.counts.refused + bucket.counts.rate_limited) / total;
    svg("rect", {
      x: index * step + step * 0.1, y: height - 1 - h, width: Math.max(0.5, step * 0.8), height: h,
      class: refusedShare > 0.5 ? "spark-bar mostly-refused" : "spark-bar",
    }, root);
  });
  const words = document.createElement("span");
  words.className = "spark-total";
  words.textContent = String(sum(totals));
  container.dataset.total = String(sum(totals));
  container.replaceChildren(root, words);
}

async function loadUsage(at) {
  $("usage-error").textContent = "";
  try {
    const data = await call("GET", "v1/usage?granularity=hour");
    if (at !== generation) return;
    drawChart($("usage-chart"), data);
  } catch (error) {
    if (at === generation && error.status !== 401) $("usage-error").textContent = error.message;
  }
}

async function loadSparkline(at, keyId, container) {
  try {
    const data = await call("GET", `v1/keys/${encodeURIComponent(keyId)}/usage?granularity=hour`);
    if (at !== generation) return;
    drawSparkline(container, data);
  } catch (_) {
    if (at === generation) container.textContent = "—";
  }
}

// --- keys --------------------------------------------------------------------------------

function status(key, now) {
  if (key.revoked_at !== null && key.revoked_at !== undefined) return "revoked";
  if (key.expires_at !== null && key.expires_at !== undefined && key.expires_at <= now) return "expired";
  return "active";
}

function confirmRevoke(key, actions) {
  const question = document.createElement("span");
  question.className = "confirm";
  question.textContent = "Revoke this key? It stops working at once.";
  const yes = button("Yes, revoke", "danger confirm-revoke", () => revokeKey(key, actions));
  const no = button("Cancel", "link", () => actions.replaceChildren(revokeButton(key, actions)));
  actions.replaceChildren(question, yes, no);
  no.focus();
}

function revokeButton(key, actions) {
  return button("Revoke", "danger revoke", () => confirmRevoke(key, actions));
}

async function revokeKey(key, actions) {
  const at = generation;
  $("keys-error").textContent = "";
  for (const element of actions.querySelectorAll("button")) element.disabled = true;
  try {
    await call("DELETE", `v1/keys/${encodeURIComponent(key.key_id)}`);
  } catch (error) {
    if (at !== generation) return;
    $("keys-error").textContent = error.message;
  }
  if (at === generation) await loadKeys(at);
}

const COLUMNS = 8;

async function loadKeys(at) {
  $("keys-error").textContent = "";
  const data = { keys: [] };
  try {
    // Every page: the API answers a bounded page and the link of the next ("next", null on
    // the last), a path on this same origin.
    let link = "v1/keys";
    while (link) {
      const page = await call("GET", link);
      data.keys.push(...page.keys);
      link = page.next;
    }
  } catch (error) {
    if (at === generation && error.status !== 401) $("keys-error").textContent = error.message;
    return;
  }
  if (at !== generation) return;
  const now = Date.now() / 1000;
  const body = $("keys-body");
  body.replaceChildren();
  const withUsage = can("usage.read");
  for (const key of data.keys) {
    const row = document.createElement("tr");
    row.dataset.keyId = key.key_id;
    cell(row, key.name || "—", "name");
    cell(row, `${key.start}…`, "mono");
    cell(row, key.permissions.length ? key.permissions.join(", ") : "none");
    cell(row, utc(key.created_at), "nowrap");
    const used = key.last_used_at;
    cell(row, used === null || used === undefined ? "never" : utc(used), "nowrap last-used");
    const spark = cell(row, "", "spark-cell");
    spark.hidden = !withUsage;
    const state = status(key, now);
    cell(row, state, `status status-${state}`);
    const actions = cell(row, "", "actions");
    if (state === "active" && can("keys.revoke")) actions.appendChild(revokeButton(key, actions));
    body.appendChild(row);
    if (withUsage) loadSparkline(at, key.key_id, spark);
  }
  if (data.keys.length === 0) {
    const row = document.createElement("tr");
    cell(row, "No keys yet.", "muted").colSpan = COLUMNS;
    body.appendChild(row);
  }
}

// --- creating a key ----------------------------------------------------------------------

function buildPermissionChoices(permissions) {
  const fieldset = $("create-permissions");
  const legend = fieldset.querySelector("legend");
  fieldset.replaceChildren(legend);
  if (permissions.length === 0) {
    const note = document.createElement("p");
    note.className = "muted note";
    note.textContent = "New keys hold no permissions.";
    fieldset.appendChild(note);
    return;
  }
  for (const permission of permissions) {
    const label = document.createElement("label");
    label.className = "check";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.name = "permission";
    box.value = permission;
    box.checked = true;
    box.defaultChecked = true;  // form.reset() checks it again
    const text = document.createElement("span");
    text.textContent = permission;
    label.append(box, text);
    fieldset.appendChild(label);
  }
}

function hideNewKey() {
  $("new-key").hidden = true;
  $("new-key-value").textContent = "";  // out of the DOM, not only out of sight
  $("new-key-name").textContent = "";
  $("new-key-copied").textContent = "";
}

async function createKey(event) {
  event.preventDefault();
  const at = generation;
  $("create-error").textContent = "";
  hideNewKey();
  const permissions = [...document.querySelectorAll('#create-permissions input[type="checkbox"]:checked')].map((box) => box.value);
  const body = { name: $("create-name").value.trim(), permissions };
  const expires = $("create-expires").value;
  if (expires !== "") body.expires_in = Number(expires);
  const submit = $("create-submit");
  submit.disabled = true;
  try {
    const created = await call("POST", "v1/keys", body);
    if (at !== generation) return;
    $("new-key-name").textContent = `“${created.name || body.name}”`;
    $("new-key-value").textContent = created.key;
    $("new-key").hidden = false;
    $("create-form").reset();
    $("new-key-copy").focus();
    await loadKeys(at);
  } catch (error) {
    if (at === generation && error.status !== 401) $("create-error").textContent = error.message;
  } finally {
    submit.disabled = false;
  }
}

async function copyKey() {
  const value = $("new-key-value");
  const said = $("new-key-copied");
  try {
    await navigator.clipboard.writeText(value.textContent);
    said.textContent = "Copied.";
    return;
  } catch (_) {
    // No clipboard API here (or no permission): select the key for the user instead.
  }
  const range = document.createRange();
  range.selectNodeContents(value);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  said.textContent = "The key is selected: copy it with your keyboard.";
}

// --- the session -------------------------------------------------------------------------

async function showApp(identity) {
  me = identity;
  const at = generation;
  $("who-id").textContent = identity.external_id;
  $("create-card").hidden = !can("keys.create");
  buildPermissionChoices(identity.key_permissions || []);
  $("usage-card").hidden = !can("usage.read");
  $("spark-head").hidden = !can("usage.read");
  show("app");
  const loads = [loadKeys(at)];
  if (can("usage.read")) loads.push(loadUsage(at));
  await Promise.all(loads);
}

function refresh() {
  const loads = [loadKeys(generation)];
  if (can("usage.read")) loads.push(loadUsage(generation));
  return Promise.all(loads);
}

async function start(code) {
  generation += 1;
  me = null;
  const at = generation;
  show("loading");
  if (code !== null) {
    if (code.length === 0 || code.length > MAX_CODE_LENGTH) {
      showMessage(EXPIRED);
      return;
    }
    try {
      await call("POST", "exchange", { code });
    } catch (error) {
      if (at === generation) showMessage(error.status >= 400 && error.status < 500 && error.status !== 429 ? EXPIRED : UNAVAILABLE);
      return;
    }
  }
  // No code: a reload, or a second tab. A session the cookie still carries is shown as is.
  let identity;
  try {
    identity = await call("GET", "v1/identity");
  } catch (error) {
    if (at === generation) showMessage(error.status === 401 || error.status === 403 ? EXPIRED : UNAVAILABLE);
    return;
  }
  if (at === generation) await showApp(identity);
}

async function logout() {
  try { await call("POST", "logout"); } catch (_) { /* the session ends here either way */ }
  showMessage(LOGGED_OUT);
}

function wire() {
  $("create-form").addEventListener("submit", createKey);
  $("new-key-copy").addEventListener("click", copyKey);
  $("new-key-done").addEventListener("click", hideNewKey);
  $("logout").addEventListener("click", logout);
  $("refresh").addEventListener("click", refresh);
  // A new link pasted into this tab changes only the fragment: no page load, so read it here.
  window.addEventListener("hashchange", () => {
    const code = takeCode();
    if (code !== null) start(code);
  });
}

// The script is deferred: the document is parsed by now.
wire();
start(initialCode);
