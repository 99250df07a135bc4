/*
 * 担当者の管理 (admins only): every agent's role, cap (同時対応数), status and skills, from
 * GET /api/admin/agents, each saved with POST /api/admin/agents/{username} (X-CSRF-Token from
 * GET /api/agent/me). A 401 shows a link to the console's login, a 403 the server's message.
 * Server data is only ever rendered with textContent.
 */
"use strict";

const S = {
  role: "役割",
  maxChats: "同時対応数",
  status: "状態",
  skills: "スキル（担当するカテゴリ。どれも選ばなければすべて）",
  load: "対応中 {load} / {cap}",
  save: "保存する",
  saved: "{name} さんの設定を保存しました。",
  network: "サーバーに接続できません。ネットワークを確認してください。",
};
const page = { csrf: null, data: null };

function call(method, path, body) {
  return jsonRequest(method, path, body, page.csrf);
}

function options(select, labels, current) {
  for (const [value, label] of Object.entries(labels)) {
    const option = el("option", null, label);
    option.value = value;
    option.selected = value === current;
    select.append(option);
  }
}

function field(labelText, control) {
  const wrap = el("div", "agent-field");
  const label = el("label", null, labelText);
  label.htmlFor = control.id;
  wrap.append(label, control);
  return wrap;
}

function agentCard(agent, index) {
  const data = page.data;
  const form = el("form", "agent-card-form");
  form.noValidate = true;  // the server checks the cap and says what is allowed, in Japanese
  form.dataset.username = agent.username;
  const card = el("fieldset", "agent-card");
  card.append(el("legend", null, `${agent.display_name}（${agent.username}）`));
  const prefix = `agent-${index}`;

  const role = el("select");
  role.id = `${prefix}-role`;
  options(role, data.roles, agent.role);
  const cap = el("input");
  cap.id = `${prefix}-max-chats`;
  cap.type = "number";
  cap.min = "1";
  cap.max = String(data.max_chats_limit);
  cap.step = "1";
  cap.required = true;
  cap.value = String(agent.max_chats);
  const status = el("select");
  status.id = `${prefix}-status`;
  options(status, data.statuses, agent.status);
  const fields = el("div", "agent-fields");
  fields.append(field(S.role, role), field(S.maxChats, cap), field(S.status, status),
    el("span", "desk-load", fill(S.load, { load: agent.load, cap: agent.max_chats })));

  const skills = el("fieldset", "agent-skills");
  skills.append(el("legend", null, S.skills));
  data.categories.forEach((category, i) => {
    const box = el("input");
    box.type = "checkbox";
    box.id = `${prefix}-skill-${i}`;
    box.value = category;
    box.checked = agent.skills.includes(category);
    const label = el("label");
    label.htmlFor = box.id;
    label.append(box, category);
    skills.append(label);
  });

  const save = el("button", "primary", S.save);
  save.type = "submit";
  save.setAttribute("aria-label", `${agent.display_name}（${agent.username}）の設定を${S.save}`);
  card.append(fields, skills, save);
  form.append(card);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    save.disabled = true;
    $("agents-status").textContent = "";
    pageAlert("");
    const chosen = [...skills.querySelectorAll("input:checked")].map((box) => box.value);
    try {
      await call("POST", `/api/admin/agents/${encodeURIComponent(agent.username)}`,
        { role: role.value, max_chats: cap.value, status: status.value, skills: chosen });
      $("agents-status").textContent = fill(S.saved, { name: agent.display_name });
      await load();
    } catch (err) {
      pageAlert(err.message);
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

async function load() {
  page.data = await call("GET", "/api/admin/agents");
  $("agent-list").replaceChildren(...page.data.agents.map(agentCard));
  $("agents-view").hidden = false;
}

async function init() {
  try {
    page.csrf = (await call("GET", "/api/agent/me")).csrf_token;
    await load();
  } catch (err) {
    pageLoadFailed(err);
  } finally {
    $("loading").hidden = true;
  }
}

document.addEventListener("DOMContentLoaded", init);
