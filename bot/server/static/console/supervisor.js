/*
 * 責任者ビュー (supervisors and admins): every open chat live (GET /api/supervisor/overview on each
 * event of EventSource("/api/events")): waiting or claimed by whom, escalation, anger / complaint
 * marks, the time since the customer's latest message (ticking), and each agent's load against the
 * cap. 「表示」 opens a transcript read-only (updated as it grows) with the ticket's history; a
 * whisper (POST .../whisper) reaches the agent only; 「責任者として参加する」 (POST .../join) takes
 * the chat and opens it in the console. An escalation rings (WebAudio beep). A 401 shows a link
 * to the console's login, a 403 the server's message. Server text goes in with textContent only.
 */
"use strict";

(() => {
  const S = {
    waiting: "対応待ち",
    claimed: "対応中（{name}）",
    title: "お問い合わせ番号 {id}",
    show: "表示",
    showLabel: "お問い合わせ番号 {id} を表示",
    noMessage: "—",
    load: "{chats} / {cap}",
    offers: "（割り当て中 {n} 件）",
    escalations: "責任者待ち {n} 件",
    incoming: "お問い合わせ番号 {id} が責任者にエスカレーションされました。",
    whispered: "ささやきを送りました。担当者の画面にだけ表示されます。",
    state: "{status}・カテゴリ: {category}・理由: {reasons}",
    noCategory: "カテゴリなし",
    connected: "接続中",
    reconnecting: "再接続中…",
  };
  const MARKED_REASONS = new Set(["anger", "complaint"]);
  const page = { csrf: null, me: null, currentId: null, data: null, refreshTimer: null, seq: 0, detailSeq: 0,
    known: new Set() };

  const call = (method, path, body) => jsonRequest(method, path, body, page.csrf);

  function showAlert(message) {
    $("alert").textContent = message;
    $("alert").hidden = !message;
  }

  function announce(message) {
    $("notice-live").textContent = message;
  }

  function statusText(t) {
    return t.status === "claimed" ? fill(S.claimed, { name: t.claimed_by_name || t.claimed_by || "—" }) : S.waiting;
  }

  function ticketRow(t) {
    const row = el("tr");
    row.dataset.ticketId = String(t.id);
    if (t.id === page.currentId) row.setAttribute("aria-current", "true");
    const marks = el("td");
    if (t.escalation_label) marks.append(el("span", "badge badge-escalation", t.escalation_label), " ");
    (t.reasons || []).forEach((reason, i) => {
      if (MARKED_REASONS.has(reason)) marks.append(el("span", "badge badge-high", (t.reason_labels || [])[i]), " ");
    });
    const since = el("td");
    if (t.last_customer_at) {
      const timer = el("span", "sv-since");
      timer.dataset.since = t.last_customer_at;
      since.append(timer);
    } else {
      since.textContent = S.noMessage;
    }
    const open = el("button", null, S.show);
    open.type = "button";
    open.setAttribute("aria-label", fill(S.showLabel, { id: t.id }));
    open.addEventListener("click", () => openTicket(t.id));
    const action = el("td");
    action.append(open);
    row.append(el("td", null, `#${t.id}`), el("td", `status status-${t.status}`, statusText(t)), marks, since,
      el("td", null, t.category || S.noCategory), action);
    return row;
  }

  function agentRow(a) {
    const load = el("td", a.load >= a.max_chats ? "sv-full" : null, fill(S.load, { chats: a.chats, cap: a.max_chats }));
    if (a.offers) load.append(fill(S.offers, { n: a.offers }));
    const row = el("tr");
    row.dataset.username = a.username;
    row.append(el("td", null, a.display_name), el("td", null, a.role_label), el("td", null, a.status_label), load);
    return row;
  }

  function tick() {
    for (const node of document.querySelectorAll(".sv-since[data-since]")) {
      const since = Date.parse(node.dataset.since);
      node.textContent = Number.isNaN(since) ? S.noMessage : formatDuration((Date.now() - since) / 1000);
    }
  }

  function render(data) {
    page.data = data;
    const tickets = data.tickets || [];
    $("sv-tickets").replaceChildren(...tickets.map(ticketRow));
    $("sv-empty").hidden = tickets.length > 0;
    $("sv-agents").replaceChildren(...(data.agents || []).map(agentRow));
    const waiting = tickets.filter((t) => t.escalation === "requested");
    for (const t of waiting) {
      if (!page.known.has(t.id) && page.seq > 1) {
        announce(fill(S.incoming, { id: t.id }));
        sound.beep(660);
      }
    }
    page.known = new Set(waiting.map((t) => t.id));
    $("sv-escalations").textContent = fill(S.escalations, { n: waiting.length });
    $("sv-escalations").hidden = waiting.length === 0;
    tick();
  }

  async function refresh() {
    const seq = ++page.seq;
    try {
      const data = await call("GET", "/api/supervisor/overview");
      if (seq === page.seq) render(data);
    } catch (err) {
      showAlert(err.message);
    }
  }

  function refreshSoon(withDetail) {
    clearTimeout(page.refreshTimer);
    page.refreshTimer = setTimeout(() => {
      refresh();
      if (withDetail) loadDetail();
    }, 150);
  }

  function renderHistory(events) {
    $("sv-history").replaceChildren(...(events || []).map(historyItem));
  }

  async function loadDetail() {
    const id = page.currentId;
    if (id === null) return;
    const seq = ++page.detailSeq;
    try {
      const [detail, history] = await Promise.all([
        call("GET", `/api/tickets/${encodeURIComponent(id)}?entries=100`),
        call("GET", `/api/tickets/${encodeURIComponent(id)}/history`)]);
      if (seq !== page.detailSeq || id !== page.currentId) return;
      const t = detail.ticket;
      $("sv-detail").hidden = false;
      $("sv-detail-title").textContent = fill(S.title, { id: t.id });
      $("sv-detail-state").textContent = fill(S.state, { status: statusText(t),
        category: t.category || S.noCategory, reasons: (t.reason_labels || []).join("、") || "—" });
      const transcript = $("sv-transcript");
      const atBottom = transcript.scrollTop + transcript.clientHeight >= transcript.scrollHeight - 4;
      transcript.replaceChildren(...(t.entries || []).map(entryItem));
      if (atBottom) transcript.scrollTop = transcript.scrollHeight;
      renderHistory(history.events);
      const open = t.status === "waiting" || t.status === "claimed";
      $("sv-join").hidden = !(open && t.claimed_by !== page.me && t.escalation !== "joined");
      $("sv-whisper-form").hidden = !(t.status === "claimed" && t.claimed_by !== page.me);
    } catch (err) {
      showAlert(err.message);
    }
  }

  async function openTicket(id) {
    page.currentId = id;
    showAlert("");
    $("sv-status").textContent = "";
    for (const row of $("sv-tickets").querySelectorAll("tr")) {
      if (row.dataset.ticketId === String(id)) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    }
    await loadDetail();
    $("sv-detail-title").focus();
  }

  async function join() {
    const id = page.currentId;
    const button = $("sv-join");
    if (id === null || button.disabled) return;
    showAlert("");
    button.disabled = true;
    try {
      await call("POST", `/api/tickets/${encodeURIComponent(id)}/join`, {});
      window.location.href = `/console/#ticket=${encodeURIComponent(id)}`;
    } catch (err) {
      showAlert(err.message);
      loadDetail();
    } finally {
      button.disabled = false;
    }
  }

  async function whisper(event) {
    event.preventDefault();
    const id = page.currentId;
    const box = $("sv-whisper-text");
    const button = $("sv-whisper-send");
    if (id === null || button.disabled) return;
    showAlert("");
    button.disabled = true;
    try {
      const data = await call("POST", `/api/tickets/${encodeURIComponent(id)}/whisper`, { text: box.value });
      box.value = "";
      $("sv-status").textContent = S.whispered;
      renderHistory(data.events);
    } catch (err) {
      showAlert(err.message);  // the text stays in the box
      box.focus();
    } finally {
      button.disabled = false;
    }
  }

  function listen() {
    const source = new EventSource("/api/events");
    source.onopen = () => {
      $("sv-connection").textContent = S.connected;
      $("sv-connection").dataset.state = "open";
      refreshSoon(true);
    };
    source.onerror = () => {
      $("sv-connection").textContent = S.reconnecting;
      $("sv-connection").dataset.state = "reconnecting";
    };
    source.addEventListener("ticket", (event) => {
      let payload;
      try { payload = JSON.parse(event.data); } catch (err) { return; }
      const ticket = payload && payload.ticket;
      refreshSoon(Boolean(ticket && ticket.id === page.currentId));
    });
  }

  async function init() {
    $("sv-join").addEventListener("click", join);
    $("sv-whisper-form").addEventListener("submit", whisper);
    document.addEventListener("pointerdown", sound.unlock, { once: true });
    document.addEventListener("keydown", sound.unlock, { once: true });
    try {
      const me = await call("GET", "/api/agent/me");
      page.csrf = me.csrf_token;
      page.me = me.agent ? me.agent.username : null;
      await refresh();
      if (!page.data) return;  // refused (403): the message is shown
    } catch (err) {
      if (err.status === 401) $("login-needed").hidden = false;
      else showAlert(err.message);
      return;
    } finally {
      $("loading").hidden = true;
    }
    $("sv-view").hidden = false;
    listen();
    setInterval(tick, 1000);
  }

  document.addEventListener("DOMContentLoaded", init);
})();
