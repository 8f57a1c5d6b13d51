// The shift log (交接班): handovers with who was on duty and the alarms standing at that
// moment (recorded by the gateway), and the escalation view: alarms whose ladder climbs,
// with the steps fired and who was told.
import { t } from "./i18n.js";
import {
  $, api, ask, deviceName, esc, fmtTime, may, pointName, session, toast,
} from "./util.js";

export async function refreshShift() {
  const notes = await api("/shift-log?limit=10");
  $("#handover").classList.toggle("hidden", !may("shift_log"));
  $("#shift").innerHTML = notes.length ? notes.map((n) => `<li class="shift-note">
      <b>${esc(fmtTime(n.ts_ms))}</b> · ${esc(n.on_duty)}${n.taking_over ? ` → ${
      esc(n.taking_over)}` : ""} · ${esc(n.author)}
      <div class="note">${esc(n.note)}</div>
      <div class="empty">${n.standing.length} ${esc(t("standing_at"))}${n.standing.length
        ? `: ${n.standing.slice(0, 8).map((a) => `<span title="${esc(a.alarm_id)}">${
          esc(pointName(a.alarm_id.split(":")[0]))}</span>`).join(", ")}${
          n.standing.length > 8 ? " …" : ""}` : ""}</div></li>`).join("")
    : `<li class="empty">${esc(t("no_shift"))}</li>`;
}

export async function handOver() {
  const v = await ask(t("handover"), [["on_duty", "text", session.me?.name || ""],
    ["taking_over", "text", "", false], ["note", "textarea", ""]]);
  if (!v) return;
  try {
    await api("/shift-log", { method: "POST", body: JSON.stringify({
      on_duty: v.on_duty, note: v.note, ...(v.taking_over ? { taking_over: v.taking_over } : {}),
    }) });
    toast(t("handed_ok"));
    await refreshShift();
  } catch (err) {
    toast(err.message, true);
  }
}

export async function refreshEscalations() {
  const rows = await api("/escalations");
  const climbing = rows.filter((o) => o.steps.length);
  $("#escalations").innerHTML = climbing.length ? climbing.map((o) => {
    const name = o.alarm_id.endsWith(":device") ? deviceName(o.alarm_id)
      : pointName(o.alarm_id.split(":")[0]);
    return `<li title="${esc(o.alarm_id)}"><b>${esc(name)}</b> · ${
      esc(t(`p${o.priority}`))} · ${esc(fmtTime(o.annunciated_ms))}<div class="empty">${
      o.steps.map((s) => `${esc(t("step_n", { n: s.step + 1 }))} ${esc(fmtTime(s.fired_ms))}: ${
        esc(t("esc_roles"))} ${s.roles.map((r) => esc(t(`role_${r}`))).join(", ")}`)
        .join(" · ")}</div></li>`;
  }).join("") : `<li class="empty">${esc(t("no_escalations"))}</li>`;
}
