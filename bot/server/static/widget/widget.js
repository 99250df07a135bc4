/*
 * Customer support chat widget (vanilla ES2020, no dependencies, no build step).
 *
 * Embedding:
 *   <script>window.SupportChatConfig = {serverUrl: "", title: "…", primaryColor: "#0b5cad",
 *                                       greeting: "…", maxLength: 10000, fullPageUrl: false};</script>
 *   <script src="/widget/widget.js" defer></script>
 * A page on another origin than serverUrl must be listed in the server's BOT_WIDGET_ORIGINS.
 *
 * The conversation token never goes into a URL: HTTP calls send it in the Authorization
 * header, the WebSocket in its first frame ({type: "auth"}); the socket's URL carries only the
 * conversation id, for the proxy's routing (socketUrl). 「会話を終了」 forgets it in this
 * browser and tells the server, which stops accepting it (shared PCs).
 *
 * Contract: docs/server-api.md, section "Customer side (widget)".
 *
 * Security rule for this file: every piece of text that comes from the server, the config or
 * the customer is rendered with textContent / createTextNode; HTML strings are never parsed.
 */
(function () {
  'use strict';

  if (window.SupportChat && window.SupportChat.__loaded) return;

  // ---------------------------------------------------------------------------
  // Constants and configuration
  // ---------------------------------------------------------------------------

  const KEY_SESSION = 'supportchat.session'; // localStorage: {token, conversation_id}
  const KEY_OPEN = 'supportchat.open'; // localStorage: "1" / "0"
  const KEY_OUTBOX = 'supportchat.outbox'; // sessionStorage: messages not yet confirmed
  const KEY_CONTACT = 'supportchat.contact_saved'; // localStorage: conversation id
  const KEY_AFTER_CLOSED = 'supportchat.after_closed'; // localStorage: ticket id whose survey was closed
  const MAX_COMMENT_LENGTH = 1000; // bot/store/csat.py MAX_COMMENT_CHARS
  const SERVER_MAX_LENGTH = 10000;
  const MAX_BACKOFF_MS = 15000;
  const UNAVAILABLE_AFTER_ATTEMPTS = 3;
  const CONNECT_TIMEOUT_MS = 10000;
  const ACK_TIMEOUT_MS = 20000;
  const MAX_AUTO_TRIES = 3;
  const TYPING_TIMEOUT_MS = 30000;
  const ACTION_TIMEOUT_MS = 15000;

  // Texts: edit them in bot/wording.py (WIDGET_TEXT), then run `bot kb build`.
  // BEGIN GENERATED TEXT (bot kb build: bot/wording.py + knowledge/facts.yml; do not edit here)
  const S = {
    "defaultTitle": "サポートチャット",
    "openChat": "チャットを開く",
    "closeChat": "チャットを閉じる",
    "unread": "（未読 {n} 件）",
    "log": "チャットの履歴",
    "inputLabel": "メッセージ",
    "placeholder": "メッセージを入力",
    "send": "送信",
    "sendLabel": "メッセージを送信",
    "connecting": "接続しています…",
    "reconnecting": "接続が切れました。再接続しています…",
    "unavailable": "申し訳ございません。ただいまチャットに接続できません。しばらくしてから、もう一度お試しください。お急ぎの場合は、お電話（0120-000-123、平日 9:00〜18:00）でもお問い合わせいただけます。",
    "notConnected": "申し訳ございません。接続が切れているため、お送りできませんでした。接続が回復してから、もう一度お試しください。",
    "queued": "送信待ち",
    "sending": "送信中…",
    "failed": "送信できませんでした",
    "retry": "再送信",
    "discard": "取り消す",
    "typing": "入力中",
    "typingLabel": "入力中…",
    "you": "あなた",
    "bot": "AIチャット",
    "agentFallback": "担当者",
    "system": "お知らせ",
    "agentLabel": "担当: {name}",
    "quickReplies": "選択肢",
    "helpfulQ": "役に立ちましたか？",
    "yes": "はい",
    "no": "いいえ",
    "helpfulThanks": "ご回答ありがとうございます。",
    "showMore": "続きを読む",
    "showLess": "閉じる",
    "waiting": "担当者におつなぎしています",
    "waitingPosition": "順番: {pos}番目",
    "waitingEstimate": "目安: 約{min}分",
    "agentNamed": "担当者（{name}）が対応しています",
    "agentUnnamed": "担当者が対応しています",
    "cancel": "待つのをやめてAIチャットに戻る",
    "tooLong": "メッセージは{max}文字以内で入力してください。",
    "genericError": "申し訳ございません。問題が起きたため、お送りいただいた内容を処理できませんでした。もう一度お試しください。お急ぎの場合は、お電話（0120-000-123、平日 9:00〜18:00）でもお問い合わせいただけます。",
    "contactTitle": "ご連絡先の入力",
    "contactIntro": "ただいま担当者の受付時間外（受付時間: 平日 9:00〜18:00）のため、すぐには対応できません。ご連絡先をお知らせいただければ、受付時間内に担当者からご連絡いたします。",
    "nextOpening": "次の受付開始: {s}",
    "name": "お名前",
    "email": "メールアドレス",
    "phone": "電話番号",
    "note": "ご用件",
    "optional": "（任意）",
    "contactHint": "メールアドレスまたは電話番号のどちらかは必ずご入力ください。",
    "contactSubmit": "連絡先を送信",
    "contactToggleClose": "フォームを閉じる",
    "contactToggleOpen": "フォームを開く",
    "errNeedOne": "メールアドレスまたは電話番号のどちらかを入力してください。",
    "errEmail": "メールアドレスの形式が正しくありません（例: taro@example.jp）。",
    "errPhone": "電話番号は10〜11桁の数字で入力してください（ハイフン可）。",
    "contactSaved": "ご連絡先を承りました。受付時間内に担当者からご連絡いたします。",
    "endChat": "会話を終了",
    "endConfirm": "会話を終了しますか？ この画面の会話の記録も消えます。",
    "endYes": "終了する",
    "endNo": "キャンセル",
    "ended": "会話を終了しました。ご利用ありがとうございました。新しいご質問はいつでもどうぞ。",
    "surveyTitle": "アンケート",
    "surveyRating": "{n}（{label}）",
    "surveyPick": "評価を 1〜5 から選んでください。",
    "surveyCommentMax": "ご意見は{max}文字以内でお書きください（いまは {n} 文字）。",
    "mailTitle": "会話の記録をメールで受け取る",
    "mailLabel": "送り先のメールアドレス",
    "mailSend": "メールで送る",
    "mailSent": "会話の記録をメールでお送りします。届くまで数分かかることがあります。"
  };
  // END GENERATED TEXT
  const fill = (template, values) =>
    template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
  const T = Object.assign({}, S, {
    unread: (n) => fill(S.unread, { n }),
    agentLabel: (name) => fill(S.agentLabel, { name }),
    waiting: (pos, min) => {
      const parts = [];
      if (pos !== null) parts.push(fill(S.waitingPosition, { pos }));
      if (min !== null) parts.push(fill(S.waitingEstimate, { min }));
      return S.waiting + (parts.length ? `（${parts.join('、')}）` : '');
    },
    agent: (name) => (name ? fill(S.agentNamed, { name }) : S.agentUnnamed),
    tooLong: (max) => fill(S.tooLong, { max }),
    nextOpening: (s) => fill(S.nextOpening, { s }),
    surveyRating: (n, label) => fill(S.surveyRating, { n, label }),
    surveyCommentMax: (max, n) => fill(S.surveyCommentMax, { max, n }),
  });

  const rawConfig = window.SupportChatConfig && typeof window.SupportChatConfig === 'object'
    ? window.SupportChatConfig
    : {};

  const config = {
    serverUrl: normalizeServerUrl(rawConfig.serverUrl),
    title: nonEmptyString(rawConfig.title) || T.defaultTitle,
    primaryColor: nonEmptyString(rawConfig.primaryColor),
    greeting: nonEmptyString(rawConfig.greeting),
    maxLength: normalizeMaxLength(rawConfig.maxLength),
    customer: rawConfig.customer && typeof rawConfig.customer === 'object' ? rawConfig.customer : null,
    // Send the page's query string too (it may hold e-mail addresses or order numbers; off by default).
    fullPageUrl: rawConfig.fullPageUrl === true,
  };

  function nonEmptyString(v) {
    return typeof v === 'string' && v.trim() !== '' ? v : '';
  }

  function normalizeServerUrl(raw) {
    if (typeof raw !== 'string' || raw.trim() === '') return '';
    try {
      const u = new URL(raw.trim(), window.location.href);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
      return (u.origin + u.pathname).replace(/\/+$/, '');
    } catch (e) {
      console.warn('[SupportChat] serverUrl is not an http(s) URL; using the page origin.', raw);
      return '';
    }
  }

  function normalizeMaxLength(v) {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) return SERVER_MAX_LENGTH;
    return Math.min(n, SERVER_MAX_LENGTH);
  }

  function httpUrl(path) {
    return config.serverUrl + path;
  }

  function wsUrl(path) {
    const base = new URL(config.serverUrl || window.location.origin);
    const proto = base.protocol === 'https:' ? 'wss:' : 'ws:';
    const prefix = base.pathname.replace(/\/+$/, '');
    return `${proto}//${base.host}${prefix}${path}`;
  }

  // ---------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------

  function storageGet(store, key) {
    try {
      return window[store].getItem(key);
    } catch (e) {
      return null;
    }
  }

  function storageSet(store, key, value) {
    try {
      window[store].setItem(key, value);
    } catch (e) {
      /* storage full or disabled: the widget still works for this page view */
    }
  }

  function storageRemove(store, key) {
    try {
      window[store].removeItem(key);
    } catch (e) {
      /* ignore */
    }
  }

  function loadSession() {
    const raw = storageGet('localStorage', KEY_SESSION);
    if (!raw) return null;
    try {
      const s = JSON.parse(raw);
      if (s && typeof s.token === 'string' && s.token) {
        return { token: s.token, conversation_id: String(s.conversation_id || '') };
      }
    } catch (e) {
      /* corrupted value */
    }
    return null;
  }

  function saveSession(s) {
    storageSet('localStorage', KEY_SESSION, JSON.stringify({ token: s.token, conversation_id: s.conversation_id }));
  }

  function uuid() {
    const c = window.crypto;
    if (c && typeof c.randomUUID === 'function') {
      try {
        return c.randomUUID();
      } catch (e) {
        /* insecure context: fall through */
      }
    }
    const b = new Uint8Array(16);
    if (c && typeof c.getRandomValues === 'function') {
      c.getRandomValues(b);
    } else {
      for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  /** Create an element. attrs: plain attributes, plus `text` (textContent) and `class`. */
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'text') node.textContent = String(v);
        else if (k === 'class') node.className = v;
        else if (v === true) node.setAttribute(k, '');
        else node.setAttribute(k, String(v));
      }
    }
    if (children) {
      for (const child of children) {
        if (child) node.appendChild(child);
      }
    }
    return node;
  }

  function srOnly(text) {
    return el('span', { class: 'sc-visually-hidden', text });
  }

  // URLs are linked only when they start with http:// or https://. Japanese punctuation and
  // brackets end a URL; trailing ASCII punctuation is not part of it.
  const URL_RE = /https?:\/\/[^\s<>"'`「」『』【】（）()、。，．！？]+/gi;

  /**
   * Split text into plain and link pieces, in order: [{start, end, url}] (string offsets; url is
   * null for plain text). Only http(s) URLs with a host become links, so `javascript:` and the
   * like stay text; "xhttp://" is not the start of a URL.
   */
  function richPieces(s) {
    const pieces = [];
    let last = 0;
    URL_RE.lastIndex = 0;
    let m;
    while ((m = URL_RE.exec(s)) !== null) {
      const start = m.index;
      let url = m[0];
      const trail = url.match(/[.,;:!?\]}>]+$/);
      if (trail) url = url.slice(0, url.length - trail[0].length);
      URL_RE.lastIndex = start + url.length;
      // "xhttp://" is not the start of a URL.
      if (start > 0 && /[A-Za-z0-9]/.test(s.charAt(start - 1))) continue;
      let parsed = null;
      try {
        parsed = new URL(url);
      } catch (e) {
        parsed = null;
      }
      if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || !parsed.hostname) continue;
      if (start > last) pieces.push({ start: last, end: start, url: null });
      pieces.push({ start, end: start + url.length, url });
      last = start + url.length;
    }
    if (last < s.length) pieces.push({ start: last, end: s.length, url: null });
    return pieces;
  }

  /** Append the part [from, to) of `s` as text nodes and links (see richPieces). */
  function appendPieces(parent, s, pieces, from, to) {
    for (const p of pieces) {
      const a = Math.max(p.start, from);
      const b = Math.min(p.end, to);
      if (a >= b) continue;
      if (p.url && a === p.start && b === p.end) {
        const link = document.createElement('a');
        link.href = p.url;
        link.target = '_blank';
        link.rel = 'noopener noreferrer';
        link.textContent = p.url;
        parent.appendChild(link);
      } else {
        // A link is never cut (foldPoint avoids it); if it were, its half is shown as text.
        parent.appendChild(document.createTextNode(s.slice(a, b)));
      }
    }
  }

  function appendRichText(parent, text) {
    const s = text === null || text === undefined ? '' : String(text);
    appendPieces(parent, s, richPieces(s), 0, s.length);
  }

  // Long bot and agent messages (imported FAQ answers reach 1,500 characters) are folded: the
  // first FOLD_CHARS characters or so, 「…」 and a 「続きを読む」 button. Editors are told so
  // (WIDGET_FOLD_CHARS in bot/knowledge/loader.py, kept equal by tests/test_knowledge.py).
  // Lengths count characters (code points), as Python's len() does for the editors' warnings.
  const FOLD_CHARS = 300;
  // Only texts longer than FOLD_CHARS + FOLD_SLACK are folded: a click to read a dozen more
  // characters helps nobody (today's longest answer with its link lines has 329).
  const FOLD_SLACK = 50;
  // A line break, else a sentence end, between these positions is preferred to a hard cut.
  const FOLD_EARLIEST = 240;
  const FOLD_LATEST = 330;
  const SENTENCE_ENDS = '。！？';
  const CLOSERS = '」』）】〕〉》”’)';
  const SPACE_RE = /\s/;

  /**
   * Where to fold `s` (a string offset; the first part is s.slice(0, offset)), or -1 when the
   * text is short enough to show whole. The cut is at the line break nearest FOLD_CHARS in
   * [FOLD_EARLIEST, FOLD_LATEST], else after the sentence end (「。」, closing brackets included)
   * nearest FOLD_CHARS there, else at FOLD_CHARS; never inside a link or a surrogate pair.
   */
  function foldPoint(s, pieces) {
    const cps = Array.from(s);
    if (cps.length <= FOLD_CHARS + FOLD_SLACK) return -1;
    let line = -1;
    let sentence = -1;
    const nearer = (best, i) => (best < 0 || Math.abs(i - FOLD_CHARS) < Math.abs(best - FOLD_CHARS) ? i : best);
    for (let i = FOLD_EARLIEST; i <= FOLD_LATEST; i++) {
      // Cutting at i shows cps[0 .. i-1].
      if (cps[i] === '\n') line = nearer(line, i);
      if (CLOSERS.includes(cps[i])) continue; // 「…です。」: cut after the bracket
      let j = i - 1;
      while (j > 0 && CLOSERS.includes(cps[j])) j--;
      if (SENTENCE_ENDS.includes(cps[j])) sentence = nearer(sentence, i);
    }
    const at = line >= 0 ? line : sentence >= 0 ? sentence : FOLD_CHARS;
    let cut = cps.slice(0, at).join('').length; // code points -> string offset
    for (const p of pieces) {
      if (p.url && p.start < cut && cut < p.end) cut = p.start;
    }
    while (cut > 0 && SPACE_RE.test(s.charAt(cut - 1))) cut--;
    return cut > 0 ? cut : -1;
  }

  let foldSeq = 0;

  /**
   * Render `text` into `bubble`, folded when long. Returns the 「続きを読む」 / 「閉じる」 toggle
   * (to place under the bubble), or null when the text is shown whole.
   *
   * expanded: start unfolded. onToggle(expanded) is called after each click.
   */
  function appendFoldable(bubble, text, expanded, onToggle) {
    const s = text === null || text === undefined ? '' : String(text);
    const pieces = richPieces(s);
    const cut = foldPoint(s, pieces);
    if (cut < 0) {
      appendPieces(bubble, s, pieces, 0, s.length);
      return null;
    }
    const id = `supportchat-more-${++foldSeq}`;
    appendPieces(bubble, s, pieces, 0, cut);
    const ellipsis = el('span', { class: 'sc-fold-ellipsis', text: '…' });
    const rest = el('span', { id, class: 'sc-fold-rest' });
    appendPieces(rest, s, pieces, cut, s.length);
    bubble.appendChild(ellipsis);
    bubble.appendChild(rest);
    const toggle = el('button', { class: 'sc-fold-toggle', type: 'button', 'aria-controls': id });
    const show = (open) => {
      rest.hidden = !open;
      ellipsis.hidden = open;
      toggle.setAttribute('aria-expanded', open ? 'true' : 'false');
      toggle.textContent = open ? T.showLess : T.showMore;
    };
    show(!!expanded);
    toggle.addEventListener('click', () => {
      const open = rest.hidden;
      show(open);
      if (onToggle) onToggle(open);
      // Folding shrinks the message above the button: keep the button in view.
      if (!open && ui.messages) {
        const box = ui.messages.getBoundingClientRect();
        const r = toggle.getBoundingClientRect();
        if (r.top < box.top) ui.messages.scrollTop -= box.top - r.top + 12;
        else if (r.bottom > box.bottom) ui.messages.scrollTop += r.bottom - box.bottom + 12;
      }
    });
    return toggle;
  }

  function formatTime(iso) {
    if (typeof iso !== 'string' || !iso) return '';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '';
    const now = new Date();
    const sameDay = d.toDateString() === now.toDateString();
    try {
      return d.toLocaleString('ja-JP', sameDay
        ? { hour: '2-digit', minute: '2-digit' }
        : { month: 'numeric', day: 'numeric', hour: '2-digit', minute: '2-digit' });
    } catch (e) {
      return '';
    }
  }

  function formatOpening(iso) {
    if (typeof iso !== 'string' || !iso) return '';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    try {
      return d.toLocaleString('ja-JP', {
        month: 'long', day: 'numeric', weekday: 'short', hour: '2-digit', minute: '2-digit',
      });
    } catch (e) {
      return iso;
    }
  }

  function toNumberOrNull(v) {
    if (v === null || v === undefined || v === '') return null;
    const n = Number(v);
    return Number.isFinite(n) ? n : null;
  }

  const SENDERS = ['customer', 'bot', 'agent', 'system'];

  function normalizeSender(s) {
    return SENDERS.includes(s) ? s : 'system';
  }

  function normalizeState(s) {
    const st = s && typeof s === 'object' ? s : {};
    const pos = toNumberOrNull(st.position);
    const est = toNumberOrNull(st.estimate_minutes);
    return {
      mode: ['bot', 'waiting', 'agent'].includes(st.mode) ? st.mode : 'bot',
      ticket_id: st.ticket_id === undefined ? null : st.ticket_id,
      position: pos === null ? null : Math.max(1, Math.round(pos)),
      estimate_minutes: est === null ? null : Math.max(1, Math.ceil(est)),
      // No available agent takes this category: the server's note replaces the figures.
      wait_note: typeof st.wait_note === 'string' && st.wait_note ? st.wait_note : null,
      agent_name: typeof st.agent_name === 'string' ? st.agent_name : '',
      offline: st.offline === true,
      next_opening: typeof st.next_opening === 'string' ? st.next_opening : null,
      survey: normalizeSurvey(st.survey),
      transcript: st.transcript && typeof st.transcript === 'object' && Number.isInteger(st.transcript.ticket_id)
        ? { ticket_id: st.transcript.ticket_id } : null,
    };
  }

  /** The survey of the state: {ticket_id, texts} with every text a string (editors' knowledge/csat.yml). */
  function normalizeSurvey(v) {
    if (!v || typeof v !== 'object' || !Number.isInteger(v.ticket_id)) return null;
    const t = v.texts && typeof v.texts === 'object' ? v.texts : {};
    const str = (x) => (typeof x === 'string' ? x : '');
    const labels = t.labels && typeof t.labels === 'object' ? t.labels : {};
    return {
      ticket_id: v.ticket_id,
      question: str(t.question), comment_label: str(t.comment_label), submit: str(t.submit),
      skip: str(t.skip), thanks: str(t.thanks),
      labels: [1, 2, 3, 4, 5].map((n) => str(labels[String(n)])),
    };
  }

  // ---------------------------------------------------------------------------
  // Runtime state
  // ---------------------------------------------------------------------------

  let session = null; // {token, conversation_id}
  let chatState = normalizeState(null);
  let msgList = []; // [{data, el}] in display order (server messages only)
  const byId = new Map(); // message id -> record
  const expandedIds = new Set(); // ids of folded messages the customer opened
  let outbox = []; // [{kind, client_id, text, payload, title, tries, failed}]
  const inFlight = new Set(); // client ids sent on the current connection
  const ackTimers = new Map(); // client id -> timeout
  let unread = 0;
  let composing = false;
  let lastCompositionEnd = 0;
  let typingTimer = null;
  let cancelTimer = null;
  let contactTimer = null;
  let surveyTimer = null;
  let mailTimer = null;
  let surveyRating = null; // the rating the customer picked (not sent yet)
  let surveyShownFor = null; // ticket id the survey section was built for

  const conn = {
    started: false,
    ws: null,
    ready: false, // socket open and history received
    connecting: false,
    generation: 0,
    attempts: 0,
    timer: null,
    everConnected: false,
    badTokenStreak: 0,
  };

  // DOM references (filled by buildDom)
  const ui = {};

  // ---------------------------------------------------------------------------
  // DOM
  // ---------------------------------------------------------------------------

  function injectCss() {
    if (document.querySelector('link[data-supportchat-css]')) return;
    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = httpUrl('/widget/widget.css');
    link.setAttribute('data-supportchat-css', '');
    (document.head || document.documentElement).appendChild(link);
  }

  function chatIcon() {
    const NS = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', '28');
    svg.setAttribute('height', '28');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    svg.setAttribute('class', 'sc-icon-chat');
    const path = document.createElementNS(NS, 'path');
    path.setAttribute('fill', 'currentColor');
    path.setAttribute('d', 'M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 6.5a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3z');
    svg.appendChild(path);
    return svg;
  }

  function buildDom() {
    const root = el('div', { id: 'supportchat-root', class: 'sc-root', lang: 'ja' });
    // Minimal inline placement so the launcher sits in the corner even before the CSS loads.
    root.style.position = 'fixed';
    root.style.right = '0';
    root.style.bottom = '0';
    root.style.zIndex = '2147483000';
    if (config.primaryColor && (!window.CSS || !CSS.supports || CSS.supports('color', config.primaryColor))) {
      root.style.setProperty('--sc-primary', config.primaryColor);
    }

    // Launcher
    ui.badge = el('span', { class: 'sc-launcher-badge', 'aria-hidden': 'true', hidden: true });
    ui.launcher = el('button', {
      id: 'supportchat-launcher', class: 'sc-launcher', type: 'button',
      'aria-controls': 'supportchat-panel', 'aria-expanded': 'false', 'aria-label': T.openChat,
    }, [chatIcon(), ui.badge]);

    // Header
    ui.closeBtn = el('button', { class: 'sc-close', type: 'button', 'aria-label': T.closeChat }, [
      el('span', { 'aria-hidden': 'true', text: '×' }),
    ]);
    ui.endBtn = el('button', { id: 'supportchat-end', class: 'sc-end', type: 'button', text: T.endChat, hidden: true });
    const header = el('div', { class: 'sc-header' }, [
      el('h2', { id: 'supportchat-title', class: 'sc-title', text: config.title }),
      el('div', { class: 'sc-header-tools' }, [ui.endBtn, ui.closeBtn]),
    ]);

    // 「会話を終了」 asks once before it forgets the conversation.
    ui.endYes = el('button', { id: 'supportchat-end-yes', class: 'sc-end-yes', type: 'button', text: T.endYes });
    ui.endNo = el('button', { id: 'supportchat-end-no', class: 'sc-end-no', type: 'button', text: T.endNo });
    ui.endConfirm = el('div', {
      id: 'supportchat-end-confirm', class: 'sc-end-confirm', role: 'alertdialog',
      'aria-labelledby': 'supportchat-end-question', hidden: true,
    }, [el('p', { id: 'supportchat-end-question', class: 'sc-end-question', text: T.endConfirm }), ui.endYes, ui.endNo]);

    // Handoff banner
    ui.bannerText = el('p', { class: 'sc-banner-text' });
    ui.cancel = el('button', { id: 'supportchat-cancel', class: 'sc-banner-cancel', type: 'button', text: T.cancel, hidden: true });
    // The cancel button is attached to the banner only while waiting (see applyState).
    ui.banner = el('div', { id: 'supportchat-banner', class: 'sc-banner', 'aria-live': 'polite', hidden: true }, [
      ui.bannerText,
    ]);

    // Message log
    ui.messages = el('div', {
      id: 'supportchat-messages', class: 'sc-messages', role: 'log', 'aria-live': 'polite',
      'aria-relevant': 'additions', 'aria-label': T.log, tabindex: '0',
    });
    if (config.greeting) {
      const g = el('div', { class: 'sc-greeting' }, [srOnly(T.bot), el('div', { class: 'sc-bubble' })]);
      appendRichText(g.lastChild, config.greeting);
      ui.messages.appendChild(g);
    }

    // Typing indicator
    ui.typing = el('div', { id: 'supportchat-typing', class: 'sc-typing', 'aria-hidden': 'true', hidden: true }, [
      el('span', { class: 'sc-typing-text', text: T.typing }),
      el('span', { class: 'sc-typing-dots', 'aria-hidden': 'true' }, [
        el('span', { class: 'sc-dot', text: '.' }), el('span', { class: 'sc-dot', text: '.' }), el('span', { class: 'sc-dot', text: '.' }),
      ]),
      srOnly('…'),
    ]);

    // Offline contact form
    buildContact();

    // After a resolved chat: satisfaction survey and the transcript by e-mail
    buildAfter();

    // Status line
    ui.status = el('div', { id: 'supportchat-status', class: 'sc-status', role: 'status', 'aria-live': 'polite' });

    // Composer
    ui.input = el('textarea', {
      id: 'supportchat-input', class: 'sc-input', rows: '1', maxlength: String(config.maxLength),
      placeholder: T.placeholder, 'aria-describedby': 'supportchat-counter', autocomplete: 'off',
    });
    ui.counter = el('span', { id: 'supportchat-counter', class: 'sc-counter', text: `0 / ${config.maxLength}` });
    ui.send = el('button', { id: 'supportchat-send', class: 'sc-send', type: 'submit', 'aria-label': T.sendLabel, text: T.send });
    ui.composer = el('form', { class: 'sc-composer', novalidate: true }, [
      el('label', { class: 'sc-visually-hidden', for: 'supportchat-input', text: T.inputLabel }),
      ui.input,
      el('div', { class: 'sc-composer-side' }, [ui.counter, ui.send]),
    ]);

    ui.panel = el('div', {
      id: 'supportchat-panel', class: 'sc-panel', role: 'dialog', 'aria-modal': 'false',
      'aria-labelledby': 'supportchat-title', hidden: true,
    }, [header, ui.endConfirm, ui.banner, ui.messages, ui.typing, ui.contact, ui.after, ui.status, ui.composer]);

    root.appendChild(ui.panel);
    root.appendChild(ui.launcher);
    document.body.appendChild(root);
    ui.root = root;

    bindUi();
  }

  function field(id, label, input, optional) {
    return el('div', { class: 'sc-field' }, [
      el('label', { for: id }, [document.createTextNode(label), optional ? el('span', { class: 'sc-optional', text: T.optional }) : null]),
      input,
    ]);
  }

  function buildContact() {
    const c = config.customer || {};
    ui.cName = el('input', { id: 'supportchat-contact-name', name: 'name', type: 'text', autocomplete: 'name', maxlength: '100' });
    ui.cEmail = el('input', { id: 'supportchat-contact-email', name: 'email', type: 'email', autocomplete: 'email', maxlength: '254', inputmode: 'email' });
    ui.cPhone = el('input', { id: 'supportchat-contact-phone', name: 'phone', type: 'tel', autocomplete: 'tel', maxlength: '20', inputmode: 'tel' });
    ui.cNote = el('textarea', { id: 'supportchat-contact-note', name: 'note', rows: '3', maxlength: String(SERVER_MAX_LENGTH) });
    if (typeof c.name === 'string') ui.cName.value = c.name;
    if (typeof c.email === 'string') ui.cEmail.value = c.email;
    ui.cError = el('div', { id: 'supportchat-contact-error', class: 'sc-contact-error', role: 'alert' });
    ui.cSubmit = el('button', { class: 'sc-contact-submit', type: 'submit', text: T.contactSubmit });
    ui.contactForm = el('form', { id: 'supportchat-contact-form', class: 'sc-contact-form', novalidate: true, 'aria-describedby': 'supportchat-contact-hint' }, [
      el('p', { id: 'supportchat-contact-hint', class: 'sc-contact-hint', text: T.contactHint }),
      field('supportchat-contact-name', T.name, ui.cName, true),
      field('supportchat-contact-email', T.email, ui.cEmail, false),
      field('supportchat-contact-phone', T.phone, ui.cPhone, false),
      field('supportchat-contact-note', T.note, ui.cNote, true),
      ui.cError,
      ui.cSubmit,
    ]);
    ui.cIntro = el('p', { class: 'sc-contact-intro', text: T.contactIntro });
    ui.cOpening = el('p', { class: 'sc-contact-opening', hidden: true });
    ui.cDone = el('p', { class: 'sc-contact-done', role: 'status', text: T.contactSaved, hidden: true });
    ui.cToggle = el('button', {
      class: 'sc-contact-toggle', type: 'button', 'aria-expanded': 'true',
      'aria-controls': 'supportchat-contact-body', text: T.contactToggleClose,
    });
    ui.cBody = el('div', { id: 'supportchat-contact-body', class: 'sc-contact-body' }, [ui.cIntro, ui.cOpening, ui.contactForm]);
    ui.contact = el('section', { class: 'sc-contact', 'aria-labelledby': 'supportchat-contact-title', hidden: true }, [
      el('div', { class: 'sc-contact-head' }, [
        el('h3', { id: 'supportchat-contact-title', class: 'sc-contact-title', text: T.contactTitle }),
        ui.cToggle,
      ]),
      ui.cBody,
      ui.cDone,
    ]);
  }

  /**
   * The after-chat section: one rating question (1-5 buttons, aria-pressed), an optional comment,
   * 送信 / 回答しない; below it 「会話の記録をメールで受け取る」 when the server can send mail. The
   * survey's texts come with the state (editors' knowledge/csat.yml) and are set in updateAfter.
   */
  function buildAfter() {
    ui.sQuestion = el('p', { id: 'supportchat-survey-q', class: 'sc-survey-q' });
    ui.sScale = el('div', { class: 'sc-survey-scale', role: 'group', 'aria-labelledby': 'supportchat-survey-q' });
    ui.sButtons = [1, 2, 3, 4, 5].map((n) => {
      const b = el('button', { class: 'sc-survey-rating', type: 'button', 'data-rating': String(n), 'aria-pressed': 'false' }, [
        el('span', { class: 'sc-survey-num', text: String(n), 'aria-hidden': 'true' }),
        el('span', { class: 'sc-survey-label', 'aria-hidden': 'true' }),
      ]);
      b.addEventListener('click', () => pickRating(n));
      ui.sScale.appendChild(b);
      return b;
    });
    ui.sCommentLabel = el('label', { for: 'supportchat-survey-comment', class: 'sc-survey-comment-label' });
    ui.sComment = el('textarea', { id: 'supportchat-survey-comment', class: 'sc-survey-comment', rows: '2' });
    ui.sError = el('div', { id: 'supportchat-survey-error', class: 'sc-survey-error', role: 'alert' });
    ui.sSubmit = el('button', { id: 'supportchat-survey-submit', class: 'sc-survey-submit', type: 'button' });
    ui.sSkip = el('button', { id: 'supportchat-survey-skip', class: 'sc-survey-skip', type: 'button' });
    ui.sSubmit.addEventListener('click', submitSurvey);
    ui.sSkip.addEventListener('click', closeAfter);
    ui.survey = el('div', { id: 'supportchat-survey', class: 'sc-survey' }, [
      el('h3', { class: 'sc-visually-hidden', text: T.surveyTitle }),
      ui.sQuestion, ui.sScale, ui.sCommentLabel, ui.sComment, ui.sError,
      el('div', { class: 'sc-survey-actions' }, [ui.sSubmit, ui.sSkip]),
    ]);
    ui.sDone = el('p', { id: 'supportchat-survey-done', class: 'sc-survey-done', role: 'status', hidden: true });

    ui.mEmail = el('input', { id: 'supportchat-mail-email', type: 'email', autocomplete: 'email', inputmode: 'email', maxlength: '254' });
    const c = config.customer || {};
    if (typeof c.email === 'string') ui.mEmail.value = c.email;
    ui.mSend = el('button', { id: 'supportchat-mail-send', class: 'sc-mail-send', type: 'submit', text: T.mailSend });
    ui.mError = el('div', { id: 'supportchat-mail-error', class: 'sc-mail-error', role: 'alert' });
    ui.mDone = el('p', { id: 'supportchat-mail-done', class: 'sc-mail-done', role: 'status', hidden: true });
    ui.mailForm = el('form', { id: 'supportchat-mail', class: 'sc-mail', novalidate: true, 'aria-labelledby': 'supportchat-mail-title', hidden: true }, [
      el('h3', { id: 'supportchat-mail-title', class: 'sc-mail-title', text: T.mailTitle }),
      el('div', { class: 'sc-field' }, [el('label', { for: 'supportchat-mail-email', text: T.mailLabel }), ui.mEmail]),
      ui.mError, ui.mSend, ui.mDone,
    ]);
    ui.mailForm.addEventListener('submit', submitMail);
    ui.after = el('section', { id: 'supportchat-after', class: 'sc-after', 'aria-label': T.surveyTitle, hidden: true }, [
      ui.survey, ui.sDone, ui.mailForm,
    ]);
  }

  // ---------------------------------------------------------------------------
  // Panel open / close
  // ---------------------------------------------------------------------------

  function isOpen() {
    return ui.panel && !ui.panel.hidden;
  }

  function openPanel(opts) {
    const focus = !opts || opts.focus !== false;
    ui.panel.hidden = false;
    ui.root.classList.add('sc-open');
    ui.launcher.setAttribute('aria-expanded', 'true');
    unread = 0;
    updateLauncherLabel();
    storageSet('localStorage', KEY_OPEN, '1');
    start();
    scrollToBottom(true);
    if (focus) ui.input.focus();
  }

  function closePanel(opts) {
    const hadFocus = ui.panel.contains(document.activeElement);
    ui.panel.hidden = true;
    ui.root.classList.remove('sc-open');
    ui.launcher.setAttribute('aria-expanded', 'false');
    updateLauncherLabel();
    storageSet('localStorage', KEY_OPEN, '0');
    if ((opts && opts.focusLauncher) || hadFocus) ui.launcher.focus();
  }

  function updateLauncherLabel() {
    const open = isOpen();
    let label = open ? T.closeChat : T.openChat;
    if (!open && unread > 0) label += T.unread(unread);
    ui.launcher.setAttribute('aria-label', label);
    ui.badge.hidden = open || unread === 0;
    ui.badge.textContent = unread > 99 ? '99+' : String(unread);
  }

  // ---------------------------------------------------------------------------
  // Status line, notices, scrolling
  // ---------------------------------------------------------------------------

  function setStatus(text) {
    if (ui.status.textContent !== text) ui.status.textContent = text;
    ui.status.classList.toggle('sc-status-error', text === T.unavailable);
  }

  function disconnectedText() {
    return conn.attempts > UNAVAILABLE_AFTER_ATTEMPTS ? T.unavailable : T.reconnecting;
  }

  function isNearBottom() {
    const m = ui.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function scrollToBottom(force) {
    if (!force && !isNearBottom()) return;
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  /** Insert a node into the log after the server messages, before pending customer messages. */
  function insertInLog(node) {
    const firstPending = ui.messages.querySelector('.sc-pending');
    ui.messages.insertBefore(node, firstPending);
  }

  function showNotice(text) {
    const stick = isNearBottom();
    const node = el('div', { class: 'sc-msg sc-msg-system sc-notice' }, [
      srOnly(T.system), el('div', { class: 'sc-bubble', text: text }),
    ]);
    insertInLog(node);
    scrollToBottom(stick);
  }

  // ---------------------------------------------------------------------------
  // Message rendering
  // ---------------------------------------------------------------------------

  function senderLabel(sender) {
    if (sender === 'customer') return T.you;
    if (sender === 'bot') return T.bot;
    if (sender === 'agent') return T.agentFallback;
    return T.system;
  }

  function buildMessageEl(m) {
    const sender = normalizeSender(m.sender);
    const node = el('div', { class: `sc-msg sc-msg-${sender}` });
    if (m.id !== null && m.id !== undefined) node.setAttribute('data-message-id', String(m.id));
    if (m.client_id) node.setAttribute('data-client-id', String(m.client_id));
    if (sender === 'agent') {
      const name = typeof m.agent_name === 'string' && m.agent_name ? m.agent_name : T.agentFallback;
      node.appendChild(el('div', { class: 'sc-label', text: T.agentLabel(name) }));
    } else {
      node.appendChild(srOnly(senderLabel(sender)));
    }
    const bubble = el('div', { class: 'sc-bubble' });
    node.appendChild(bubble);
    if (sender === 'bot' || sender === 'agent') {
      // Long answers are folded (「続きを読む」); a message the customer opened stays open when
      // it is rendered again (reconnect, history), not after a reload.
      const key = m.id !== null && m.id !== undefined ? String(m.id) : null;
      const toggle = appendFoldable(bubble, m.text, key !== null && expandedIds.has(key), (open) => {
        if (key === null) return;
        if (open) expandedIds.add(key);
        else expandedIds.delete(key);
      });
      if (toggle) node.appendChild(toggle);
    } else {
      appendRichText(bubble, m.text);
    }
    const time = formatTime(m.at);
    if (time && sender !== 'system') {
      node.appendChild(el('div', { class: 'sc-meta' }, [el('time', { datetime: m.at, text: time })]));
    }
    if (sender === 'bot' && m.faq_id && (m.feedback === null || m.feedback === undefined) && m.id !== null && m.id !== undefined) {
      node.appendChild(buildFeedback(m));
    }
    return node;
  }

  function buildFeedback(m) {
    const yes = el('button', { class: 'sc-feedback-yes', type: 'button', text: T.yes });
    const no = el('button', { class: 'sc-feedback-no', type: 'button', text: T.no });
    const box = el('div', { class: 'sc-feedback', role: 'group', 'aria-label': T.helpfulQ }, [
      el('span', { class: 'sc-feedback-q', text: T.helpfulQ }), yes, no,
    ]);
    const answer = (helpful) => {
      if (yes.disabled) return;
      if (!sendFrame({ type: 'feedback', message_id: m.id, helpful })) {
        showNotice(T.notConnected);
        return;
      }
      yes.disabled = true;
      no.disabled = true;
      box.setAttribute('aria-busy', 'true');
      (helpful ? yes : no).classList.add('sc-chosen');
      // Allow another try if the server never confirms.
      setTimeout(() => {
        if (box.isConnected) {
          yes.disabled = false;
          no.disabled = false;
          box.removeAttribute('aria-busy');
        }
      }, ACTION_TIMEOUT_MS);
    };
    yes.addEventListener('click', () => answer(true));
    no.addEventListener('click', () => answer(false));
    return box;
  }

  function renderMessage(m) {
    const rec = { data: m, el: buildMessageEl(m) };
    const key = m.id !== null && m.id !== undefined ? String(m.id) : null;
    if (key !== null && byId.has(key)) {
      // Same message again (re-sent by the server): replace in place.
      const old = byId.get(key);
      old.el.replaceWith(rec.el);
      msgList[msgList.indexOf(old)] = rec;
    } else {
      insertInLog(rec.el);
      msgList.push(rec);
    }
    if (key !== null) byId.set(key, rec);
    return rec;
  }

  function clearConversationView() {
    for (const node of Array.from(ui.messages.children)) {
      if (!node.classList.contains('sc-greeting')) node.remove();
    }
    msgList = [];
    byId.clear();
  }

  function refreshQuickReplies() {
    for (const node of Array.from(ui.messages.querySelectorAll('.sc-quick-replies'))) node.remove();
    if (chatState.mode !== 'bot' || outbox.length > 0) return;
    for (let i = msgList.length - 1; i >= 0; i--) {
      const m = msgList[i].data;
      const sender = normalizeSender(m.sender);
      if (sender === 'customer' || sender === 'agent') return;
      if (sender !== 'bot') continue;
      const buttons = Array.isArray(m.buttons) ? m.buttons.filter((b) => b && typeof b.payload === 'string') : [];
      if (!buttons.length) return;
      const group = el('div', { class: 'sc-quick-replies', role: 'group', 'aria-label': T.quickReplies });
      for (const b of buttons) {
        const title = typeof b.title === 'string' && b.title ? b.title : b.payload;
        const btn = el('button', { class: 'sc-quick-reply', type: 'button', text: title });
        btn.addEventListener('click', () => {
          if (btn.disabled) return;
          for (const other of group.querySelectorAll('button')) other.disabled = true;
          enqueue({ kind: 'button', payload: b.payload, title });
        });
        group.appendChild(btn);
      }
      msgList[i].el.appendChild(group);
      return;
    }
  }

  // ---------------------------------------------------------------------------
  // Outbox: customer messages until the server echoes them
  // ---------------------------------------------------------------------------

  function loadOutbox() {
    const raw = storageGet('sessionStorage', KEY_OUTBOX);
    if (!raw) return [];
    try {
      const list = JSON.parse(raw);
      if (!Array.isArray(list)) return [];
      return list.filter((e) => e && typeof e.client_id === 'string' && (e.kind === 'message' || e.kind === 'button'));
    } catch (e) {
      return [];
    }
  }

  function saveOutbox() {
    if (outbox.length) storageSet('sessionStorage', KEY_OUTBOX, JSON.stringify(outbox));
    else storageRemove('sessionStorage', KEY_OUTBOX);
  }

  function entryText(e) {
    return e.kind === 'button' ? e.title : e.text;
  }

  function pendingEl(e) {
    return ui.messages.querySelector(`.sc-pending[data-client-id="${cssEscape(e.client_id)}"]`);
  }

  function cssEscape(s) {
    if (window.CSS && typeof CSS.escape === 'function') return CSS.escape(s);
    return String(s).replace(/[^a-zA-Z0-9_-]/g, (ch) => `\\${ch.charCodeAt(0).toString(16)} `);
  }

  function renderPending(e) {
    const node = el('div', { class: 'sc-msg sc-msg-customer sc-pending', 'data-client-id': e.client_id }, [
      srOnly(T.you),
      el('div', { class: 'sc-bubble' }),
      el('div', { class: 'sc-pending-status' }),
    ]);
    appendRichText(node.children[1], entryText(e));
    ui.messages.appendChild(node);
    updatePending(e, node);
  }

  function updatePending(e, node) {
    const n = node || pendingEl(e);
    if (!n) return;
    const status = n.querySelector('.sc-pending-status');
    while (status.firstChild) status.removeChild(status.firstChild);
    n.classList.remove('sc-queued', 'sc-sending', 'sc-failed');
    if (e.failed) {
      n.classList.add('sc-failed');
      const retry = el('button', { class: 'sc-retry', type: 'button', text: T.retry });
      const discard = el('button', { class: 'sc-discard', type: 'button', text: T.discard });
      retry.addEventListener('click', () => {
        e.failed = false;
        e.tries = 0;
        saveOutbox();
        updatePending(e);
        if (conn.ready) sendEntry(e);
        else start();
      });
      discard.addEventListener('click', () => {
        removeFromOutbox(e.client_id);
        n.remove();
        refreshQuickReplies();
        ui.input.focus();
      });
      status.appendChild(el('span', { class: 'sc-pending-text', text: T.failed }));
      status.appendChild(retry);
      status.appendChild(discard);
    } else if (conn.ready && inFlight.has(e.client_id)) {
      n.classList.add('sc-sending');
      status.appendChild(el('span', { class: 'sc-pending-text', text: T.sending }));
    } else {
      n.classList.add('sc-queued');
      status.appendChild(el('span', { class: 'sc-pending-text', text: T.queued }));
    }
  }

  function updateAllPending() {
    for (const e of outbox) updatePending(e);
  }

  function removeFromOutbox(clientId) {
    const idx = outbox.findIndex((e) => e.client_id === clientId);
    if (idx >= 0) outbox.splice(idx, 1);
    inFlight.delete(clientId);
    const t = ackTimers.get(clientId);
    if (t) clearTimeout(t);
    ackTimers.delete(clientId);
    saveOutbox();
  }

  function enqueue(item) {
    const entry = {
      kind: item.kind,
      client_id: uuid(),
      text: item.kind === 'message' ? item.text : undefined,
      payload: item.kind === 'button' ? item.payload : undefined,
      title: item.kind === 'button' ? item.title : undefined,
      tries: 0,
      failed: false,
    };
    outbox.push(entry);
    saveOutbox();
    renderPending(entry);
    refreshQuickReplies();
    scrollToBottom(true);
    if (conn.ready) sendEntry(entry);
    else start();
  }

  function sendEntry(e) {
    if (e.failed || inFlight.has(e.client_id)) return;
    const frame = e.kind === 'button'
      ? { type: 'button', payload: e.payload, title: e.title, client_id: e.client_id }
      : { type: 'message', text: e.text, client_id: e.client_id };
    if (!sendFrame(frame)) {
      updatePending(e);
      return;
    }
    e.tries = (e.tries || 0) + 1;
    inFlight.add(e.client_id);
    saveOutbox();
    updatePending(e);
    const old = ackTimers.get(e.client_id);
    if (old) clearTimeout(old);
    const gen = conn.generation;
    ackTimers.set(e.client_id, setTimeout(() => {
      ackTimers.delete(e.client_id);
      // Still unconfirmed on the same live connection: let the customer decide.
      if (conn.ready && conn.generation === gen && outbox.includes(e)) {
        inFlight.delete(e.client_id);
        e.failed = true;
        saveOutbox();
        updatePending(e);
      }
    }, ACK_TIMEOUT_MS));
  }

  /** After (re)connecting: resend everything not yet confirmed, oldest first. */
  function flushOutbox() {
    for (const e of outbox.slice()) {
      if (e.failed) continue;
      if ((e.tries || 0) >= MAX_AUTO_TRIES) {
        e.failed = true;
        saveOutbox();
        updatePending(e);
        continue;
      }
      sendEntry(e);
    }
  }

  function sendFrame(frame) {
    if (!conn.ready || !conn.ws || conn.ws.readyState !== WebSocket.OPEN) return false;
    try {
      conn.ws.send(JSON.stringify(frame));
      return true;
    } catch (err) {
      return false;
    }
  }

  // ---------------------------------------------------------------------------
  // Server frames
  // ---------------------------------------------------------------------------

  function handleFrame(frame) {
    switch (frame.type) {
      case 'history':
        onHistory(frame);
        break;
      case 'message':
        if (frame.message && typeof frame.message === 'object') onMessage(frame.message);
        break;
      case 'state':
        applyState(frame.state);
        break;
      case 'typing':
        setTyping(frame.on === true);
        break;
      case 'feedback_saved':
        onFeedbackSaved(frame);
        break;
      case 'contact_saved':
        onContactSaved();
        break;
      case 'survey_saved':
        onSurveySaved(frame);
        break;
      case 'transcript_queued':
        onTranscriptQueued(frame);
        break;
      case 'error':
        onServerError(frame);
        break;
      case 'ended':
        endLocally(T.ended);
        break;
      default:
        break;
    }
  }

  function onHistory(frame) {
    conn.ready = true;
    conn.attempts = 0;
    conn.badTokenStreak = 0;
    conn.everConnected = true;
    setStatus('');
    inFlight.clear();

    const messages = Array.isArray(frame.messages) ? frame.messages.filter((m) => m && typeof m === 'object') : [];
    const delivered = new Set();
    for (const m of messages) if (m.client_id) delivered.add(String(m.client_id));
    for (const e of outbox.slice()) if (delivered.has(e.client_id)) removeFromOutbox(e.client_id);

    clearConversationView();
    for (const m of messages) renderMessage(m);
    for (const e of outbox) renderPending(e);
    applyState(frame.state);
    setTyping(false);
    flushOutbox();
    refreshQuickReplies();
    scrollToBottom(true);
  }

  function onMessage(m) {
    const stick = isNearBottom();
    const sender = normalizeSender(m.sender);
    if (sender === 'customer' && m.client_id) {
      const cid = String(m.client_id);
      if (outbox.some((e) => e.client_id === cid)) removeFromOutbox(cid);
      const pend = ui.messages.querySelector(`.sc-pending[data-client-id="${cssEscape(cid)}"]`);
      if (pend) pend.remove();
    }
    renderMessage(m);
    if (sender !== 'customer') {
      setTyping(false);
      if (!isOpen()) {
        unread += 1;
        updateLauncherLabel();
      }
    }
    refreshQuickReplies();
    scrollToBottom(stick || sender === 'customer');
  }

  function setTyping(on) {
    if (typingTimer) clearTimeout(typingTimer);
    typingTimer = null;
    const stick = isNearBottom();
    ui.typing.hidden = !on;
    ui.typing.setAttribute('aria-hidden', on ? 'false' : 'true');
    if (on) {
      typingTimer = setTimeout(() => setTyping(false), TYPING_TIMEOUT_MS);
      scrollToBottom(stick);
    }
  }

  function onFeedbackSaved(frame) {
    const key = frame.message_id === null || frame.message_id === undefined ? null : String(frame.message_id);
    const rec = key !== null ? byId.get(key) : null;
    if (!rec) return;
    rec.data.feedback = frame.helpful === true;
    const box = rec.el.querySelector('.sc-feedback');
    const done = el('p', { class: 'sc-feedback-done', role: 'status', text: T.helpfulThanks });
    if (box) box.replaceWith(done);
    else if (!rec.el.querySelector('.sc-feedback-done')) rec.el.appendChild(done);
  }

  function applyState(raw) {
    const stick = isNearBottom();
    chatState = normalizeState(raw);
    // Keep keyboard focus inside the panel when the cancel button goes away.
    if (chatState.mode !== 'waiting' && document.activeElement === ui.cancel) ui.input.focus();
    if (cancelTimer) clearTimeout(cancelTimer);
    cancelTimer = null;
    ui.cancel.disabled = false;
    ui.cancel.removeAttribute('aria-busy');

    if (chatState.mode === 'waiting') {
      ui.bannerText.textContent = chatState.wait_note
        ? `${S.waiting}。${chatState.wait_note}`
        : T.waiting(chatState.position, chatState.estimate_minutes);
      ui.cancel.hidden = false;
      if (!ui.cancel.isConnected) ui.banner.appendChild(ui.cancel);
      ui.banner.hidden = false;
      ui.banner.className = 'sc-banner sc-banner-waiting';
    } else if (chatState.mode === 'agent') {
      ui.bannerText.textContent = T.agent(chatState.agent_name);
      ui.cancel.hidden = true;
      ui.cancel.remove();
      ui.banner.hidden = false;
      ui.banner.className = 'sc-banner sc-banner-agent';
    } else {
      ui.bannerText.textContent = '';
      ui.cancel.hidden = true;
      ui.cancel.remove();
      ui.banner.hidden = true;
      ui.banner.className = 'sc-banner';
    }
    updateContact();
    updateAfter();
    refreshQuickReplies();
    // The banner / contact form take room from the log: keep the latest message in view.
    scrollToBottom(stick);
  }

  // ---------------------------------------------------------------------------
  // After a resolved chat: survey (CSAT) and transcript by e-mail
  // ---------------------------------------------------------------------------

  function afterTicketId() {
    if (chatState.mode !== 'bot') return null;
    if (chatState.survey) return chatState.survey.ticket_id;
    return chatState.transcript ? chatState.transcript.ticket_id : null;
  }

  function updateAfter() {
    const ticketId = afterTicketId();
    const closed = ticketId !== null && storageGet('localStorage', KEY_AFTER_CLOSED) === String(ticketId);
    const thanksShown = !ui.sDone.hidden && surveyShownFor === ticketId;
    if (ticketId === null || closed) {
      ui.after.hidden = true;
      return;
    }
    if (surveyShownFor !== ticketId) {
      // A new resolved ticket: start from a clean survey and mail form.
      surveyShownFor = ticketId;
      surveyRating = null;
      ui.sComment.value = '';
      ui.sError.textContent = '';
      ui.sDone.hidden = true;
      ui.mError.textContent = '';
      ui.mDone.hidden = true;
      enableSurveySubmit();
      enableMailSend();
    }
    const sv = chatState.survey;
    ui.survey.hidden = !sv;
    if (sv) {
      ui.sQuestion.textContent = sv.question;
      ui.sButtons.forEach((b, i) => {
        b.lastChild.textContent = sv.labels[i];
        b.setAttribute('aria-label', T.surveyRating(i + 1, sv.labels[i]));
        b.setAttribute('aria-pressed', surveyRating === i + 1 ? 'true' : 'false');
      });
      ui.sCommentLabel.textContent = sv.comment_label;
      ui.sSubmit.textContent = sv.submit;
      ui.sSkip.textContent = sv.skip;
    } else if (!thanksShown) {
      ui.sDone.hidden = true;
    }
    ui.mailForm.hidden = !chatState.transcript;
    ui.after.hidden = !sv && ui.sDone.hidden && ui.mailForm.hidden;
  }

  function pickRating(n) {
    surveyRating = n;
    ui.sButtons.forEach((b, i) => b.setAttribute('aria-pressed', i + 1 === n ? 'true' : 'false'));
    ui.sError.textContent = '';
  }

  function submitSurvey() {
    const sv = chatState.survey;
    if (!sv || ui.sSubmit.disabled) return;
    const comment = ui.sComment.value.trim();
    if (surveyRating === null) {
      ui.sError.textContent = T.surveyPick;
      ui.sButtons[0].focus();
      return;
    }
    if (comment.length > MAX_COMMENT_LENGTH) {
      // Nothing is cut: the customer shortens the text they wrote.
      ui.sError.textContent = T.surveyCommentMax(MAX_COMMENT_LENGTH, comment.length);
      ui.sComment.setAttribute('aria-invalid', 'true');
      ui.sComment.focus();
      return;
    }
    ui.sComment.removeAttribute('aria-invalid');
    ui.sError.textContent = '';
    if (!sendFrame({ type: 'csat', ticket_id: sv.ticket_id, rating: surveyRating, comment: comment || null })) {
      ui.sError.textContent = T.notConnected;
      return;
    }
    ui.sSubmit.disabled = true;
    ui.survey.setAttribute('aria-busy', 'true');
    if (surveyTimer) clearTimeout(surveyTimer);
    surveyTimer = setTimeout(enableSurveySubmit, ACTION_TIMEOUT_MS);
  }

  function enableSurveySubmit() {
    if (surveyTimer) clearTimeout(surveyTimer);
    surveyTimer = null;
    ui.sSubmit.disabled = false;
    ui.survey.removeAttribute('aria-busy');
  }

  function onSurveySaved(frame) {
    enableSurveySubmit();
    const hadFocus = ui.survey.contains(document.activeElement);
    ui.sDone.textContent = typeof frame.thanks === 'string' && frame.thanks ? frame.thanks : T.helpfulThanks;
    ui.sDone.hidden = false;
    ui.survey.hidden = true;
    if (hadFocus) ui.input.focus();
    // The next state has no survey any more; the thanks stay until the customer closes the panel.
  }

  function closeAfter() {
    const ticketId = afterTicketId();
    if (ticketId !== null) storageSet('localStorage', KEY_AFTER_CLOSED, String(ticketId));
    ui.after.hidden = true;
    ui.input.focus();
  }

  function submitMail(ev) {
    ev.preventDefault();
    const tr = chatState.transcript;
    if (!tr || ui.mSend.disabled) return;
    const email = ui.mEmail.value.trim().replace(/＠/g, '@');
    if (!EMAIL_RE.test(email)) {
      ui.mError.textContent = T.errEmail;
      ui.mEmail.setAttribute('aria-invalid', 'true');
      ui.mEmail.setAttribute('aria-describedby', 'supportchat-mail-error');
      ui.mEmail.focus();
      return;
    }
    ui.mEmail.removeAttribute('aria-invalid');
    ui.mEmail.removeAttribute('aria-describedby');
    ui.mError.textContent = '';
    if (!sendFrame({ type: 'transcript', ticket_id: tr.ticket_id, email })) {
      ui.mError.textContent = T.notConnected;
      return;
    }
    ui.mSend.disabled = true;
    ui.mailForm.setAttribute('aria-busy', 'true');
    if (mailTimer) clearTimeout(mailTimer);
    mailTimer = setTimeout(enableMailSend, ACTION_TIMEOUT_MS);
  }

  function enableMailSend() {
    if (mailTimer) clearTimeout(mailTimer);
    mailTimer = null;
    ui.mSend.disabled = false;
    ui.mailForm.removeAttribute('aria-busy');
  }

  function onTranscriptQueued(frame) {
    enableMailSend();
    ui.mDone.textContent = typeof frame.message === 'string' && frame.message ? frame.message : T.mailSent;
    ui.mDone.hidden = false;
  }

  // ---------------------------------------------------------------------------
  // Offline contact form
  // ---------------------------------------------------------------------------

  function contactSavedHere() {
    const saved = storageGet('localStorage', KEY_CONTACT);
    return !!(saved && session && saved === (session.conversation_id || session.token));
  }

  function updateContact() {
    if (!chatState.offline) {
      ui.contact.hidden = true;
      return;
    }
    ui.contact.hidden = false;
    const done = contactSavedHere();
    ui.cDone.hidden = !done;
    ui.cBody.hidden = done;
    ui.cToggle.hidden = done;
    const opening = formatOpening(chatState.next_opening);
    ui.cOpening.textContent = opening ? T.nextOpening(opening) : '';
    ui.cOpening.hidden = !opening;
  }

  function normalizePhone(v) {
    // Full-width digits and dashes are common in Japanese input.
    return v
      .replace(/[０-９]/g, (d) => String.fromCharCode(d.charCodeAt(0) - 0xfee0))
      .replace(/[‐‑‒–—―−ー－ｰ]/g, '-')
      .replace(/\s+/g, '')
      .trim();
  }

  const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
  const PHONE_RE = /^(?:\d-?){9,10}\d$/;

  function setFieldError(input, bad) {
    if (bad) {
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', 'supportchat-contact-error');
    } else {
      input.removeAttribute('aria-invalid');
      input.removeAttribute('aria-describedby');
    }
  }

  function submitContact(ev) {
    ev.preventDefault();
    if (ui.cSubmit.disabled) return;
    const name = ui.cName.value.trim();
    const email = ui.cEmail.value.trim().replace(/＠/g, '@');
    const phone = normalizePhone(ui.cPhone.value);
    const note = ui.cNote.value.trim();
    const errors = [];
    let badEmail = false;
    let badPhone = false;
    if (!email && !phone) {
      errors.push(T.errNeedOne);
      badEmail = true;
      badPhone = true;
    } else {
      if (email && !EMAIL_RE.test(email)) {
        errors.push(T.errEmail);
        badEmail = true;
      }
      if (phone && !PHONE_RE.test(phone)) {
        errors.push(T.errPhone);
        badPhone = true;
      }
    }
    setFieldError(ui.cEmail, badEmail);
    setFieldError(ui.cPhone, badPhone);
    if (errors.length) {
      ui.cError.textContent = errors.join(' ');
      (badEmail ? ui.cEmail : ui.cPhone).focus();
      return;
    }
    ui.cError.textContent = '';
    if (!sendFrame({ type: 'contact', name, email, phone, note })) {
      ui.cError.textContent = T.notConnected;
      return;
    }
    ui.cSubmit.disabled = true;
    ui.contactForm.setAttribute('aria-busy', 'true');
    if (contactTimer) clearTimeout(contactTimer);
    contactTimer = setTimeout(enableContactSubmit, ACTION_TIMEOUT_MS);
  }

  function enableContactSubmit() {
    if (contactTimer) clearTimeout(contactTimer);
    contactTimer = null;
    ui.cSubmit.disabled = false;
    ui.contactForm.removeAttribute('aria-busy');
  }

  function onContactSaved() {
    enableContactSubmit();
    if (session) storageSet('localStorage', KEY_CONTACT, session.conversation_id || session.token);
    ui.contactForm.reset();
    ui.cError.textContent = '';
    ui.cBody.hidden = true;
    ui.cToggle.hidden = true;
    ui.cDone.hidden = false;
    ui.contact.hidden = false;
    // The server's next state no longer asks for the form (the details are known), which hides
    // this section at once: the confirmation stays in the log.
    showNotice(T.contactSaved);
  }

  function onServerError(frame) {
    const text = typeof frame.message === 'string' && frame.message.trim() ? frame.message : T.genericError;
    showNotice(text);
    // A message the server refused (too many per minute, ticket full ...): offer 再送信 / 取り消す.
    const refused = typeof frame.client_id === 'string' ? outbox.find((e) => e.client_id === frame.client_id) : null;
    if (refused) {
      inFlight.delete(refused.client_id);
      const t = ackTimers.get(refused.client_id);
      if (t) clearTimeout(t);
      ackTimers.delete(refused.client_id);
      refused.failed = true;
      saveOutbox();
      updatePending(refused);
    }
    // Whatever was waiting for a confirmation can be tried again.
    if (ui.cSubmit.disabled) {
      enableContactSubmit();
      ui.cError.textContent = text;
    }
    if (ui.sSubmit.disabled) {
      enableSurveySubmit();
      ui.sError.textContent = text;
    }
    if (ui.mSend.disabled) {
      enableMailSend();
      ui.mError.textContent = text;
    }
    ui.cancel.disabled = false;
    ui.cancel.removeAttribute('aria-busy');
    for (const box of ui.messages.querySelectorAll('.sc-feedback[aria-busy]')) {
      box.removeAttribute('aria-busy');
      for (const b of box.querySelectorAll('button')) b.disabled = false;
    }
  }

  // ---------------------------------------------------------------------------
  // Connection: session, WebSocket, reconnect with backoff
  // ---------------------------------------------------------------------------

  function start() {
    if (conn.started) return;
    conn.started = true;
    connect();
  }

  async function connect() {
    if (conn.timer) {
      clearTimeout(conn.timer);
      conn.timer = null;
    }
    if (conn.ws || conn.connecting) return;
    const gen = ++conn.generation;
    conn.connecting = true;
    if (conn.attempts === 0 && !conn.everConnected) setStatus(T.connecting);
    else setStatus(disconnectedText());

    if (!session) {
      try {
        const s = await createSession();
        if (gen !== conn.generation) return; // superseded by another connect
        session = s;
        updateEndButton();
      } catch (err) {
        if (gen !== conn.generation) return;
        conn.connecting = false;
        scheduleReconnect(err && err.retryAfter ? err.retryAfter * 1000 : 0);
        if (err && err.userMessage) setStatus(err.userMessage);
        return;
      }
    }
    conn.connecting = false;
    openSocket();
  }

  function pageUrl() {
    const loc = window.location;
    return config.fullPageUrl ? loc.origin + loc.pathname + loc.search : loc.origin + loc.pathname;
  }

  async function createSession() {
    const customer = { page_url: pageUrl() };
    if (config.customer) {
      for (const k of ['name', 'email']) {
        if (typeof config.customer[k] === 'string' && config.customer[k]) customer[k] = config.customer[k];
      }
    }
    const res = await fetch(httpUrl('/api/chat/sessions'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ customer }),
    });
    if (!res.ok) {
      const err = new Error(`session: HTTP ${res.status}`);
      if (res.status === 429) {
        // Too many new conversations from this address: say so, and wait as long as asked.
        try {
          const body = await res.json();
          if (body && typeof body.error === 'string') err.userMessage = body.error;
        } catch (e) {
          /* no JSON body */
        }
        err.retryAfter = Number(res.headers.get('Retry-After')) || 0;
      }
      throw err;
    }
    const data = await res.json();
    if (!data || typeof data.token !== 'string' || !data.token) throw new Error('session: no token');
    // Another tab may have created a conversation meanwhile: share that one.
    const existing = loadSession();
    if (existing) return existing;
    const s = { token: data.token, conversation_id: String(data.conversation_id || '') };
    saveSession(s);
    return s;
  }

  /**
   * The chat socket's URL. It names the conversation (not a secret: without the token it opens
   * nothing) so that a proxy in front of several bot servers sends every tab and every reconnect
   * of one conversation to the same server (deploy/nginx: bot_sockets hashes it). The token goes
   * in the first frame, never in the URL.
   */
  function socketUrl() {
    const url = wsUrl('/ws/chat');
    return session.conversation_id ? `${url}?conversation=${encodeURIComponent(session.conversation_id)}` : url;
  }

  function openSocket() {
    const token = session.token;
    let ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch (err) {
      scheduleReconnect();
      return;
    }
    conn.ws = ws;
    let gotHistory = false;
    const connectTimer = setTimeout(() => {
      if (ws.readyState === WebSocket.CONNECTING) {
        try {
          ws.close();
        } catch (e) {
          /* ignore */
        }
      }
    }, CONNECT_TIMEOUT_MS);

    ws.onopen = () => {
      clearTimeout(connectTimer);
      try {
        ws.send(JSON.stringify({ type: 'auth', token }));
      } catch (e) {
        /* onclose follows */
      }
    };
    ws.onerror = () => {
      /* onclose follows */
    };
    ws.onmessage = (ev) => {
      if (conn.ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (!frame || typeof frame !== 'object' || typeof frame.type !== 'string') return;
      if (frame.type === 'history') gotHistory = true;
      else if (!gotHistory && frame.type !== 'error') return; // history must come first (errors may not)
      handleFrame(frame);
    };
    ws.onclose = (ev) => {
      clearTimeout(connectTimer);
      if (conn.ws !== ws) return; // replaced on purpose
      conn.ws = null;
      onDisconnected();
      if (ev.code === 4410) {
        endLocally(T.ended); // ended in another tab
      } else if (ev.code === 4401) {
        handleBadToken(token);
      } else if (ev.code === 4429) {
        scheduleReconnect(); // too many tabs open: try again later (the notice says why)
      } else if (!gotHistory) {
        // A rejected handshake is often reported as 1006; ask the history endpoint.
        probeToken(token).then((bad) => {
          if (conn.ws || conn.timer || conn.connecting) return;
          if (bad) handleBadToken(token);
          else scheduleReconnect();
        });
      } else {
        scheduleReconnect();
      }
    };
  }

  function onDisconnected() {
    conn.ready = false;
    inFlight.clear();
    for (const t of ackTimers.values()) clearTimeout(t);
    ackTimers.clear();
    setTyping(false);
    updateAllPending();
  }

  async function probeToken(token) {
    try {
      const res = await fetch(httpUrl('/api/chat/history'), {
        headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
      });
      return res.status === 401;
    } catch (e) {
      return false;
    }
  }

  function handleBadToken(badToken) {
    if (session && session.token === badToken) {
      const stored = loadSession();
      if (stored && stored.token !== badToken) {
        session = stored;
      } else {
        session = null;
        storageRemove('localStorage', KEY_SESSION);
      }
      updateEndButton();
      clearConversationView();
      chatState = normalizeState(null);
      applyState(null);
    }
    conn.badTokenStreak += 1;
    if (conn.badTokenStreak > 2) scheduleReconnect();
    else connect();
  }

  function scheduleReconnect(minDelay) {
    if (conn.timer) return;
    conn.attempts += 1;
    const delay = Math.max(Math.min(1000 * 2 ** (conn.attempts - 1), MAX_BACKOFF_MS), minDelay || 0);
    setStatus(disconnectedText());
    updateAllPending();
    conn.timer = setTimeout(() => {
      conn.timer = null;
      connect();
    }, delay);
  }

  /** Close the current socket on purpose (no reconnect is scheduled by its close event). */
  function dropSocket() {
    conn.generation += 1;
    conn.connecting = false;
    if (conn.timer) {
      clearTimeout(conn.timer);
      conn.timer = null;
    }
    const ws = conn.ws;
    conn.ws = null;
    if (ws) {
      try {
        ws.close(1000);
      } catch (e) {
        /* ignore */
      }
    }
    onDisconnected();
  }

  function reconnectNow() {
    if (!conn.started || conn.ready || conn.connecting) return;
    if (conn.ws && conn.ws.readyState === WebSocket.CONNECTING) return;
    if (conn.timer) {
      clearTimeout(conn.timer);
      conn.timer = null;
    }
    connect();
  }

  // ---------------------------------------------------------------------------
  // 「会話を終了」: forget the conversation here, and make the server forget the token
  // ---------------------------------------------------------------------------

  function updateEndButton() {
    ui.endBtn.hidden = !session;
    if (!session) hideEndConfirm(false);
  }

  function showEndConfirm() {
    ui.endConfirm.hidden = false;
    ui.endNo.focus();
  }

  function hideEndConfirm(focus) {
    ui.endConfirm.hidden = true;
    if (focus && !ui.endBtn.hidden) ui.endBtn.focus();
  }

  function endConversation() {
    const s = session;
    if (s && !sendFrame({ type: 'end' })) {
      // Not connected: tell the server over HTTP (it still works when the page is closing).
      try {
        fetch(httpUrl('/api/chat/session'), {
          method: 'DELETE',
          headers: { Authorization: `Bearer ${s.token}`, Accept: 'application/json' },
          keepalive: true,
        }).catch(() => {});
      } catch (e) {
        /* forgotten here anyway */
      }
    }
    endLocally(T.ended);
    ui.input.focus();
  }

  /** Forget the conversation in this browser: token, unsent messages, what is on screen. */
  function endLocally(notice) {
    dropSocket();
    conn.started = false;
    conn.attempts = 0;
    conn.everConnected = false;
    conn.badTokenStreak = 0;
    session = null;
    storageRemove('localStorage', KEY_SESSION);
    storageRemove('localStorage', KEY_CONTACT);
    outbox = [];
    storageRemove('sessionStorage', KEY_OUTBOX);
    for (const node of Array.from(ui.messages.querySelectorAll('.sc-pending'))) node.remove();
    clearConversationView();
    expandedIds.clear();
    unread = 0;
    updateLauncherLabel();
    setTyping(false);
    setStatus('');
    applyState(null);
    updateEndButton();
    if (notice) showNotice(notice);
  }

  // ---------------------------------------------------------------------------
  // Input handling
  // ---------------------------------------------------------------------------

  function updateCounter() {
    const len = ui.input.value.length;
    ui.counter.textContent = `${len} / ${config.maxLength}`;
    ui.counter.classList.toggle('sc-counter-limit', len >= config.maxLength);
    // Grow with the content up to the CSS max-height.
    ui.input.style.height = 'auto';
    ui.input.style.height = `${ui.input.scrollHeight}px`;
  }

  function submitInput() {
    const value = ui.input.value;
    const text = value.trim();
    if (!text) return;
    if (text.length > config.maxLength) {
      showNotice(T.tooLong(config.maxLength));
      return;
    }
    // Clearing first makes a second click / Enter on the same text a no-op.
    ui.input.value = '';
    updateCounter();
    enqueue({ kind: 'message', text });
    ui.input.focus();
  }

  function isImeEnter(ev) {
    return ev.isComposing || ev.keyCode === 229 || composing || Date.now() - lastCompositionEnd < 30;
  }

  function bindUi() {
    ui.launcher.addEventListener('click', () => {
      if (isOpen()) closePanel({ focusLauncher: true });
      else openPanel();
    });
    ui.closeBtn.addEventListener('click', () => closePanel({ focusLauncher: true }));
    ui.endBtn.addEventListener('click', showEndConfirm);
    ui.endNo.addEventListener('click', () => hideEndConfirm(true));
    ui.endYes.addEventListener('click', endConversation);
    ui.panel.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && !ev.isComposing && ev.keyCode !== 229 && !composing) {
        ev.preventDefault();
        if (!ui.endConfirm.hidden) hideEndConfirm(true);
        else closePanel({ focusLauncher: true });
      }
    });

    ui.input.addEventListener('compositionstart', () => {
      composing = true;
    });
    ui.input.addEventListener('compositionend', () => {
      composing = false;
      lastCompositionEnd = Date.now();
    });
    ui.input.addEventListener('input', updateCounter);
    ui.input.addEventListener('keydown', (ev) => {
      if (ev.key !== 'Enter') return;
      if (isImeEnter(ev)) return; // confirming an IME conversion, never a send
      if (ev.shiftKey) return; // newline
      ev.preventDefault();
      if (ev.repeat) return;
      submitInput();
    });
    ui.composer.addEventListener('submit', (ev) => {
      ev.preventDefault();
      submitInput();
    });

    ui.cancel.addEventListener('click', () => {
      if (ui.cancel.disabled) return;
      if (!sendFrame({ type: 'cancel_handoff' })) {
        showNotice(T.notConnected);
        return;
      }
      ui.cancel.disabled = true;
      ui.cancel.setAttribute('aria-busy', 'true');
      if (cancelTimer) clearTimeout(cancelTimer);
      cancelTimer = setTimeout(() => {
        ui.cancel.disabled = false;
        ui.cancel.removeAttribute('aria-busy');
      }, ACTION_TIMEOUT_MS);
    });

    ui.contactForm.addEventListener('submit', submitContact);
    ui.cToggle.addEventListener('click', () => {
      const expand = ui.cBody.hidden;
      ui.cBody.hidden = !expand;
      ui.cToggle.setAttribute('aria-expanded', expand ? 'true' : 'false');
      ui.cToggle.textContent = expand ? T.contactToggleClose : T.contactToggleOpen;
    });

    window.addEventListener('online', reconnectNow);
    window.addEventListener('offline', () => {
      if (!conn.started || !conn.ws) return;
      dropSocket();
      scheduleReconnect();
    });
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && conn.timer) reconnectNow();
    });

    // Another tab started a new conversation (e.g. its token was rejected): follow it.
    window.addEventListener('storage', (ev) => {
      if (ev.key !== KEY_SESSION) return;
      const stored = loadSession();
      if (!stored && session && ev.newValue === null) {
        endLocally(T.ended); // 「会話を終了」 in another tab
        return;
      }
      if (!stored || (session && stored.token === session.token)) return;
      session = stored;
      updateEndButton();
      clearConversationView();
      applyState(null);
      if (conn.started) {
        dropSocket();
        conn.attempts = 0;
        connect();
      }
    });
  }

  // ---------------------------------------------------------------------------
  // Startup
  // ---------------------------------------------------------------------------

  function init() {
    if (document.getElementById('supportchat-root')) return;
    injectCss();
    buildDom();
    outbox = loadOutbox();
    for (const e of outbox) renderPending(e);
    session = loadSession();
    updateEndButton();
    if (storageGet('localStorage', KEY_OPEN) === '1') openPanel({ focus: false });
    if (session || outbox.length) start();
  }

  window.SupportChat = Object.freeze({
    __loaded: true,
    open() {
      if (ui.panel) openPanel();
    },
    close() {
      if (ui.panel) closePanel();
    },
  });

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
