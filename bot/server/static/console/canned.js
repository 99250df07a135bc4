/*
 * Canned replies (定型文) and FAQ answers in the console's reply box.
 *
 * Typing 「/」 (at the start or after a space or line break) plus a shortcut or words of a title
 * opens a list under the reply box: ↑↓ choose, Enter puts the text into the reply box in place of
 * 「/…」, Esc closes the list. Focus stays in the reply box (aria-activedescendant), and nothing
 * happens while an IME is composing (compositionstart … compositionend, isComposing, keyCode 229):
 * the Enter that confirms a conversion never picks or sends.
 *
 * The list comes from GET /api/tickets/{id}/canned (placeholders already filled in for the
 * ticket's customer and this agent), once per ticket. Texts go in with textContent / value only.
 * Uses $, el (dom.js) and state, api (console.js).
 */
"use strict";

(() => {
  // Texts: edit them in bot/wording.py (CONSOLE_CANNED_TEXT), then run `bot kb build`.
  // BEGIN GENERATED TEXT (bot kb build: bot/wording.py + knowledge/facts.yml; do not edit here)
  const S = {
    "hint": "「/」に続けて入力すると、定型文と FAQ の回答を探せます",
    "listLabel": "定型文と FAQ の回答",
    "canned": "定型文",
    "faq": "FAQ",
    "loading": "定型文を読み込んでいます…",
    "none": "「{q}」に当てはまる定型文・FAQ はありません（Esc で閉じると、そのまま送信できます）。",
    "count": "候補 {n} 件。↑↓ で選び、Enter で返信欄に入れます。Esc で閉じます。",
    "inserted": "「{title}」を返信欄に入れました。送信する前に内容を確認してください。"
  };
  // END GENERATED TEXT

  const MAX_ITEMS = 8;
  const picker = {
    open: false,
    composing: false,
    items: [],          // [{kind, key, title, text, detail}] shown now
    active: -1,
    start: -1,          // index of the 「/」 in the reply box
    dismissed: -1,      // the 「/」 closed with Esc (reopens once the agent types another one)
    cache: new Map(),   // ticket id -> Promise of {replies, faqs}
  };

  const fold = (s) => String(s || "").normalize("NFKC").toLowerCase();
  // The query's characters in order, gaps allowed: 「/住所変更」 finds 「住所を変更したい」.
  const inOrder = (query, text) => {
    let at = 0;
    for (const ch of query) {
      at = text.indexOf(ch, at);
      if (at < 0) return false;
      at += ch.length;
    }
    return true;
  };
  // 0 exact shortcut, 1 shortcut prefix, 2 title contains it, 3 title has its characters in order; -1 no match.
  const rank = (q, shortcut, title) => {
    if (!q) return 2;
    if (shortcut === q) return 0;
    if (shortcut.startsWith(q)) return 1;
    if (title.includes(q)) return 2;
    return inOrder(q, title) ? 3 : -1;
  };
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m));

  function box() { return $("reply-text"); }
  function list() { return $("canned-list"); }

  function say(message) {
    $("canned-status").textContent = message;
  }

  // The 「/query」 just before the caret, or null.
  function slashQuery() {
    const area = box();
    if (area.selectionStart !== area.selectionEnd) return null;
    const before = area.value.slice(0, area.selectionStart);
    const match = /(^|\s)\/([^\s/]*)$/.exec(before);
    if (!match) return null;
    return { start: before.length - match[2].length - 1, query: match[2] };
  }

  function load(ticketId) {
    if (!picker.cache.has(ticketId)) {
      const request = api("GET", `/api/tickets/${encodeURIComponent(ticketId)}/canned`).catch((err) => {
        picker.cache.delete(ticketId);
        throw err;
      });
      picker.cache.set(ticketId, request);
    }
    return picker.cache.get(ticketId);
  }

  // Best match first (see rank); on a tie canned replies before FAQ answers, then file order.
  function matches(data, query) {
    const q = fold(query);
    const scored = [];
    for (const r of Array.isArray(data.replies) ? data.replies : []) {
      const score = rank(q, fold(r.shortcut), fold(r.title));
      if (score >= 0) scored.push([score, 0, { kind: "canned", key: r.shortcut, title: r.title, text: r.text, detail: `/${r.shortcut}` }]);
    }
    for (const f of q ? (Array.isArray(data.faqs) ? data.faqs : []) : []) {
      const score = Math.min(...[rank(q, fold(f.id), fold(f.title)), fold(f.category).includes(q) ? 3 : -1]
        .filter((n) => n >= 0), 9);
      if (score < 9) scored.push([score, 1, { kind: "faq", key: f.id, title: f.title, text: f.text, detail: f.category || f.id }]);
    }
    scored.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    return scored.slice(0, MAX_ITEMS).map((entry) => entry[2]);
  }

  function render() {
    const ul = list();
    ul.replaceChildren();
    picker.items.forEach((item, index) => {
      const li = el("li", "canned-option");
      li.id = `canned-option-${index}`;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", String(index === picker.active));
      li.dataset.index = String(index);
      li.append(el("span", `canned-kind canned-kind-${item.kind}`, item.kind === "faq" ? S.faq : S.canned),
        el("span", "canned-title", item.title), el("span", "canned-detail", item.detail));
      ul.append(li);
    });
    const area = box();
    if (picker.active >= 0) {
      area.setAttribute("aria-activedescendant", `canned-option-${picker.active}`);
      const node = document.getElementById(`canned-option-${picker.active}`);
      if (node) node.scrollIntoView({ block: "nearest" });
    } else {
      area.removeAttribute("aria-activedescendant");
    }
    ul.hidden = !picker.open || picker.items.length === 0;
  }

  function close() {
    picker.open = false;
    picker.items = [];
    picker.active = -1;
    render();
    say("");
  }

  async function update() {
    if (picker.composing) return; // the list follows the text once the conversion is confirmed
    const found = slashQuery();
    if (!found || found.start === picker.dismissed || state.currentId === null) {
      if (!found) picker.dismissed = -1;
      if (picker.open) close();
      return;
    }
    picker.start = found.start;
    const ticketId = state.currentId;
    if (!picker.cache.has(ticketId)) say(S.loading);
    let data;
    try {
      data = await load(ticketId);
    } catch (err) {
      if (err.status !== 401) say(err.message);
      return;
    }
    const again = slashQuery();  // the agent may have typed on while the list was loading
    if (ticketId !== state.currentId || !again || again.start !== found.start || picker.composing) return;
    picker.items = matches(data, again.query);
    picker.active = picker.items.length ? 0 : -1;
    picker.open = true;
    render();
    say(picker.items.length ? fill(S.count, { n: picker.items.length }) : fill(S.none, { q: `/${again.query}` }));
  }

  function choose(index) {
    const item = picker.items[index];
    const found = slashQuery();
    if (!item || !found) return;
    const area = box();
    const caret = area.selectionStart;
    area.value = area.value.slice(0, found.start) + item.text + area.value.slice(caret);
    const end = found.start + item.text.length;
    area.setSelectionRange(end, end);
    close();
    area.focus();
    say(fill(S.inserted, { title: item.title }));
  }

  function move(step) {
    const n = picker.items.length;
    if (!n) return;
    picker.active = (picker.active + step + n) % n;
    render();
  }

  // Capture phase on the form: runs before the reply box's own Enter-to-send.
  function onKeydown(event) {
    if (event.target !== box()) return;
    if (picker.composing || event.isComposing || event.keyCode === 229) { // the IME has the key: never act
      // Nor does the console send, even where a browser leaves isComposing unset during a composition.
      if (event.key === "Enter") event.stopPropagation();
      return;
    }
    if (!picker.open) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      move(event.key === "ArrowDown" ? 1 : -1);
    } else if (event.key === "Enter" && !event.shiftKey) {
      if (picker.active >= 0) choose(picker.active); // no match: 「/…」 is not sent by mistake (Esc, then Enter)
    } else if (event.key === "Escape") {
      picker.dismissed = picker.start;
      close();
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
  }

  function init() {
    const area = box();
    if (!area || !list()) return;
    $("reply-hint").textContent += `。${S.hint}`;
    area.setAttribute("aria-controls", "canned-list");
    list().setAttribute("aria-label", S.listLabel);
    $("reply-form").addEventListener("keydown", onKeydown, true);
    area.addEventListener("compositionstart", () => { picker.composing = true; });
    area.addEventListener("compositionend", () => { picker.composing = false; update(); });
    area.addEventListener("input", (event) => { if (!event.isComposing) update(); });
    area.addEventListener("click", update);
    area.addEventListener("blur", () => { if (picker.open) close(); });
    // Pointer: choose without taking the focus from the reply box.
    list().addEventListener("mousedown", (event) => {
      const option = event.target.closest("[data-index]");
      event.preventDefault();
      if (option) choose(Number(option.dataset.index));
    });
    // Another ticket: another customer name in the texts.
    $("ticket-list").addEventListener("click", () => { if (picker.open) close(); });
  }

  document.addEventListener("DOMContentLoaded", init);
})();
