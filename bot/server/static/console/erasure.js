/*
 * 個人情報の削除 (admins only): `bot data delete` from the console. The admin names a customer
 * by conversation id or e-mail address; POST /api/admin/erasure/preview shows what would go
 * (the conversations found with the customer's name, rows per kind); typing the id or address
 * again and POST /api/admin/erasure deletes (the server compares the two and writes the audit
 * line). Changing the customer after the preview hides it, so a deletion always follows the
 * preview of the same customer. The forms are novalidate: the server's Japanese messages say
 * what is wrong. Server and customer data are only ever rendered with textContent (dom.js's el()).
 */
"use strict";

const S = {
  byConversation: "会話 ID",
  byEmail: "メールアドレス",
  confirm: "確認のため、同じ{by}をもう一度入力してください",
  kind: "種類",
  count: "件数",
  countsCaption: "種類ごとの件数",
  total: "合計 {total} 件",
  rows: "{count} 件",
  noName: "（名前なし）",
  more: "ほかに {count} 件の会話があります（最初の {shown} 件を表示しています）。",
  looking: "確認しています…",
  deleting: "削除しています…",
  done: "削除しました（{summary}）。監査ログに記録しました（削除した内容は記録していません）。",
};
const page = { csrf: null, asked: null };

function call(method, path, body) {
  return jsonRequest(method, path, body, page.csrf);
}

function chosenBy() {
  return $("erasure-by-email").checked ? "email" : "conversation";
}

function byLabel(by) {
  return by === "email" ? S.byEmail : S.byConversation;
}

function headCell(text) {
  const th = el("th", null, text);
  th.scope = "col";
  return th;
}

// Rows per kind (the labels and order of `bot data delete`), and the total.
function countsTable(answer) {
  const head = el("tr");
  head.append(headCell(S.kind), headCell(S.count));
  const rows = answer.counts.map((row) => {
    const tr = el("tr");
    tr.dataset.kind = row.kind;
    tr.append(el("td", null, row.label), el("td", "erasure-number", fill(S.rows, { count: row.count })));
    return tr;
  });
  const total = el("tr");
  total.append(el("td", null, ""), el("td", "erasure-number", fill(S.total, { total: answer.total })));
  const [thead, tbody, tfoot] = [el("thead"), el("tbody"), el("tfoot")];
  thead.append(head);
  tbody.append(...rows);
  tfoot.append(total);
  const table = el("table", "audit-table erasure-counts");
  table.append(el("caption", "sr-only", S.countsCaption), thead, tbody, tfoot);
  return table;
}

function conversationRow(found) {
  const tr = el("tr");
  tr.append(el("td", "erasure-id", found.conversation_id), el("td", null, found.name || S.noName),
    el("td", null, found.started_at ? formatDateTime(found.started_at) : "—"), el("td", null, fill(S.rows, { count: found.tickets })));
  return tr;
}

// A different customer (or kind) than the one previewed: the preview no longer applies.
function forget() {
  page.asked = null;
  $("erasure-review").hidden = true;
  $("erasure-confirm").value = "";
}

function showPreview(answer) {
  $("erasure-summary").textContent = answer.summary;
  $("erasure-conversations").replaceChildren(...answer.conversations.map(conversationRow));
  const hiddenCount = answer.conversation_count - answer.conversations.length;
  $("erasure-more").hidden = hiddenCount <= 0;
  $("erasure-more").textContent = hiddenCount > 0
    ? fill(S.more, { count: hiddenCount, shown: answer.conversations.length }) : "";
  $("erasure-counts").replaceChildren(countsTable(answer));
  $("erasure-confirm-label").textContent = fill(S.confirm, { by: byLabel(answer.by) });
  $("erasure-confirm").value = "";
  $("erasure-done").hidden = true;
  $("erasure-review").hidden = false;
  $("erasure-review-heading").focus();
}

function showDone(answer) {
  forget();
  $("erasure-done-summary").textContent = fill(S.done, { summary: answer.summary });
  $("erasure-done-counts").replaceChildren(countsTable(answer));
  $("erasure-value").value = "";
  $("erasure-done").hidden = false;
  $("erasure-done-heading").focus();
}

// Runs one request with the button disabled; a refusal (404, 409, 422 ...) shows the server's Japanese message.
async function withButton(button, status, action) {
  button.disabled = true;
  pageAlert("");
  $("erasure-status").textContent = status;
  try {
    await action();
    $("erasure-status").textContent = "";
  } catch (err) {
    $("erasure-status").textContent = "";
    if (err.status === 401) $("login-needed").hidden = false;
    else pageAlert(err.message);
  } finally {
    button.disabled = false;
  }
}

function init() {
  for (const radio of document.querySelectorAll('input[name="erasure-by"]')) {
    radio.addEventListener("change", () => {
      $("erasure-value-label").textContent = byLabel(chosenBy());
      $("erasure-value").type = chosenBy() === "email" ? "email" : "text";
      forget();
    });
  }
  $("erasure-value").addEventListener("input", forget);
  $("erasure-find").addEventListener("submit", (event) => {
    event.preventDefault();
    forget();  // a refused look-up must not leave the previous customer's preview to confirm
    const asked = { by: chosenBy(), value: $("erasure-value").value };
    withButton($("erasure-preview"), S.looking, async () => {
      const answer = await call("POST", "/api/admin/erasure/preview", asked);
      page.asked = asked;
      showPreview(answer);
    });
  });
  $("erasure-confirm-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!page.asked) return;
    const body = { ...page.asked, confirm: $("erasure-confirm").value };
    withButton($("erasure-submit"), S.deleting, async () => {
      showDone(await call("POST", "/api/admin/erasure", body));
    });
  });
  $("erasure-cancel").addEventListener("click", () => {
    forget();
    $("erasure-value").focus();
  });
}

document.addEventListener("DOMContentLoaded", () => startAdminPage(page, "erasure-view", init));
