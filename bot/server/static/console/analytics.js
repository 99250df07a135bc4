/*
 * Editors' analytics page (served at /console/analytics.html).
 *
 * Reads GET /api/analytics?days=N (agent session cookie; see docs/analytics.md) and
 * renders each table plus an inline SVG chart of the volume and handoff rate, per day or per
 * week (the 日別 / 週別 radio buttons: report.days or report.weeks, Monday to Sunday in Japan
 * time, bucketed by the server; switching re-renders without asking the server again).
 * The CSV link is shown to admins only (report's can_export; the server refuses agents).
 * A 401 shows a link to the console's login. Server data is only ever rendered with
 * textContent / createTextNode (never innerHTML).
 */
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const CAUSE_LABELS = { clarify: "聞き返し", out_of_scope: "対象外", low_confidence: "確からしさが低い" };
const UNITS = { day: "日別", week: "週別" };

// What the page shows: the last report read and the unit of the chart and the per-period tables.
const view = { report: null, unit: "day" };

// A row of report.days or report.weeks: its rows, the name of its first column and its label.
const periodRows = (data) => (view.unit === "week" ? data.weeks : data.days) || [];
const periodLabel = (row) => (row.last_day ? `${row.day} 〜 ${row.last_day}` : row.day);
const periodColumn = () => ({ label: view.unit === "week" ? "週（月曜〜日曜）" : "日付", value: periodLabel });

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

const dash = (value) => (value === null || value === undefined || value === "" ? "—" : String(value));
const count = (value) => (typeof value === "number" ? value.toLocaleString("ja-JP") : "—");
const percent = (rate) => (typeof rate === "number" ? `${(rate * 100).toFixed(1)}%` : "—");

function showAlert(message) {
  $("alert").textContent = message || "";
  $("alert").hidden = !message;
}

/* ---------- tables ---------- */

// columns: [{label, value: (row) => text | Node, num: bool}]
function fillTable(table, caption, columns, rows, emptyText) {
  table.replaceChildren();
  table.append(el("caption", "sr-only", caption));
  const head = el("thead");
  const headRow = el("tr");
  for (const column of columns) {
    const th = el("th", null, column.label);
    th.scope = "col";
    headRow.append(th);
  }
  head.append(headRow);
  const body = el("tbody");
  if (!rows.length) {
    const tr = el("tr");
    const td = el("td", "muted", emptyText);
    td.colSpan = columns.length;
    tr.append(td);
    body.append(tr);
  }
  for (const row of rows) {
    const tr = el("tr");
    for (const column of columns) {
      const value = column.value(row);
      const td = el("td", column.num ? "num" : "text");
      if (value instanceof Node) td.append(value);
      else td.textContent = dash(value);
      tr.append(td);
    }
    body.append(tr);
  }
  table.append(head, body);
}

function renderSummary(report) {
  const t = report.totals;
  const items = [
    ["会話数", count(t.conversations), `新規 ${count(t.new_conversations)}`],
    ["お客さまのメッセージ", count(t.customer_messages), `ボットが応答 ${count(t.bot_answered_messages)}`],
    ["担当者への引き継ぎ", count(t.handoffs), `引き継ぎ率 ${percent(t.handoff_rate)}・時間外 ${count(t.offline_handoffs)}`],
    ["答えられなかった質問", count(t.unanswered), `応答したメッセージの ${percent(t.unanswered_rate)}`],
    ["役に立ちましたか？", `いいえ ${count(t.feedback_no)}`, `はい ${count(t.feedback_yes)}`],
    ...(report.line ? [["LINE のプッシュ（今月）", `${count(report.line.this_month)} 通`, report.line.over ? `警告: 目安の ${count(report.line.warning)} 通を超えました（有料）` : `有料・目安 ${count(report.line.warning)} 通まで`]] : []),
  ];
  const list = $("summary");
  list.replaceChildren();
  for (const [label, value, sub] of items) {
    const card = el("div", "card");
    const dd = el("dd", null, value);
    dd.append(el("span", "sub", sub));
    card.append(el("dt", null, label), dd);
    list.append(card);
  }
}

function examplesList(examples) {
  const list = el("ul");
  for (const text of examples || []) list.append(el("li", null, text));
  return list;
}

function causes(reasons) {
  return Object.entries(reasons || {})
    .map(([key, n]) => `${CAUSE_LABELS[key] || key} ${n}`)
    .join("、");
}

