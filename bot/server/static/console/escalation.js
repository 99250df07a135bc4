/*
 * Escalation in the console's ticket view (#15): 「転送する」 (to a colleague who is 対応可能 with a
 * free slot, or back to the queue for a category; POST .../transfer with an internal note),
 * 「責任者にエスカレーション」 (POST .../escalate; the agent stays in the chat until a supervisor
 * joins), 「責任者として参加する」 for supervisors and admins (POST .../join), and the ticket's
 * history 「対応の記録」 (GET .../history: who, when, what, why; whispers to oneself highlighted).
 * Supervisors get the 「責任者ビュー」 link with the count of escalations waiting for them, and a
 * beep when one arrives; an agent gets a beep and a notice when a supervisor whispers to them.
 * Server text goes in with textContent only. Uses $, el, fill, sound, historyItem (dom.js) and state, api,
 * showAlert, clearAlert, announce, loadDetail, scheduleRefresh, formatDateTime (console.js).
 */
"use strict";

(() => {
  const S = {
    toQueue: "お問い合わせ一覧に戻す",
    keepCategory: "いまのカテゴリのまま",
    target: "{name}（{status}・対応中 {chats} / {cap}）",
    transferred: "お問い合わせ番号 {id} を転送しました。",
    escalated: "お問い合わせ番号 {id} を責任者にエスカレーションしました。責任者が参加するまで対応を続けてください。",
    joined: "お問い合わせ番号 {id} に責任者として参加しました。",
    incoming: "お問い合わせ番号 {id} が責任者にエスカレーションされました。",
    whisper: "責任者からささやきが届きました（お問い合わせ番号 {id}）。「対応の記録」をご覧ください。",
    countLabel: "（エスカレーション {n} 件が責任者の参加を待っています）",
    loadFailed: "転送先を読み込めませんでした: {message}",
  };
  const view = { role: null, ticket: null, historySeq: 0, countSeq: 0 };
  const supervising = () => view.role === "supervisor" || view.role === "admin";
  const me = () => (state.agent ? state.agent.username : null);
  const path = (id, action) => `/api/tickets/${encodeURIComponent(id)}/${action}`;

  function closeForms() {
    for (const [form, opener] of [["transfer-form", "transfer-open"], ["escalate-form", "escalate-open"]]) {
      $(form).hidden = true;
      $(opener).setAttribute("aria-expanded", "false");
    }
  }

  function onTicket(event) {
    const t = event.detail;
    if (!view.ticket || view.ticket.id !== t.id) {
      closeForms();
      $("whisper-note").hidden = true;
      for (const id of ["transfer-note", "escalate-note"]) $(id).value = "";
    }
    view.ticket = t;
    const mine = t.status === "claimed" && t.claimed_by === me();
    const open = (t.status === "waiting" || t.status === "claimed") && !t.offline;
    $("transfer-open").hidden = !(t.status === "claimed" && !t.offline && (mine || supervising()));
    $("escalate-open").hidden = !(mine && t.escalation !== "requested");
    $("join").hidden = !(supervising() && open && t.claimed_by !== me() && t.escalation !== "joined");
    const badge = $("detail-escalation");
    badge.hidden = !t.escalation_label;
    badge.textContent = t.escalation_label || "";
    if ($("transfer-open").hidden) closeForms();
    loadHistory(t.id);
  }

  async function loadHistory(id) {
    const seq = ++view.historySeq;
    try {
      const data = await api("GET", path(id, "history"));
      if (seq !== view.historySeq || state.currentId !== id) return;
      const events = Array.isArray(data.events) ? data.events : [];
      $("history-list").replaceChildren(...events.map(historyItem));
    } catch (err) {
      if (err.status !== 401 && err.status !== 404) showAlert(err.message);
    }
  }

  async function openTransfer() {
    if (!$("transfer-form").hidden) { closeForms(); return; }
    closeForms();
    clearAlert();
    let data;
    try {
      data = await api("GET", "/api/transfer-targets");
    } catch (err) {
      if (err.status !== 401) showAlert(fill(S.loadFailed, { message: err.message }));
      return;
    }
    const t = view.ticket;
    const target = $("transfer-target");
    const choices = [];
    for (const a of data.agents || []) {
      if (a.username === me() || (t && a.username === t.claimed_by)) continue;
      const option = el("option", null, fill(S.target, { name: a.display_name, status: a.status_label,
        chats: a.chats, cap: a.max_chats }));
      option.value = a.username;
      choices.push(option);
    }
    const queue = el("option", null, S.toQueue);
    queue.value = "";
    target.replaceChildren(...choices, queue);
    const category = $("transfer-category");
    const keep = el("option", null, S.keepCategory);
    keep.value = "";
    category.replaceChildren(keep, ...(data.categories || []).map((c) => {
      const option = el("option", null, c);
      option.value = c;
      return option;
    }));
    onTargetChange();
    $("transfer-form").hidden = false;
    $("transfer-open").setAttribute("aria-expanded", "true");
    target.focus();
  }

  function onTargetChange() {
    $("transfer-category-field").hidden = $("transfer-target").value !== "";
  }

  function openEscalate() {
    const wasOpen = !$("escalate-form").hidden;
    closeForms();
    if (wasOpen) return;
    $("escalate-form").hidden = false;
    $("escalate-open").setAttribute("aria-expanded", "true");
    $("escalate-note").focus();
  }

  // POST, then show the new state; the agent's text stays in its box when the server refuses.
  async function act(button, action, body, done, box) {
    const t = view.ticket;
    if (!t || button.disabled) return;
    clearAlert();
    button.disabled = true;
    try {
      await api("POST", path(t.id, action), body);
      if (box) box.value = "";
      closeForms();
      announce(fill(done, { id: t.id }));
      await loadDetail();
      scheduleRefresh(false);
    } catch (err) {
      if (err.status === 401) return;
      showAlert(err.message);
      if (err.status === 409) loadDetail();
      if (box) box.focus();
    } finally {
      button.disabled = false;
    }
  }

  function submitTransfer(event) {
    event.preventDefault();
    const to = $("transfer-target").value;
    const body = to ? { to_agent: to, note: $("transfer-note").value }
      : { to_queue: true, category: $("transfer-category").value || null, note: $("transfer-note").value };
    act($("transfer-send"), "transfer", body, S.transferred, $("transfer-note"));
  }

  function submitEscalate(event) {
    event.preventDefault();
    act($("escalate-send"), "escalate", { note: $("escalate-note").value }, S.escalated, $("escalate-note"));
  }

  // Supervisors: how many escalations wait for a supervisor (the link's badge).
  async function refreshCount() {
    if (!supervising()) return;
    const seq = ++view.countSeq;
    try {
      const data = await api("GET", "/api/supervisor/overview");
      if (seq !== view.countSeq) return;
      const n = (data.tickets || []).filter((t) => t.escalation === "requested").length;
      $("escalation-count").textContent = String(n);
      $("escalation-count").hidden = n === 0;
      $("escalation-count-label").textContent = n ? fill(S.countLabel, { n }) : "";
    } catch (err) { /* the next event tries again */ }
  }

  function onTicketEvent(event) {
    const { change, ticket } = event.detail || {};
    if (!ticket) return;
    if (change === "escalated" && supervising()) {
      announce(fill(S.incoming, { id: ticket.id }));
      sound.beep(660);
    }
    if (change === "whisper" && ticket.claimed_by === me()) {
      const note = $("whisper-note");
      note.textContent = fill(S.whisper, { id: ticket.id });
      note.hidden = ticket.id !== state.currentId;
      if (note.hidden) announce(note.textContent);
      sound.beep(990);
    }
    if (supervising()) refreshCount();
  }

  async function onAppView() {
    view.role = null;
    $("supervisor-link").hidden = true;
    if ($("app-view").hidden) return;
    try {
      const data = await api("GET", "/api/desk/me");
      view.role = data.agent ? data.agent.role : null;
      state.role = view.role; // forward.js: supervisors may forward any agent's claimed chat
    } catch (err) {
      return;
    }
    document.dispatchEvent(new CustomEvent("console:role"));
    $("supervisor-link").hidden = !supervising();
    refreshCount();
    if (view.ticket && state.currentId === view.ticket.id) onTicket({ detail: view.ticket });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.addEventListener("console:ticket", onTicket);
    document.addEventListener("console:ticket-event", onTicketEvent);
    $("transfer-open").addEventListener("click", openTransfer);
    $("transfer-target").addEventListener("change", onTargetChange);
    $("transfer-cancel").addEventListener("click", closeForms);
    $("transfer-form").addEventListener("submit", submitTransfer);
    $("escalate-open").addEventListener("click", openEscalate);
    $("escalate-cancel").addEventListener("click", closeForms);
    $("escalate-form").addEventListener("submit", submitEscalate);
    $("join").addEventListener("click", () => act($("join"), "join", {}, S.joined, null));
    new MutationObserver(onAppView).observe($("app-view"), { attributes: true, attributeFilter: ["hidden"] });
  });
})();
