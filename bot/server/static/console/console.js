/*
 * Agent console for the customer-support bot server (served at /console/).
 *
 * Uses the "Agent side" API of docs/server-api.md:
 *   - cookie session; the csrf_token from login/me is kept in memory and sent
 *     as X-CSRF-Token on every POST; any 401 returns to the login form;
 *   - queue via GET /api/tickets a page at a time (limit/offset, 「さらに表示」), detail via
 *     GET /api/tickets/{id} (latest entries; older ones via /entries?before=, 「以前の履歴を表示」);
 *   - a ticket another agent claimed is taken over (POST .../takeover) before it can be resolved;
 *   - live updates via EventSource("/api/events"), event name "ticket".
 * Server data is only ever rendered with textContent / createTextNode.
 */
"use strict";

const BASE_TITLE = "担当者コンソール";
const LIST_PAGE = 50;
const MAX_LIST_REQUEST = 200;
const ENTRIES_PAGE = 100;
const EMPTY_LIST_TEXT = {
  open: "対応待ち・対応中の問い合わせはありません。",
  resolved: "解決済みの問い合わせはありません。",
};

const state = {
  agent: null,          // {username, display_name}
  role: null,           // "agent", "supervisor" or "admin" (escalation.js reads /api/desk/me)
  csrf: null,
  filter: "open",
  tickets: [],
  listLimit: LIST_PAGE,   // tickets shown: grows by LIST_PAGE with 「さらに表示」
  listHasMore: false,
  currentId: null,
  renderedTicketId: null,
  entryIds: new Set(),    // ids of the transcript entries on screen
  newestEntry: null,      // the newest entry on screen ({position, id})
  oldestEntryId: null,    // cursor for 「以前の履歴を表示」
  hasEarlier: false,
  events: null,
  retryTimer: null,
  connectionDown: false,
  refreshTimer: null,
  detailPending: false,
  listSeq: 0,
  unseen: 0,
  bannerTicketId: null,
};

/* ---------- small DOM helpers ($ and el come from dom.js) ---------- */

function setText(id, value) {
  $(id).textContent = value === undefined || value === null || value === "" ? "—" : String(value);
}

function showAlert(message) {
  const box = $("alert");
  box.textContent = message;
  box.hidden = !message;
}

function clearAlert() {
  showAlert("");
}

function announce(message) {
  $("notice-live").textContent = message;
}

/* ---------- time formatting ---------- */

// formatTime, formatDateTime, formatDuration: dom.js

// Waiting ends when an agent claims the ticket (same rule as waiting_seconds).
function waitEnd(t) {
  return t.claimed_at || t.resolved_at || null;
}

// Elements with class "wait-time" carry data-since (and optionally data-until).
function updateTimers() {
  for (const node of document.querySelectorAll(".wait-time[data-since]")) {
    const since = Date.parse(node.dataset.since);
    const until = node.dataset.until ? Date.parse(node.dataset.until) : Date.now();
    node.textContent = Number.isNaN(since) ? "—" : formatDuration((until - since) / 1000);
  }
}

/* ---------- API ---------- */

// jsonRequest (dom.js) with the session's CSRF token; a 401 returns to the login form.
async function api(method, path, body) {
  try {
    return await jsonRequest(method, path, body, state.csrf);
  } catch (err) {
    if (err.status === 401 && state.agent) sessionExpired();
    throw err;
  }
}

/* ---------- session ---------- */

function startSession(data) {
  state.agent = data.agent || null;
  state.csrf = data.csrf_token || null;
  $("loading").hidden = true;
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("agent-name").textContent = state.agent ? `${state.agent.display_name || state.agent.username} さん` : "";
  for (const id of ["agent-name", "logout", "connection-status"]) $(id).hidden = false;
  openEvents();
  refreshList();
  // /console/#ticket=12 (the supervisor view's 「参加する」) opens that ticket.
  const linked = /^#ticket=(\d+)$/.exec(window.location.hash);
  if (linked) openTicket(Number(linked[1]), true);
}

function showLogin(message) {
  closeEvents();
  Object.assign(state, { agent: null, csrf: null, tickets: [], currentId: null });
  clearDetail();
  $("ticket-list").replaceChildren();
  hideBanner();
  $("loading").hidden = true;
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  for (const id of ["agent-name", "logout", "connection-status"]) $(id).hidden = true;
  showAlert(message || "");
  $("login-username").focus();
}

function sessionExpired() {
  showLogin("セッションの有効期限が切れました。もう一度ログインしてください。");
}

