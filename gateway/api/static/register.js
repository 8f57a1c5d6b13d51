// The hazard register (隐患台账): the list (all, supervised 挂牌督办, overdue), one entry with
// its five in place (五到位) and history, and the workflow buttons the role may use:
// registered → start (with the five) → rectifying → submit → pending verification →
// verify and close / reject; a regulator lists an open entry for supervision.
import { t } from "./i18n.js";
import { $, api, ask, esc, fmtTime, may, pointName, sourceName, toast } from "./util.js";

const reg = { tab: "all", shown: null, rows: [] };
const FIVE = ["measures", "funds_cny", "responsible_person", "deadline_ms", "contingency_plan"];

export function entryTitle(e) {
  // entries the gateway opened by itself are titled in the reader's language
  if (e.source !== "inspection" && e.point) {
    return t(`auto_${e.source}`, { point: `${pointName(e.point)} (${e.point})` });
  }
  return e.title;
}

const toLocal = (ms) => {
  if (!ms) return "";
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
};

function fiveFields(e, required) {
  return [["measures", "textarea", e.measures, required],
    ["funds_cny", "number", e.funds_cny, required],
    ["responsible_person", "text", e.responsible_person, required],
    ["deadline_ms", "datetime-local", toLocal(e.deadline_ms), required],
    ["contingency_plan", "textarea", e.contingency_plan, required]];
}

function fiveBody(v) {
  const five = {};
  for (const k of FIVE) {
    if (v[k] === undefined || v[k] === "") continue;
    five[k] = k === "funds_cny" ? Number(v[k]) : k === "deadline_ms" ? new Date(v[k]).getTime()
      : v[k];
  }
  return five;
}

const STEPS = {
  start: (e) => ask(t("start"), fiveFields(e, e.level === "major"))
    .then((v) => v && { action: "start", five: fiveBody(v) }),
  update_five: (e) => ask(t("update_five"), fiveFields(e, false))
    .then((v) => v && { action: "update_five", five: fiveBody(v) }),
  submit: () => ask(t("submit"), [["text", "textarea", "", false]])
    .then((v) => v && { action: "submit", ...(v.text ? { comment: v.text } : {}) }),
  verify_pass: () => ask(t("verify_pass"), [["verifier", "text", ""], ["text", "textarea", ""]])
    .then((v) => v && { action: "verify_pass", verifier: v.verifier, comment: v.text }),
  verify_fail: () => ask(t("verify_fail"), [["verifier", "text", ""], ["text", "textarea", ""]])
    .then((v) => v && { action: "verify_fail", verifier: v.verifier, comment: v.text }),
};
const BY_STATE = { registered: ["start", "update_five"], rectifying: ["submit", "update_five"],
  pending_verification: ["verify_pass", "verify_fail"] };

export async function refreshRegister() {
  const path = { all: "/register", supervised: "/register/supervised",
    overdue: "/register/overdue" }[reg.tab];
  const [rows, all] = await Promise.all([api(path), reg.tab === "all" ? null : api("/register")]);
  reg.rows = rows;
  const every = all || rows;
  const body = $("#register tbody");
  body.innerHTML = "";
  const now = Date.now();
  for (const r of [...rows].sort((a, b) => b.id - a.id)) {
    const tr = document.createElement("tr");
    tr.dataset.entry = r.id;
    tr.className = r.id === reg.shown ? "selected" : "";
    const overdue = r.deadline_ms && r.deadline_ms < now && r.state !== "closed";
    tr.innerHTML = `<td>${r.id}</td><td title="${esc(r.hazard_source)}">${
      esc(sourceName(r.hazard_source))}</td>
      <td class="entry-title" title="${esc(r.title)}">${esc(entryTitle(r))}</td>
      <td>${esc(t(r.level))}</td><td class="entry-state">${esc(t(r.state))}</td>
      <td class="${overdue ? "error" : ""}">${esc(r.deadline_ms ? fmtTime(r.deadline_ms) : "–")}</td>
      <td class="entry-supervised">${esc(r.supervised ? t("yes") : t("no"))}</td>`;
    tr.addEventListener("click", () => showEntry(r.id));
    body.appendChild(tr);
  }
  $("#register-count").textContent =
    `(${every.filter((r) => r.state !== "closed").length} / ${every.length})`;
  document.querySelectorAll("#register-tabs button").forEach((b) => {
    b.classList.toggle("picked", b.dataset.tab === reg.tab);
  });
  if (reg.shown) await showEntry(reg.shown);
}