function renderTables(report) {
  fillTable($("daily-table"), `${UNITS[view.unit]}の件数`, [
    periodColumn(),
    { label: "新規会話", value: (d) => count(d.new_conversations), num: true },
    { label: "会話数", value: (d) => count(d.conversations), num: true },
    { label: "メッセージ", value: (d) => count(d.customer_messages), num: true },
    { label: "引き継ぎ", value: (d) => count(d.handoffs), num: true },
    { label: "引き継ぎ率", value: (d) => percent(d.handoff_rate), num: true },
  ], [...periodRows(report)].reverse(), "この期間の記録はありません。");

  fillTable($("unanswered-table"), "答えられなかった質問", [
    { label: "代表的な質問", value: (g) => g.representative },
    { label: "件数", value: (g) => count(g.count), num: true },
    { label: "内訳", value: (g) => causes(g.reasons) },
    { label: "ボットの判定", value: (g) => g.top_intent_label || g.top_intent },
    { label: "例（最大 5 件）", value: (g) => examplesList(g.examples) },
  ], report.unanswered, "答えられなかった質問はありません。");
  const note = $("unanswered-note");
  note.hidden = !report.unanswered_not_grouped;
  note.textContent = report.unanswered_not_grouped
    ? `件数の少ない ${count(report.unanswered_not_grouped)} 件はグループにまとめていません。` : "";

  fillTable($("feedback-table"), "「いいえ」が多い回答", [
    { label: "FAQ", value: (f) => f.faq_id },
    { label: "いいえ", value: (f) => count(f.no), num: true },
    { label: "はい", value: (f) => count(f.yes), num: true },
    { label: "いいえの割合", value: (f) => percent(f.no_rate), num: true },
    { label: "回答回数", value: (f) => count(f.answers), num: true },
  ], report.feedback, "評価はまだありません。");

  fillTable($("reasons-table"), "引き継ぎの理由", [
    { label: "理由", value: (r) => r.label },
    { label: "件数", value: (r) => count(r.handoffs), num: true },
    { label: "引き継ぎ全体に占める割合", value: (r) => percent(r.share), num: true },
    { label: "会話あたり", value: (r) => percent(r.rate), num: true },
  ], report.handoff_reasons, "引き継ぎはありません。");

  fillTable($("faqs-table"), "引き継ぎ直前の FAQ", [
    { label: "直前の FAQ", value: (r) => r.faq_id || "（FAQ の回答なし）" },
    { label: "カテゴリ", value: (r) => r.category },
    { label: "引き継ぎ", value: (r) => count(r.handoffs), num: true },
    { label: "割合", value: (r) => percent(r.share), num: true },
    { label: "FAQ を回答した会話", value: (r) => count(r.answered_conversations), num: true },
    { label: "回答後の引き継ぎ率", value: (r) => percent(r.rate), num: true },
  ], report.handoff_faqs, "引き継ぎはありません。");

  fillTable($("intents-table"), "よく聞かれた内容", [
    { label: "ボットの判定", value: (i) => i.label || i.intent },
    { label: "件数", value: (i) => count(i.count), num: true },
    { label: "割合", value: (i) => percent(i.share), num: true },
  ], report.intents, "記録がありません。");
}

/* ---------- chart ---------- */

// days: report.days or report.weeks (a week is labelled by its first day in the period, 「5/1〜」).
function renderChart(days) {
  const box = $("chart");
  box.replaceChildren();
  box.setAttribute("aria-label", `${UNITS[view.unit]}の会話数・引き継ぎ数（棒）と引き継ぎ率（線）のグラフ`);
  if (!days.length) {
    box.append(el("p", "empty", "この期間の記録はありません。"));
    return;
  }
  const width = Math.max(520, days.length * 22 + 110);
  const height = 260;
  const m = { left: 48, right: 56, top: 14, bottom: 44 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const maxCount = Math.max(1, ...days.map((d) => Math.max(d.conversations, d.handoffs)));
  const rates = days.map((d) => (typeof d.handoff_rate === "number" ? d.handoff_rate : null));
  const maxRate = Math.max(0.1, ...rates.filter((r) => r !== null)) * 1.15;
  const slot = plotW / days.length;
  const barW = Math.max(2, Math.min(14, slot * 0.38));
  const y = (n) => m.top + plotH - (n / maxCount) * plotH;
  const yRate = (r) => m.top + plotH - (r / maxRate) * plotH;
  const x = (i) => m.left + slot * (i + 0.5);

  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, "aria-hidden": "true", focusable: "false" });
  const axis = { stroke: "#d0d4da", "stroke-width": 1 };
  const label = { "font-size": 11, fill: "#5f6670" };

  for (let k = 0; k <= 4; k += 1) {
    const value = (maxCount * k) / 4;
    const rate = (maxRate * k) / 4;
    const yy = m.top + plotH - (plotH * k) / 4;
    root.append(svg("line", { x1: m.left, x2: width - m.right, y1: yy, y2: yy, ...axis }));
    root.append(svg("text", { x: m.left - 6, y: yy + 4, "text-anchor": "end", ...label },
      Number.isInteger(value) ? value : value.toFixed(1)));
    root.append(svg("text", { x: width - m.right + 6, y: yy + 4, ...label, fill: "#b42318" },
      `${(rate * 100).toFixed(0)}%`));
  }

  const step = Math.max(1, Math.ceil(days.length / 15));
  days.forEach((d, i) => {
    const conv = svg("rect", { x: x(i) - barW, y: y(d.conversations), width: barW,
      height: m.top + plotH - y(d.conversations), fill: "#0b5cad" });
    conv.append(svg("title", {}, `${periodLabel(d)} 会話数 ${d.conversations}`));
    const hand = svg("rect", { x: x(i), y: y(d.handoffs), width: barW,
      height: m.top + plotH - y(d.handoffs), fill: "#f59e0b" });
    hand.append(svg("title", {}, `${periodLabel(d)} 引き継ぎ ${d.handoffs}（${percent(d.handoff_rate)}）`));
    root.append(conv, hand);
    if (i % step === 0) {
      const [, month, day] = String(d.day).split("-");
      root.append(svg("text", { x: x(i), y: height - m.bottom + 16, "text-anchor": "middle", ...label },
        `${Number(month)}/${Number(day)}${view.unit === "week" ? "〜" : ""}`));
    }
  });

  // Handoff rate line; days without conversations (no rate) break the line.
  let path = "";
  let pen = false;
  rates.forEach((r, i) => {
    if (r === null) { pen = false; return; }
    path += `${pen ? "L" : "M"}${x(i).toFixed(1)},${yRate(r).toFixed(1)}`;
    pen = true;
  });
  if (path) root.append(svg("path", { d: path, fill: "none", stroke: "#b42318", "stroke-width": 2 }));
  rates.forEach((r, i) => {
    if (r === null) return;
    const dot = svg("circle", { cx: x(i), cy: yRate(r), r: 3, fill: "#b42318" });
    dot.append(svg("title", {}, `${periodLabel(days[i])} 引き継ぎ率 ${percent(r)}`));
    root.append(dot);
  });
  root.append(svg("line", { x1: m.left, x2: width - m.right, y1: m.top + plotH, y2: m.top + plotH,
    stroke: "#5f6670", "stroke-width": 1 }));
  box.append(root);
}