async function onLoginSubmit(event) {
  event.preventDefault();
  clearAlert();
  unlockAudio();
  const username = $("login-username").value.trim();
  const password = $("login-password").value;
  if (!username || !password) {
    showAlert("ユーザー名とパスワードを入力してください。");
    return;
  }
  $("login-submit").disabled = true;
  try {
    const data = await api("POST", "/api/agent/login", { username, password });
    $("login-password").value = "";
    startSession(data);
  } catch (err) {
    showAlert(err.message);
  } finally {
    $("login-submit").disabled = false;
  }
}

async function onLogout() {
  try { await api("POST", "/api/agent/logout", {}); } catch (err) { /* leave anyway */ }
  showLogin("ログアウトしました。");
}

/* ---------- queue list ---------- */

// The first `limit` tickets of the current filter, in requests of at most MAX_LIST_REQUEST.
async function fetchTickets(limit) {
  const seen = new Set();
  const tickets = [];
  let offset = 0;
  let more = false;
  while (offset < limit) {
    const size = Math.min(MAX_LIST_REQUEST, limit - offset);
    const data = await api("GET",
      `/api/tickets?status=${encodeURIComponent(state.filter)}&limit=${size}&offset=${offset}`);
    const page = Array.isArray(data.tickets) ? data.tickets : [];
    for (const t of page) {
      if (!seen.has(t.id)) { seen.add(t.id); tickets.push(t); }
    }
    more = data.has_more === true;
    if (!more || page.length < size) break;
    offset += size;
  }
  return { tickets, more };
}

async function refreshList() {
  const seq = ++state.listSeq;
  try {
    const { tickets, more } = await fetchTickets(state.listLimit);
    if (seq !== state.listSeq || !state.agent) return;
    state.tickets = tickets;
    state.listHasMore = more;
    renderList();
  } catch (err) {
    if (err.status !== 401) showAlert(err.message);
  }
}

function showMoreTickets() {
  state.listLimit += LIST_PAGE;
  refreshList();
}

function statusText(t) {
  if (t.status === "waiting") return "対応待ち";
  if (t.status === "claimed") return `対応中 (${t.claimed_by_name || t.claimed_by || "—"})`;
  if (t.status === "resolved") {
    if (t.resolution === "cancelled") return "取り消し";
    if (t.resolution === "limited") return "受付上限";
    if (t.resolution === "forwarded") return "部署に引き継ぎ";
    return "解決済み";
  }
  return String(t.status || "");
}

function ticketItem(t) {
  const btn = el("button", "ticket-item");
  btn.type = "button";
  btn.dataset.ticketId = String(t.id);
  if (t.id === state.currentId) btn.setAttribute("aria-current", "true");

  const top = el("span", "ticket-row");
  if (t.priority <= 1) top.append(el("span", "badge badge-high", t.priority_label || "高"));
  top.append(el("span", "ticket-id", `#${t.id}`));
  top.append(el("span", `status status-${t.status}`, statusText(t)));
  if (t.offline) top.append(el("span", "badge badge-offline", "時間外"));
  if (t.reply_overdue) top.append(el("span", "badge badge-high", "返信遅れ"));
  if (t.escalation_label) top.append(el("span", "badge badge-escalation", t.escalation_label));
  if (t.offered_to_name) top.append(el("span", "badge badge-offer", `割り当て: ${t.offered_to_name}`));
  top.append(el("span", "badge badge-channel", channelName(t.customer)));

  const mid = el("span", "ticket-row");
  mid.append(el("span", "ticket-category", t.category || "カテゴリなし"));
  if (t.customer && t.customer.name) mid.append(el("span", "ticket-customer", `${t.customer.name} 様`));

  const reasons = el("span", "ticket-row reasons");
  for (const label of t.reason_labels || []) reasons.append(el("span", "chip", label));

  const wait = el("span", "wait-time");
  wait.dataset.since = t.created_at || "";
  const until = waitEnd(t);
  if (until) wait.dataset.until = until;
  const time = el("span", "ticket-row ticket-wait", "待ち時間 ");
  time.append(wait);

  btn.append(top, mid, reasons, time);
  const li = el("li");
  li.append(btn);
  return li;
}

function renderList() {
  const list = $("ticket-list");
  const active = document.activeElement;
  const focusedId = active && list.contains(active) ? active.dataset.ticketId : null;
  list.replaceChildren(...state.tickets.map(ticketItem));
  const empty = $("list-empty");
  empty.textContent = EMPTY_LIST_TEXT[state.filter] || "";
  empty.hidden = state.tickets.length > 0;
  $("list-more").hidden = !state.listHasMore;
  if (focusedId) {
    const again = list.querySelector(`[data-ticket-id="${CSS.escape(focusedId)}"]`);
    if (again) again.focus();
  }
  updateTimers();
}

