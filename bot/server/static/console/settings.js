/*
 * 対応の設定 (admins only): the desk's timings (GET /api/admin/settings), each with a number field,
 * 「保存する」 (PUT /api/admin/settings/{name} {value}) and 「初期値に戻す」 ({value: null}). The
 * server checks the range and answers in Japanese (422), shown in the alert line; texts go in with
 * textContent only (dom.js's el()).
 */
"use strict";

const S = {
  save: "保存する",
  reset: "初期値に戻す",
  saving: "保存しています…",
  saved: "「{label}」を {value}{unit} にしました。",
  resetDone: "「{label}」を初期値（{value}{unit}）に戻しました。",
  start: "初期値: {value}{unit}（環境変数 {env}）",
  changed: "{by} さんが {at} に変更",
  unchanged: "初期値のまま",
  range: "0〜{maximum}{unit}（0 で止めます）",
};
const page = { csrf: null };

function call(method, path, body) {
  return jsonRequest(method, path, body, page.csrf);
}

function settingNode(s) {
  const section = el("section", "setting");
  section.dataset.setting = s.name;
  const id = `setting-${s.name}`;
  const heading = el("h2", "setting-title", s.label);
  heading.id = `${id}-heading`;
  section.setAttribute("aria-labelledby", heading.id);
  const help = el("p", "muted", s.help);
  help.id = `${id}-help`;
  const field = el("div", "agent-field");
  const label = el("label", null, `${s.label}（${s.unit}）`);
  label.htmlFor = id;
  const input = el("input");
  Object.assign(input, { id, type: "number", min: "0", max: String(s.maximum), step: "1", value: String(s.value) });
  input.setAttribute("aria-describedby", `${id}-help ${id}-range`);
  field.append(label, input, el("span", "muted", fill(S.range, { maximum: s.maximum, unit: s.unit })));
  field.lastChild.id = `${id}-range`;
  const save = el("button", "primary setting-save", S.save);
  save.type = "button";
  const reset = el("button", "setting-reset", S.reset);
  reset.type = "button";
  reset.disabled = !s.changed_by;
  save.addEventListener("click", () => change(save, s, input.value.trim() === "" ? "" : input.value.trim()));
  reset.addEventListener("click", () => change(reset, s, null));
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.isComposing) save.click();
  });
  const facts = el("p", "muted setting-facts",
    `${fill(S.start, { value: s.default, unit: s.unit, env: s.env })}・${
      s.changed_by ? fill(S.changed, { by: s.changed_by_name, at: formatDateTime(s.changed_at) }) : S.unchanged}`);
  const actions = el("div", "setting-actions");
  actions.append(save, reset);
  section.append(heading, help, field, actions, facts);
  return section;
}

function show(settings) {
  $("settings-list").replaceChildren(...settings.map(settingNode));
}

async function change(button, s, value) {
  button.disabled = true;
  pageAlert("");
  $("settings-status").textContent = S.saving;
  try {
    const answer = await call("PUT", `/api/admin/settings/${encodeURIComponent(s.name)}`, { value });
    const now = answer.setting;
    $("settings-status").textContent = fill(value === null ? S.resetDone : S.saved,
      { label: now.label, value: now.value, unit: now.unit });
    await load();
  } catch (err) {
    $("settings-status").textContent = "";
    pageLoadFailed(err);  // 401: the login link; else the server's message
    button.disabled = false;
  }
}

async function load() {
  show((await call("GET", "/api/admin/settings")).settings);
}

document.addEventListener("DOMContentLoaded", () => startAdminPage(page, "settings-view", load));
