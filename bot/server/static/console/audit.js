/*
 * 監査ログ (admins only): who did what and when, newest first, from GET /api/admin/audit
 * (filters: actor, action, since / until as dates in Japan time; 50 lines a page), and the same
 * filter as CSV from GET /api/admin/audit.csv. There is nothing to edit: the page only reads.
 * A 401 shows a link to the console's login, a 403 the server's message. Server data is only
 * ever rendered with textContent.
 */
"use strict";

const S = {
  count: "{total} 件中 {from}–{to} 件目",
  none: "条件に合う記録はありません。",
  system: "（システム）",
};
const PAGE = 50;
const page = { offset: 0, total: 0, filled: false };

function stamp(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "—";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// {"changes": {"max_chats": [3, 5]}, "days": 30} -> "max_chats: 3 → 5、days: 30"
function describe(detail) {
  const parts = [];
  for (const [key, value] of Object.entries(detail || {})) {
    if ((key === "changes" || key === "changed") && value && typeof value === "object") {
      for (const [name, pair] of Object.entries(value)) {
        parts.push(`${name}: ${JSON.stringify(pair[0])} → ${JSON.stringify(pair[1])}`);
      }
    } else if (key !== "settings") {
      parts.push(`${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`);
    }
  }
  return parts.join("、");
}

function query() {
  const params = new URLSearchParams();
  for (const [name, id] of [["actor", "filter-actor"], ["action", "filter-action"], ["since", "filter-since"],
    ["until", "filter-until"]]) {
    if ($(id).value) params.set(name, $(id).value);
  }
  return params;
}

function fillFilters(data) {
  if (page.filled) return;
  page.filled = true;
  for (const actor of data.actors) {
    const option = el("option", null, actor);
    option.value = actor;
    $("filter-actor").append(option);
  }
  for (const [code, label] of Object.entries(data.actions)) {
    const option = el("option", null, label);
    option.value = code;
    $("filter-action").append(option);
  }
}

function row(entry) {
  const tr = el("tr");
  tr.append(el("td", null, stamp(entry.at)), el("td", null, entry.actor || S.system),
    el("td", null, entry.action_label), el("td", null, entry.target || ""),
    el("td", "audit-detail", describe(entry.detail)), el("td", null, entry.address || ""));
  return tr;
}

async function load() {
  const params = query();
  $("audit-csv").href = `/api/admin/audit.csv?${params}`;
  params.set("limit", String(PAGE));
  params.set("offset", String(page.offset));
  const data = await jsonRequest("GET", `/api/admin/audit?${params}`);
  fillFilters(data);
  page.total = data.total;
  $("audit-rows").replaceChildren(...data.entries.map(row));
  $("audit-count").textContent = data.total === 0 ? S.none : fill(S.count, {
    total: data.total, from: page.offset + 1, to: page.offset + data.entries.length });
  $("audit-prev").disabled = page.offset === 0;
  $("audit-next").disabled = !data.has_more;
  $("audit-view").hidden = false;
}

async function show(action) {
  pageAlert("");
  try {
    action();
    await load();
  } catch (err) {
    pageLoadFailed(err);
  } finally {
    $("loading").hidden = true;
  }
}

function init() {
  $("audit-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    show(() => { page.offset = 0; });
  });
  $("audit-prev").addEventListener("click", () => show(() => { page.offset = Math.max(0, page.offset - PAGE); }));
  $("audit-next").addEventListener("click", () => show(() => { page.offset += PAGE; }));
  show(() => {});
}

document.addEventListener("DOMContentLoaded", init);
