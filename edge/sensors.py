"""MQTT-native sensors: payloads mapped to point samples, and the subscriber that feeds them to
the edge runner. A payload that cannot be read is counted and dead-lettered, never fatal:
every path of it is checked (finite numbers, a plausible integer time in the mapping's unit),
a payload missing some of its fields delivers the others (each missing one counted), and the
last dead letters of each mapping are kept for the edge's stats and dead-letter topic."""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import Any

import numpy as np
import orjson
from paho.mqtt.client import topic_matches_sub

from edge.clock import WALL, Clock
from edge.config import MqttSensor
from edge.mqtt import MqttSettings
from edge.mqttsub import Batch, MqttSubscriber
from edge.poller import Samples, SampleSink
from edge.wire import Quality

log = logging.getLogger(__name__)

DEAD_LETTERS_KEPT = 5       # per mapping


class PayloadError(ValueError):
    """A sensor payload that does not hold a usable value; the text says why."""


def _at(doc: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(doc, dict) or key not in doc:
            raise PayloadError(f"no field {path!r} in payload")
        doc = doc[key]
    return doc


def _number(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        if isinstance(x, str):
            try:
                return float(x)
            except ValueError:
                pass
        raise PayloadError(f"{what} is not a number: {str(x)[:40]!r}")
    return float(x)


# the same window as the core's (gateway.settings.IngestLimits): a time outside it is a
# wrong clock or a wrong unit, which would put the reading in 1970 or refuse it in InfluxDB
TS_PAST_S = 7 * 86400
TS_FUTURE_S = 300
_TO_MS = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}
_PER_MS = {"ms": 1, "us": 1000, "ns": 1_000_000}


def _timestamp(x: Any, what: str, unit: str, now_ms: int) -> int:
    """A Unix time in ``unit`` as ms; NaN, infinities, and times outside the window around
    ``now_ms`` are refused (NaN and 1e19 once raised inside paho's thread and ended it,
    with every sensor of the edge)."""
    t = _number(x, what)
    if not math.isfinite(t):
        raise PayloadError(f"{what} is not a usable time: {str(x)[:40]!r}")
    if type(x) is int:      # exactly: an integer in us or ns is beyond a float's 53 bits
        ms = x * 1000 if unit == "s" else x // _PER_MS[unit]
    else:
        ms = round(t * _TO_MS[unit])
    if not now_ms - TS_PAST_S * 1000 <= ms <= now_ms + TS_FUTURE_S * 1000:
        raise PayloadError(f"{what} {str(x)[:40]} ({unit}) is not within 7 days back and 5 "
                           f"minutes ahead of the edge's clock (wrong unit? ts_unit is "
                           f"{unit!r})")
    return ms


def parse_payload(sensor: MqttSensor, payload: bytes, now_ms: int,
                  topic: str | None = None) -> tuple[list[str], list[float], int, list[str]]:
    """(point ids, values, ts_ms, what is missing) from one payload, or PayloadError when
    nothing in it is usable. ``topic`` (the one the message arrived on) fills ``{N}``
    levels in point ids; it defaults to the sensor's."""
    topic = sensor.topic if topic is None else topic
    missing: list[str] = []
    if sensor.point is not None and sensor.value_path is None:
        try:
            values = [float(payload.decode("ascii").strip())]
        except (UnicodeDecodeError, ValueError):
            raise PayloadError(f"payload is not a plain number: {payload[:40]!r}") from None
        if not math.isfinite(values[0]):
            raise PayloadError(f"value is not finite: {values[0]}")
        ts = now_ms
        templates = [sensor.point]
    else:
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise PayloadError(f"payload is not JSON: {exc}") from None
        paths = ({sensor.point: sensor.value_path} if sensor.point is not None and
                 sensor.value_path is not None else sensor.fields)
        ts = _timestamp(_at(doc, sensor.ts_path), sensor.ts_path, sensor.ts_unit, now_ms) \
            if sensor.ts_path else now_ms
        templates, values = [], []
        for point, path in paths.items():
            try:
                v = _number(_at(doc, path), path)
                if not math.isfinite(v):
                    raise PayloadError(f"{path} is not finite: {v}")
            except PayloadError as exc:
                missing.append(str(exc))
                continue
            templates.append(point)
            values.append(v)
        if not values:
            raise PayloadError("; ".join(missing))
    ids = [sensor.resolve(t, topic) for t in templates]
    if sensor.allow_points is not None:
        foreign = [p for p in ids if p not in sensor.allow_points]
        if foreign:
            raise PayloadError(f"topic {topic!r} names point(s) {', '.join(foreign)} that this "
                               "mapping may not fill (allow_points)")
    return ids, values, ts, missing


class MqttSensorSource:
    """Subscribes to the sensors' topics and hands each read's readings to ``sink`` as one
    batch, on the event loop (``run``, supervised by the agent)."""

    def __init__(self, s: MqttSettings, sensors: dict[str, MqttSensor], sink: SampleSink,
                 clock: Clock = WALL) -> None:
        self._clock = clock
        # exact topics by a dict look-up; filters with wildcards are tried one by one
        self._by_topic = {sen.topic: sen for sen in sensors.values()
                          if "+" not in sen.topic and "#" not in sen.topic}
        self._filters = [sen for sen in sensors.values() if sen.topic not in self._by_topic]
        self._sink = sink
        self._names = {id(sen): name for name, sen in sensors.items()}
        self.conn = MqttSubscriber(
            "sensors", s, [*self._by_topic, *(f.topic for f in self._filters)],
            self.receive_batch, on_oversize=self._oversize)
        self.refusals = self.conn.refusals
        self.received = 0
        self.malformed = 0
        self.missing_fields = 0          # fields absent or unusable in delivered payloads
        # the last dead letters of each mapping (published by the agent, see dead_letter_doc)
        self.dead_letters: dict[str, deque[dict[str, Any]]] = {}

    async def run(self) -> None:
        """Connect, subscribe and deliver until cancelled (reconnects by itself)."""
        await self.conn.run()

    def receive_batch(self, batch: Batch) -> None:
        """The readings of one read's messages, to the sink in one piece; a message that
        cannot be read is counted and dead-lettered, whatever it raises."""
        ids: list[str] = []
        ts: list[int] = []
        vals: list[float] = []
        now = self._clock.now_ms()
        for topic, payload in batch:
            try:
                got = self._parse(topic, payload, now)
            except Exception as exc:
                self._refuse("?", topic, payload, f"unexpected {type(exc).__name__}: {exc}")
                continue
            if got is not None:
                ids += got[0]
                vals += got[1]
                ts += [got[2]] * len(got[0])
        if ids:
            n = len(ids)
            self._sink((ids, np.array(ts, np.int64), np.array(vals, np.float64),
                        np.full(n, Quality.GOOD, np.uint8), np.zeros(n, np.uint8)))

    def _oversize(self, topic: str, size: int) -> None:
        self.received += 1
        self._refuse("?", topic, b"", f"payload of {size} bytes is over the limit of "
                     f"{self.conn.max_payload_bytes} bytes")

    def _refuse(self, sensor: str, topic: str, payload: bytes, reason: str) -> None:
        self.malformed += 1
        kept = self.dead_letters.setdefault(sensor, deque(maxlen=DEAD_LETTERS_KEPT))
        kept.append({"topic": topic, "reason": reason, "ts_ms": self._clock.now_ms(),
                     "sample": payload[:256].decode(errors="replace")})
        if self.malformed in (1, 10, 100, 1000, 10000):
            log.warning("sensors: dead-lettered payload on %s (%d so far): %s",
                        topic[:200], self.malformed, reason)

    def _parse(self, topic: str, payload: bytes,
               now_ms: int) -> tuple[list[str], list[float], int] | None:
        sensor = self._by_topic.get(topic) or next(
            (f for f in self._filters if topic_matches_sub(f.topic, topic)), None)
        if sensor is None:
            return None
        self.received += 1
        try:
            points, values, ts, missing = parse_payload(sensor, payload, now_ms, topic)
        except PayloadError as exc:
            self._refuse(self._names[id(sensor)], topic, payload, str(exc))
            return None
        if missing:
            self.missing_fields += len(missing)
        return points, values, ts

    def receive(self, topic: str, payload: bytes) -> Samples | None:
        """The samples of one message (None if no sensor listens or it is malformed:
        counted and dead-lettered); the simulation kit calls it."""
        got = self._parse(topic, payload, self._clock.now_ms())
        if got is None:
            return None
        n = len(got[0])
        return (got[0], np.full(n, got[2], np.int64), np.array(got[1], np.float64),
                np.full(n, Quality.GOOD, np.uint8), np.zeros(n, np.uint8))

    def dead_letter_doc(self) -> bytes:
        """The last dead letters of every mapping, as the agent publishes them on the edge's
        dead-letter topic with its stats (``hazgw dead-letters`` reads them)."""
        sensors = {name: list(kept) for name, kept in self.dead_letters.items()}
        return orjson.dumps({"malformed": self.malformed, "sensors": sensors})
