// Renders /openapi.json as a list of operations: parameters, body, answers. Text only goes
// through textContent, never innerHTML, so nothing in the document is read as markup.
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete"];

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function resolve(doc, value) {
  // Follows local "#/components/..." references; anything else is shown as it is.
  let seen = 0;
  while (value && typeof value.$ref === "string" && value.$ref.startsWith("#/") && seen < 8) {
    value = value.$ref.slice(2).split("/").reduce((node, key) => (node ? node[key] : undefined), doc);
    seen += 1;
  }
  return value || {};
}

function schemaText(schema) {
  if (!schema) return "";
  const type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type || "";
  const parts = [type];
  if (schema.enum) parts.push("one of " + schema.enum.join(", "));
  if (schema.minimum !== undefined || schema.maximum !== undefined) {
    parts.push(`${schema.minimum ?? ""}..${schema.maximum ?? ""}`);
  }
  if (schema.maxLength !== undefined) parts.push(`at most ${schema.maxLength} characters`);
  return parts.filter(Boolean).join(", ");
}

function table(headings, rows) {
  const tbl = el("table");
  const head = el("tr");
  headings.forEach((h) => head.appendChild(el("th", h)));
  tbl.appendChild(head);
  rows.forEach((cells) => {
    const row = el("tr");
    cells.forEach((cell) => row.appendChild(cell instanceof Node ? wrap(cell) : el("td", cell)));
    tbl.appendChild(row);
  });
  return tbl;
}

function wrap(node) {
  const td = el("td");
  td.appendChild(node);
  return td;
}

function security(doc, op) {
  const needs = op.security || doc.security || [];
  if (needs.length === 0) return "public";
  return needs.map((req) => Object.keys(req).join(" + ")).join(" or ");
}

function renderOperation(doc, path, method, op) {
  const box = el("section", null, "op");
  box.id = op.operationId || `${method}-${path}`;
  const title = el("h3");
  title.appendChild(el("span", method.toUpperCase(), "method"));
  title.appendChild(el("span", path, "path"));
  title.appendChild(el("span", security(doc, op), "badge"));
  box.appendChild(title);
  box.appendChild(el("p", op.summary));
  if (op.description) box.appendChild(el("p", op.description, "muted"));
  const params = (op.parameters || []).map((p) => resolve(doc, p));
  if (params.length) {
    box.appendChild(el("h4", "Parameters"));
    box.appendChild(table(["name", "in", "required", "schema", ""], params.map((p) => [
      el("code", p.name), p.in, p.required ? "yes" : "no", schemaText(p.schema), p.description || "",
    ])));
  }
  if (op.requestBody) {
    box.appendChild(el("h4", "Body"));
    const content = op.requestBody.content || {};
    Object.keys(content).forEach((media) => {
      box.appendChild(el("p", media, "muted"));
      box.appendChild(el("pre", JSON.stringify(content[media].schema, null, 2)));
    });
  }
  box.appendChild(el("h4", "Answers"));
  const answers = Object.entries(op.responses || {}).map(([status, raw]) => {
    const answer = resolve(doc, raw);
    const media = Object.keys(answer.content || {}).join(", ");
    const headers = Object.keys(answer.headers || {}).join(", ");
    return [el("code", status), answer.description || "", media, headers];
  });
  box.appendChild(table(["status", "meaning", "body", "headers"], answers));
  return box;
}

function render(doc) {
  document.title = doc.info.title;
  document.getElementById("title").textContent = `${doc.info.title} ${doc.info.version}`;
  document.getElementById("description").textContent = doc.info.description || "";
  const schemes = (doc.components || {}).securitySchemes || {};
  const list = document.getElementById("schemes");
  Object.entries(schemes).forEach(([name, scheme]) => {
    list.appendChild(el("dt", name));
    const where = scheme.type === "http" ? `Authorization: ${scheme.scheme}` : `${scheme.in} ${scheme.name}`;
    list.appendChild(el("dd", `${where}. ${scheme.description || ""}`));
  });
  document.getElementById("security").hidden = false;
  const toc = document.getElementById("toc-list");
  const ops = document.getElementById("operations");
  Object.entries(doc.paths || {}).forEach(([path, item]) => {
    METHODS.filter((m) => item[m]).forEach((method) => {
      const op = item[method];
      const box = renderOperation(doc, path, method, op);
      ops.appendChild(box);
      const entry = el("li");
      const link = el("a", `${method.toUpperCase()} ${path}`);
      link.href = `#${box.id}`;
      entry.appendChild(link);
      entry.appendChild(el("span", ` ${op.summary}`, "muted"));
      toc.appendChild(entry);
    });
  });
  document.getElementById("toc").hidden = false;
}

async function main() {
  const loading = document.getElementById("loading");
  try {
    const response = await fetch("openapi.json", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`openapi.json answered ${response.status}`);
    render(await response.json());
  } catch (error) {
    const box = document.getElementById("error");
    box.textContent = `Could not load the document: ${error.message}`;
    box.hidden = false;
  } finally {
    loading.hidden = true;
  }
}

document.addEventListener("DOMContentLoaded", main);
