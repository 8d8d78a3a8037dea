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

function showLogin() {
  $("app-view").hidden = true;
  $("who").hidden = true;
  $("login-view").hidden = false;
}

async function showApp(me) {
  $("who-user").textContent = me.user_id;
  $("who-org").textContent = me.org_id;
  $("who").hidden = false;
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  await Promise.all([loadKeys(), loadAudit()]);
}

async function loadKeys() {
  $("keys-error").textContent = "";
  const body = $("keys-body");
  try {
    const data = await call("GET", "/proxy/v1/keys");
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
      const actions = cell(row, "");
      if (!revoked) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "danger";
        button.textContent = "Revoke";
        button.addEventListener("click", () => revokeKey(key.key_id));
        actions.appendChild(button);
      }
      body.appendChild(row);
    }
    if (data.keys.length === 0) {
      const row = document.createElement("tr");
      cell(row, "No keys yet.", "muted").colSpan = 6;
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
  await Promise.all([loadKeys(), loadAudit()]);
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
  await Promise.all([loadKeys(), loadAudit()]);
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
  showLogin();
}

async function start() {
  $("login-form").addEventListener("submit", login);
  $("create-form").addEventListener("submit", createKey);
  $("logout").addEventListener("click", logout);
  $("refresh").addEventListener("click", () => Promise.all([loadKeys(), loadAudit()]));
  try {
    await showApp(await call("GET", "/session"));
  } catch (_) {
    showLogin();
  }
}

document.addEventListener("DOMContentLoaded", start);
