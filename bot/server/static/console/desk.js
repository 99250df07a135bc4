/*
 * The agent's desk in the console (GET /api/desk/me): one's status (対応可能 / 離席 / オフライン,
 * POST /api/desk/status), one's load (対応中 n / 同時対応数), the tickets offered to one (「対応する」 =
 * POST .../claim, 「見送る」 = POST .../decline; the remaining seconds count down) and the claimed
 * tickets whose customer waits too long for a reply (「開く」 shows the ticket with 「対応を引き継ぐ」).
 * Admins get links to the agents' page (agents.html), the audit log (audit.html),
 * 個人情報の削除 (erasure.html), 送信の失敗 (failures.html) and 対応の設定 (settings.html).
 * Refreshed when the queue list is redrawn (every ticket event), every REFRESH_MS and after each
 * action. Texts go in with textContent only. Uses $, el, fill (dom.js) and state, api, openTicket,
 * announce, formatDuration (console.js).
 */
"use strict";

(() => {
  const REFRESH_MS = 5000;
  const S = {
    load: "対応中 {chats} / {cap}",
    loadOffers: "対応中 {chats} / {cap}（割り当て中 {offers} 件を含めて {load} 件）",
    offerTitle: "お問い合わせ番号 {id}",
    noCategory: "カテゴリなし",
    remaining: "残り {seconds} 秒",
    accept: "対応する",
    decline: "見送る",
    accepted: "お問い合わせ番号 {id} の対応を始めました。",
    declined: "お問い合わせ番号 {id} を見送りました。ほかの担当者に割り当てます。",
    offered: "お問い合わせ番号 {id} があなたに割り当てられました。",
    overdueLine: "担当: {name}、返信待ち {wait}",
    open: "開く",
    statusSaved: "状態を「{label}」にしました。",
  };
  const view = { timer: null, tick: null, seq: 0, offers: [], known: new Set(), queued: null };

  function setNote(message) {
    $("desk-note").textContent = message;
    if (message) announce(message);
  }

  function offerNode(t) {
    const node = el("li", "desk-item");
    node.dataset.ticketId = String(t.id);
    const title = el("span", "desk-item-title", fill(S.offerTitle, { id: t.id }));
    const facts = el("span", "desk-item-facts",
      [t.category || S.noCategory, ...(t.reason_labels || [])].join("・"));
    const left = el("span", "desk-remaining");
    left.dataset.expires = t.offer_expires_at || "";
    const accept = el("button", "primary desk-accept", S.accept);
    accept.type = "button";
    accept.setAttribute("aria-label", `${fill(S.offerTitle, { id: t.id })}を${S.accept}`);
    accept.addEventListener("click", () => act(accept, t.id, "claim", S.accepted));
    const decline = el("button", "desk-decline", S.decline);
    decline.type = "button";
    decline.setAttribute("aria-label", `${fill(S.offerTitle, { id: t.id })}を${S.decline}`);
    decline.addEventListener("click", () => act(decline, t.id, "decline", S.declined));
    node.append(title, facts, left, accept, decline);
    if (t.priority_label === "高") title.prepend(el("span", "badge badge-high", "高"), " ");
    return node;
  }

  function overdueNode(t) {
    const node = el("li", "desk-item");
    node.dataset.ticketId = String(t.id);
    const since = Date.parse(t.awaiting_reply_since);
    const wait = Number.isNaN(since) ? "—" : formatDuration((Date.now() - since) / 1000);
    node.append(el("span", "desk-item-title", fill(S.offerTitle, { id: t.id })),
      el("span", "desk-item-facts", fill(S.overdueLine, { name: t.claimed_by_name || "—", wait })));
    const open = el("button", "desk-open", S.open);
    open.type = "button";
    open.setAttribute("aria-label", `${fill(S.offerTitle, { id: t.id })}を${S.open}`);
    open.addEventListener("click", () => openTicket(t.id, true));
    node.append(open);
    return node;
  }

  function countDown() {
    for (const node of document.querySelectorAll(".desk-remaining[data-expires]")) {
      const left = Math.max(0, Math.ceil((Date.parse(node.dataset.expires) - Date.now()) / 1000));
      node.textContent = Number.isNaN(left) ? "" : fill(S.remaining, { seconds: left });
    }
  }

  function render(data) {
    const me = data.agent || {};
    $("desk-bar").hidden = false;
    $("desk-status").value = me.status || "offline";
    $("desk-load").textContent = fill(me.offers ? S.loadOffers : S.load,
      { chats: me.chats ?? 0, offers: me.offers ?? 0, load: me.load ?? 0, cap: me.max_chats ?? "—" });
    $("desk-admin-link").hidden = me.role !== "admin";
    $("desk-audit-link").hidden = me.role !== "admin";
    $("desk-erasure-link").hidden = me.role !== "admin";
    $("desk-failures-link").hidden = me.role !== "admin";
    $("desk-settings-link").hidden = me.role !== "admin";
    const offers = Array.isArray(data.offers) ? data.offers : [];
    for (const t of offers) {
      if (!view.known.has(t.id)) announce(fill(S.offered, { id: t.id }));
    }
    view.known = new Set(offers.map((t) => t.id));
    $("desk-offers").hidden = offers.length === 0;
    $("desk-offer-list").replaceChildren(...offers.map(offerNode));
    const overdue = Array.isArray(data.overdue) ? data.overdue : [];  // one's own too: a reminder
    $("desk-overdue").hidden = overdue.length === 0;
    $("desk-overdue-list").replaceChildren(...overdue.map(overdueNode));
    countDown();
  }

  async function refresh() {
    if (!state.agent) return;
    const seq = ++view.seq;
    try {
      const data = await api("GET", "/api/desk/me");
      if (seq === view.seq && state.agent) render(data);
    } catch (err) {
      if (err.status !== 401) setNote(err.message);
    }
  }

  // Many list redraws in a row (a burst of events) ask once.
  function refreshSoon() {
    clearTimeout(view.queued);
    view.queued = setTimeout(refresh, 200);
  }

  async function act(button, id, action, done) {
    button.disabled = true;
    setNote("");
    try {
      await api("POST", `/api/tickets/${encodeURIComponent(id)}/${action}`);
      setNote(fill(done, { id }));
      if (action === "claim") openTicket(id, true);
    } catch (err) {
      setNote(err.message);
    } finally {
      button.disabled = false;
      refresh();
    }
  }

  async function onStatusChange() {
    const select = $("desk-status");
    setNote("");
    try {
      const data = await api("POST", "/api/desk/status", { status: select.value });
      setNote(fill(S.statusSaved, { label: (data.agent && data.agent.status_label) || "" }));
    } catch (err) {
      setNote(err.message);
    }
    refresh();
  }

  // Logged in when console.js shows the app view; logged out when it hides it again.
  function onAppView() {
    clearInterval(view.timer);
    clearInterval(view.tick);
    if ($("app-view").hidden) {
      view.seq += 1;
      view.known = new Set();
      for (const id of ["desk-bar", "desk-offers", "desk-overdue"]) $(id).hidden = true;
      return;
    }
    refresh();
    view.timer = setInterval(refresh, REFRESH_MS);
    view.tick = setInterval(countDown, 1000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("desk-status").addEventListener("change", onStatusChange);
    new MutationObserver(onAppView).observe($("app-view"), { attributes: true, attributeFilter: ["hidden"] });
    new MutationObserver(refreshSoon).observe($("ticket-list"), { childList: true });
  });
})();
