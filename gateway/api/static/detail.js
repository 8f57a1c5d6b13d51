// The point detail: what the point is, its limits in its unit, its trend (refreshed every
// two seconds while shown, so it follows the plant without lag) and the alarm's history with
// levels and values.
import { t } from "./i18n.js";
import { trendSvg } from "./trend.js";
import {
  $, api, deviceName, esc, fmtNum, fmtTime, pointName, session, sourceName, stateName,
  withUnit,
} from "./util.js";

const REFRESH_MS = 2000;
const MINUTES = 30;
let shown = null;          // {alarmId, point}
let timer = null;

function historyLevel(alarm, h) {
  const gas = ["combustible_gas", "toxic_gas"].includes(session.site.points[alarm.point]?.kind);
  if (h.level_name === "normal") return t("normal");
  if (alarm.alarm_type === "process" && gas && ["H", "HH"].includes(h.level_name)) {
    return t(h.level_name === "HH" ? "gas_l2" : "gas_l1");
  }
  return t(`lvl_${h.level_name}`);
}

function historyLine(alarm, h) {
  const value = h.value == null ? "" : ` · ${withUnit(h.value, alarm.point)}${
    h.limit == null ? "" : ` / ${fmtNum(h.limit)}`}`;
  return `<li>${esc(fmtTime(h.ts_ms))} <span class="ev">${esc(t(`e_${h.event}`))}</span>
    · ${esc(historyLevel(alarm, h))}${esc(value)} · ${esc(stateName(h.from_state))} →
    ${esc(stateName(h.to_state))}${h.user ? ` · ${esc(h.user)}` : ""}${
    h.reason ? ` · ${esc(h.reason)}` : ""}</li>`;
}

async function draw() {
  if (!shown) return;
  const { alarmId, point, alarm } = shown;
  const box = $("#detail");
  try {
    const [trend, history] = await Promise.all([
      point ? api(`/points/${encodeURIComponent(point)}/trend?minutes=${MINUTES}`) : null,
      api(`/alarms/${encodeURIComponent(alarmId)}/history`)]);
    if (!shown || shown.alarmId !== alarmId) return;
    const p = session.site.points[point] || {};
    const unit = trend?.unit || p.unit || "";
    const limits = trend ? Object.entries(trend.limits)
      .map(([k, v]) => `${k} ${fmtNum(v)}`).join(", ") : "";
    const marks = history.map((h) => ({ ts_ms: h.ts_ms,
      label: `${fmtTime(h.ts_ms)} ${t(`e_${h.event}`)} ${historyLevel(alarm, h)}` }));
    box.innerHTML = `
      <h3 id="detail-point" title="${esc(point ?? alarmId)}">${esc(point ? pointName(point)
        : deviceName(alarmId))} <small>${esc(point ?? alarmId)}</small></h3>
      <dl><dt>${esc(t("source"))}</dt><dd>${esc(sourceName(alarm.source))}</dd>
        <dt>${esc(t("equipment"))}</dt><dd>${esc(session.site.equipment[alarm.equipment]
          || alarm.equipment)}</dd>
        ${p.kind ? `<dt>${esc(t("kind"))}</dt><dd>${esc(t(`k_${p.kind}`))}${
          unit ? ` (${esc(unit)})` : ""}</dd>` : ""}
        ${p.device ? `<dt>${esc(t("device_col"))}</dt><dd>${esc(p.device)}</dd>` : ""}
        ${limits ? `<dt>${esc(t("limits"))}</dt><dd id="detail-limits">${esc(limits)}</dd>` : ""}
      </dl>
      ${trend ? `<h4>${esc(t("recent"))} <small class="empty">(${esc(t(trend.from === "influxdb"
        ? "from_influx" : "from_engine"))})</small></h4>
        ${trendSvg(trend.samples, trend.limits, unit, marks, trend.now_ms, MINUTES)}` : ""}
      ${history.length ? `<h4>${esc(t("history"))}</h4>` : ""}
      <ol class="history" id="alarm-history">${history.map((h) => historyLine(alarm, h))
        .join("")}</ol>`;
  } catch (err) {
    box.innerHTML = `<p class="error">${esc(err.message)}</p>`;
  }
}

export async function showDetail(alarm) {
  shown = { alarmId: alarm.alarm_id, point: alarm.point, alarm };
  clearInterval(timer);
  timer = setInterval(draw, REFRESH_MS);
  await draw();
}

export function refreshDetail(alarms) {
  if (!shown) return Promise.resolve();
  const now = alarms.find((a) => a.alarm_id === shown.alarmId);
  if (now) shown.alarm = now;
  return draw();
}

export function stopDetail() {
  clearInterval(timer);
  shown = null;
}
