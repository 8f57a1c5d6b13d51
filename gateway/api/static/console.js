// The operator console: plain ES module, no build step. It reads the gateway's REST API with
// the operator's token and listens to /live (server-sent events) to update itself.

const I18N = {
  en: {
    title: "Operator console", offline: "offline", live: "live", reconnecting: "reconnecting",
    signout: "Sign out", signin_title: "Sign in with your API token", token: "API token",
    signin: "Sign in", alarms: "Alarms", priority: "Priority", time: "Time", point: "Point",
    source: "Hazard source", type: "Type", level: "Level", value: "Value / limit",
    state: "State", actions: "Actions", no_alarms: "No standing alarms.",
    detail: "Point detail", pick_point: "Select an alarm to see its point.",
    register: "Hazard register", title_col: "Title", deadline: "Deadline",
    supervised: "Supervised", cancel: "Cancel", ok: "OK", ack: "Ack", register_short: "Register",
    shelve: "Shelve", comment: "Comment", register_hazard: "Register hazard",
    unshelve: "Unshelve", return_service: "Return to service", now: "now",
    unshelved_ok: "Unshelved", returned_ok: "Returned to service",
    minutes: "Minutes", reason: "Reason", text: "Comment", description: "Description",
    general: "general", major: "major", acknowledged: "Acknowledged", shelved_ok: "Shelved",
    commented: "Comment saved", registered_ok: "Hazard registered", limits: "Limits",
    recent: "Recent values", history: "Alarm history", transitions: "Transitions",
    no_trend: "No recent values.", bad_token: "That token is not accepted.", yes: "yes",
    no: "no", kind: "Kind", equipment: "Equipment", from_influx: "from InfluxDB",
    from_engine: "samples the rules keep",
    p1: "emergency", p2: "high", p3: "medium", p4: "low",
    unack: "unacknowledged", ack_state: "acknowledged", rtn_unack: "returned, unacked",
    shelved: "shelved", suppressed: "suppressed", out_of_service: "out of service",
    normal: "normal", registered: "registered", rectifying: "rectifying",
    pending_verification: "pending verification", closed: "closed",
    process: "process", roc: "rate of change", predictive: "predictive (not GB/T 50493)",
    fault: "sensor fault", stale: "no data", flatline: "stuck sensor", tamper: "tamper",
    vote: "voting", device: "device off line", off_line: "off line", points_of: "points",
  },
  zh: {
    title: "操作员控制台", offline: "离线", live: "实时", reconnecting: "重连中",
    signout: "退出", signin_title: "使用 API 令牌登录", token: "API 令牌", signin: "登录",
    alarms: "报警", priority: "优先级", time: "时间", point: "测点", source: "危险源",
    type: "类型", level: "级别", value: "数值 / 限值", state: "状态", actions: "操作",
    no_alarms: "当前无报警。", detail: "测点详情", pick_point: "选择一条报警查看测点。",
    register: "隐患台账", title_col: "标题", deadline: "整改期限", supervised: "挂牌督办",
    cancel: "取消", ok: "确定", ack: "确认", register_short: "登记", shelve: "搁置", comment: "备注",
    register_hazard: "登记隐患", minutes: "分钟", reason: "原因", text: "备注",
    unshelve: "取消搁置", return_service: "恢复投用", now: "当前",
    unshelved_ok: "已取消搁置", returned_ok: "已恢复投用",
    description: "描述", general: "一般", major: "重大", acknowledged: "已确认",
    shelved_ok: "已搁置", commented: "备注已保存", registered_ok: "隐患已登记",
    limits: "限值", recent: "近期数值", history: "报警历史", transitions: "流转记录",
    no_trend: "无近期数值。", bad_token: "令牌无效。", yes: "是", no: "否", kind: "类型",
    equipment: "设备", from_influx: "来自 InfluxDB", from_engine: "规则保留的样本",
    p1: "紧急", p2: "高", p3: "中", p4: "低",
    unack: "未确认", ack_state: "已确认", rtn_unack: "已恢复未确认", shelved: "已搁置",
    suppressed: "已抑制", out_of_service: "停用", normal: "正常",
    registered: "已登记", rectifying: "整改中", pending_verification: "待验收", closed: "已销号",
    process: "工艺", roc: "变化率", predictive: "预测预警（非 GB/T 50493 报警）",
    fault: "传感器故障", stale: "无数据", flatline: "传感器卡滞", tamper: "疑似篡改",
    vote: "表决", device: "设备离线", off_line: "离线", points_of: "测点",
  },
};