function markCurrent() {
  for (const btn of $("ticket-list").querySelectorAll("[data-ticket-id]")) {
    if (btn.dataset.ticketId === String(state.currentId)) btn.setAttribute("aria-current", "true");
    else btn.removeAttribute("aria-current");
  }
}

function setFilter(status) {
  state.filter = status;
  for (const tab of document.querySelectorAll(".tab")) {
    tab.setAttribute("aria-pressed", String(tab.dataset.status === status));
  }
  state.tickets = [];
  state.listLimit = LIST_PAGE;
  state.listHasMore = false;
  renderList();
  refreshList();
}

/* ---------- ticket detail ---------- */

async function openTicket(id, focusDetail) {
  state.currentId = id;
  markCurrent();
  if (id === state.bannerTicketId) hideBanner();
  clearAlert();
  await loadDetail();
  if (focusDetail && state.currentId === id) $("detail-title").focus();
}

async function loadDetail() {
  const id = state.currentId;
  if (id === null) return;
  try {
    const data = await api("GET", `/api/tickets/${encodeURIComponent(id)}?entries=${ENTRIES_PAGE}`);
    if (id === state.currentId && data.ticket) renderDetail(data.ticket);
  } catch (err) {
    if (err.status === 401) return;
    if (err.status === 404 && id === state.currentId) clearDetail();
    showAlert(err.message);
  }
}

function resetTranscript(ticketId) {
  $("transcript").replaceChildren();
  state.renderedTicketId = ticketId;
  state.entryIds = new Set();
  state.newestEntry = null;
  state.oldestEntryId = null;
  state.hasEarlier = false;
  $("transcript-earlier").hidden = true;
}

function clearDetail() {
  state.currentId = null;
  resetTranscript(null);
  $("detail-body").hidden = true;
  $("detail-empty").hidden = false;
}

function renderDetail(t) {
  $("detail-empty").hidden = true;
  $("detail-body").hidden = false;
  $("detail-title").textContent = `お問い合わせ番号 ${t.id}`;
  $("detail-priority").hidden = t.priority > 1;
  $("detail-priority").textContent = t.priority_label || "高";
  $("detail-status").textContent = statusText(t);
  $("detail-status").className = `status status-${t.status}`;
  $("detail-offline").hidden = !t.offline;
  setText("detail-summary", t.summary);
  setText("detail-reasons", (t.reason_labels || []).join("、"));
  setText("detail-category", t.category);
  $("detail-created").textContent = formatDateTime(t.created_at);
  const wait = $("detail-wait");
  wait.dataset.since = t.created_at || "";
  const until = waitEnd(t);
  if (until) wait.dataset.until = until;
  else delete wait.dataset.until;
  renderCustomer(t.customer || {});
  renderTranscript(t);
  updateActions(t);
  updateTimers();
  // escalation.js: transfer / escalate / join buttons and the ticket's history.
  document.dispatchEvent(new CustomEvent("console:ticket", { detail: t }));
}

// Where the customer writes from: 「LINE」 (bot/channels/line) or 「Web」 (the widget, which sets no channel).
function channelName(c) {
  return (c && typeof c.channel === "string" && c.channel) || "Web";
}

function renderCustomer(c) {
  setText("customer-channel", channelName(c));
  setText("customer-name", c.name);
  setText("customer-email", c.email);
  setText("customer-phone", c.phone);
  const page = $("customer-page");
  page.replaceChildren();
  const url = typeof c.page_url === "string" ? c.page_url : "";
  if (/^https?:\/\//i.test(url)) {
    const link = el("a", null, url);
    link.href = url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    page.append(link);
  } else {
    page.textContent = url || "—";
  }
}

// Transcript order: position, then id.
function entryBefore(a, b) {
  return a.position < b.position || (a.position === b.position && a.id < b.id);
}

