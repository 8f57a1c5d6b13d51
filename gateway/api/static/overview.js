// The overview band: one tile per hazard source with its name, GB 18218 level, four-colour
// status (the most urgent standing alarm's priority: 红橙黄蓝, green when calm), standing and
// unacknowledged alarms and points off line. A click filters the alarm list to the source.
import { t } from "./i18n.js";
import { $, esc, session } from "./util.js";

const COLOURS = { 1: "red", 2: "orange", 3: "yellow", 4: "blue" };
const UNHANDLED = ["unack", "rtn_unack"];
const INACTIVE = ["shelved", "suppressed", "out_of_service"];

// points that deliver nothing usable now: a device off line (all its points) or a point's
// own no-data or sensor-fault alarm
function offline(alarms, source) {
  const pts = new Set();
  for (const a of alarms) {
    if (a.source !== source || !a.level) continue;
    if (a.alarm_type === "device") (a.points || []).forEach((p) => pts.add(p));
    else if ((a.alarm_type === "stale" || a.alarm_type === "fault") && a.point) pts.add(a.point);
  }
  return pts.size;
}

export function renderOverview(alarms, filters, onPick) {
  const box = $("#overview");
  box.innerHTML = "";
  for (const src of session.site.sources) {
    const mine = alarms.filter((a) => a.source === src.id && !INACTIVE.includes(a.state));
    const top = Math.min(...mine.filter((a) => a.level !== 0 || UNHANDLED.includes(a.state))
      .map((a) => a.priority), 9);
    const unack = mine.filter((a) => UNHANDLED.includes(a.state)).length;
    const off = offline(alarms, src.id);
    const tile = document.createElement("button");
    tile.type = "button";
    tile.className = `tile status-${COLOURS[top] || "green"}${
      filters.source === src.id ? " picked" : ""}${unack ? " unacked" : ""}`;
    tile.dataset.source = src.id;
    tile.title = src.id;
    tile.innerHTML = `<span class="tile-name">${esc(src.name)}</span>
      <span class="tile-level">${esc(src.level ? t("gb18218", { level: src.level })
        : t("level_none"))}</span>
      <span class="tile-counts"><b class="n-standing">${mine.length}</b> ${esc(t("standing"))}
        · <b class="n-unack">${unack}</b> ${esc(t("unacked"))}
        · <b class="n-offline">${off}</b> ${esc(t("points_offline"))}</span>`;
    tile.addEventListener("click", () => onPick(src.id));
    box.appendChild(tile);
  }
}
