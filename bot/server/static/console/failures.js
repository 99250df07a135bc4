/*
 * 送信の失敗 (admins only): mails the bot server gave up sending (transcripts, department forwards:
 * GET /api/admin/mails/failed) and webhook deliveries given up (GET /api/admin/webhooks/dead-letters),
 * each with 「再送する」 (POST .../retry: due at once, audited). A 404 from the webhook list means
 * webhooks are not configured; the section says so. Server data goes in with textContent only
 * (dom.js's el()): an address or an error text is never parsed as HTML.
 */
"use strict";

const S = {
  count: "（{count} 件）",
  ticket: "#{id}",
  retry: "再送する",
  retrying: "再送しています…",
  mailRetried: "メール {id} を再送します。送れなかったときは、決められた回数を試したあと、もう一度この一覧に表示されます。",
  webhookRetried: "Webhook {id} を再送します（同じイベント ID で送ります）。送れなかったときは、もう一度この一覧に表示されます。",
  noWebhooks: "届かなかった Webhook はありません。",
  webhooksOff: "Webhook は設定されていません（BOT_WEBHOOKS_FILE）。",
};
const page = { csrf: null };

function call(method, path, body) {
  return jsonRequest(method, path, body, page.csrf);
}

function row(cells, item, kind) {
  const tr = el("tr");
  tr.dataset.failureId = String(item.id);
  for (const [text, className] of cells) tr.append(el("td", className || null, text ?? "—"));
  const button = el("button", "primary failure-retry", S.retry);
  button.type = "button";
  button.setAttribute("aria-label", `${S.retry}（${kind} ${item.id}）`);
  button.addEventListener("click", () => retry(button, kind, item));
  const td = el("td");
  td.append(button);
  tr.append(td);
  return tr;
}

function showList(name, items, count, cells) {
  $(`${name}-count`).textContent = fill(S.count, { count });
  $(`${name}-list`).replaceChildren(...items.map(cells));
  $(`${name}-wrap`).hidden = items.length === 0;
  $(`${name}-empty`).hidden = items.length !== 0;
}

async function loadMails() {
  const data = await call("GET", "/api/admin/mails/failed");
  showList("mails", data.mails, data.count, (m) => row([
    [formatDateTime(m.created_at)], [m.trigger_label], [m.address, "failure-address"],
    [fill(S.ticket, { id: m.ticket_id })], [m.attempts], [m.last_error, "failure-error"],
  ], m, "mail"));
}

async function loadWebhooks() {
  let data;
  try {
    data = await call("GET", "/api/admin/webhooks/dead-letters");
  } catch (err) {
    if (err.status !== 404) throw err;
    $("webhooks-count").textContent = "";
    $("webhooks-wrap").hidden = true;
    $("webhooks-empty").textContent = S.webhooksOff;
    $("webhooks-empty").hidden = false;
    return;
  }
  $("webhooks-empty").textContent = S.noWebhooks;
  showList("webhooks", data.dead_letters, data.count, (d) => row([
    [formatDateTime(d.occurred_at)], [d.type], [d.endpoint, "failure-address"],
    [d.ticket_id ? fill(S.ticket, { id: d.ticket_id }) : "—"], [d.attempts], [d.last_error, "failure-error"],
  ], d, "webhook"));
}

async function retry(button, kind, item) {
  button.disabled = true;
  pageAlert("");
  $("failures-status").textContent = S.retrying;
  try {
    if (kind === "mail") {
      await call("POST", `/api/admin/mails/failed/${item.id}/retry`, {});
      $("failures-status").textContent = fill(S.mailRetried, { id: item.id });
      await loadMails();
    } else {
      await call("POST", `/api/admin/webhooks/dead-letters/${item.id}/retry`, {});
      $("failures-status").textContent = fill(S.webhookRetried, { id: item.id });
      await loadWebhooks();
    }
  } catch (err) {
    $("failures-status").textContent = "";
    pageLoadFailed(err);  // 401: the login link; else the server's message
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded",
  () => startAdminPage(page, "failures-view", () => Promise.all([loadMails(), loadWebhooks()])));
