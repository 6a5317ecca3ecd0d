// popup-ldap admin console. Every value from the directory goes into the page through
// textContent, never as markup.
"use strict";

const $ = (id) => document.getElementById(id);

function show(tab) {
  for (const section of document.querySelectorAll("section.tab")) {
    section.hidden = section.id !== tab;
  }
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.tab === tab);
  }
  if (tab === "status") refreshStatus();
  if (tab === "hygiene") loadHygiene();
}

async function getJson(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (response.status === 401) { location.reload(); throw new Error("logged out"); }
  return response.json();
}

// --- Preview -------------------------------------------------------------------------

function previewParams() {
  const params = new URLSearchParams();
  for (const name of ["phone", "did", "state", "format"]) {
    const value = $(name).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

async function runPreview() {
  const params = previewParams();
  history.replaceState(null, "", "#" + params.toString());
  const result = await getJson("/admin/api/preview?" + params.toString());
  $("request").textContent = result.request;
  $("answer").textContent = "HTTP " + result.status + "\n" + JSON.stringify(result.answer, null, 2);
  $("explanation").textContent = result.explanation;
  const answer = result.answer || {};
  const found = result.status === 200 && (answer.CLIENTNAME || answer.COMPANY || answer.URL);
  $("bubble").hidden = !found;
  $("bubble-none").hidden = !!found;
  $("bubble-name").textContent = answer.CLIENTNAME || "";
  $("bubble-company").textContent = answer.COMPANY || "";
  const link = $("bubble-link");
  link.textContent = answer.URL || "";
  if (answer.URL && /^https?:\/\//i.test(answer.URL)) link.href = answer.URL; else link.removeAttribute("href");
}

function fromHash() {
  const hash = location.hash.slice(1);
  if (hash === "status" || hash === "hygiene") { show(hash); return; }
  show("preview");
  const params = new URLSearchParams(hash);
  if (!params.get("phone")) return;
  for (const name of ["phone", "did", "state", "format"]) {
    if (params.has(name)) $(name).value = params.get(name);
  }
  runPreview();
}

// --- Status --------------------------------------------------------------------------

function row(table, cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    td.textContent = String(cell);
    tr.append(td);
  }
  table.querySelector("tbody").append(tr);
}

function term(list, name, value) {
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = value === null || value === undefined ? "-" : String(value);
  list.append(dt, dd);
}

async function refreshStatus() {
  if ($("status").hidden) return;
  const s = await getJson("/admin/api/status");
  const summary = $("status-summary");
  summary.replaceChildren();
  term(summary, "Source", s.source);
  term(summary, "Ready", s.ready ? "yes" : "no: " + s.not_ready_because);
  if (s.index) {
    term(summary, "Index entries", s.index.entries);
    term(summary, "Distinct numbers", s.index.numbers);
    term(summary, "Last sync", s.index.synced_seconds_ago === null ? "never" :
      s.index.synced_seconds_ago + " s ago from " + (s.index.server || "-") +
      (s.index.from_saved_state ? " (saved state)" : "") +
      (s.index.last_sync_ms === null ? "" : ", took " + s.index.last_sync_ms + " ms"));
    term(summary, "Syncs", s.index.syncs_succeeded + " succeeded, " + s.index.syncs_failed + " failed" +
      (s.index.last_error ? "; last error: " + s.index.last_error : ""));
  }
  term(summary, "Lookups", s.lookups + (s.mean_lookup_us === null ? "" : ", mean " + s.mean_lookup_us + " µs"));
  for (const id of ["servers", "requests"]) $(id).querySelector("tbody").replaceChildren();
  for (const server of s.servers) {
    row($("servers"), [server.url, server.active ? "active" : (server.failures ? "resting or standby" : "standby"),
      server.connects, server.failures]);
  }
  for (const r of s.requests) row($("requests"), [r.outcome, r.count]);
}

// --- Hygiene -------------------------------------------------------------------------

let findings = [];
let sortKey = "kind";

function drawFindings() {
  const filter = $("hygiene-filter").value.trim().toLowerCase();
  const body = $("findings").querySelector("tbody");
  body.replaceChildren();
  const shown = findings
    .filter((f) => !filter || [f.scope, f.kind, f.dn, f.attribute, f.value].some((v) => v.toLowerCase().includes(filter)))
    .sort((a, b) => a[sortKey].localeCompare(b[sortKey]));
  for (const f of shown) row($("findings"), [f.scope || "-", f.kind, f.dn, f.attribute, f.value]);
}

async function loadHygiene() {
  const h = await getJson("/admin/api/hygiene");
  findings = h.rows || [];
  $("repairs").textContent = String(h.repairs);
  $("attributes").querySelector("tbody").replaceChildren();
  for (const a of h.attributes || []) row($("attributes"), [a.scope || "-", a.attribute, a.entries, a.values]);
  drawFindings();
}

document.addEventListener("DOMContentLoaded", () => {
  $("hygiene-filter").addEventListener("input", drawFindings);
  for (const th of document.querySelectorAll("#findings th")) {
    th.addEventListener("click", () => { sortKey = th.dataset.key; drawFindings(); });
  }
  $("preview-form").addEventListener("submit", (event) => { event.preventDefault(); runPreview(); });
  for (const link of document.querySelectorAll("nav a")) {
    link.addEventListener("click", (event) => { event.preventDefault(); history.replaceState(null, "", "#" + link.dataset.tab); show(link.dataset.tab); });
  }
  fromHash();
  setInterval(refreshStatus, 5000);
});