// The detail carries the latest page of the transcript. Only entries newer than those on
// screen are appended, so the aria-live transcript announces just the additions; older
// ones come with 「以前の履歴を表示」.
function renderTranscript(t) {
  const list = $("transcript");
  const entries = Array.isArray(t.entries) ? t.entries : [];
  const overlaps = entries.some((e) => state.entryIds.has(e.id));
  // Another ticket, or more new entries than one page since the last refresh: start again.
  if (state.renderedTicketId !== t.id || (state.entryIds.size && !overlaps && t.has_earlier_entries)) {
    resetTranscript(t.id);
  }
  if (state.oldestEntryId === null && entries.length) {
    state.oldestEntryId = entries[0].id;
    state.hasEarlier = t.has_earlier_entries === true;
  }
  const added = [];
  for (const e of entries) {
    if (state.entryIds.has(e.id) || (state.newestEntry && entryBefore(e, state.newestEntry))) continue;
    state.entryIds.add(e.id);
    state.newestEntry = e;
    added.push(entryItem(e));
  }
  list.append(...added);
  $("transcript-empty").hidden = state.entryIds.size > 0;
  $("transcript-earlier").hidden = !state.hasEarlier;
  if (added.length) list.scrollTop = list.scrollHeight;
}

async function loadEarlierEntries() {
  const button = $("transcript-earlier");
  const id = state.currentId;
  const before = state.oldestEntryId;
  if (button.disabled || id === null || before === null) return;
  button.disabled = true;
  try {
    const data = await api("GET", `/api/tickets/${encodeURIComponent(id)}/entries`
      + `?before=${encodeURIComponent(before)}&limit=${ENTRIES_PAGE}`);
    if (id !== state.currentId || before !== state.oldestEntryId) return;
    const entries = (Array.isArray(data.entries) ? data.entries : []).filter((e) => !state.entryIds.has(e.id));
    for (const e of entries) state.entryIds.add(e.id);
    const list = $("transcript");
    const height = list.scrollHeight;
    list.setAttribute("aria-busy", "true"); // older entries are not news
    list.prepend(...entries.map(entryItem));
    list.removeAttribute("aria-busy");
    list.scrollTop += list.scrollHeight - height; // keep what the agent was reading in place
    if (entries.length) state.oldestEntryId = entries[0].id;
    state.hasEarlier = data.has_earlier_entries === true && entries.length > 0;
    button.hidden = !state.hasEarlier;
  } catch (err) {
    if (err.status !== 401) showAlert(err.message);
  } finally {
    button.disabled = false;
  }
}

function updateActions(t) {
  const me = state.agent ? state.agent.username : null;
  const mine = t.status === "claimed" && t.claimed_by === me;
  $("claim").hidden = t.status !== "waiting";
  $("resolve").hidden = !mine;  // only the agent who claimed it resolves it
  $("takeover").hidden = !(t.status === "claimed" && !mine);
  $("reply-form").hidden = !mine;
  const note = $("claimed-note");
  note.hidden = !(t.status === "claimed" && !mine);
  note.textContent = note.hidden ? "" : `${t.claimed_by_name || t.claimed_by} さんが対応中です。`;
}

/* ---------- actions ---------- */

async function runAction(button, path, body) {
  if (button.disabled || state.currentId === null) return false;
  clearAlert();
  const id = state.currentId;
  button.disabled = true;
  try {
    const data = await api("POST", path, body === undefined ? {} : body);
    if (id === state.currentId) {
      if (data.ticket && Array.isArray(data.ticket.entries)) renderDetail(data.ticket);
      else await loadDetail();
    }
    scheduleRefresh(false);
    return true;
  } catch (err) {
    if (err.status === 401) return false;
    showAlert(err.message);
    if (err.status === 409 || (err.status === 403 && state.csrf)) await loadDetail();
    return false;
  } finally {
    button.disabled = false;
  }
}

const ticketPath = (action) => `/api/tickets/${encodeURIComponent(state.currentId)}/${action}`;

async function sendText(textareaId, buttonId, action, emptyMessage) {
  const box = $(textareaId);
  const text = box.value.trim();
  if (!text) {
    showAlert(emptyMessage);
    box.focus();
    return;
  }
  if (await runAction($(buttonId), ticketPath(action), { text })) {
    if (box.value.trim() === text) box.value = "";
    box.focus();
  }
}

function onReplyKeydown(event) {
  if (event.key !== "Enter" || event.shiftKey) return;
  if (event.isComposing || event.keyCode === 229) return; // IME conversion in progress
  event.preventDefault();
  sendText("reply-text", "reply-send", "reply", "返信内容を入力してください。");
}

/* ---------- live events ---------- */

function setConnection(mode) {
  const node = $("connection-status");
  node.dataset.state = mode;
  node.textContent = { open: "接続中", reconnecting: "再接続中…", connecting: "接続しています…" }[mode] || "未接続";
}

function closeEvents() {
  clearTimeout(state.retryTimer);
  if (state.events) state.events.close();
  state.events = null;
}