const $ = (sel) => document.querySelector(sel);
let lang = localStorage.getItem("hazgw.lang") ||
  ((navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en");
// the token lives as long as the tab (sessionStorage), not forever in the browser profile
let token = sessionStorage.getItem("hazgw.token") || "";
let me = null;
let alarms = [];
let selected = null;        // alarm id shown in the detail panel
let shownEntry = null;      // register entry whose transitions are shown
let events = null;

const t = (key) => (I18N[lang][key] ?? I18N.en[key] ?? key);
const stateName = (s) => t(s === "ack" ? "ack_state" : s);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function fmtTime(ms) {
  if (ms == null || ms < 0) return "";
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  const hms = d.toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB", { hour12: false });
  return today ? hms : `${d.toLocaleDateString(lang === "zh" ? "zh-CN" : "en-GB")} ${hms}`;
}

function fmtNum(x) {
  if (x == null || Number.isNaN(x)) return "–";
  return Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3);
}

const PROCESS_LEVELS = { 2: "HH", 1: "H", 0: "normal", "-1": "L", "-2": "LL" };

function oneLevel(a, level, name) {
  // GB/T 50493 names the two gas alarm levels; other alarms keep the engine's level name
  if (a.gb50493_level !== null && a.gb50493_level !== undefined && level > 0) {
    return lang === "zh" ? `${level === 2 ? "二" : "一"}级 (L${level})` : `L${level} (${name})`;
  }
  return name === "normal" ? t("normal") : name;
}

function pointCell(a) {
  // a device off line is one row for all its points, listed under its name
  if (a.alarm_type === "device") {
    const name = a.alarm_id.slice(0, a.alarm_id.lastIndexOf(":"));
    return `${esc(name)}<div class="members">${esc(t("points_of"))}: ${
      esc((a.points || []).join(", "))}</div>`;
  }
  return esc(a.point ?? a.alarm_id);
}

function levelLabel(a) {
  if (a.alarm_type === "device") return a.level ? t("off_line") : t("normal");
  // a latching alarm shows the highest level reached; the level it is at now beside it
  const shown = oneLevel(a, a.level, a.level_name);
  if (a.alarm_type !== "process" || a.current_level === undefined
      || a.current_level === a.level) return shown;
  return `${shown} · ${t("now")} ${oneLevel(a, a.current_level, PROCESS_LEVELS[a.current_level])}`;
}

function toast(text, bad = false) {
  const el = $("#toast");
  el.textContent = text;
  el.className = bad ? "show bad" : "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.className = ""; }, 4000);
}

async function api(path, options = {}) {
  const res = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json",
      ...(options.headers || {}) },
  });
  if (res.status === 401) { signOut(); throw new Error(t("bad_token")); }
  const body = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
  if (!res.ok) {
    const detail = body?.detail;
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail ?? res.status));
  }
  return body;
}

function applyLanguage() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  });
  $("#lang").textContent = lang === "zh" ? "English" : "中文";
  setLive(events && events.readyState === EventSource.OPEN ? "live" : "offline");
  renderAlarms();
  refreshRegister();
  if (selected) showDetail(selected);
  if (shownEntry) showEntry(shownEntry);
}

function setLive(state) {
  const el = $("#live");
  el.textContent = t(state);
  el.className = `live ${state === "live" ? "on" : "off"}`;
}

function may(action) { return me && me.may.includes(action); }

