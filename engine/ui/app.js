// Headway's web UI: a hash-routed page over the admin API (same origin, no dependencies).
"use strict";

const view = document.getElementById("view");
const STATUSES = ["", "scheduled", "pending", "running", "suspended", "backing-off", "completed"];

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

function sqlString(value) {
  return "'" + String(value).replace(/'/g, "''") + "'";
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!resp.ok) {
    const message = data && data.message ? data.message : text;
    throw new Error(`${resp.status}: ${message}`);
  }
  return data;
}

async function sql(query) {
  return (await api("POST", "/query", { query })).rows;
}

function statusBadge(status) {
  return `<span class="status status-${esc(status)}" data-status>${esc(status)}</span>`;
}

function table(columns, rows, rowAttrs) {
  const head = columns.map((c) => `<th>${esc(c)}</th>`).join("");
  const body = rows.map((row, i) => {
    const cells = columns.map((c) => `<td>${cell(c, row[c])}</td>`).join("");
    return `<tr ${rowAttrs ? rowAttrs(row, i) : ""}>${cells}</tr>`;
  }).join("");
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

function cell(column, value) {
  if (value === null || value === undefined) return '<span class="mono">NULL</span>';
  if (column === "status") return statusBadge(value);
  if (typeof value === "object") return `<code>${esc(JSON.stringify(value))}</code>`;
  return esc(value);
}

function showError(where, error) {
  where.innerHTML = `<p class="error" role="alert">${esc(error.message || error)}</p>`;
}

function params() {
  const hash = location.hash.slice(1) || "/invocations";
  const [path, query] = hash.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query || "") };
}

// -- invocations ---------------------------------------------------------------------------

async function invocations(query) {
  const status = query.get("status") || "";
  const service = query.get("service") || "";
  const key = query.get("key") || "";
  view.innerHTML = `
    <h2>Invocations</h2>
    <form class="filters" id="filters">
      <label>Status <select name="status">${STATUSES.map((s) =>
        `<option value="${s}" ${s === status ? "selected" : ""}>${s || "any"}</option>`).join("")}</select></label>
      <label>Service <input name="service" value="${esc(service)}"></label>
      <label>Key <input name="key" value="${esc(key)}"></label>
      <button type="submit">Filter</button>
    </form>
    <div id="list">Loading…</div>`;
  document.getElementById("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const next = new URLSearchParams();
    for (const [name, value] of form) if (value) next.set(name, value);
    location.hash = "#/invocations?" + next.toString();
  });
  const where = [];
  if (status) where.push(`status = ${sqlString(status)}`);
  if (service) where.push(`target_service_name = ${sqlString(service)}`);
  if (key) where.push(`target_service_key = ${sqlString(key)}`);
  const list = document.getElementById("list");
  try {
    const rows = await sql(
      "select id, target, status, retry_count, last_failure, created_at, modified_at " +
      "from sys_invocation" + (where.length ? " where " + where.join(" and ") : "") +
      " order by created_at desc limit 500");
    list.innerHTML = rows.length
      ? table(["id", "target", "status", "retry_count", "last_failure", "created_at"], rows,
          (row) => `class="link" data-id="${esc(row.id)}"`)
      : "<p>No invocations.</p>";
    for (const tr of list.querySelectorAll("tr[data-id]")) {
      tr.addEventListener("click", () => { location.hash = "#/invocation/" + encodeURIComponent(tr.dataset.id); });
    }
  } catch (error) { showError(list, error); }
}

function outcomeText(outcome) {
  if (!outcome) return "";
  if (outcome.failure) return `failure ${outcome.failure.code}: ${outcome.failure.message}`;
  return "value " + JSON.stringify(outcome.value);
}

async function invocation(id) {
  view.innerHTML = `<h2>Invocation <code>${esc(id)}</code></h2><div id="detail">Loading…</div>`;
  const detail = document.getElementById("detail");
  let inv;
  try { inv = await api("GET", "/invocations/" + encodeURIComponent(id)); } catch (error) { return showError(detail, error); }
  const timeline = inv.journal.map((e) => `
    <li class="${e.completed ? "done" : "pending"}">
      <span class="mono">#${e.index}</span> <strong>${esc(e.name)}</strong>
      ${e.completed ? "" : "<em>(waiting)</em>"}
      ${e.result ? `→ <code>${esc(outcomeText(e.result))}</code>` : ""}
    </li>`).join("");
  detail.innerHTML = `
    <div class="toolbar">
      <button id="cancel" class="danger">Cancel</button>
      <button id="kill" class="danger">Kill</button>
      <button id="refresh">Refresh</button>
    </div>
    <dl>
      <dt>Target</dt><dd>${esc(inv.target)}</dd>
      <dt>Status</dt><dd>${statusBadge(inv.status)}</dd>
      <dt>Attempt</dt><dd>${esc(inv.attempt)}</dd>
      <dt>Retries</dt><dd data-retries>${esc(inv.retry_count)}</dd>
      <dt>Last error</dt><dd class="error" data-last-failure>${esc(inv.last_failure || "")}</dd>
      <dt>Outcome</dt><dd data-outcome>${esc(outcomeText(inv.outcome))}</dd>
      <dt>Created</dt><dd>${esc(new Date(inv.created_at).toISOString())}</dd>
      <dt>Modified</dt><dd>${esc(new Date(inv.modified_at).toISOString())}</dd>
      <dt>Invoked by</dt><dd>${inv.invoked_by ? `<a href="#/invocation/${encodeURIComponent(inv.invoked_by)}">${esc(inv.invoked_by)}</a>` : ""}</dd>
    </dl>
    <h3>Journal</h3>
    ${timeline ? `<ol class="timeline">${timeline}</ol>` : "<p>No journal entries.</p>"}
    <div id="op-result"></div>`;
  const operate = async (op) => {
    if (!confirm(`${op} ${id}?`)) return;
    try {
      await api("PATCH", `/invocations/${encodeURIComponent(id)}/${op}`);
      await waitForChange(id, inv.status);
      invocation(id);
    } catch (error) { showError(document.getElementById("op-result"), error); }
  };
  document.getElementById("cancel").addEventListener("click", () => operate("cancel"));
  document.getElementById("kill").addEventListener("click", () => operate("kill"));
  document.getElementById("refresh").addEventListener("click", () => invocation(id));
}

