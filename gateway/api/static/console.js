// The operator console: plain ES modules, no build step. It reads the gateway's REST API
// with the person's token and listens to /live (server-sent events) to update itself.
// Panels: overview (overview.js), alarms with banner and sound (alarms.js), point detail
// and trend (detail.js, trend.js), hazard register (register.js), shift log and
// escalations (shift.js); words in i18n.js.
import { announce, renderAlarms, silence, unackedCount, view } from "./alarms.js";
import { refreshDetail, showDetail, stopDetail } from "./detail.js";
import { lang, t } from "./i18n.js";
import { renderOverview } from "./overview.js";
import { pickTab, refreshRegister } from "./register.js";
import { handOver, refreshEscalations, refreshShift } from "./shift.js";
import { $, api, session, toast } from "./util.js";

let events = null;
let healthTimer = null;
const HEALTH_EVERY_MS = 10_000;

// The gateway's own trouble, beside the plant's: a notification given up (someone was not
// told) or a loop failing now, from /health
async function checkHealth() {
  if (!session.me) return;
  const h = await api("/health");
  const el = $("#gateway-banner");
  const failing = Object.entries(h.loops || {}).filter(([, l]) => l.state === "failing")
    .map(([n]) => n);
  const parts = [];
  if (h.notifications_failed) parts.push(t("gw_failed", { n: h.notifications_failed }));
  if (failing.length) parts.push(t("gw_loops", { loops: failing.join(", ") }));
  el.textContent = parts.length ? `${t("gw_degraded")}: ${parts.join(" · ")}` : "";
  el.classList.toggle("hidden", !parts.length);
}

function titleKey() { return `title_${session.me?.role || "operator"}`; }

function setTitle() {
  const n = session.me ? unackedCount() : 0;
  const name = session.site.name ? ` — ${session.site.name}` : "";
  document.title = `${n ? `(${n}) ` : ""}${t(titleKey())}${name}`;
  $("#page-title").textContent = t(titleKey());
}

function applyLanguage() {
  document.documentElement.lang = lang.current === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  });
  $("#lang").textContent = lang.current === "zh" ? "English" : "中文";
  setLive(events && events.readyState === EventSource.OPEN ? "live" : "offline");
  fillFilterOptions();
  setTitle();
  if (!session.me) return;
  $("#who").textContent = `${session.me.name} (${t(`r_${session.me.role}`)})`;
  renderAll();
  refreshRegister().catch((err) => toast(err.message, true));
  refreshShift().catch(() => {});
  refreshEscalations().catch(() => {});
  refreshDetail(view.alarms);
}

function setLive(state) {
  const el = $("#live");
  el.textContent = t(state);
  el.className = `live ${state === "live" ? "on" : "off"}`;
}

function fillFilterOptions() {
  const opt = (sel, values, label) => {
    const el = $(sel);
    const keep = el.value;
    el.innerHTML = "";
    el.add(new Option(`${t(label)}: ${t("all")}`, ""));
    for (const [v, text] of values) el.add(new Option(text, v));
    el.value = keep;
  };
  opt("#f-source", session.site.sources.map((s) => [s.id, s.name]), "source");
  opt("#f-priority", [1, 2, 3, 4].map((p) => [String(p), t(`p${p}`)]), "priority");
  opt("#f-state", ["unack", "ack", "rtn_unack", "shelved", "suppressed", "out_of_service"]
    .map((s) => [s, t(s === "ack" ? "ack_state" : s)]), "state");
  opt("#f-type", ["process", "roc", "predictive", "fault", "stale", "flatline", "tamper", "vote",
    "device", "flood"].map((k) => [k, t(k)]), "type");
}

function renderAll() {
  renderOverview(view.alarms, view.filters, (source) => {
    view.filters.source = view.filters.source === source ? "" : source;
    $("#f-source").value = view.filters.source;
    renderAll();
  });
  renderAlarms();
  announce();
  setTitle();
}

async function refreshAlarms() {
  view.alarms = await api("/alarms");
  renderAll();
}

async function select(alarmId) {
  const a = view.alarms.find((x) => x.alarm_id === alarmId);
  if (a) await showDetail(a);
}
view.onSelect = select;
view.onChange = async () => {
  await refreshAlarms();
  await Promise.all([refreshDetail(view.alarms), refreshRegister(), refreshEscalations()]);
};

let pending = null;
function soon(fn) {           // coalesce bursts of live messages into one refresh
  clearTimeout(pending);
  pending = setTimeout(() => fn().catch((err) => toast(err.message, true)), 150);
}

