"""The edge agent: device pollers feeding one batcher that publishes wire v1 messages, and
its self-metrics (edge.stats) every ``stats_interval_s``.

Every task is supervised (``edge.supervise``): a poller that ends is started again, a stats
message or a batch that cannot be published is said once and retried, and each loop's
failures and whether it is failing now are in the edge's stats."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from edge import wire
from edge.clock import WALL, Clock
from edge.config import EdgeConfig
from edge.mqtt import MqttSettings, Uplink
from edge.poller import LIBRARY_LOG, DevicePoller, Samples, lines_for
from edge.sensors import MqttSensorSource
from edge.stats import EdgeStats, dead_letters_topic, encode_stats, stats_topic
from edge.supervise import Loops, keep_running, supervised

log = logging.getLogger(__name__)


class EdgeAgent:
    """Collects samples from every poller and publishes them in batches."""

    def __init__(self, enterprise: str, edge_id: str, cfg: EdgeConfig, uplink: Uplink,
                 sensor_broker: MqttSettings | None = None,
                 uplink_stats: Callable[[], dict[str, int]] | None = None,
                 clock: Clock = WALL) -> None:
        self.edge_id = edge_id
        self.clock = clock
        self.cfg = cfg
        self.topic = wire.readings_topic(enterprise, edge_id)
        self.stats_topic = stats_topic(enterprise, edge_id)
        self.dead_letters_topic = dead_letters_topic(enterprise, edge_id)
        self.uplink = uplink
        self.boot = int(time.time() * 1000)
        self.seq = 0
        lines = lines_for(cfg.modbus)
        self.pollers = [DevicePoller(d, dev, self.collect, lines[d], clock)
                        for d, dev in cfg.modbus.items()]
        self._uplink_stats = uplink_stats
        self.messages_published = 0
        self._pending: list[Samples] = []
        self._pending_n = 0
        self._wake = asyncio.Event()
        self.readings_published = 0
        self._sensor_broker = sensor_broker
        self.sensors: MqttSensorSource | None = None
        self.loops = Loops(clock)

    def collect(self, samples: Samples) -> None:
        """Queue one poll's or one sensor message's samples for the next batch."""
        self._pending.append(samples)
        self._pending_n += len(samples[0])
        if self._pending_n >= self.cfg.max_batch_readings:
            self._wake.set()

    async def flush(self) -> None:
        """Publish everything collected so far, in messages of at most max_batch_readings;
        what a failing publish leaves is kept for the next flush, in order."""
        pending, self._pending, self._pending_n = self._pending, [], 0
        if not pending:
            return
        ids = list(itertools.chain.from_iterable(s[0] for s in pending))
        ts = np.concatenate([s[1] for s in pending])
        val = np.concatenate([s[2] for s in pending])
        q = np.concatenate([s[3] for s in pending])
        qd = np.concatenate([s[4] for s in pending])
        step = self.cfg.max_batch_readings
        for start in range(0, len(ids), step):
            end = start + step
            try:
                await self._publish(ids[start:end], ts[start:end], val[start:end],
                                    q[start:end], qd[start:end])
            except BaseException:
                self._pending[:0] = [(ids[start:], ts[start:], val[start:], q[start:],
                                      qd[start:])]
                self._pending_n += len(ids) - start
                raise

    async def _publish(self, ids: list[str], ts: npt.NDArray[np.int64],
                       val: npt.NDArray[np.float64], q: npt.NDArray[np.uint8],
                       qd: npt.NDArray[np.uint8]) -> None:
        payload = wire.encode(self.edge_id, self.boot, self.seq, ids, ts, val, q, qd)
        self.seq += 1
        await self.uplink.publish(self.topic, payload, len(ids))
        self.readings_published += len(ids)
        self.messages_published += 1

    def stats(self) -> EdgeStats:
        """The self-metrics as of now (resets the per-interval latency maximum)."""
        edge: dict[str, float] = {"readings_published": self.readings_published,
                                  "messages_published": self.messages_published,
                                  "pending_readings": self._pending_n}
        if self.sensors is not None:
            edge["sensor_messages"] = self.sensors.received
            edge["sensor_malformed"] = self.sensors.malformed
            edge["sensor_missing_fields"] = self.sensors.missing_fields
        if self._uplink_stats is not None:
            edge.update(self._uplink_stats())
        edge.update(self.loops.stats())         # each loop's failures and failing now
        edge["library_log_lines"] = LIBRARY_LOG.count    # pymodbus's, kept out of the log
        devices: dict[str, dict[str, float]] = {}
        for p in self.pollers:
            st = p.stats
            devices[p.device_id] = {
                "polls_ok": st.polls_ok, "polls_failed": st.polls_failed,
                "polls_skipped": st.polls_skipped, "connect_attempts": p.connect_attempts,
                "online": int(bool(p.online)), "offline_events": p.offline_events,
                "exception_responses": st.exception_responses,
                "last_exception_code": st.last_exception_code,
                "latency_avg_ms": round(1000 * st.latency_sum_s / max(st.polls_ok, 1), 3),
                "latency_max_ms": round(1000 * st.latency_max_s, 3)}
            st.latency_max_s = 0.0
        return EdgeStats(self.edge_id, self.boot, self.clock.now_ms(), edge, devices)

    async def _publish_stats(self) -> None:
        await self.uplink.publish(self.stats_topic, encode_stats(self.stats()), 0)
        if self.sensors is not None and self.sensors.dead_letters:
            await self.uplink.publish(self.dead_letters_topic,
                                      self.sensors.dead_letter_doc(), 0)

    async def _batch(self) -> None:
        """One turn of the batcher: wait for a full batch or the batch delay, publish."""
        # asyncio.timeout, never wait_for, here and in every loop that is cancelled at
        # shutdown: Python 3.11's wait_for can swallow a cancellation that arrives as the
        # awaited event is set, and the loop then runs on.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.cfg.max_batch_delay_s):
                await self._wake.wait()
        self._wake.clear()
        await self.flush()

    async def run(self) -> None:
        """Run the pollers and the batcher until cancelled; flush on the way out."""
        never = asyncio.Event()        # these loops end when cancelled
        tasks = [asyncio.create_task(keep_running(self.loops, f"poll-{p.device_id}", p.run),
                                     name=f"poll-{p.device_id}") for p in self.pollers]
        tasks.append(asyncio.create_task(
            supervised(self.loops, "stats", self._publish_stats, never,
                       self.cfg.stats_interval_s), name=f"stats-{self.edge_id}"))
        if self.cfg.mqtt_sensors:
            if self._sensor_broker is None:
                raise ValueError(f"edge {self.edge_id} has MQTT sensors but no broker to read")
            self.sensors = MqttSensorSource(self._sensor_broker, self.cfg.mqtt_sensors,
                                            self.collect, self.clock)
            tasks.append(asyncio.create_task(
                keep_running(self.loops, "sensors", self.sensors.run),
                name=f"sensors-{self.edge_id}"))
        try:
            await supervised(self.loops, "batcher", self._batch, never, 0.0)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.flush()
