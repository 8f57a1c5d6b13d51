// The alarm list: filters, search and sort; the actions each role may take; the banner and
// the sound for new emergency and high alarms (silenced per operator, and logged); the
// unacknowledged count in the tab title.
import { t } from "./i18n.js";
import {
  $, api, ask, deviceName, esc, fmtTime, levelLabel, may, pointName, session, sourceName,
  stateName, toast, valueText, withUnit,
} from "./util.js";

export const view = {
  alarms: [],
  filters: { source: "", priority: "", state: "", type: "", q: "", showAcked: true },
  sort: { key: "", dir: 1 },
  selected: null,            // alarm id shown in the detail panel
  onSelect: async () => {},
  onChange: async () => {},
};

const UNHANDLED = ["unack", "rtn_unack"];
const SORTS = {
  priority: (a) => a.priority, time: (a) => a.ts, point: (a) => pointName(a.point) || a.alarm_id,
  source: (a) => sourceName(a.source), state: (a) => a.state,
};

function matches(a, f) {
  if (f.source && a.source !== f.source) return false;
  if (f.priority && String(a.priority) !== f.priority) return false;
  if (f.state && a.state !== f.state) return false;
  if (f.type && a.alarm_type !== f.type) return false;
  if (!f.showAcked && a.state === "ack") return false;
  if (f.q) {
    const hay = [a.alarm_id, a.point, pointName(a.point), a.source, sourceName(a.source),
      a.equipment, ...(a.points || [])].join(" ").toLowerCase();
    if (!hay.includes(f.q.toLowerCase())) return false;
  }
  return true;
}

function pointCell(a) {
  // a device off line is one row for all its points, listed under its name
  if (a.alarm_type === "device" || a.alarm_type === "vote") {
    const name = a.alarm_type === "device" ? deviceName(a.alarm_id)
      : a.alarm_id.slice(0, a.alarm_id.lastIndexOf(":"));
    return `<span title="${esc(a.alarm_id)}">${esc(name)}</span><div class="members">${
      esc(t("points_of"))}: ${(a.points || []).map((p) => `<span title="${esc(p)}">${
      esc(pointName(p))}</span>`).join(", ")}</div>`;
  }
  return `<span class="point-name" title="${esc(a.point)}">${esc(pointName(a.point))}</span>
    <small class="point-id">${esc(a.point)}</small>`;
}

function buttons(a) {
  const b = (cls, show, label, disabled = false) => (show
    ? `<button class="${cls}" ${disabled ? "disabled" : ""}>${esc(t(label))}</button>` : "");
  const active = ["unack", "ack", "rtn_unack"].includes(a.state);
  return [
    b("ack", may("acknowledge"), "ack", !UNHANDLED.includes(a.state)),
    b("ack-comment", may("acknowledge") && UNHANDLED.includes(a.state), "ack_comment"),
    b("shelve", may("shelve") && active, "shelve"),
    b("unshelve", may("shelve") && a.state === "shelved", "unshelve"),
    b("remove", may("out_of_service") && active, "remove_service"),
    b("return", may("out_of_service") && a.state === "out_of_service", "return_service"),
    b("comment", may("comment"), "comment"),
    b("register", may("register_create") && !!a.point, "register_short"),
  ].join("");
}

export function renderAlarms() {
  const f = view.filters;
  let rows = view.alarms.filter((a) => matches(a, f));
  if (view.sort.key) {
    const key = SORTS[view.sort.key];
    rows = [...rows].sort((x, y) => {
      const a = key(x); const b = key(y);
      return (a < b ? -1 : a > b ? 1 : 0) * view.sort.dir;
    });
  }
  const body = $("#alarms tbody");
  body.innerHTML = "";
  for (const a of rows) {
    const tr = document.createElement("tr");
    tr.dataset.alarm = a.alarm_id;
    tr.className = `${a.state}${a.alarm_id === view.selected ? " selected" : ""}`;
    const gas = a.gb50493_level ? " level-gas" : "";
    tr.innerHTML = `
      <td><span class="prio prio-${a.priority}">${esc(t(`p${a.priority}`))}</span></td>
      <td>${esc(fmtTime(a.ts))}</td><td class="point">${pointCell(a)}</td>
      <td class="source-name" title="${esc(a.source)}">${esc(sourceName(a.source))}</td>
      <td>${esc(t(a.alarm_type))}</td>
      <td class="level${gas}">${esc(levelLabel(a))}</td>
      <td class="value">${esc(valueText(a))}</td>
      <td class="state">${esc(stateName(a.state))}</td>
      <td class="actions">${buttons(a)}</td>`;
    tr.addEventListener("click", (ev) => onClick(ev, a));
    body.appendChild(tr);
  }
  const total = view.alarms.length;
  $("#alarm-count").textContent = total ? `(${rows.length} / ${total})` : "";
  $("#no-alarms").textContent = total ? t("no_match") : t("no_alarms");
  $("#no-alarms").classList.toggle("hidden", rows.length > 0);
  document.querySelectorAll("#alarms th[data-sort]").forEach((th) => {
    th.dataset.dir = th.dataset.sort === view.sort.key ? (view.sort.dir > 0 ? "▲" : "▼") : "";
  });
}

