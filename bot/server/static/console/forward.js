/*
 * 「部署に引き継ぐ」 in the console's ticket view (#15 item 4): the agent of a claimed chat (or a
 * supervisor or admin, for any agent's claimed chat) picks a
 * department of knowledge/departments.yml (GET /api/departments; one that cannot be reached from this
 * server is listed disabled, with the reason) and writes the note for it (required, 1,000 characters);
 * POST .../forward resolves the ticket as forwarded, the department gets the mail and/or the webhook,
 * the customer reads the department's promise. The step shows in 「対応の記録」 (escalation.js reloads
 * it on the ticket event). A refusal keeps the note in its box. Server text goes in with textContent
 * only. Uses $, el, fill (dom.js) and state, api, showAlert, clearAlert, announce, loadDetail,
 * scheduleRefresh (console.js).
 */
"use strict";

(() => {
  const S = {
    choose: "部署を選んでください",
    unavailable: "{name}（引き継げません）",
    promise: "お客さまに表示する文: 「{promise}」",
    problem: "この部署には引き継げません: {problem}",
    forwarded: "お問い合わせ番号 {id} を{name}に引き継ぎました。",
    loadFailed: "部署の一覧を読み込めませんでした: {message}",
    none: "引き継げる部署がありません（knowledge/departments.yml）。",
  };
  const view = { ticket: null, departments: [] };
  const me = () => (state.agent ? state.agent.username : null);
  // Supervisors and admins may forward any agent's claimed chat (state.role: escalation.js).
  const supervising = () => state.role === "supervisor" || state.role === "admin";

  function close() {
    $("forward-form").hidden = true;
    $("forward-open").setAttribute("aria-expanded", "false");
  }

  function onTicket(event) {
    const t = event.detail;
    if (!view.ticket || view.ticket.id !== t.id) {
      close();
      $("forward-note").value = "";
    }
    view.ticket = t;
    $("forward-open").hidden = !(t.status === "claimed" && (t.claimed_by === me() || supervising()));
    if ($("forward-open").hidden) close();
  }

  function describe() {
    const chosen = view.departments.find((d) => d.id === $("forward-department").value);
    const line = $("forward-promise");
    if (!chosen) line.textContent = "";
    else if (chosen.available) line.textContent = fill(S.promise, { promise: chosen.promise });
    else line.textContent = fill(S.problem, { problem: chosen.problem || "" });
  }

  async function open() {
    if (!$("forward-form").hidden) { close(); return; }
    clearAlert();
    let data;
    try {
      data = await api("GET", "/api/departments");
    } catch (err) {
      if (err.status !== 401) showAlert(fill(S.loadFailed, { message: err.message }));
      return;
    }
    view.departments = Array.isArray(data.departments) ? data.departments : [];
    if (!view.departments.length) { showAlert(S.none); return; }
    const placeholder = el("option", null, S.choose);
    placeholder.value = "";
    const options = view.departments.map((d) => {
      const option = el("option", null, d.available ? d.name : fill(S.unavailable, { name: d.name }));
      option.value = d.id;
      return option;
    });
    $("forward-department").replaceChildren(placeholder, ...options);
    describe();
    $("forward-form").hidden = false;
    $("forward-open").setAttribute("aria-expanded", "true");
    $("forward-department").focus();
  }

  async function submit(event) {
    event.preventDefault();
    const t = view.ticket;
    const button = $("forward-send");
    if (!t || button.disabled) return;
    clearAlert();
    button.disabled = true;
    const id = $("forward-department").value;
    const chosen = view.departments.find((d) => d.id === id);
    try {
      await api("POST", `/api/tickets/${encodeURIComponent(t.id)}/forward`,
        { department: id, note: $("forward-note").value });
      $("forward-note").value = "";
      close();
      announce(fill(S.forwarded, { id: t.id, name: chosen ? chosen.name : id }));
      await loadDetail();
      scheduleRefresh(false);
    } catch (err) {
      if (err.status === 401) return;
      showAlert(err.message);
      if (err.status === 409) loadDetail();
      (id ? $("forward-note") : $("forward-department")).focus();
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.addEventListener("console:ticket", onTicket);
    // The role arrives after the first ticket may be open: show the button then.
    document.addEventListener("console:role", () => { if (view.ticket) onTicket({ detail: view.ticket }); });
    $("forward-open").addEventListener("click", open);
    $("forward-cancel").addEventListener("click", () => { close(); $("forward-open").focus(); });
    $("forward-department").addEventListener("change", describe);
    $("forward-form").addEventListener("submit", submit);
  });
})();