const everything = async () => {
  await refreshAlarms();
  await Promise.all([refreshRegister(), refreshShift(), refreshEscalations()]);
};

function listen() {
  if (events) events.close();
  events = new EventSource(`/live?token=${encodeURIComponent(session.token)}`);
  events.onopen = () => setLive("live");
  events.onerror = () => setLive("reconnecting");
  events.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "hello" || msg.type === "resync") {
      setLive("live");
      soon(everything);
    } else if (msg.type === "alarms") {
      soon(async () => {
        await refreshAlarms();
        await Promise.all([refreshDetail(view.alarms), refreshEscalations()]);
      });
    } else if (msg.type === "register") {
      soon(refreshRegister);
    }
  };
}

async function signIn() {
  try {
    session.me = await api("/me");
    session.site = await api("/site");
  } catch (err) {
    session.me = null;
    $("#login-error").textContent = err.message;
    $("#login").classList.remove("hidden");
    return;
  }
  $("#login").classList.add("hidden");
  document.body.dataset.role = session.me.role;
  $("#enterprise").textContent = session.site.name || session.me.enterprise;
  $("#enterprise").title = session.me.enterprise;
  applyLanguage();
  await everything();
  listen();
  clearInterval(healthTimer);
  healthTimer = setInterval(() => checkHealth().catch(() => {}), HEALTH_EVERY_MS);
  checkHealth().catch(() => {});
}

function signOut() {
  sessionStorage.removeItem("hazgw.token");
  session.token = "";
  session.me = null;
  stopDetail();
  clearInterval(healthTimer);
  if (events) { events.close(); events = null; }
  setLive("offline");
  $("#alarm-sound").pause();
  $("#login").classList.remove("hidden");
}
session.onSignOut = signOut;

function useToken(token) {
  session.token = token;
  sessionStorage.setItem("hazgw.token", token);
  $("#login-error").textContent = "";
  signIn();
}

$("#login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  useToken($("#token").value.trim());
});
$("#signout").addEventListener("click", signOut);
$("#lang").addEventListener("click", () => {
  lang.current = lang.current === "zh" ? "en" : "zh";
  localStorage.setItem("hazgw.lang", lang.current);
  applyLanguage();
});
$("#silence").addEventListener("click", silence);
$("#banner-text").addEventListener("click", () => {
  const id = $("#banner-text").dataset.alarm;
  if (!id) return;
  view.selected = id;
  renderAlarms();
  select(id);
  document.querySelector(`tr[data-alarm="${CSS.escape(id)}"]`)?.scrollIntoView({ block: "center" });
});
for (const [sel, key] of [["#f-source", "source"], ["#f-priority", "priority"],
  ["#f-state", "state"], ["#f-type", "type"]]) {
  $(sel).addEventListener("change", () => { view.filters[key] = $(sel).value; renderAll(); });
}
$("#f-q").addEventListener("input", () => { view.filters.q = $("#f-q").value.trim(); renderAlarms(); });
$("#f-acked").addEventListener("change", () => {
  view.filters.showAcked = $("#f-acked").checked;
  renderAlarms();
});
$("#f-clear").addEventListener("click", () => {
  Object.assign(view.filters, { source: "", priority: "", state: "", type: "", q: "",
    showAcked: true });
  for (const sel of ["#f-source", "#f-priority", "#f-state", "#f-type", "#f-q"]) $(sel).value = "";
  $("#f-acked").checked = true;
  renderAll();
});
document.querySelectorAll("#alarms th[data-sort]").forEach((th) => {
  th.addEventListener("click", () => {
    const key = th.dataset.sort;
    view.sort = { key, dir: view.sort.key === key ? -view.sort.dir : 1 };
    renderAlarms();
  });
});
document.querySelectorAll("#register-tabs button").forEach((b) => {
  b.addEventListener("click", () => pickTab(b.dataset.tab).catch((err) => toast(err.message, true)));
});
$("#handover").addEventListener("click", handOver);
$("#alarm-sound").addEventListener("playing", (ev) => {
  ev.target.dataset.plays = String(Number(ev.target.dataset.plays || 0) + 1);
});

// a sign-in link (hazgw demo prints one) carries the token in the fragment, which never
// reaches a server log; it is moved to the tab's storage and taken out of the address bar
const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromLink) history.replaceState(null, "", location.pathname);
applyLanguage();
if (fromLink) useToken(fromLink);
else if (session.token) signIn();