export function defaultTitle(a) {
  return t("default_title", { point: `${pointName(a.point)} (${a.point})`,
    level: levelLabel(a), value: withUnit(a.value, a.point) });
}

const ACTIONS = {
  ack: async (a, path) => {
    await api(`${path}/acknowledge`, { method: "POST", body: "{}" });
    return t("acknowledged");
  },
  "ack-comment": async (a, path) => {
    const v = await ask(t("ack_comment"), [["text", "textarea", ""]]);
    if (!v) return null;
    await api(`${path}/acknowledge`, { method: "POST", body: JSON.stringify({ comment: v.text }) });
    return t("acknowledged");
  },
  shelve: async (a, path) => {
    const v = await ask(t("shelve"), [["minutes", "number", "30"], ["reason", "text", ""]]);
    if (!v) return null;
    await api(`${path}/shelve`, { method: "POST",
      body: JSON.stringify({ minutes: Number(v.minutes), reason: v.reason }) });
    return t("shelved_ok");
  },
  unshelve: async (a, path) => {
    await api(`${path}/unshelve`, { method: "POST" });
    return t("unshelved_ok");
  },
  remove: async (a, path) => {
    const v = await ask(t("remove_service"), [["reason", "text", ""]]);
    if (!v) return null;
    await api(`${path}/out-of-service`, { method: "POST", body: JSON.stringify(v) });
    return t("removed_ok");
  },
  return: async (a, path) => {
    await api(`${path}/return-to-service`, { method: "POST" });
    return t("returned_ok");
  },
  comment: async (a, path) => {
    const v = await ask(t("comment"), [["text", "textarea", ""]]);
    if (!v) return null;
    await api(`${path}/comment`, { method: "POST", body: JSON.stringify({ text: v.text }) });
    return t("commented");
  },
  register: async (a) => {
    const v = await ask(t("register_hazard"), [
      ["title_col", "text", defaultTitle(a)],
      ["level", "select:general,major", a.priority === 1 ? "major" : "general"],
      ["description", "textarea", "", false]]);
    if (!v) return null;
    await api("/register", { method: "POST", body: JSON.stringify({
      hazard_source: a.source, title: v.title_col, level: v.level, point: a.point,
      source: "inspection", description: v.description || "" }) });
    return t("registered_ok");
  },
};

async function onClick(ev, a) {
  const button = ev.target.closest("button");
  try {
    if (!button) {
      view.selected = a.alarm_id;
      renderAlarms();
      await view.onSelect(a.alarm_id);
      return;
    }
    const act = ACTIONS[button.className.split(" ")[0]];
    const done = await act(a, `/alarms/${encodeURIComponent(a.alarm_id)}`);
    if (done === null) return;
    toast(`${done}: ${pointName(a.point) || a.alarm_id}`);
    await view.onChange(a.alarm_id);
  } catch (err) {
    toast(err.message, true);
  }
}

// Banner and sound: a new emergency or high alarm (or one climbing to a new level) sounds
// until it is acknowledged or the operator silences it; a later new one sounds again.
const banner = { announced: new Map(), sounding: [], silenced: false };

export function announce() {
  const now = view.alarms.filter((a) => a.priority <= 2 && a.state === "unack" && a.level);
  const fresh = now.filter((a) => banner.announced.get(a.alarm_id) !== a.level);
  banner.announced = new Map(now.map((a) => [a.alarm_id, a.level]));
  banner.sounding = now;
  if (fresh.length) banner.silenced = false;
  const el = $("#banner");
  const audio = $("#alarm-sound");
  if (!now.length) {
    el.classList.add("hidden");
    audio.pause();
    return;
  }
  const top = now[0];
  el.className = `banner prio-${top.priority}${banner.silenced ? " silenced" : ""}`;
  $("#banner-text").textContent = `${t(`p${top.priority}`)} · ${
    pointName(top.point) || deviceName(top.alarm_id)} · ${levelLabel(top)} · ${valueText(top)}${
    now.length > 1 ? ` (+${now.length - 1})` : ""}`;
  $("#banner-text").dataset.alarm = top.alarm_id;
  $("#silence").textContent = banner.silenced ? t("silenced") : t("silence");
  $("#silence").disabled = banner.silenced;
  if (!banner.silenced && audio.paused) {
    audio.currentTime = 0;
    audio.play().catch(() => {});       // a browser may refuse before the first click
  }
  if (banner.silenced) audio.pause();
}

export async function silence() {
  banner.silenced = true;
  $("#alarm-sound").pause();
  announce();
  try {
    await api("/console/silence", { method: "POST",
      body: JSON.stringify({ alarms: banner.sounding.map((a) => a.alarm_id) }) });
    toast(t("silenced"));
  } catch (err) {
    toast(err.message, true);
  }
}

export function unackedCount() {
  return view.alarms.filter((a) => UNHANDLED.includes(a.state)).length;
}
