// pushsync UI: actions and live updates. No framework, no build step.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

async function act(button) {
  const app = document.getElementById("app");
  if (!app) return;
  const { namespace, name } = app.dataset;
  const action = button.dataset.action;
  const body = {};
  if (action === "rollback") body.revision = button.dataset.revision;
  if (action === "sync" && button.dataset.resource) body.resources = [button.dataset.resource];
  // Looked up when the answer comes: a live refresh may have replaced it.
  const show = (text, ok) => {
    const result = document.querySelector("#app .result");
    if (result) { result.textContent = text; result.className = ok ? "result ok" : "result error"; }
  };
  button.disabled = true;
  try {
    const response = await fetch(`/api/v1/applications/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/${action}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf() },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    const answer = await response.json().catch(() => ({}));
    show(response.ok ? `${action} requested` : `${action} failed: ${answer.message || response.status}`, response.ok);
  } catch (error) {
    show(`${action} failed: ${error}`, false);
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (button) { event.preventDefault(); act(button); }
});

// Logout posts a form: add the CSRF token as a header by sending it with fetch.
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!form.matches("[data-csrf-form]")) return;
  event.preventDefault();
  await fetch(form.action, { method: "POST", headers: { "x-csrf-token": csrf() }, credentials: "same-origin" });
  window.location.href = "/login";
});

function badge(kind, value) {
  const span = document.createElement("span");
  const text = value || "Unknown";
  span.className = `badge ${kind}-${text.toLowerCase()}`;
  span.textContent = text;
  return span;
}

function updateRow(table, app) {
  const row = table.querySelector(`tr[data-key="${CSS.escape(app.namespace + "/" + app.name)}"]`);
  if (!row) return; // new Applications show on the next load (filters apply on the server)
  row.querySelector('[data-field="sync"]').replaceChildren(badge("sync", app.sync));
  row.querySelector('[data-field="health"]').replaceChildren(badge("health", app.suspended ? "Suspended" : app.health));
  row.querySelector('[data-field="revision"]').replaceChildren(Object.assign(document.createElement("code"), { textContent: app.revision }));
  row.querySelector('[data-field="operation"]').textContent = app.operation;
}

// Marks the page live once its stream is open (tests wait for it).
const opened = () => { document.documentElement.dataset.live = "open"; };

function liveList(table) {
  const source = new EventSource("/api/v1/stream");
  source.addEventListener("application", (event) => updateRow(table, JSON.parse(event.data)));
  // What changed between rendering the page and opening the stream.
  source.addEventListener("open", async () => {
    const response = await fetch(`/api/v1/applications${window.location.search}`, { credentials: "same-origin" });
    if (response.ok) (await response.json()).items.forEach((app) => updateRow(table, app));
    opened();
  });
  source.addEventListener("deleted", (event) => {
    const app = JSON.parse(event.data);
    table.querySelector(`tr[data-key="${CSS.escape(app.namespace + "/" + app.name)}"]`)?.remove();
  });
  source.addEventListener("resync", () => window.location.reload());
}

function liveApp(container) {
  const { namespace, name } = container.dataset;
  const query = `namespace=${encodeURIComponent(namespace)}&name=${encodeURIComponent(name)}`;
  const source = new EventSource(`/api/v1/stream?${query}`);
  let pending = null;
  const refresh = () => {
    clearTimeout(pending);
    pending = setTimeout(async () => {
      const response = await fetch(`/applications/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/fragment`, { credentials: "same-origin" });
      if (response.ok) {
        const html = await response.text();
        const open = [...container.querySelectorAll("details[open]")].map((d) => d.closest("tr")?.rowIndex);
        // Read what an action said only now, right before replacing: an
        // answer may have arrived while the fragment was on its way.
        const previous = container.querySelector(".result");
        const [text, className] = [previous?.textContent || "", previous?.className || "result"];
        container.innerHTML = html;
        const status = container.querySelector(".result");
        if (status) { status.textContent = text; status.className = className; }
        container.querySelectorAll("table.resources tr").forEach((tr) => {
          if (open.includes(tr.rowIndex)) tr.querySelector("details")?.setAttribute("open", "");
        });
      }
    }, 250);
  };
  source.addEventListener("application", refresh);
  source.addEventListener("resync", refresh);
  source.addEventListener("open", () => { refresh(); opened(); });
}

window.addEventListener("DOMContentLoaded", () => {
  const list = document.querySelector('[data-live="list"]');
  if (list) liveList(list);
  const app = document.querySelector('[data-live="app"]');
  if (app) liveApp(app);
});
