// A point's trend as SVG: a time axis with clock ticks, a value axis in the point's unit,
// its limits as dashed lines, and the alarm's history events as marks. The value range
// covers every sample and limit, so the top of the chart is never below a value shown.
import { t } from "./i18n.js";
import { esc, fmtClock, fmtNum } from "./util.js";

const W = 560; const H = 220;
const L = 52; const R = 44; const T = 14; const B = 30;   // margins: axes and labels
const LIMIT_COLOURS = { hihi: "var(--p1)", hi: "var(--p2)", lo: "var(--p3)", lolo: "var(--p1)" };

// ~n round steps between lo and hi (1, 2, 5 × 10^k)
function niceTicks(lo, hi, n) {
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}

const TIME_STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];

function timeTicks(x0, x1, n) {
  const span = (x1 - x0) / 1000;
  const step = (TIME_STEPS_S.find((s) => s >= span / n) || 7200) * 1000;
  const out = [];
  for (let x = Math.ceil(x0 / step) * step; x <= x1; x += step) out.push(x);
  return { ticks: out, seconds: step < 60_000 };
}

// samples: [[ts_ms, value]…]; limits: {hi: 25, …}; marks: [{ts_ms, label}…]; now_ms: the
// gateway's clock (the right edge), so a point that stopped reporting shows the gap
export function trendSvg(samples, limits, unit, marks = [], nowMs = null, minutes = 30) {
  if (!samples.length) return `<p class="empty" id="trend-empty">${esc(t("no_trend"))}</p>`;
  const xs = samples.map((s) => s[0]); const ys = samples.map((s) => s[1]);
  const lim = Object.values(limits);
  let lo = Math.min(...ys, ...lim); let hi = Math.max(...ys, ...lim);
  const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
  lo -= pad; hi += pad;
  const x1 = Math.max(nowMs ?? 0, ...xs);
  // the last few minutes at least, the window asked for at most
  const x0 = Math.max(Math.min(...xs), x1 - minutes * 60_000);
  const span = Math.max(x1 - x0, 10_000);
  const X = (x) => L + ((x - (x1 - span)) / span) * (W - L - R);
  const Y = (y) => H - B - ((y - lo) / (hi - lo)) * (H - T - B);
  const yt = niceTicks(lo, hi, 5);
  const { ticks, seconds } = timeTicks(x1 - span, x1, 6);
  const grid = yt.map((v) => `<line class="grid" x1="${L}" x2="${W - R}" y1="${Y(v)}"
      y2="${Y(v)}"/><text class="ytick" x="${L - 4}" y="${Y(v) + 3}">${esc(fmtNum(v))}</text>`)
    .join("") + ticks.map((x) => `<line class="grid" x1="${X(x)}" x2="${X(x)}" y1="${T}"
      y2="${H - B}"/><text class="xtick" x="${X(x)}" y="${H - B + 14}">${
      esc(fmtClock(x, seconds))}</text>`).join("");
  const lines = Object.entries(limits).map(([k, v]) =>
    `<line class="limit" x1="${L}" x2="${W - R}" y1="${Y(v)}" y2="${Y(v)}"
      stroke="${LIMIT_COLOURS[k]}"/><text class="limit-label" x="${W - R + 3}"
      y="${Y(v) + 3}">${esc(k)} ${esc(fmtNum(v))}</text>`).join("");
  const shown = samples.filter((s) => s[0] >= x1 - span);
  const pts = shown.map((s) => `${X(s[0]).toFixed(1)},${Y(s[1]).toFixed(1)}`).join(" ");
  const dots = shown.length > 80 ? "" : shown.map((s) =>
    `<circle cx="${X(s[0]).toFixed(1)}" cy="${Y(s[1]).toFixed(1)}" r="2.2"/>`).join("");
  const ms = marks.filter((m) => m.ts_ms >= x1 - span).map((m) =>
    `<line class="mark" x1="${X(m.ts_ms)}" x2="${X(m.ts_ms)}" y1="${T}" y2="${H - B}"><title>${
      esc(m.label)}</title></line>`).join("");
  const last = shown[shown.length - 1];
  return `<svg class="trend" id="trend" viewBox="0 0 ${W} ${H}" role="img">
    <text class="unit" x="4" y="${T - 2}">${esc(unit || "")}</text>${grid}${lines}${ms}
    <polyline points="${pts}"/>${dots}
    ${last ? `<text class="last" x="${W - R - 4}" y="${T + 10}">${esc(fmtNum(last[1]))} ${
      esc(unit || "")}</text>` : ""}
    <line class="axis" x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}"/>
    <line class="axis" x1="${L}" x2="${L}" y1="${T}" y2="${H - B}"/></svg>`;
}