/* ---------- loading ---------- */

function formatPeriod(report) {
  const fmt = (iso) => {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? "—"
      : d.toLocaleString("ja-JP", { timeZone: "Asia/Tokyo", year: "numeric", month: "numeric", day: "numeric",
        hour: "2-digit", minute: "2-digit" });
  };
  return `${report.since ? fmt(report.since) : "最初の記録"} 〜 ${fmt(report.until)}（日本時間）`;
}

// Everything that follows the unit (日別 / 週別): headings, the chart, the per-period tables.
function render() {
  const report = view.report;
  for (const node of document.querySelectorAll(".unit-name")) node.textContent = UNITS[view.unit];
  if (!report) return;
  $("period").textContent = formatPeriod(report);
  renderSummary(report);
  renderChart(periodRows(report));
  renderTables(report);
  if (typeof renderKpis === "function") renderKpis(report); // analytics_kpis.js
}

// Keeps the chosen period and unit in the address, so a reload or a shared link shows the same.
function remember() {
  const params = new URLSearchParams(window.location.search);
  params.set("days", $("days").value);
  params.set("unit", view.unit);
  window.history.replaceState(null, "", `${window.location.pathname}?${params}`);
}

function setUnit(unit) {
  view.unit = unit === "week" ? "week" : "day";
  $(`unit-${view.unit}`).checked = true;
}

let loadSeq = 0;

async function load() {
  const seq = ++loadSeq;
  const days = $("days").value;
  $("csv-link").href = `/api/analytics.csv.zip?days=${encodeURIComponent(days)}`;
  remember();
  $("loading").hidden = false;
  $("reload").disabled = true;
  showAlert("");
  try {
    let res;
    try {
      res = await fetch(`/api/analytics?days=${encodeURIComponent(days)}`,
        { headers: { Accept: "application/json" }, credentials: "same-origin" });
    } catch (err) {
      throw new Error("サーバーに接続できません。ネットワークを確認してください。");
    }
    let data = {};
    try { data = await res.json(); } catch (err) { data = {}; }
    if (seq !== loadSeq) return;
    if (res.status === 401) {
      $("login-needed").hidden = false;
      $("report").hidden = true;
      $("controls").hidden = true;
      return;
    }
    if (!res.ok) {
      throw new Error((data && typeof data.error === "string" && data.error) || `エラーが発生しました（${res.status}）。`);
    }
    view.report = data.report;
    $("csv-link").hidden = data.can_export !== true; // admins only
    render();
    $("report").hidden = false;
  } catch (err) {
    if (seq === loadSeq) showAlert(err.message);
  } finally {
    if (seq === loadSeq) {
      $("loading").hidden = true;
      $("reload").disabled = false;
    }
  }
}

function init() {
  const query = new URLSearchParams(window.location.search);
  const wanted = query.get("days");
  if (wanted && [...$("days").options].some((o) => o.value === wanted)) $("days").value = wanted;
  setUnit(query.get("unit"));
  $("controls").addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  $("days").addEventListener("change", load);
  // Radio buttons: Tab reaches the group, the arrow keys (or a click) choose; no new request.
  for (const radio of document.querySelectorAll('input[name="unit"]')) {
    radio.addEventListener("change", () => {
      if (!radio.checked) return;
      setUnit(radio.value);
      remember();
      render();
    });
  }
  load();
}

document.addEventListener("DOMContentLoaded", init);
