/*
 * 配信できなかった引き継ぎ: handoffs the action server's outbox set aside (the database refused the
 * packet, or a line of the outbox file could not be read), from GET /api/undelivered-handoffs.
 *
 * A button in the header shows how many are open (hidden when none); it opens a section above the
 * queue listing each one with its reason, time and the customer's summary, and 「再送する」
 * (POST .../retry: it becomes a ticket in the queue) or 「破棄する」 (POST .../dismiss).
 * Refreshed at login, every REFRESH_MS and after each action. Texts go in with textContent only.
 * Uses $, el (dom.js) and state, api, formatDateTime, announce (console.js).
 */
"use strict";

(() => {
  const REFRESH_MS = 30000;
  const S = {
    empty: "配信できなかった引き継ぎはありません。",
    time: "発生",
    reason: "理由",
    detail: "詳細",
    conversation: "会話",
    customer: "お客さま",
    summary: "要約",
    line: "読み取れなかった内容",
    retry: "再送する",
    dismiss: "破棄する",
    confirmDismiss: "この引き継ぎを破棄しますか？ 問い合わせ一覧には追加されません。",
    retried: "再送しました。問い合わせ {id} として一覧に追加されました。",
    dismissed: "破棄しました。",
  };
  const view = { open: false, timer: null, seq: 0, items: [] };

  function fact(list, label, value, className) {
    if (value === undefined || value === null || value === "") return;
    list.append(el("dt", null, label), el("dd", className || null, value));
  }

  function itemNode(item) {
    const node = el("li", "undelivered-item");
    node.dataset.undeliveredId = String(item.id);
    const facts = el("dl", "facts");
    fact(facts, S.time, formatDateTime(item.set_aside_at));
    fact(facts, S.reason, item.reason_label);
    fact(facts, S.detail, item.reason, "undelivered-detail");
    fact(facts, S.conversation, item.conversation_id);
    fact(facts, S.customer, item.customer_name);
    fact(facts, S.summary, item.summary, "undelivered-text");
    fact(facts, S.line, item.excerpt, "undelivered-detail");
    node.append(facts);
    const actions = el("div", "undelivered-actions");
    if (item.can_retry) {
      const retry = el("button", "primary undelivered-retry", S.retry);
      retry.type = "button";
      retry.addEventListener("click", () => act(retry, item, "retry"));
      actions.append(retry);
    }
    const dismiss = el("button", "undelivered-dismiss", S.dismiss);
    dismiss.type = "button";
    dismiss.addEventListener("click", () => {
      if (window.confirm(S.confirmDismiss)) act(dismiss, item, "dismiss");
    });
    actions.append(dismiss);
    node.append(actions);
    return node;
  }

  function render(data) {
    view.items = Array.isArray(data.items) ? data.items : [];
    const count = Number(data.open_count) || 0;
    $("undelivered-count").textContent = String(count);
    $("undelivered-toggle").hidden = count === 0 && !view.open;
    const list = $("undelivered-list");
    list.replaceChildren(...view.items.map(itemNode));
    if (!view.items.length) list.append(el("li", "empty", S.empty));
  }

  async function refresh() {
    if (!state.agent) return;
    const seq = ++view.seq;
    try {
      const data = await api("GET", "/api/undelivered-handoffs");
      if (seq === view.seq && state.agent) render(data);
    } catch (err) {
      if (err.status !== 401 && view.open) $("undelivered-status").textContent = err.message;
    }
  }

  async function act(button, item, action) {
    button.disabled = true;
    $("undelivered-status").textContent = "";
    try {
      const data = await api("POST", `/api/undelivered-handoffs/${encodeURIComponent(item.id)}/${action}`);
      const message = action === "retry" ? S.retried.replace("{id}", String(data.ticket_id)) : S.dismissed;
      $("undelivered-status").textContent = message;
      announce(message);
    } catch (err) {
      $("undelivered-status").textContent = err.message;
    } finally {
      button.disabled = false;
      refresh();
    }
  }

  function setOpen(open) {
    view.open = open;
    $("undelivered-section").hidden = !open;
    $("undelivered-toggle").setAttribute("aria-expanded", String(open));
    if (open) {
      $("undelivered-status").textContent = "";
      $("undelivered-heading").setAttribute("tabindex", "-1");
      $("undelivered-heading").focus();
      refresh();
    } else {
      $("undelivered-toggle").hidden = $("undelivered-count").textContent === "0";
    }
  }

  // Logged in when console.js shows the app view; logged out when it hides it again.
  function onAppView() {
    clearInterval(view.timer);
    if ($("app-view").hidden) {
      view.seq += 1;
      setOpen(false);
      $("undelivered-toggle").hidden = true;
      $("undelivered-list").replaceChildren();
      return;
    }
    refresh();
    view.timer = setInterval(refresh, REFRESH_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("undelivered-toggle").addEventListener("click", () => setOpen(!view.open));
    $("undelivered-close").addEventListener("click", () => {
      setOpen(false);
      if (!$("undelivered-toggle").hidden) $("undelivered-toggle").focus();
    });
    new MutationObserver(onAppView).observe($("app-view"), { attributes: true, attributeFilter: ["hidden"] });
  });
})();
