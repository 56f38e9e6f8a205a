// Renders /openapi.json as a page: operations by tag, with their parameters, request body
// and responses. Everything comes from the gateway itself (no CDN), so the page works
// offline and under `Content-Security-Policy: default-src 'self'`.
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }
  return node;
}

// An example value of a schema, following $refs (cycles and depth bounded).
function example(spec, schema, depth = 0) {
  if (!schema || depth > 6) return null;
  if (schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return example(spec, spec.components?.schemas?.[name], depth + 1);
  }
  if (schema.example !== undefined) return schema.example;
  const variants = schema.oneOf || schema.anyOf || schema.allOf;
  if (variants) return example(spec, variants.find((s) => s.type !== "null") || variants[0], depth + 1);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  switch (type) {
    case "object": {
      const out = {};
      for (const [key, value] of Object.entries(schema.properties || {})) {
        out[key] = example(spec, value, depth + 1);
      }
      return out;
    }
    case "array": return [example(spec, schema.items, depth + 1)];
    case "integer": case "number": return 0;
    case "boolean": return false;
    case "string": return schema.enum ? schema.enum[0] : (schema.format || "string");
    default: return null;
  }
}

function schemaOf(content) {
  const media = content && (content["application/json"] || Object.values(content)[0]);
  return media && media.schema;
}

function schemaName(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.type === "array" && schema.items) return `${schemaName(schema.items)}[]`;
  return schema.type || "";
}

function operation(spec, path, method, op) {
  const id = op.operationId || `${method}-${path}`;
  const body = el("div", {});
  if (op.description) body.append(el("p", {}, op.description));
  const params = op.parameters || [];
  if (params.length) {
    const rows = params.map((p) => el("tr", {},
      el("td", {}, el("code", {}, p.name)), el("td", {}, p.in),
      el("td", {}, p.required ? "required" : "optional"), el("td", {}, p.description || "")));
    body.append(el("h4", {}, "Parameters"),
      el("table", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, ""), el("th", {}, "")), ...rows));
  }
  const request = op.requestBody && schemaOf(op.requestBody.content);
  if (request) {
    body.append(el("h4", {}, `Request body: ${schemaName(request)}`),
      el("pre", {}, JSON.stringify(example(spec, request), null, 2)));
  }
  const responses = Object.entries(op.responses || {}).map(([status, r]) => el("tr", {},
    el("td", {}, status), el("td", {}, r.description || ""), el("td", {}, el("code", {}, schemaName(schemaOf(r.content))))));
  body.append(el("h4", {}, "Responses"), el("table", {}, ...responses));
  return el("details", { class: "operation", id: `op-${id}`, "data-operation": id },
    el("summary", {}, el("span", { class: `method ${method}` }, method), " ", el("code", {}, path), " ", op.summary || ""),
    body);
}

async function render() {
  const summary = document.getElementById("summary");
  let spec;
  try {
    const response = await fetch("/openapi.json");
    spec = await response.json();
  } catch (error) {
    summary.className = "error";
    summary.textContent = `Could not load /openapi.json: ${error}`;
    return;
  }
  document.getElementById("title").textContent = `${spec.info.title} API ${spec.info.version || ""}`;
  summary.textContent = spec.info.description || "";
  const byTag = new Map();
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const method of METHODS) {
      if (!item[method]) continue;
      const tag = (item[method].tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(spec, path, method, item[method]));
    }
  }
  const main = document.getElementById("operations");
  const nav = document.getElementById("tags");
  for (const [tag, operations] of byTag) {
    nav.append(el("a", { href: `#tag-${tag}` }, tag));
    main.append(el("h2", { id: `tag-${tag}` }, tag), ...operations);
  }
  document.body.setAttribute("data-rendered", String(main.querySelectorAll("details").length));
}

render();
