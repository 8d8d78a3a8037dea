// The dashboard's identities view (loaded with app.js, whose helpers it uses: $, call, cell,
// utc, lastUsed, splitOutcomes, describe). Every API call goes through /proxy/ on this origin.
"use strict";

// --- identities ----------------------------------------------------------------------------
// The API's customers, a page at a time ("More" follows next_cursor). Each row shows what the
// list answer carries, then fills in its live key count and its last day's requests. "Keys"
// opens the identity's keys; "Portal link" asks the API for a portal session of the identity
// and shows the one-time link to hand to its end user.

const IDENTITY_PAGE = 20;
const IDENTITY_COLUMNS = 6;
// What an end user does in the portal: see, make and revoke the identity's keys, see usage.
const PORTAL_PERMISSIONS = ["keys.read", "keys.create", "keys.revoke", "usage.read"];
// Never offered for keys made in the portal: administering the workspace is not a customer's.
const ADMIN_PREFIXES = ["portal.", "identities.", "audit."];
let identitiesCursor = null;
// The logged-in user's own grants (what the API lets this user hand on, at most).
let userGrants = [];
// Identities whose keys row is open (kept across refreshes).
const identityKeysOpen = new Set();

// Whether a grant covers a permission: "*" as a whole segment matches one segment, "*" alone
// matches all (authcore.permissions). Only for what the page offers: the API decides.
function covers(grant, permission) {
  if (grant === "*") return true;
  const want = permission.split(".");
  const have = grant.split(".");
  return have.length === want.length && have.every((segment, i) => segment === "*" || segment === want[i]);
}

function userCan(permission) {
  return userGrants.some((grant) => covers(grant, permission));
}

function isAdminPermission(permission) {
  return ADMIN_PREFIXES.some((prefix) => permission.startsWith(prefix));
}

// Checkboxes for what keys made in the portal may hold: the user's own non-admin
// permissions (the API refuses to let anyone grant more than it holds), the read ones checked.
function buildPortalOptions(permissions) {
  const fieldset = $("portal-key-permissions");
  fieldset.replaceChildren(fieldset.querySelector("legend"));
  for (const permission of permissions.filter((p) => !isAdminPermission(p))) {
    const label = document.createElement("label");
    label.className = "check";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = permission;
    box.checked = permission.endsWith(".read");
    const text = document.createElement("span");
    text.textContent = permission;
    label.append(box, text);
    fieldset.appendChild(label);
  }
}

function portalKeyPermissions() {
  return [...document.querySelectorAll("#portal-key-permissions input:checked")].map((box) => box.value);
}

function identityRow(id) {
  return document.querySelector(`#identities-body tr.identity[data-external-id="${CSS.escape(id)}"]`);
}

// The row under an identity's row that holds its keys or its portal link, if open.
function openDetail(row, kind) {
  let found = row.nextElementSibling;
  while (found && found.classList.contains("identity-detail")) {
    if (found.dataset.kind === kind) return found;
    found = found.nextElementSibling;
  }
  return null;
}

// That row, made if it is not open yet: keys right under the identity, then the link.
function detailRow(row, kind) {
  const open = openDetail(row, kind);
  if (open) return open;
  const detail = document.createElement("tr");
  detail.className = `identity-detail ${kind}-row`;
  detail.dataset.kind = kind;
  detail.dataset.detailFor = row.dataset.externalId;
  const td = cell(detail, "");
  td.colSpan = IDENTITY_COLUMNS;
  const content = document.createElement("div");
  content.className = "detail-content";
  const error = document.createElement("p");
  error.className = "error";
  error.setAttribute("role", "alert");
  td.append(content, error);
  ((kind === "link" && openDetail(row, "keys")) || row).after(detail);
  return detail;
}

async function loadIdentityKeys(row) {
  const detail = detailRow(row, "keys");
  const content = detail.querySelector(".detail-content");
  const error = detail.querySelector(".error");
  error.textContent = "";
  const id = row.dataset.externalId;
  try {
    const data = { keys: await callPages(`/proxy/v1/keys?identity=${encodeURIComponent(id)}`, "keys") };
    const table = document.createElement("table");
    table.className = "nested";
    const head = document.createElement("tr");
    for (const name of ["Name", "Key id", "Starts with", "Permissions", "Status", "Last used (UTC)"]) {
      const th = document.createElement("th");
      th.textContent = name;
      head.appendChild(th);
    }
    table.appendChild(head);
    for (const key of data.keys) {
      const keyRow = document.createElement("tr");
      keyRow.dataset.keyId = key.key_id;
      cell(keyRow, key.name || "—");
      cell(keyRow, key.key_id);
      cell(keyRow, key.start + "…");
      cell(keyRow, key.permissions.join(", "));
      const revoked = key.revoked_at !== null;
      cell(keyRow, revoked ? "revoked" : "active", revoked ? "status-revoked" : "status-active");
      cell(keyRow, lastUsed(key.last_used_at), "last-used");
      table.appendChild(keyRow);
    }
    if (data.keys.length === 0) {
      const empty = document.createElement("tr");
      cell(empty, "This identity has no keys.", "muted").colSpan = 6;
      table.appendChild(empty);
    }
    content.replaceChildren(table);
  } catch (failure) {
    error.textContent = failure.message;
  }
}

function toggleIdentityKeys(row, button) {
  const id = row.dataset.externalId;
  const open = identityKeysOpen.has(id);
  if (open) {
    identityKeysOpen.delete(id);
    const detail = openDetail(row, "keys");
    if (detail) detail.remove();
  } else {
    identityKeysOpen.add(id);
    loadIdentityKeys(row);
  }
  button.setAttribute("aria-expanded", String(!open));
  button.textContent = open ? "Keys" : "Hide keys";
}