function renderAlarms() {
  const body = $("#alarms tbody");
  body.innerHTML = "";
  for (const a of alarms) {
    const tr = document.createElement("tr");
    tr.dataset.alarm = a.alarm_id;
    tr.className = `${a.state}${a.alarm_id === selected ? " selected" : ""}`;
    const gas = a.gb50493_level ? " level-gas" : "";
    tr.innerHTML = `
      <td><span class="prio prio-${a.priority}">${esc(t(`p${a.priority}`))}</span></td>
      <td>${esc(fmtTime(a.ts))}</td><td class="point">${pointCell(a)}</td>
      <td>${esc(a.source)}</td><td>${esc(t(a.alarm_type))}</td>
      <td class="level${gas}">${esc(levelLabel(a))}</td>
      <td>${esc(fmtNum(a.value))} / ${esc(fmtNum(a.limit))}</td>
      <td class="state">${esc(stateName(a.state))}</td>
      <td class="actions">
        <button class="ack" ${a.state === "unack" || a.state === "rtn_unack" ? "" : "disabled"}
          ${may("acknowledge") ? "" : "hidden"}>${esc(t("ack"))}</button>
        <button class="shelve" ${may("shelve") && ["unack", "ack", "rtn_unack"].includes(a.state)
          ? "" : "hidden"}>${esc(t("shelve"))}</button>
        <button class="unshelve" ${may("shelve") && a.state === "shelved" ? "" : "hidden"}
          >${esc(t("unshelve"))}</button>
        <button class="return" ${may("out_of_service") && a.state === "out_of_service"
          ? "" : "hidden"}>${esc(t("return_service"))}</button>
        <button class="comment" ${may("comment") ? "" : "hidden"}>${esc(t("comment"))}</button>
        <button class="register" title="${esc(t("register_hazard"))}"
          ${may("register_create") ? "" : "hidden"}>${esc(t("register_short"))}</button>
      </td>`;
    tr.addEventListener("click", (ev) => onAlarmClick(ev, a));
    body.appendChild(tr);
  }
  $("#alarm-count").textContent = alarms.length ? `(${alarms.length})` : "";
  $("#no-alarms").classList.toggle("hidden", alarms.length > 0);
}

async function onAlarmClick(ev, a) {
  const button = ev.target.closest("button");
  try {
    if (!button) { selected = a.alarm_id; renderAlarms(); await showDetail(a.alarm_id); return; }
    const path = `/alarms/${encodeURIComponent(a.alarm_id)}`;
    if (button.classList.contains("ack")) {
      await api(`${path}/acknowledge`, { method: "POST", body: "{}" });
      toast(`${t("acknowledged")}: ${a.point}`);
    } else if (button.classList.contains("shelve")) {
      const v = await ask(t("shelve"), [["minutes", "number", "30"], ["reason", "text", ""]]);
      if (!v) return;
      await api(`${path}/shelve`, { method: "POST",
        body: JSON.stringify({ minutes: Number(v.minutes), reason: v.reason }) });
      toast(`${t("shelved_ok")}: ${a.point}`);
    } else if (button.classList.contains("unshelve")) {
      await api(`${path}/unshelve`, { method: "POST" });
      toast(`${t("unshelved_ok")}: ${a.point}`);
    } else if (button.classList.contains("return")) {
      await api(`${path}/return-to-service`, { method: "POST" });
      toast(`${t("returned_ok")}: ${a.point}`);
    } else if (button.classList.contains("comment")) {
      const v = await ask(t("comment"), [["text", "textarea", ""]]);
      if (!v) return;
      await api(`${path}/comment`, { method: "POST", body: JSON.stringify({ text: v.text }) });
      toast(t("commented"));
    } else if (button.classList.contains("register")) {
      const v = await ask(t("register_hazard"), [
        ["title_col", "text", `${a.point}: ${levelLabel(a)}`],
        ["level", "select:general,major", "general"], ["description", "textarea", ""]]);
      if (!v) return;
      await api("/register", { method: "POST", body: JSON.stringify({
        hazard_source: a.source, title: v.title_col, level: v.level, point: a.point,
        source: "inspection", description: v.description }) });
      toast(t("registered_ok"));
      await refreshRegister();
    }
    await refreshAlarms();
    if (selected === a.alarm_id) await showDetail(a.alarm_id);
  } catch (err) {
    toast(err.message, true);
  }
}

