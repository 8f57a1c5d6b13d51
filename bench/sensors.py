"""MQTT-native sensors, one reading per message: the edge agent's CPU per sensor message.

    python -m bench.sensors edge MQTT_PORT N     the agent with 100 sensor mappings, until N
                                                 messages came: CPU seconds per message
    python -m bench.sensors publish MQTT_PORT N  N one-reading JSON messages at QoS 1, as
                                                 fast as the broker takes them

Each runs in a process of its own (the publisher must not share the agent's interpreter);
the agent's uplink counts the wire messages instead of sending them, so what is measured is
the sensor path: the edge's MQTT subscriber (edge.mqttsub), parsing, and the batcher.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.polling import ROOT, CountingUplink, cpu_seconds
from edge.agent import EdgeAgent
from edge.config import EdgeConfig, MqttSensor
from edge.mqtt import MqttSettings
from tests.services import mosquitto

SENSORS = 100


async def edge(port: int, n: int) -> dict[str, float]:
    cfg = EdgeConfig(mqtt_sensors={f"s{i}": MqttSensor(topic=f"bench/s{i}", point=f"S{i}",
                                                       value_path="v", ts_path="t")
                                   for i in range(SENSORS)},
                     max_batch_readings=5000, max_batch_delay_s=0.2)
    agent = EdgeAgent("BENCH", "edge-sensors", cfg, CountingUplink(),
                      MqttSettings(port=port, client_id="bench-sensors"))
    task = asyncio.create_task(agent.run())
    deadline = time.monotonic() + 20
    while (agent.sensors is None or not agent.sensors.conn.subscribed.is_set()) \
            and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    print("ready", flush=True)
    src = agent.sensors
    assert src is not None
    while src.received == 0 and time.monotonic() < deadline + 30:
        await asyncio.sleep(0.001)
    cpu0, t0, got0 = cpu_seconds(), time.monotonic(), src.received
    deadline = t0 + 120
    while src.received < n and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    while agent.readings_published < src.received - src.malformed and \
            time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    cpu1, t1, got1 = cpu_seconds(), time.monotonic(), src.received
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return {"messages": got1 - got0, "seconds": t1 - t0,
            "cpu_us_per_message": 1e6 * (cpu1 - cpu0) / max(got1 - got0, 1),
            "malformed": src.malformed, "readings_published": agent.readings_published}


def publish(port: int, n: int) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sensor-devices")
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    now = int(time.time() * 1000)
    infos = [c.publish(f"bench/s{i % SENSORS}", orjson.dumps({"v": i * 0.001, "t": now}),
                       qos=1) for i in range(n)]
    for info in infos:
        info.wait_for_publish(60)
    c.disconnect()
    c.loop_stop()


def figures(n: int = 20_000) -> dict[str, Any]:
    """The edge's CPU per one-reading sensor message through a private broker."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="hazgw-bench-sensors-") as tmp, \
            mosquitto(Path(tmp) / "mq") as mq:
        agent = subprocess.Popen([sys.executable, "-m", "bench.sensors", "edge", str(mq.port),
                                  str(n)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            assert agent.stdout is not None
            if agent.stdout.readline().strip() != "ready":
                raise RuntimeError("bench.sensors edge did not start")
            subprocess.run([sys.executable, "-m", "bench.sensors", "publish", str(mq.port),
                            str(n)], cwd=ROOT, check=True, timeout=180)
            out, _ = agent.communicate(timeout=180)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait(10)
    result: dict[str, Any] = json.loads(out)
    return {"sensor_messages": result["messages"],
            "sensor_cpu_us_per_message": result["cpu_us_per_message"],
            "sensor_messages_per_s": result["messages"] / result["seconds"]}


if __name__ == "__main__":
    what, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if what == "edge":
        print(json.dumps(asyncio.run(edge(port, count))), flush=True)
    else:
        publish(port, count)
