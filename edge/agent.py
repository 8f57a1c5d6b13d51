"""The edge agent: device pollers feeding one batcher that publishes wire v1 messages."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time

import numpy as np
import numpy.typing as npt

from edge import wire
from edge.devices import EdgeAgent
from edge.mqtt import MqttSettings, Uplink
from edge.poller import DevicePoller, Samples
from edge.sensors import MqttSensorSource

log = logging.getLogger(__name__)


class EdgeRunner:
    """Collects samples from every poller and publishes them in batches."""

    def __init__(self, enterprise: str, edge_id: str, cfg: EdgeAgent, uplink: Uplink,
                 sensor_broker: MqttSettings | None = None) -> None:
        self.edge_id = edge_id
        self.cfg = cfg
        self.topic = wire.readings_topic(enterprise, edge_id)
        self.uplink = uplink
        self.boot = int(time.time() * 1000)
        self.seq = 0
        self.pollers = [DevicePoller(d, dev, self._collect) for d, dev in cfg.modbus.items()]
        self._pending: list[Samples] = []
        self._pending_n = 0
        self._wake = asyncio.Event()
        self.readings_published = 0
        self._sensor_broker = sensor_broker
        self.sensors: MqttSensorSource | None = None

    def _collect(self, samples: Samples) -> None:
        self._pending.append(samples)
        self._pending_n += len(samples[0])
        if self._pending_n >= self.cfg.max_batch_readings:
            self._wake.set()

    async def flush(self) -> None:
        """Publish everything collected so far, in messages of at most max_batch_readings."""
        pending, self._pending, self._pending_n = self._pending, [], 0
        if not pending:
            return
        ids = list(itertools.chain.from_iterable(s[0] for s in pending))
        ts = np.concatenate([s[1] for s in pending])
        val = np.concatenate([s[2] for s in pending])
        q = np.concatenate([s[3] for s in pending])
        step = self.cfg.max_batch_readings
        for start in range(0, len(ids), step):
            end = start + step
            await self._publish(ids[start:end], ts[start:end], val[start:end], q[start:end])

    async def _publish(self, ids: list[str], ts: npt.NDArray[np.int64],
                       val: npt.NDArray[np.float64], q: npt.NDArray[np.uint8]) -> None:
        payload = wire.encode(self.edge_id, self.boot, self.seq, ids, ts, val, q)
        self.seq += 1
        await self.uplink.publish(self.topic, payload)
        self.readings_published += len(ids)

    async def run(self) -> None:
        """Run the pollers and the batcher until cancelled; flush on the way out."""
        tasks = [asyncio.create_task(p.run(), name=f"poll-{p.device_id}") for p in self.pollers]
        if self.cfg.mqtt_sensors:
            if self._sensor_broker is None:
                raise ValueError(f"edge {self.edge_id} has MQTT sensors but no broker to read")
            self.sensors = MqttSensorSource(self._sensor_broker, self.cfg.mqtt_sensors,
                                            self._collect, asyncio.get_running_loop())
            self.sensors.start()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.cfg.max_batch_delay_s)
                self._wake.clear()
                await self.flush()
        finally:
            if self.sensors is not None:
                self.sensors.stop()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.flush()