// A small form in a <dialog>; resolves to the values, or null when cancelled.
function ask(title, fields) {
  const dialog = $("#dialog");
  $("#dialog-title").textContent = title;
  const box = $("#dialog-fields");
  box.innerHTML = "";
  for (const [name, type, value] of fields) {
    const label = document.createElement("label");
    label.textContent = t(name);
    let input;
    if (type === "textarea") {
      input = document.createElement("textarea");
    } else if (type.startsWith("select:")) {
      input = document.createElement("select");
      for (const opt of type.slice(7).split(",")) {
        input.add(new Option(t(opt), opt));
      }
    } else {
      input = document.createElement("input");
      input.type = type;
    }
    input.name = name;
    input.value = value;
    input.required = name !== "description";
    box.append(label, input);
  }
  return new Promise((resolve) => {
    const done = (ok) => {
      dialog.close();
      if (!ok) { resolve(null); return; }
      resolve(Object.fromEntries(new FormData($("#dialog-form"))));
    };
    $("#dialog-cancel").onclick = () => done(false);
    $("#dialog-form").onsubmit = (ev) => {
      ev.preventDefault();
      if ($("#dialog-form").reportValidity()) done(true);
    };
    dialog.showModal();
  });
}

function trendSvg(samples, limits) {
  if (!samples.length) return `<p class="empty">${esc(t("no_trend"))}</p>`;
  const W = 400; const H = 160; const P = 24;
  const xs = samples.map((s) => s[0]); const ys = samples.map((s) => s[1]);
  const lim = Object.values(limits);
  let lo = Math.min(...ys, ...lim); let hi = Math.max(...ys, ...lim);
  if (hi === lo) { hi += 1; lo -= 1; }
  const x0 = Math.min(...xs); const x1 = Math.max(...xs, x0 + 1);
  const X = (x) => P + ((x - x0) / (x1 - x0)) * (W - 2 * P);
  const Y = (y) => H - P - ((y - lo) / (hi - lo)) * (H - 2 * P);
  const colours = { hihi: "var(--p1)", hi: "var(--p2)", lo: "var(--p3)", lolo: "var(--p1)" };
  const lines = Object.entries(limits).map(([k, v]) =>
    `<line class="limit" x1="${P}" x2="${W - P}" y1="${Y(v)}" y2="${Y(v)}" stroke="${colours[k]}"/>
     <text x="${W - P + 2}" y="${Y(v) + 3}">${k}</text>`).join("");
  const pts = samples.map((s) => `${X(s[0]).toFixed(1)},${Y(s[1]).toFixed(1)}`).join(" ");
  // dots too, so that a few samples (or one) still show
  const dots = samples.length > 60 ? "" : samples.map((s) =>
    `<circle cx="${X(s[0]).toFixed(1)}" cy="${Y(s[1]).toFixed(1)}" r="2.5"/>`).join("");
  return `<svg class="trend" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none">${lines}
    <polyline points="${pts}"/>${dots}<text x="${P}" y="12">${esc(fmtNum(hi))}</text>
    <text x="${P}" y="${H - 8}">${esc(fmtNum(lo))}</text></svg>`;
}

async function showDetail(alarmId) {
  const a = alarms.find((x) => x.alarm_id === alarmId);
  const point = a ? a.point : alarmId.split(":")[0];
  const box = $("#detail");
  try {
    const [trend, history] = await Promise.all([
      point ? api(`/points/${encodeURIComponent(point)}/trend?minutes=30`) : null,
      api(`/alarms/${encodeURIComponent(alarmId)}/history`)]);
    const limits = trend ? Object.entries(trend.limits)
      .map(([k, v]) => `${k} ${fmtNum(v)}`).join(", ") : "";
    box.innerHTML = `
      <h3 id="detail-point">${esc(point ?? alarmId)}</h3>
      <dl><dt>${esc(t("kind"))}</dt><dd>${esc(trend?.kind ?? "")}</dd>
        <dt>${esc(t("equipment"))}</dt><dd>${esc(trend?.equipment ?? "")}</dd>
        <dt>${esc(t("limits"))}</dt><dd>${esc(limits)}</dd></dl>
      <h4>${esc(t("recent"))} <small class="empty">(${esc(t(trend?.from === "influxdb"
        ? "from_influx" : "from_engine"))})</small></h4>
      ${trend ? trendSvg(trend.samples, trend.limits) : ""}
      ${history.length ? `<h4>${esc(t("history"))}</h4>` : ""}
      <ol class="history">${history.map((h) => `<li>${esc(fmtTime(h.ts_ms))}
        <span>${esc(h.event)}</span> ${esc(stateName(h.from_state))} → ${esc(stateName(h.to_state))}
        ${h.user ? `· ${esc(h.user)}` : ""} ${h.reason ? `· ${esc(h.reason)}` : ""}</li>`)
        .join("")}</ol>`;
  } catch (err) {
    box.innerHTML = `<p class="error">${esc(err.message)}</p>`;
  }
}