async function waitForChange(id, status) {
  for (let i = 0; i < 50; i++) {
    const now = await api("GET", "/invocations/" + encodeURIComponent(id));
    if (now.status !== status) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// -- services and the playground -----------------------------------------------------------

async function services() {
  view.innerHTML = "<h2>Services</h2><div id='services'>Loading…</div>";
  const where = document.getElementById("services");
  let data;
  try { data = await api("GET", "/services"); } catch (error) { return showError(where, error); }
  where.innerHTML = data.services.map((s) => `
    <div class="card">
      <h3>${esc(s.name)} <small>(${esc(s.kind)})</small></h3>
      ${s.handlers.map((h) => `
        <form class="toolbar invoke" data-service="${esc(s.name)}" data-handler="${esc(h.name)}" data-keyed="${s.kind !== "service"}">
          <strong>${esc(h.name)}</strong> <small>${esc(h.kind)}</small>
          ${s.kind !== "service" ? '<label>Key <input name="key" required></label>' : ""}
          <label>Input (JSON) <input name="body" value="null" size="30"></label>
          <button type="submit">Invoke</button>
          <output class="mono"></output>
        </form>`).join("")}
    </div>`).join("");
  for (const form of where.querySelectorAll("form.invoke")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const { service, handler, keyed } = form.dataset;
      const fields = new FormData(form);
      const path = keyed === "true"
        ? `/playground/${encodeURIComponent(service)}/${encodeURIComponent(fields.get("key"))}/${encodeURIComponent(handler)}`
        : `/playground/${encodeURIComponent(service)}/${encodeURIComponent(handler)}`;
      const output = form.querySelector("output");
      output.textContent = "…";
      try {
        output.textContent = "→ " + JSON.stringify(await api("POST", path, fields.get("body") || "null"));
      } catch (error) { output.textContent = "✗ " + error.message; }
    });
  }
}

// -- state ---------------------------------------------------------------------------------

async function state(query) {
  const service = query.get("service") || "";
  const key = query.get("key") || "";
  view.innerHTML = `
    <h2>State</h2>
    <form class="filters" id="state-form">
      <label>Service <input name="service" value="${esc(service)}" required></label>
      <label>Key <input name="key" value="${esc(key)}" required></label>
      <button type="submit">Show</button>
    </form>
    <div id="state"></div>`;
  document.getElementById("state-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    location.hash = `#/state?service=${encodeURIComponent(form.get("service"))}&key=${encodeURIComponent(form.get("key"))}`;
  });
  if (!service || !key) return;
  const where = document.getElementById("state");
  try {
    const data = await api("GET", `/services/${encodeURIComponent(service)}/state/${encodeURIComponent(key)}`);
    const rows = Object.entries(data.state).map(([name, value]) => ({ name, value }));
    where.innerHTML = rows.length ? table(["name", "value"], rows) : "<p>No state for this key.</p>";
  } catch (error) { showError(where, error); }
}

// -- SQL console ---------------------------------------------------------------------------

const EXAMPLE_SQL = "select target_service_name, status, count(*) as n\nfrom sys_invocation\ngroup by all\norder by all";

function console_() {
  view.innerHTML = `
    <h2>SQL</h2>
    <p>Tables: <code>sys_invocation</code>, <code>sys_journal</code>, <code>state</code>,
      <code>sys_inbox</code>, <code>sys_keyed_service_status</code>, <code>sys_promise</code>,
      <code>sys_service</code>.</p>
    <textarea id="query" rows="6">${esc(sessionStorage.getItem("sql") || EXAMPLE_SQL)}</textarea>
    <div class="toolbar"><button id="run">Run</button> <small>Ctrl+Enter</small></div>
    <div id="result"></div>`;
  const text = document.getElementById("query");
  const run = async () => {
    const where = document.getElementById("result");
    sessionStorage.setItem("sql", text.value);
    where.textContent = "Running…";
    try {
      const data = await api("POST", "/query", { query: text.value });
      const columns = data.columns.map((c) => c.name);
      where.innerHTML = `<p data-row-count>${data.rows.length} row${data.rows.length === 1 ? "" : "s"}</p>` +
        table(columns, data.rows);
    } catch (error) { showError(where, error); }
  };
  document.getElementById("run").addEventListener("click", run);
  text.addEventListener("keydown", (event) => { if (event.key === "Enter" && event.ctrlKey) run(); });
}

// -- routing -------------------------------------------------------------------------------

function route() {
  const { parts, query } = params();
  const page = parts[0] || "invocations";
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.nav === page || (page === "invocation" && a.dataset.nav === "invocations"));
  }
  if (page === "invocation" && parts[1]) return invocation(parts[1]);
  if (page === "services") return services();
  if (page === "state") return state(query);
  if (page === "sql") return console_();
  return invocations(query);
}

window.addEventListener("hashchange", route);
route();
