/*
 * Standard KPIs on the analytics page (report.kpis of GET /api/analytics; bot/analytics/kpis.py).
 *
 * Each figure is shown with its definition; the labels and definitions come from the server
 * (report.kpis.labels, the same texts as `bot report`). The per-period table lists
 * report.kpis.days or report.kpis.weeks (日別 / 週別). Uses $, el (dom.js) and fillTable,
 * count, percent, periodRows, periodColumn, UNITS, view (analytics.js). Text only through textContent.
 */
"use strict";

function kpiDuration(seconds) {
  if (typeof seconds !== "number") return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s}秒`;
  if (s < 3600) return `${Math.floor(s / 60)}分${String(s % 60).padStart(2, "0")}秒`;
  return `${Math.floor(s / 3600)}時間${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}分`;
}

function renderKpis(report) {
  const k = report.kpis;
  const section = $("kpi-section");
  if (!k || !section) return;
  const labels = k.labels || {};
  const name = (key) => (labels[key] ? labels[key][0] : key);
  const meaning = (key) => (labels[key] ? labels[key][1] : "");
  const cards = [
    ["first_response", kpiDuration(k.first_response.average_seconds),
      `中央値 ${kpiDuration(k.first_response.median_seconds)}・${count(k.first_response.count)} 件`],
    ["handling", kpiDuration(k.handling.average_seconds),
      `中央値 ${kpiDuration(k.handling.median_seconds)}・${count(k.handling.count)} 件`],
    ["bot_resolution", percent(k.bot_resolution_rate),
      `${count(k.conversations - k.handed_off_conversations)} / ${count(k.conversations)} 会話`],
    ...(k.resolution ? [["resolution", percent(k.resolution.rate), resolutionCounts(k.resolution)]] : []),
    ["agent_resolution", percent(k.agent_resolution_rate), `${count(k.resolved_by_agents)} / ${count(k.handoffs)} 件`],
    ["handoff", percent(k.handoff_rate), `${count(k.handed_off_conversations)} / ${count(k.conversations)} 会話`],
    ["abandonment", `${count(k.abandoned)} 件`,
      `${percent(k.abandonment_rate)}・待ち時間 平均 ${kpiDuration(k.abandoned_wait.average_seconds)}`],
  ];
  const csat = k.csat || { agents: [], categories: [], comments: [], distribution: [] };
  if (k.csat) {
    cards.push(
      ["csat", csatAverage(csat.average), `${count(csat.responses)} 件・${csatDistribution(csat.distribution)}`],
      ["csat_response", percent(csat.response_rate), `${count(csat.responses)} / ${count(csat.asked)} 件`],
    );
  }
  const list = $("kpi-cards");
  list.replaceChildren();
  for (const [key, value, sub] of cards) {
    const card = el("div", "card");
    card.dataset.kpi = key;
    const dd = el("dd", null, value);
    dd.append(el("span", "sub", sub), el("span", "definition", meaning(key)));
    card.append(el("dt", null, name(key)), dd);
    list.append(card);
  }

  fillTable($("kpi-daily-table"), `${UNITS[view.unit]}の指標`, [
    periodColumn(),
    { label: "会話数", value: (d) => count(d.conversations), num: true },
    { label: "引き継いだ会話", value: (d) => count(d.handed_off_conversations), num: true },
    { label: "引き継ぎ", value: (d) => count(d.handoffs), num: true },
    { label: "担当者が解決", value: (d) => count(d.resolved_by_agents), num: true },
    { label: name("abandonment"), value: (d) => count(d.abandoned), num: true },
    { label: `${name("first_response")}（平均）`, value: (d) => kpiDuration(d.first_response_average_seconds), num: true },
    { label: "対応時間（平均）", value: (d) => kpiDuration(d.handling_average_seconds), num: true },
  ], [...periodRows(k)].reverse(), "この期間の記録はありません。");

  fillTable($("kpi-agents-table"), "担当者別の指標", [
    { label: "担当者", value: (a) => a.agent },
    { label: "初回応答（件数）", value: (a) => count(a.first_responses.count), num: true },
    { label: `${name("first_response")}（平均）`, value: (a) => kpiDuration(a.first_responses.average_seconds), num: true },
    { label: "解決（件数）", value: (a) => count(a.handled.count), num: true },
    { label: `${name("handling")}`, value: (a) => kpiDuration(a.handled.average_seconds), num: true },
  ], k.agents || [], "この期間に担当者の対応はありません。");

  csatTable($("kpi-csat-table"), "満足度（CSAT）の担当者別", { label: "担当者", value: (a) => a.agent },
    csat.agents, name("csat_response"));
  csatTable($("kpi-csat-categories-table"), "満足度（CSAT）のカテゴリ別", { label: "カテゴリ", value: (c) => c.category },
    csat.categories, name("csat_response"));
  const comments = $("kpi-csat-comments");
  if (comments) {
    // Customers' comments: text only (fillTable sets textContent), never parsed as HTML.
    fillTable(comments, "アンケートのご意見", [
      { label: "日時", value: (c) => new Date(c.at).toLocaleString("ja-JP", { timeZone: "Asia/Tokyo" }) },
      { label: "担当者", value: (c) => c.agent },
      { label: "評価", value: (c) => count(c.rating), num: true },
      { label: "ご意見", value: (c) => c.comment },
    ], csat.comments || [], "この期間のご意見はありません。");
  }
}

/** One CSAT table: the group's column (agent or category), then the same figures for each row. */
function csatTable(table, caption, group, rows, responseLabel) {
  if (!table) return;
  fillTable(table, caption, [
    group,
    { label: "アンケート表示", value: (r) => count(r.asked), num: true },
    { label: "回答", value: (r) => count(r.responses), num: true },
    { label: responseLabel, value: (r) => percent(r.response_rate), num: true },
    { label: "平均", value: (r) => csatAverage(r.average), num: true },
    { label: "評価 1〜5 の件数", value: (r) => csatDistribution(r.distribution), num: true },
  ], rows || [], "この期間のアンケートはありません。");
}

/** 「3 / 5 会話（「はい」 1・24 時間 2）・未確定 1」: what the resolution rate counts. */
function resolutionCounts(r) {
  return `${count(r.resolved)} / ${count(r.decided)} 会話（「はい」 ${count(r.confirmed)}・24 時間 ${count(r.assumed)}）`
    + `・未確定 ${count(r.pending)}`;
}

function csatAverage(value) {
  return typeof value === "number" ? value.toFixed(2) : "—";
}

/** 「1:0 / 2:1 / 3:0 / 4:2 / 5:5」 */
function csatDistribution(counts) {
  return Array.isArray(counts) && counts.length === 5 ? counts.map((n, i) => `${i + 1}:${n}`).join(" / ") : "—";
}
