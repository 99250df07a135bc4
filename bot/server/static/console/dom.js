/* Small helpers shared by the console pages (console.js, desk.js, escalation.js, agents.js,
 * supervisor.js, analytics.js, audit.js, erasure.js, failures.js, settings.js).
 * Text always goes in through textContent: customer and agent text is never parsed as HTML. */
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// 「{name} さん」: fills {key} placeholders of a text (values are text, never markup).
function fill(text, values) {
  return text.replace(/\{(\w+)\}/g, (m, key) => (key in values ? String(values[key]) : m));
}

// The #alert line of an admin page (agents.html, audit.html): a message, or hidden when empty.
function pageAlert(message) {
  $("alert").textContent = message;
  $("alert").hidden = !message;
}

// An admin page could not load, or an action on it was refused: 401 shows the link to the console's login, anything else the message.
function pageLoadFailed(err) {
  if (err.status === 401) $("login-needed").hidden = false;
  else pageAlert(err.message);
}

// The start of an admin page (erasure.html, failures.html, settings.html): reads the CSRF token into
// page.csrf, checks the role (an agent reads the refusal; the API refuses agents itself, 403), runs
// load() and shows #viewId. A failed load shows the login link (401) or the server's message.
async function startAdminPage(page, viewId, load) {
  try {
    page.csrf = (await jsonRequest("GET", "/api/agent/me")).csrf_token;
    const desk = await jsonRequest("GET", "/api/desk/me");
    if ((desk.agent || {}).role !== "admin") {
      pageAlert("この操作は管理者だけが行えます。管理者に依頼してください。");  // wording.DESK_TEXT["admin_only"]
      return;
    }
    await load();
    $(viewId).hidden = false;
  } catch (err) {
    pageLoadFailed(err);
  } finally {
    $("loading").hidden = true;
  }
}

// A JSON call to the bot server; a refusal throws an Error with the server's Japanese message and .status.
async function jsonRequest(method, path, body, csrf) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw Object.assign(new Error("サーバーに接続できません。ネットワークを確認してください。"), { status: 0 });
  }
  let data = {};
  try { data = await res.json(); } catch (err) { data = {}; }
  if (res.ok) return data || {};
  const message = (data && typeof data.error === "string" && data.error) || `エラーが発生しました（${res.status}）。`;
  throw Object.assign(new Error(message), { status: res.status });
}

// A short WebAudio beep (new handoffs, escalations, whispers); browsers allow sound after a user gesture.
const sound = {
  ctx: null,
  unlock() {
    try {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      if (!sound.ctx) sound.ctx = new Ctx();
      if (sound.ctx.state === "suspended") sound.ctx.resume().catch(() => {});
    } catch (err) { /* audio unavailable */ }
  },
  beep(frequency = 880) {
    try {
      sound.unlock();
      const ctx = sound.ctx;
      if (!ctx) return;
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "sine";
      osc.frequency.value = frequency;
      gain.gain.setValueAtTime(0.15, ctx.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.25);
      osc.connect(gain).connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.25);
      sound.played = (sound.played || 0) + 1;  // counted for the browser tests
    } catch (err) { /* browsers may block audio */ }
  },
};

/* ---------- time and transcript (console.js, supervisor.js) ---------- */

const SENDER_LABELS = {
  customer: "お客さま", bot: "ボット", agent: "担当者", note: "内部メモ", system: "システム",
};

const pad = (n) => String(n).padStart(2, "0");

function formatTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function formatDateTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "—";
  return `${d.getMonth() + 1}/${d.getDate()} ${formatTime(iso)}`;
}

function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}秒`;
  if (s < 3600) return `${Math.floor(s / 60)}分${pad(s % 60)}秒`;
  return `${Math.floor(s / 3600)}時間${pad(Math.floor((s % 3600) / 60))}分`;
}

function entryItem(entry) {
  const sender = Object.prototype.hasOwnProperty.call(SENDER_LABELS, entry.sender) ? entry.sender : "system";
  const li = el("li", `entry entry-${sender}`);
  let who = SENDER_LABELS[sender];
  if ((sender === "agent" || sender === "note") && entry.author) who += `（${entry.author}）`;
  const head = el("div", "entry-head");
  const time = el("time", "entry-time", formatTime(entry.at));
  if (entry.at) time.dateTime = entry.at;
  head.append(el("span", "entry-sender", who), time);
  li.append(head, el("p", "entry-text", entry.text || ""));
  // The server words the bot's decision (bot/wording.py): 「ボットの判定: 住所を変更したい（確からしさ 53%）」.
  if ((sender === "bot" || sender === "customer") && entry.decision) {
    li.append(el("p", "entry-meta", entry.decision));
  }
  return li;
}

// One step of a ticket's history (GET /api/tickets/{id}/history): when, what, who → whom, why.
function historyItem(e) {
  const li = el("li", e.kind === "whisper" ? "history-whisper" : "");
  const time = el("time", "entry-time", formatDateTime(e.at));
  if (e.at) time.dateTime = e.at;
  li.append(time, " ", el("strong", null, e.kind_label), ` — ${e.actor_name || ""}${e.target_name ? ` → ${e.target_name}` : ""}`);
  if (e.note) li.append(el("span", "history-note", e.note));
  return li;
}
