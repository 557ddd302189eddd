// The page's script, as text (no build step: served inline, allowed by its hash in the page's CSP). Every text
// that comes from the database (routing keys, errors, handler names, doctor's findings) reaches the page through
// textContent or an attribute set with setAttribute, never through innerHTML: it is shown, never parsed.
export const PAGE_SCRIPT = `"use strict";
const HEADER = { "x-prisma-outbox-dashboard": "1" };
const FILTERS = ["exchange", "routing-key", "error", "since", "until", "id", "handler"];
const SVG = "http://www.w3.org/2000/svg";
let config = null;
let lastFilter = null;
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return node;
}

function token() { return sessionStorage.getItem("prisma-outbox-dashboard-token"); }

async function api(path, init) {
  const headers = Object.assign({}, HEADER, (init && init.headers) || {});
  if (token()) headers.authorization = "Bearer " + token();
  const res = await fetch(path, Object.assign({}, init, { headers }));
  const body = await res.json().catch(() => ({ error: res.statusText }));
  if (res.status === 401) { $("login").hidden = false; throw new Error(body.error); }
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function show(id, text, kind) {
  const node = $(id);
  node.textContent = text;
  node.className = kind || "";
}

const fmt = (n) => (n == null ? "-" : n >= 100 ? String(Math.round(n)) : String(Math.round(n * 10) / 10));
const ms = (n) => (n == null ? "-" : n < 1000 ? Math.round(n) + " ms" : Math.round(n / 100) / 10 + " s");

function chart(id, samples, series, unit) {
  const svg = $(id);
  while (svg.firstChild) svg.firstChild.remove();
  const W = 600, H = 150, P = 4;
  let max = 0;
  for (const s of samples) for (const x of series) if (s[x.key] != null) max = Math.max(max, s[x.key]);
  const top = max > 0 ? max * 1.1 : 1;
  const t0 = samples.length ? samples[0].at : 0;
  const span = samples.length > 1 ? samples[samples.length - 1].at - t0 : 1;
  const line = (x1, y1, x2, y2) => {
    const l = document.createElementNS(SVG, "line");
    for (const [k, v] of Object.entries({ x1, y1, x2, y2, class: "axis" })) l.setAttribute(k, String(v));
    svg.append(l);
  };
  line(P, H - P, W - P, H - P);
  for (const x of series) {
    const points = samples
      .filter((s) => s[x.key] != null)
      .map((s) => [P + ((s.at - t0) / (span || 1)) * (W - 2 * P), H - P - (s[x.key] / top) * (H - 2 * P)]);
    const p = document.createElementNS(SVG, "polyline");
    p.setAttribute("points", points.map((q) => q[0].toFixed(1) + "," + q[1].toFixed(1)).join(" "));
    p.setAttribute("class", "series " + x.cls);
    svg.append(p);
  }
  const label = document.createElementNS(SVG, "text");
  label.setAttribute("x", String(W - P));
  label.setAttribute("y", "14");
  label.setAttribute("text-anchor", "end");
  label.textContent = "max " + (unit === "ms" ? ms(max) : fmt(max)) + " · " + Math.round(span / 1000) + " s";
  svg.append(label);
  const legend = $(id + "-legend");
  legend.replaceChildren(...series.map((x) => {
    const last = samples.length ? samples[samples.length - 1][x.key] : null;
    return el("span", { class: "key " + x.cls }, x.label + ": " + (unit === "ms" ? ms(last) : fmt(last)));
  }));
}

async function refreshOverview() {
  const o = await api("/ui/api/overview");
  const first = config === null;
  config = o.config;
  $("login").hidden = true;
  $("schema").textContent = config.schema;
  $("mode").textContent = config.allowActions ? "actions enabled" : "read-only";
  $("mode").className = config.allowActions ? "badge warn" : "badge";
  show("sampling", o.samplingError ? "sampling failed: " + o.samplingError : "", "error");
  const s = o.status;
  const cells = [];
  if (s) {
    const ob = s.outbox, ib = s.inbox;
    cells.push(["outbox due", ob.present ? ob.due : "no table"], ["outbox deferred", ob.present ? ob.deferred : "-"],
      ["outbox dead letters", ob.present ? ob.deadLetters.total : "-"],
      ["outbox lag", ob.present ? ms(ob.oldestDueAgeMs || 0) : "-"], ["inbox due", ib.present ? ib.due : "no table"],
      ["inbox dead", ib.present ? ib.dead.total : "-"], ["inbox lag", ib.present ? ms(ib.oldestDueAgeMs || 0) : "-"],
      ["relays listening", s.connected.listenerSessions], ["inbox sessions", s.connected.inboxSessions]);
  }
  $("cards").replaceChildren(...cells.map(([k, v]) => el("div", { class: "card" }, el("div", { class: "v" }, v), k)));
  chart("chart-backlog", o.samples, [
    { key: "outboxDue", label: "outbox due", cls: "s1" }, { key: "outboxDeferred", label: "deferred", cls: "s2" },
    { key: "inboxDue", label: "inbox due", cls: "s3" }], "n");
  chart("chart-throughput", o.samples, [
    { key: "writtenPerSec", label: "written/s", cls: "s1" }, { key: "claimedPerSec", label: "claimed/s", cls: "s2" },
    { key: "processedPerSec", label: "inbox processed/s", cls: "s3" }], "n");
  chart("chart-lag", o.samples, [
    { key: "outboxLagMs", label: "outbox oldest due", cls: "s1" }, { key: "inboxLagMs", label: "inbox oldest due", cls: "s3" }], "ms");
  if (first) {
    // Read-only: the buttons are never made (the API refuses the actions all the same).
    if (config.allowActions) {
      const button = (id, text, action) => {
        const b = el("button", { id, type: "button" }, text);
        b.addEventListener("click", () => prepare(action));
        return b;
      };
      $("actions").replaceChildren(button("dl-retry", "Retry…", "retry"), button("dl-purge", "Purge…", "purge"));
    }
    await Promise.all([refreshDoctor(), refreshDeadLetters()]);
  }
}

async function refreshDoctor() {
  try {
    const r = await api("/ui/api/doctor");
    show("doctor-level", "overall: " + r.level + " (checked " + r.checkedAt + ")", "level-" + r.level);
    // The worst first; what is fine in one line each, so that a problem is never below the fold of fine ones.
    const rank = { error: 0, warning: 1, ok: 2 };
    const findings = r.findings.slice().sort((a, b) => rank[a.level] - rank[b.level]);
    $("doctor").replaceChildren(...findings.map((f) => f.level === "ok"
      ? el("li", { class: "level-ok compact", "data-check": f.check }, el("b", {}, "ok · " + f.check), " " + f.summary)
      : el("li", { class: "level-" + f.level, "data-check": f.check },
        el("b", {}, f.level + " · " + f.check), el("div", {}, f.summary),
        el("div", { class: "muted" }, "cost: " + f.cost), el("div", { class: "muted" }, "do: " + f.action))));
    if (r.findings.length === 0) $("doctor").replaceChildren(el("li", {}, "no findings"));
  } catch (e) { show("doctor-level", "doctor failed: " + e.message, "error"); }
}

function currentFilter() {
  const filter = {};
  for (const name of FILTERS) {
    const v = $("f-" + name).value.trim();
    if (v !== "") filter[name] = v;
  }
  return { source: $("dl-source").value, filter };
}

function rowsTable(body, rows, source) {
  body.replaceChildren(...rows.map((r) => el("tr", { "data-id": r.id },
    el("td", {}, r.id), el("td", {}, r.messageId), el("td", {}, source === "inbox" ? r.handler : ""),
    el("td", {}, r.exchange), el("td", { class: "rk" }, r.routingKey), el("td", {}, r.attempts),
    el("td", {}, r.failedAt || r.receivedAt), el("td", { class: "err" }, r.lastError))));
}

async function refreshDeadLetters() {
  const { source, filter } = currentFilter();
  const q = new URLSearchParams({ source });
  for (const [k, v] of Object.entries(filter)) q.append(k, v);
  try {
    const r = await api("/ui/api/dead-letters?" + q);
    lastFilter = { source, filter };
    rowsTable($("dl-rows"), r.rows, source);
    show("dl-total", r.total + " match" + (r.rows.length < r.total ? " (newest " + r.rows.length + " shown)" : ""));
  } catch (e) { show("dl-total", e.message, "error"); }
}

async function prepare(action) {
  if (!lastFilter) return;
  const all = Object.keys(lastFilter.filter).length === 0;
  const body = Object.assign({}, lastFilter, { all, dryRun: true });
  try {
    const r = await api("/ui/api/dead-letters/" + action, { method: "POST", body: JSON.stringify(body),
      headers: { "content-type": "application/json" } });
    $("confirm-text").textContent = (action === "retry" ? "Retry " : "Purge ") + r.count + " " + lastFilter.source +
      (r.count === 1 ? " dead letter" : " dead letters") + (all ? " (no filter: every one)" : "") +
      (action === "purge" ? ": deleted for good." : ": moved back to be delivered again.");
    $("confirm-filter").textContent = all ? "" : "filter: " +
      Object.entries(lastFilter.filter).map(([k, v]) => k + "=" + v).join(", ");
    rowsTable($("confirm-rows"), r.rows || [], lastFilter.source);
    $("confirm").dataset.action = action;
    $("confirm").dataset.body = JSON.stringify(Object.assign({}, body, { dryRun: false }));
    $("confirm-yes").textContent = (action === "retry" ? "Retry " : "Purge ") + r.count;
    $("confirm-yes").disabled = r.count === 0;
    $("confirm").hidden = false;
  } catch (e) { show("action-result", e.message, "error"); }
}

async function confirmAction() {
  const box = $("confirm");
  box.hidden = true;
  try {
    const r = await api("/ui/api/dead-letters/" + box.dataset.action, { method: "POST", body: box.dataset.body,
      headers: { "content-type": "application/json" } });
    show("action-result", (r.action === "retry" ? "retried " : "purged ") + r.count, "ok");
  } catch (e) { show("action-result", e.message, "error"); }
  await refreshDeadLetters();
}

function boot() {
  $("token-save").addEventListener("click", () => {
    sessionStorage.setItem("prisma-outbox-dashboard-token", $("token").value.trim());
    $("token").value = "";
    config = null;
    refreshOverview().catch((e) => show("sampling", e.message, "error"));
  });
  $("dl-apply").addEventListener("click", () => refreshDeadLetters());
  $("confirm-yes").addEventListener("click", () => confirmAction());
  $("confirm-no").addEventListener("click", () => { $("confirm").hidden = true; });
  $("doctor-refresh").addEventListener("click", () => refreshDoctor());
  const loop = () => refreshOverview().catch((e) => show("sampling", e.message, "error"))
    .finally(() => setTimeout(loop, Math.max(1000, (config && config.sampleIntervalMs) || 5000)));
  loop();
}
boot();
`;