async function copyText(text, said) {
  try {
    await navigator.clipboard.writeText(text);
    said.textContent = "Copied.";
  } catch (_) {
    said.textContent = "Copy failed: select the link and copy it by hand.";
  }
}

async function makePortalLink(row, button) {
  const detail = detailRow(row, "link");
  const content = detail.querySelector(".detail-content");
  const error = detail.querySelector(".error");
  error.textContent = "";
  content.replaceChildren();
  button.disabled = true;
  const body = {
    identity: row.dataset.externalId,
    permissions: PORTAL_PERMISSIONS.filter(userCan),
    key_permissions: portalKeyPermissions(),
    ttl: Number($("portal-ttl").value),
  };
  try {
    const created = await call("POST", "/proxy/v1/portal-sessions", body);
    const box = document.createElement("div");
    box.className = "secret portal-link";
    const intro = document.createElement("p");
    const until = new Date(created.code_expires_at * 1000).toISOString().slice(11, 19);
    intro.textContent = `Portal link for ${body.identity}. It works once, until ${until} UTC: send it to the end user now.`;
    const line = document.createElement("div");
    line.className = "copy-row";
    const url = document.createElement("code");
    url.className = "portal-url";
    url.textContent = created.portal_url;
    const copy = document.createElement("button");
    copy.type = "button";
    copy.textContent = "Copy";
    const said = document.createElement("span");
    said.className = "muted";
    said.setAttribute("role", "status");
    copy.addEventListener("click", () => copyText(created.portal_url, said));
    line.append(url, copy, said);
    const session = document.createElement("p");
    session.className = "muted note";
    session.textContent = `Session ${created.session_id}; it ends at ${utc(created.expires_at, true)} UTC at the latest.`;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "link";
    close.textContent = "Hide";
    close.addEventListener("click", () => detail.remove());
    box.append(intro, line, session, close);
    content.replaceChildren(box);
  } catch (failure) {
    error.textContent = failure.message;
  } finally {
    button.disabled = false;
  }
}

function usageTotal(totals) {
  return Object.values(totals || {}).reduce((a, b) => a + b, 0);
}

// The live key count and the last day's requests of one identity, filled into its row.
async function fillIdentity(row, identity) {
  const id = identity.external_id;
  const keysCell = row.querySelector("td.identity-keys");
  const usageCell = row.querySelector("td.identity-usage");
  const detail = typeof identity.keys === "number"
    ? Promise.resolve(identity)
    : call("GET", `/proxy/v1/identities/${encodeURIComponent(id)}`);
  const usage = call("GET", `/proxy/v1/usage?identity=${encodeURIComponent(id)}&granularity=hour`);
  const [found, used] = await Promise.allSettled([detail, usage]);
  keysCell.textContent = found.status === "fulfilled" ? String(found.value.keys) : "—";
  if (used.status === "fulfilled") {
    const totals = splitOutcomes(used.value.totals).counts;
    usageCell.textContent = String(usageTotal(used.value.totals));
    usageCell.title = describe(totals);
    usageCell.dataset.total = String(usageTotal(used.value.totals));
  } else {
    usageCell.textContent = "—";
  }
}

function addIdentity(body, identity) {
  const row = document.createElement("tr");
  row.className = "identity";
  row.dataset.externalId = identity.external_id;
  row.dataset.identityId = identity.identity_id;
  cell(row, identity.external_id, "external-id");
  cell(row, identity.rate_limit === null || identity.rate_limit === undefined ? "workspace limit" : `${identity.rate_limit} s`);
  cell(row, "…", "identity-keys");
  cell(row, "…", "identity-usage");
  cell(row, identity.created_at ? utc(identity.created_at, true) : "—");
  const actions = cell(row, "", "actions");
  const keys = document.createElement("button");
  keys.type = "button";
  keys.className = "link identity-keys-toggle";
  keys.textContent = "Keys";
  keys.setAttribute("aria-expanded", "false");
  keys.addEventListener("click", () => toggleIdentityKeys(row, keys));
  const link = document.createElement("button");
  link.type = "button";
  link.className = "portal-link-button";
  link.textContent = "Portal link";
  link.addEventListener("click", () => makePortalLink(row, link));
  actions.append(keys, link);
  body.appendChild(row);
  if (identityKeysOpen.has(identity.external_id)) {
    keys.setAttribute("aria-expanded", "true");
    keys.textContent = "Hide keys";
    loadIdentityKeys(row);
  }
  fillIdentity(row, identity);
}

async function loadIdentities(more) {
  $("identities-error").textContent = "";
  const body = $("identities-body");
  if (!userCan("identities.read")) {
    body.replaceChildren();
    const row = document.createElement("tr");
    cell(row, "Listing identities needs the identities.read permission, which this dashboard user does not have.", "muted").colSpan = IDENTITY_COLUMNS;
    body.appendChild(row);
    $("identities-more").hidden = true;
    $("portal-options").hidden = true;
    return;
  }
  $("portal-options").hidden = false;
  const params = new URLSearchParams({ limit: String(IDENTITY_PAGE) });
  if (more && identitiesCursor !== null) params.set("cursor", identitiesCursor);
  try {
    const data = await call("GET", `/proxy/v1/identities?${params}`);
    if (!more) body.replaceChildren();
    for (const identity of data.identities) addIdentity(body, identity);
    identitiesCursor = data.next_cursor === undefined ? null : data.next_cursor;
    $("identities-more").hidden = identitiesCursor === null;
    if (!more && data.identities.length === 0) {
      const row = document.createElement("tr");
      cell(row, "No identities yet.", "muted").colSpan = IDENTITY_COLUMNS;
      body.appendChild(row);
    }
  } catch (error) {
    $("identities-error").textContent = error.message;
    $("identities-more").hidden = true;
  }
}
