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
      (s.index.last_sync_ms === null ? "" : ", took " + s.index.last_sync_ms + " ms") +
      (s.index.last_sync_kind ? " (" + s.index.last_sync_kind + ")" : ""));
    term(summary, "Syncs", s.index.syncs_succeeded + " succeeded, " + s.index.syncs_failed + " failed" +
      (s.index.last_error ? "; last error: " + s.index.last_error : ""));
  }
  term(summary, "Lookups", s.lookups + (s.mean_lookup_us === null ? "" : ", mean " + s.mean_lookup_us + " µs"));
  for (const id of ["servers", "requests"]) $(id).querySelector("tbody").replaceChildren();
  for (const server of s.servers) {
    row($("servers"), [server.url, server.active ? "active" : (server.resting ? "resting after a failure" : "standby"),
      server.connects, server.failures]);
  }
  for (const r of s.requests) row($("requests"), [r.outcome, r.count]);
  drawChart(s.last_hour || []);
  refreshRecent();
}

const SVG = "http://www.w3.org/2000/svg";

function drawChart(minutes) {
  const width = 600, height = 120, bar = width / 61;
  const most = Math.max(1, ...minutes.map((m) => m.requests));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 20}`);
  svg.setAttribute("width", String(width));
  svg.setAttribute("class", "chart");
  minutes.forEach((m, i) => {
    const h = Math.round((m.requests / most) * height);
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("x", String(width - (minutes.length - i) * bar));
    rect.setAttribute("y", String(height - h));
    rect.setAttribute("width", String(bar - 1));
    rect.setAttribute("height", String(h));
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${minutes.length - 1 - i} min ago: ${m.requests} requests, mean lookup ${m.mean_us} µs`;
    rect.append(title);
    svg.append(rect);
  });
  const last = minutes[minutes.length - 1] || { requests: 0, mean_us: 0 };
  const label = document.createElementNS(SVG, "text");
  label.setAttribute("x", "0");
  label.setAttribute("y", String(height + 16));
  label.textContent = `most: ${most} requests a minute; this minute so far: ${last.requests}, mean lookup ${last.mean_us} µs`;
  svg.append(label);
  $("chart").replaceChildren(svg);
}

async function refreshRecent() {
  const r = await getJson("/admin/api/recent");
  $("recent-off").hidden = r.enabled;
  const body = $("recent").querySelector("tbody");
  body.replaceChildren();
  for (const call of r.calls) {
    row($("recent"), [call.seconds_ago + " s ago", call.number, call.outcome, call.total, call.us + " µs"]);
    const tr = body.lastElementChild;
    tr.classList.add("clickable");
    tr.addEventListener("click", () => {
      show("preview");
      $("phone").value = call.phone || "";
      if (call.phone) runPreview(); else $("phone").focus();
    });
  }
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
