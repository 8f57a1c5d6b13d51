// What every panel shares: the session (token, who, the plant's names), the API call, and
// how ids, levels and values are shown to people.
import { lang, t } from "./i18n.js";

export const session = {
  // the token lives as long as the tab (sessionStorage), not forever in the browser profile
  token: sessionStorage.getItem("hazgw.token") || "",
  me: null,
  site: { points: {}, sources: [], equipment: {}, name: "", enterprise: "" },
  onSignOut: () => {},
};

export const $ = (sel) => document.querySelector(sel);
export const esc = (s) => String(s ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

export function may(action) { return !!session.me && session.me.may.includes(action); }

export async function api(path, options = {}) {
  const res = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${session.token}`, "Content-Type": "application/json",
      ...(options.headers || {}) },
  });
  if (res.status === 401) { session.onSignOut(); throw new Error(t("bad_token")); }
  const body = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
  if (!res.ok) {
    const detail = body?.detail;
    throw new Error(typeof detail === "string" ? detail
      : Array.isArray(detail) ? detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`)
        .join("; ") : JSON.stringify(detail ?? res.status));
  }
  return body;
}

const locale = () => (lang.current === "zh" ? "zh-CN" : "en-GB");

export function fmtTime(ms) {
  if (ms == null || ms < 0) return "";
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  const hms = d.toLocaleTimeString(locale(), { hour12: false });
  return today ? hms : `${d.toLocaleDateString(locale())} ${hms}`;
}

export function fmtClock(ms, withSeconds = true) {
  return new Date(ms).toLocaleTimeString(locale(), { hour12: false, hour: "2-digit",
    minute: "2-digit", ...(withSeconds ? { second: "2-digit" } : {}) });
}

export function fmtNum(x) {
  if (x == null || Number.isNaN(x)) return "–";
  if (x === 0) return "0";
  return Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2).replace(/\.?0+$/, "")
    : x.toPrecision(2);
}

export const unitOf = (point) => session.site.points[point]?.unit || "";
export const withUnit = (x, point) => {
  const u = unitOf(point);
  return u ? `${fmtNum(x)} ${u}` : fmtNum(x);
};

// a point's name for people (its equipment's name and kind when it has none); id on hover
export function pointName(point) {
  const p = session.site.points[point];
  if (!p) return point ?? "";
  if (p.name) return p.name;
  const eq = session.site.equipment[p.equipment];
  return eq ? `${eq} · ${t(`k_${p.kind}`)}` : point;
}

export function sourceName(id) {
  return session.site.sources.find((s) => s.id === id)?.name || id;
}

export const stateName = (s) => t(s === "ack" ? "ack_state" : s);

// a device alarm's id is "<edge>/<device>:device": shown as "device (edge)"
export function deviceName(alarmId) {
  const name = alarmId.slice(0, alarmId.lastIndexOf(":"));
  const [edge, device] = name.split("/");
  return device ? `${device} (${edge})` : name;
}

const PROCESS_LEVELS = { 2: "HH", 1: "H", 0: "normal", "-1": "L", "-2": "LL" };

function oneLevel(a, level, name) {
  if (name === "normal" || level === 0) return t("normal");
  // GB/T 50493 names the two gas alarm levels
  if (a.gb50493_level !== null && a.gb50493_level !== undefined && level > 0) {
    return t(level === 2 ? "gas_l2" : "gas_l1");
  }
  if (a.alarm_type === "process" && a.kind === "digital") return t("lvl_active");
  return t(`lvl_${name}`);
}

export function levelLabel(a) {
  if (a.alarm_type === "device") return a.level ? t("off_line") : t("normal");
  // a latching alarm shows the highest level reached; the level it is at now beside it
  const shown = oneLevel(a, a.level, a.level_name);
  if (a.alarm_type !== "process" || a.current_level === undefined
      || a.current_level === a.level) return shown;
  return `${shown} · ${t("now")} ${oneLevel(a, a.current_level, PROCESS_LEVELS[a.current_level])}`;
}

// the value cell: what the rule compares, in the point's unit
export function valueText(a) {
  const u = unitOf(a.point);
  if (a.alarm_type === "device" || a.alarm_type === "vote") {
    return `${(a.points || []).length} ${t("points_of")}`;
  }
  if (a.alarm_type === "roc") {
    const lim = a.limit == null ? "–" : fmtNum(a.limit);
    return `${withUnit(a.value, a.point)} · ${t("rate_limit", { limit: lim, unit: u })}`;
  }
  if (a.alarm_type === "predictive") {
    if (a.limit == null) return withUnit(a.value, a.point);
    const key = a.forecast_s != null ? "reaches_in" : "reaches";
    return `${withUnit(a.value, a.point)} · ${t(key, { limit: fmtNum(a.limit), unit: u,
      min: a.forecast_s != null ? Math.max(1, Math.round(a.forecast_s / 60)) : "" })}`;
  }
  if (a.kind === "digital") return a.value ? "1" : "0";
  if (a.limit == null) return withUnit(a.value, a.point);
  return `${withUnit(a.value, a.point)} / ${fmtNum(a.limit)}`;
}

let toastTimer = null;
export function toast(text, bad = false) {
  const el = $("#toast");
  el.textContent = text;
  el.className = bad ? "show bad" : "show";
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.className = ""; }, 4000);
}

// A small form in a <dialog>; resolves to the values, or null when cancelled.
// fields: [name, type, value, required?]; type "textarea", "select:a,b", or an input type
export function ask(title, fields) {
  const dialog = $("#dialog");
  $("#dialog-title").textContent = title;
  const box = $("#dialog-fields");
  box.innerHTML = "";
  for (const [name, type, value, required = true] of fields) {
    const label = document.createElement("label");
    label.textContent = t(name);
    let input;
    if (type === "textarea") {
      input = document.createElement("textarea");
    } else if (type.startsWith("select:")) {
      input = document.createElement("select");
      for (const opt of type.slice(7).split(",")) input.add(new Option(t(opt), opt));
    } else {
      input = document.createElement("input");
      input.type = type;
      if (type === "number") input.step = "any";
    }
    input.name = name;
    input.value = value ?? "";
    input.required = required;
    label.append(input);
    box.append(label);
  }
  return new Promise((resolve) => {
    const done = (ok) => {
      dialog.close();
      resolve(ok ? Object.fromEntries(new FormData($("#dialog-form"))) : null);
    };
    $("#dialog-cancel").onclick = () => done(false);
    $("#dialog-form").onsubmit = (ev) => {
      ev.preventDefault();
      if ($("#dialog-form").reportValidity()) done(true);
    };
    dialog.showModal();
  });
}