async function refreshAlarms() {
  alarms = await api("/alarms");
  renderAlarms();
}

async function refreshRegister() {
  if (!me) return;
  const rows = await api("/register");
  const open = rows.filter((r) => r.state !== "closed");
  const body = $("#register tbody");
  body.innerHTML = "";
  const now = Date.now();
  for (const r of rows.sort((a, b) => b.id - a.id)) {
    const tr = document.createElement("tr");
    tr.dataset.entry = r.id;
    const overdue = r.deadline_ms && r.deadline_ms < now && r.state !== "closed";
    tr.innerHTML = `<td>${r.id}</td><td>${esc(r.hazard_source)}</td>
      <td class="entry-title">${esc(r.title)}</td><td>${esc(t(r.level))}</td>
      <td class="entry-state">${esc(t(r.state))}</td>
      <td class="${overdue ? "error" : ""}">${esc(r.deadline_ms ? fmtTime(r.deadline_ms) : "–")}</td>
      <td>${esc(r.supervised ? t("yes") : t("no"))}</td>`;
    tr.addEventListener("click", () => showEntry(r.id));
    body.appendChild(tr);
  }
  $("#register-count").textContent = `(${open.length} / ${rows.length})`;
}

async function showEntry(id) {
  shownEntry = id;
  try {
    const e = await api(`/register/${id}`);
    $("#entry").innerHTML = `<h4>#${e.id} ${esc(e.title)} — ${esc(t("transitions"))}</h4>
      <ol class="history">${e.transitions.map((x) => `<li>${esc(fmtTime(x.ts_ms))}
        <span>${esc(x.action)}</span> ${esc(t(x.from_state))} → ${esc(t(x.to_state))}
        · ${esc(x.actor)} ${x.comment ? `· ${esc(x.comment)}` : ""}</li>`).join("")
        || `<li>${esc(t("registered"))} · ${esc(e.created_by)}</li>`}</ol>`;
  } catch (err) {
    toast(err.message, true);
  }
}

let pending = null;
function soon(fn) {           // coalesce bursts of live messages into one refresh
  clearTimeout(pending);
  pending = setTimeout(() => fn().catch((err) => toast(err.message, true)), 150);
}

function listen() {
  if (events) events.close();
  events = new EventSource(`/live?token=${encodeURIComponent(token)}`);
  events.onopen = () => setLive("live");
  events.onerror = () => setLive("reconnecting");
  events.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "hello") {
      setLive("live");
      soon(async () => { await refreshAlarms(); await refreshRegister(); });
    } else if (msg.type === "alarms") {
      soon(async () => {
        await refreshAlarms();
        if (selected && msg.events.some((e) => e.alarm_id === selected)) await showDetail(selected);
      });
    } else if (msg.type === "register") {
      soon(refreshRegister);
    } else if (msg.type === "resync") {
      soon(async () => { await refreshAlarms(); await refreshRegister(); });
    }
  };
}

async function signIn() {
  try {
    me = await api("/me");
  } catch (err) {
    $("#login-error").textContent = err.message;
    $("#login").classList.remove("hidden");
    return;
  }
  $("#login").classList.add("hidden");
  $("#who").textContent = `${me.name} (${me.role})`;
  $("#enterprise").textContent = me.enterprise;
  await refreshAlarms();
  await refreshRegister();
  listen();
}

function signOut() {
  sessionStorage.removeItem("hazgw.token");
  token = "";
  me = null;
  if (events) { events.close(); events = null; }
  setLive("offline");
  $("#login").classList.remove("hidden");
}

$("#login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("#token").value.trim();
  sessionStorage.setItem("hazgw.token", token);
  $("#login-error").textContent = "";
  signIn();
});
$("#signout").addEventListener("click", signOut);
$("#lang").addEventListener("click", () => {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem("hazgw.lang", lang);
  applyLanguage();
});

applyLanguage();
if (token) signIn();
