"""Hostile MQTT sensor payloads (property-based, 10 000 of them) through the handler that
the sensor subscriber calls with each read's messages: nothing escapes it (an escape once
ended paho's thread and every sensor of the edge with it), every payload is either delivered
or dead-lettered, exactly one of the two, and a good payload afterwards is delivered.

Seen before: 939 of 10 000 fuzzed payloads raised inside paho's thread (a ``ts`` of NaN,
infinity or 1e19), which ended it; ``edge_stats`` kept coming with ``sensor_messages``
frozen, and the broker redelivered the payload after a restart to kill it again."""

from __future__ import annotations

import json
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.config import MqttSensor
from edge.mqtt import MqttSettings
from edge.poller import Samples
from edge.sensors import MqttSensorSource
from gateway.sim.ports import free_port

NOW = int(time.time() * 1000)
SENSORS = {
    "plain": MqttSensor(topic="plant/gt1", point="GT1"),
    "nested": MqttSensor(topic="plant/at1", point="AT1", value_path="data.conc",
                         ts_path="data.t"),
    "seconds": MqttSensor(topic="plant/lt1", point="LT1", value_path="v", ts_path="t",
                          ts_unit="s"),
    "multi": MqttSensor(topic="site/+/detector/+", fields={"{1}_{3}_CH4": "gas.ch4",
                                                           "{1}_{3}_H2S": "gas.h2s"},
                        ts_path="t"),
}
TOPICS = ["plant/gt1", "plant/at1", "plant/lt1", "site/a/detector/D1",
          "site/+/detector/x", "site/a/detector"]
KEYS = st.sampled_from(["data", "conc", "t", "v", "gas", "ch4", "h2s", ""]) | st.text(max_size=5)
NUMBERS = (st.integers(min_value=-2**70, max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.sampled_from([NOW, NOW / 1000, NOW * 1_000_000, 1e19, -1, 0]))
LEAVES = st.none() | st.booleans() | NUMBERS | st.text(max_size=10) \
    | NUMBERS.map(str)
JSONISH = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12)


def encoded(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


PAYLOADS = (JSONISH.map(encoded) | st.binary(max_size=64)
            | NUMBERS.map(lambda x: str(x).encode()))


def test_ten_thousand_hostile_sensor_payloads_are_each_counted_and_none_escapes() -> None:
    delivered: list[Samples] = []
    # never started: the test hands each payload to the subscriber's handler itself, as a
    # read of one message would
    source = MqttSensorSource(MqttSettings(port=free_port(), client_id="hostile-sensors"),
                              SENSORS, delivered.append)
    seen = [0]

    def flush() -> int:
        return len(delivered)

    @settings(max_examples=10_000, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(TOPICS), PAYLOADS)
    def one(topic: str, payload: bytes) -> None:
        before = (source.received, source.malformed, flush())
        source.receive_batch([(topic, payload)])      # raises: the test fails
        after = (source.received, source.malformed, flush())
        if after[0] == before[0]:                        # no sensor listens there
            assert after == before
        else:
            # exactly one of: delivered, dead-lettered
            assert (after[1] - before[1]) + (after[2] - before[2]) == 1, payload
        seen[0] += 1

    one()
    assert seen[0] >= 10_000 and source.malformed > 1000 and len(delivered) > 100
    # a good payload afterwards is delivered
    n = flush()
    source.receive_batch([("plant/at1", json.dumps(
        {"data": {"conc": 0.5, "t": NOW}}).encode())])
    assert flush() == n + 1 and delivered[-1][0] == ["AT1"] \
        and delivered[-1][2].tolist() == [0.5] and delivered[-1][1].tolist() == [NOW]
    # every mapping keeps its last dead letters, bounded
    assert all(len(kept) <= 5 for kept in source.dead_letters.values())
    assert json.loads(source.dead_letter_doc())["malformed"] == source.malformed


def test_a_hostile_payload_in_a_read_costs_only_itself() -> None:
    delivered: list[Samples] = []
    source = MqttSensorSource(MqttSettings(port=free_port(), client_id="hostile-batch"),
                              SENSORS, delivered.append)
    good = json.dumps({"data": {"conc": 0.5, "t": NOW}}).encode()
    source.receive_batch([("plant/at1", good), ("plant/at1", b'{"data": {"conc": 1, "t": NaN}}'),
                          ("plant/gt1", b"inf"), ("plant/gt1", b"2.5"), ("nobody/here", b"1")])
    assert len(delivered) == 1          # one read, one hand-over
    ids, ts, val, q, qd = delivered[0]
    assert ids == ["AT1", "GT1"] and val.tolist() == [0.5, 2.5]
    assert q.tolist() == qd.tolist() == [0, 0]
    assert ts[0] == NOW and source.received == 4 and source.malformed == 2
