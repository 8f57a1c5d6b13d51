"""``hazgw replay``: a recorded CSV through the real rule engine, as fast as it goes.

For maintenance teams: "replay last month's incident against the new thresholds". One time
column and any number of value columns, each mapped to a point of the site (by default the
columns named like points). Times as Unix seconds, milliseconds, microseconds or nanoseconds
(told apart by magnitude, or named), ISO 8601 (naive times are Beijing time), or a
``strptime`` format. Missing values (``--missing``, by default empty, NA, NaN, null, -) are
no reading. A row not later than the one before it (a backward time jump, or a repeat) is
skipped and reported with its line number, never fatal.

Each column's windows are sized from its own median sample spacing (a recording of 3-minute
samples keeps a 30-minute window at 10 samples, not at 1 800 "seconds" of a 1 s poll).
The engine evaluates the readings in chunks and ticks its clock after each (stale alarms are
stamped at last reading + stale time either way), so the timeline is the one the engine gives
reading by reading with a tick every second (the test kit's, ``gateway.sim.kit``).

The result: every annunciated alarm event, and for each limit crossing the predictive
warning that came before it and its lead time.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from alerting.batch import ReadingBatch
from alerting.engine import Engine
from alerting.table import compile_rules, window_notes
from gateway.sim.kit import RunResult, TimelineRow
from gateway.site import SiteConfig
from gateway.stream.compiled import poll_intervals

BEIJING = ZoneInfo("Asia/Shanghai")
MISSING = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "-")
CHUNK = 50_000                   # readings per engine call
UNITS_MS = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}


class ReplayError(ValueError):
    """The CSV cannot be replayed as asked (the message names what and where)."""


@dataclass(frozen=True)
class Lead:
    """A limit crossing and the predictive warning that came before it."""

    point: str
    level: str
    crossed_ms: int
    warned_ms: int | None

    @property
    def lead_s(self) -> float | None:
        """Seconds of warning before the crossing (None: no warning came first)."""
        return None if self.warned_ms is None else (self.crossed_ms - self.warned_ms) / 1000


@dataclass
class Replayed:
    """What a replay gave."""

    result: RunResult
    columns: dict[str, str]                     # column → point
    intervals_s: dict[str, float]               # point → median sample spacing
    skipped: list[tuple[int, str]] = field(default_factory=list)   # (line, why)
    missing: int = 0
    notes: list[str] = field(default_factory=list)   # windows that cannot do what they say

    def timeline(self) -> list[TimelineRow]:
        """Annunciated events, seconds since the first row."""
        return self.result.timeline()

    def leads(self) -> list[Lead]:
        """Each process alarm's activation or raise with the last predictive warning of the
        same point and direction that stood before it."""
        out: list[Lead] = []
        warned: dict[tuple[str, int], int] = {}
        for e in sorted(self.result.events, key=lambda e: e.ts):
            if e.point is None or not e.annunciated:
                continue
            if e.alarm_type == "predictive" and e.event in ("activate", "raise"):
                warned.setdefault((e.point, 1 if e.level > 0 else -1), e.ts)
            elif e.alarm_type == "process" and e.event in ("activate", "raise"):
                side = 1 if e.level > 0 else -1
                out.append(Lead(e.point, e.level_name, e.ts, warned.pop((e.point, side), None)))
        return out


def parse_time(text: str, fmt: str, line: int) -> int:
    """Unix ms of one time cell (``fmt``: auto, s, ms, us, ns, iso or a strptime format)."""
    t = text.strip()
    try:
        if fmt == "auto":
            try:
                x = float(t)
            except ValueError:
                return _iso(t)
            # by magnitude: s until year 5138, then ms, us, ns
            unit = "s" if abs(x) < 1e11 else "ms" if abs(x) < 1e14 else \
                "us" if abs(x) < 1e17 else "ns"
            return round(x * UNITS_MS[unit])
        if fmt in UNITS_MS:
            return round(float(t) * UNITS_MS[fmt])
        if fmt == "iso":
            return _iso(t)
        d = datetime.strptime(t, fmt)
        return _ms(d)
    except (ValueError, OverflowError) as exc:
        raise ReplayError(f"line {line}: time {text!r} is not {fmt} ({exc})") from None


def _iso(t: str) -> int:
    return _ms(datetime.fromisoformat(t.replace("Z", "+00:00")))


def _ms(d: datetime) -> int:
    if d.tzinfo is None:
        d = d.replace(tzinfo=BEIJING)
    return round(d.timestamp() * 1000)


def _rows(path: Path, sep: str) -> Iterator[tuple[int, list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            yield from enumerate(csv.reader(f, delimiter=sep), start=1)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReplayError(f"{path}: {exc}") from None


def read_recording(path: Path, site: SiteConfig, *, time_col: str | None = None,
                   columns: dict[str, str] | None = None, sep: str = ",",
                   time_format: str = "auto", missing: tuple[str, ...] = MISSING,
                   ) -> tuple[dict[str, str], list[tuple[int, int, float]],
                              list[tuple[int, str]], int]:
    """(column → point, (ts_ms, column index, value) in time order, skipped rows, missing
    values) of a recording."""
    rows = _rows(path, sep)
    try:
        _, header = next(rows)
    except StopIteration:
        raise ReplayError(f"{path}: empty file") from None
    header = [h.strip() for h in header]
    tcol = time_col or header[0]
    if tcol not in header:
        raise ReplayError(f"{path}: no time column {tcol!r} (columns: {', '.join(header)})")
    known = site.enterprise.points()
    mapping = columns or {h: h for h in header if h in known}
    problems = [f"column {c!r} is not in the file" for c in mapping if c not in header]
    problems += [f"point {p!r} (column {c!r}) is not in the site" for c, p in mapping.items()
                 if p not in known]
    if not mapping:
        problems.append(f"no column names a point of the site (columns: {', '.join(header)})"
                        "; map them with --column NAME=POINT")
    if problems:
        raise ReplayError(f"{path}: " + "; ".join(problems))
    ti = header.index(tcol)
    cols = [(header.index(c), k) for k, c in enumerate(mapping)]
    out: list[tuple[int, int, float]] = []
    skipped: list[tuple[int, str]] = []
    gone = 0
    last: int | None = None
    last_line = 0
    for line, row in rows:
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) <= max(ti, *(i for i, _ in cols)):
            raise ReplayError(f"{path}: line {line}: {len(row)} cells, the header has "
                              f"{len(header)}")
        ts = parse_time(row[ti], time_format, line)
        if last is not None and ts <= last:
            skipped.append((line, f"time {row[ti].strip()} is not after line {last_line}'s"))
            continue
        last, last_line = ts, line
        for i, k in cols:
            cell = row[i].strip()
            if cell in missing:
                gone += 1
                continue
            try:
                v = float(cell)
            except ValueError:
                raise ReplayError(f"{path}: line {line}, column {header[i]!r}: {cell!r} is "
                                  "not a number (or a missing-value marker)") from None
            if not math.isfinite(v):
                gone += 1
                continue
            out.append((ts, k, v))
    return mapping, out, skipped, gone


def _median_spacing(ts: list[int]) -> float | None:
    if len(ts) < 2:
        return None
    return float(np.median(np.diff(np.asarray(ts, np.int64)))) / 1000.0


def replay(site: SiteConfig, path: Path, *, time_col: str | None = None,
           columns: dict[str, str] | None = None, sep: str = ",", time_format: str = "auto",
           missing: tuple[str, ...] = MISSING) -> Replayed:
    """Replay a recording (options as for ``read_recording``) through the engine."""
    mapping, data, skipped, gone = read_recording(
        path, site, time_col=time_col, columns=columns, sep=sep, time_format=time_format,
        missing=missing)
    points = list(mapping.values())
    intervals = poll_intervals(site)
    spacing: dict[str, float] = {}
    for k, p in enumerate(points):
        s = _median_spacing([ts for ts, c, _ in data if c == k])
        if s is not None and s > 0:
            spacing[p] = s
    engine = Engine(compile_rules(site.enterprise, {**intervals, **spacing}))
    cfg = site.enterprise.points()
    notes = [f"{p}.{f}: {msg}" for p, s in spacing.items()
             for f, msg in window_notes(cfg[p][2], s, engine.table.k_max)]
    started = time.monotonic()
    events = []
    if data:
        ts = np.fromiter((r[0] for r in data), np.int64, len(data))
        pos = engine.table.index(points)
        idx = pos[np.fromiter((r[1] for r in data), np.intp, len(data))]
        val = np.fromiter((r[2] for r in data), np.float64, len(data))
        good = np.zeros(len(data), np.uint8)
        for a in range(0, len(data), CHUNK):
            b = min(a + CHUNK, len(data))
            events += engine.process(ReadingBatch(idx[a:b], ts[a:b], val[a:b], good[a:b]))
            events += engine.tick(int(ts[b - 1]))
    # the replayed points' alarms (and votes): the site's other points never report here
    mine = set(points)
    events = [e for e in events if e.point in mine or e.alarm_type == "vote"]
    start = data[0][0] if data else 0
    span = (data[-1][0] - start) / 1000 if data else 0.0
    result = RunResult(events, start, 0, len(data), time.monotonic() - started, span)
    return Replayed(result, mapping, spacing, skipped, gone, notes)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def report_lines(r: Replayed) -> list[str]:
    """What ``hazgw replay`` prints: the run, skipped rows, the timeline, the lead times."""
    res = r.result
    out = [f"replayed {res.readings} readings of {len(r.columns)} point(s) "
           f"({', '.join(f'{c}→{p}' if c != p else p for c, p in r.columns.items())}) over "
           f"{res.simulated_s / 3600:.2f} h in {res.wall_s:.2f} s; sample spacing "
           + ", ".join(f"{p} {s:g} s" for p, s in r.intervals_s.items())]
    out += [f"warning: {n} (at the recording's spacing)" for n in r.notes]
    if r.missing:
        out.append(f"missing values (no reading): {r.missing}")
    if r.skipped:
        out.append(f"skipped {len(r.skipped)} row(s) not later than the row before "
                   "(backward time jumps or repeats):")
        out += [f"  line {line}: {why}" for line, why in r.skipped[:10]]
        if len(r.skipped) > 10:
            out.append(f"  … and {len(r.skipped) - 10} more")
    out.append("alarm timeline (annunciated):")
    rows = r.timeline()
    out += [f"  {_when(res.start_ms + round(row.t_s * 1000))}  {row}" for row in rows] or \
        ["  (none)"]
    leads = r.leads()
    if leads:
        out.append("limit crossings and the predictive warning before each:")
        for ld in leads:
            lead = "no warning before it" if ld.lead_s is None else \
                f"warned {ld.lead_s:g} s before (at {_when(ld.warned_ms or 0)})"
            out.append(f"  {_when(ld.crossed_ms)}  {ld.point} {ld.level}: {lead}")
    return out


def write_result(r: Replayed, path: Path) -> None:
    """The annunciated events with lead times as CSV, or JSON for a ``.json`` path."""
    leads = {(ld.point, ld.crossed_ms): ld.lead_s for ld in r.leads()}
    rows = [{"ts_ms": e.ts, "time": _when(e.ts), "t_s": (e.ts - r.result.start_ms) / 1000,
             "alarm_id": e.alarm_id, "point": e.point, "alarm_type": e.alarm_type,
             "event": e.event, "level": e.level_name, "value": e.value, "limit": e.limit,
             "forecast_s": e.forecast_s, "lead_s": leads.get((e.point or "", e.ts))}
            for e in sorted(r.result.events, key=lambda e: (e.ts, e.alarm_id))
            if e.annunciated]
    if path.suffix == ".json":
        import orjson
        path.write_bytes(orjson.dumps({"columns": r.columns, "intervals_s": r.intervals_s,
                                       "readings": r.result.readings,
                                       "skipped": [{"line": ln, "why": w}
                                                   for ln, w in r.skipped],
                                       "events": rows}, option=orjson.OPT_INDENT_2))
        return
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["ts_ms"])
        w.writeheader()
        w.writerows(rows)