function openEvents() {
  closeEvents();
  setConnection("connecting");
  const source = new EventSource("/api/events");
  source.onopen = () => {
    const missed = state.connectionDown;
    state.connectionDown = false;
    setConnection("open");
    if (missed) scheduleRefresh(true);
  };
  source.onerror = () => {
    state.connectionDown = true;
    setConnection("reconnecting");
    // The browser gives up on non-200 answers (e.g. 401): check the session and retry.
    if (source.readyState === EventSource.CLOSED) retryEvents();
  };
  source.addEventListener("ticket", onTicketEvent);
  state.events = source;
}

function retryEvents() {
  closeEvents();
  state.retryTimer = setTimeout(async () => {
    if (!state.agent) return;
    try {
      const data = await api("GET", "/api/agent/me");
      if (data.csrf_token) state.csrf = data.csrf_token;
    } catch (err) {
      if (err.status === 401) return;
    }
    if (state.agent) openEvents();
  }, 3000);
}

function onTicketEvent(event) {
  let payload;
  try { payload = JSON.parse(event.data); } catch (err) { return; }
  const ticket = payload && payload.ticket;
  if (!ticket) return;
  if (payload.change === "created") notifyNewTicket(ticket);
  document.dispatchEvent(new CustomEvent("console:ticket-event", { detail: payload }));  // escalation.js
  scheduleRefresh(ticket.id === state.currentId);
}

// Coalesces bursts of events into one list (and detail) refresh.
function scheduleRefresh(withDetail) {
  state.detailPending = state.detailPending || withDetail;
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => {
    const detail = state.detailPending;
    state.detailPending = false;
    refreshList();
    if (detail) loadDetail();
  }, 150);
}

/* ---------- new-ticket notification ---------- */

function updateTitle() {
  document.title = state.unseen > 0 ? `(${state.unseen}) ${BASE_TITLE}` : BASE_TITLE;
}

function notifyNewTicket(t) {
  state.unseen += 1;
  state.bannerTicketId = t.id;
  updateTitle();
  const label = `新しいお問い合わせ（番号 ${t.id}${t.category ? `、${t.category}` : ""}）が届きました。`;
  $("banner-text").textContent = state.unseen > 1 ? `${label} 未確認 ${state.unseen} 件` : label;
  $("new-ticket-banner").hidden = false;
  announce(label);
  beep();
}

function hideBanner() {
  state.unseen = 0;
  state.bannerTicketId = null;
  $("new-ticket-banner").hidden = true;
  updateTitle();
}

function unlockAudio() {
  sound.unlock();
}

function beep() {
  sound.beep();
}

/* ---------- wiring ---------- */

function onListClick(event) {
  const item = event.target.closest("[data-ticket-id]");
  if (!item) return;
  const id = Number(item.dataset.ticketId);
  openTicket(Number.isNaN(id) ? item.dataset.ticketId : id, true);
}

function bindEvents() {
  $("login-form").addEventListener("submit", onLoginSubmit);
  $("logout").addEventListener("click", onLogout);
  $("ticket-list").addEventListener("click", onListClick);
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => setFilter(tab.dataset.status));
  }
  $("claim").addEventListener("click", () => runAction($("claim"), ticketPath("claim")));
  $("resolve").addEventListener("click", () => runAction($("resolve"), ticketPath("resolve")));
  $("takeover").addEventListener("click", () => runAction($("takeover"), ticketPath("takeover")));
  $("list-more").addEventListener("click", showMoreTickets);
  $("transcript-earlier").addEventListener("click", loadEarlierEntries);
  $("reply-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sendText("reply-text", "reply-send", "reply", "返信内容を入力してください。");
  });
  $("reply-text").addEventListener("keydown", onReplyKeydown);
  $("note-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sendText("note-text", "note-send", "notes", "メモの内容を入力してください。");
  });
  $("banner-show").addEventListener("click", () => {
    const id = state.bannerTicketId;
    hideBanner();
    if (state.filter !== "open") setFilter("open");
    if (id !== null) openTicket(id, true);
  });
  $("banner-dismiss").addEventListener("click", hideBanner);
  // A user gesture lets the AudioContext start (autoplay policies).
  document.addEventListener("pointerdown", unlockAudio, { once: true });
  document.addEventListener("keydown", unlockAudio, { once: true });
}

async function init() {
  bindEvents();
  setInterval(updateTimers, 1000);
  try {
    startSession(await api("GET", "/api/agent/me"));
  } catch (err) {
    showLogin(err.status === 401 ? "" : err.message);
  }
}

document.addEventListener("DOMContentLoaded", init);