export function pickTab(tab) {
  reg.tab = tab;
  return refreshRegister();
}

function transitionLine(x) {
  return `<li>${esc(fmtTime(x.ts_ms))} <span class="ev">${esc(t(`a_${x.action}`))}</span>
    · ${esc(t(x.from_state))} → ${esc(t(x.to_state))} · ${esc(x.actor)}${
    x.verifier ? ` · ${esc(t("verifier"))} ${esc(x.verifier)}` : ""}${
    x.comment ? ` · ${esc(x.comment)}` : ""}</li>`;
}

export async function showEntry(id) {
  reg.shown = id;
  let e;
  try {
    e = await api(`/register/${id}`);
  } catch (err) {
    toast(err.message, true);
    return;
  }
  const steps = may("register_transition") ? BY_STATE[e.state] || [] : [];
  const canList = may("supervise") && e.state !== "closed" && e.listed_ms == null;
  const five = FIVE.map((k) => `<dt>${esc(t(k))}</dt><dd class="five-${k}">${esc(
    k === "deadline_ms" ? (e[k] ? fmtTime(e[k]) : "–") : e[k] ?? "–")}</dd>`).join("");
  $("#entry").innerHTML = `<h4 id="entry-title">#${e.id} ${esc(entryTitle(e))}
      <span class="entry-state">${esc(t(e.state))}</span></h4>
    <dl><dt>${esc(t("source"))}</dt><dd>${esc(sourceName(e.hazard_source))}</dd>
      ${e.point ? `<dt>${esc(t("point"))}</dt><dd>${esc(pointName(e.point))} (${esc(e.point)})</dd>`
        : ""}
      <dt>${esc(t("level"))}</dt><dd>${esc(t(e.level))}</dd>
      <dt>${esc(t("entry_source"))}</dt><dd>${esc(t(`s_${e.source}`))}</dd>
      <dt>${esc(t("supervised"))}</dt><dd class="entry-supervised">${esc(e.supervised
        ? t("yes") : t("no"))}${e.listed_by ? ` · ${esc(t("listed"))} ${esc(e.listed_by)}` : ""}</dd>
      ${e.description ? `<dt>${esc(t("description"))}</dt><dd>${esc(e.description)}</dd>` : ""}
    </dl>
    <h5>${esc(t("five"))}</h5><dl class="five">${five}</dl>
    <div class="entry-actions">${steps.map((s) => `<button data-step="${s}">${esc(t(s))}</button>`)
      .join("")}${canList ? `<button data-step="supervise">${esc(t("supervise"))}</button>` : ""}</div>
    <h5>${esc(t("transitions"))}</h5>
    <ol class="history" id="entry-history"><li>${esc(fmtTime(e.created_ms))} <span class="ev">${
      esc(t("a_create"))}</span> · ${esc(e.created_by)}</li>${e.transitions.map(transitionLine)
      .join("")}${e.listed_ms ? `<li>${esc(fmtTime(e.listed_ms))} <span class="ev">${
      esc(t("a_supervise"))}</span> · ${esc(e.listed_by)}</li>` : ""}</ol>`;
  document.querySelectorAll("#entry button[data-step]").forEach((b) => {
    b.addEventListener("click", () => step(e, b.dataset.step));
  });
}

async function step(e, name) {
  try {
    if (name === "supervise") {
      await api(`/register/${e.id}/supervise`, { method: "POST" });
    } else {
      const body = await STEPS[name](e);
      if (!body) return;
      await api(`/register/${e.id}/transition`, { method: "POST", body: JSON.stringify(body) });
    }
    toast(t("moved_ok"));
    await refreshRegister();
  } catch (err) {
    toast(err.message, true);
  }
}
