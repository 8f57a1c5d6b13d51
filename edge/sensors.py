"""MQTT-native sensors: payloads mapped to point samples, and the subscriber that feeds them to
the edge runner. A payload that cannot be read is counted and dead-lettered, never fatal."""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from typing import Any

import numpy as np
import orjson
import paho.mqtt.client as mqtt

from edge.clock import WALL, Clock
from edge.config import MqttSensor
from edge.mqtt import MqttConnection, MqttSettings
from edge.poller import Samples, SampleSink
from edge.wire import Quality

log = logging.getLogger(__name__)


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


def _timestamp(x: Any, what: str) -> int:
    """A Unix time in ms; NaN, infinities, negatives and numbers beyond int64 are refused
    (they once raised inside paho's thread and ended it, with every sensor of the edge)."""
    t = _number(x, what)
    if not math.isfinite(t) or not 0 <= t < 2**63:
        raise PayloadError(f"{what} is not a usable time in ms: {str(x)[:40]!r}")
    return int(t)


def parse_payload(sensor: MqttSensor, payload: bytes, now_ms: int,
                  topic: str | None = None) -> tuple[list[str], list[float], int]:
    """(point ids, values, ts_ms) from one payload, or PayloadError. ``topic`` (the one the
    message arrived on) fills ``{N}`` levels in point ids; it defaults to the sensor's."""
    topic = sensor.topic if topic is None else topic
    if sensor.point is not None and sensor.value_path is None:
        try:
            values = [float(payload.decode("ascii").strip())]
        except (UnicodeDecodeError, ValueError):
            raise PayloadError(f"payload is not a plain number: {payload[:40]!r}") from None
        ts = now_ms
        templates = [sensor.point]
    else:
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise PayloadError(f"payload is not JSON: {exc}") from None
        paths = ({sensor.point: sensor.value_path} if sensor.point is not None and
                 sensor.value_path is not None else sensor.fields)
        templates = list(paths)
        values = [_number(_at(doc, path), path) for path in paths.values()]
        ts = _timestamp(_at(doc, sensor.ts_path), sensor.ts_path) if sensor.ts_path \
            else now_ms
    for v in values:
        if not math.isfinite(v):
            raise PayloadError(f"value is not finite: {v}")
    return [sensor.resolve(t, topic) for t in templates], values, ts


class MqttSensorSource:
    """Subscribes to the sensors' topics and hands each reading to ``sink`` on the loop."""

    def __init__(self, s: MqttSettings, sensors: dict[str, MqttSensor], sink: SampleSink,
                 loop: asyncio.AbstractEventLoop, clock: Clock = WALL) -> None:
        self._clock = clock
        # exact topics by a dict look-up; filters with wildcards are tried one by one
        self._by_topic = {sen.topic: sen for sen in sensors.values()
                          if "+" not in sen.topic and "#" not in sen.topic}
        self._filters = [sen for sen in sensors.values() if sen.topic not in self._by_topic]
        self._sink = sink
        self._loop = loop
        self.conn = MqttConnection(
            "sensors", s, persistent=True,
            subscriptions=[(t, 1) for t in self._by_topic] + [(f.topic, 1) for f in self._filters],
            on_message=self._on_message)
        self.refusals = self.conn.refusals
        self.received = 0
        self.malformed = 0
        self.dead_letters: deque[dict[str, str]] = deque(maxlen=20)

    def start(self) -> None:
        """Connect in the background (paho reconnects by itself)."""
        self.conn.start()

    def stop(self) -> None:
        """Disconnect and stop paho's thread."""
        self.conn.stop()

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        # paho's thread: nothing may escape, or the thread ends and every sensor of the
        # edge with it (silently); what the checks did not foresee is dead-lettered too
        try:
            samples = self.receive(msg.topic, bytes(msg.payload))
        except Exception as exc:
            self._refuse(msg.topic, bytes(msg.payload),
                         f"unexpected {type(exc).__name__}: {exc}")
            return
        if samples is not None:
            self._loop.call_soon_threadsafe(self._sink, samples)

    def _refuse(self, topic: str, payload: bytes, reason: str) -> None:
        self.malformed += 1
        self.dead_letters.append({"topic": topic, "reason": reason,
                                  "sample": payload[:256].decode(errors="replace")})
        if self.malformed in (1, 10, 100, 1000, 10000):
            log.warning("sensors: dead-lettered payload on %s (%d so far): %s",
                        topic, self.malformed, reason)

    def receive(self, topic: str, payload: bytes) -> Samples | None:
        """The samples of one message (None if no sensor listens or it is malformed:
        counted and dead-lettered). paho's thread calls it; so does the test kit."""
        sensor = self._by_topic.get(topic) or next(
            (f for f in self._filters if mqtt.topic_matches_sub(f.topic, topic)), None)
        if sensor is None:
            return None
        self.received += 1
        try:
            points, values, ts = parse_payload(sensor, payload, self._clock.now_ms(), topic)
        except PayloadError as exc:
            self._refuse(topic, payload, str(exc))
            return None
        n = len(points)
        return (points, np.full(n, ts, np.int64), np.array(values, np.float64),
                np.full(n, Quality.GOOD, np.uint8))
