"""Alarm events on MQTT: one JSON message per event on ``mhs/v1/<enterprise>/alarms``, QoS 1.

Message (orjson, v1)::

    {"v": 1, "enterprise": "91320582MA1W3K4X5R", "alarm_id": "GT101:process",
     "alarm_type": "process",        # process, roc, predictive, fault, stale, flatline,
                                     # tamper, vote, flood
     "point": "GT101", "source": "lpg_farm", "equipment": "dike_A", "console": "control_room",
     "kind": "combustible_gas", "ts": 1732345679000,
     "event": "activate",            # activate, raise, change, clear, ack, shelve, unshelve,
                                     # shelve_expired, suppress, unsuppress, remove, return,
                                     # re-alarm, chattering, chatter_end, condition,
                                     # flood_start, flood_end
     "state": "unack", "prev_state": "normal",
     "level": 1, "level_name": "H",  # as shown: a latching alarm's highest level until reset
     "current_level": 1,             # the condition's level now; "prev_level" before
     "prev_level": 0,
     "gb50493_level": 1,             # 1 / 2 for gas process alarms, else null
     "priority": 2, "priority_name": "high",
     "value": 26.4, "limit": 25.0, "forecast_s": null,
     "predictive": false,            # true only for trend warnings: never a GB/T 50493 alarm
     "user": null, "reason": null,
     "annunciated": true,            # false: recorded, not annunciated (shelved, suppressed,
                                     # out of service, chattering, or not above the level
                                     # already annunciated or acknowledged)
     "toxic": false}

The model (field descriptions, JSON Schema) is ``gateway.alarms.model.AlarmMessage``.

The publisher waits rather than drop when paho's queue is full: alarm events are never lost
to backpressure.

On the NATS transport the same messages go to JetStream instead (``JetStreamAlarms``):
subject ``hazgw.alarms.<enterprise>`` of the stream ``<wire stream>_ALARMS`` (R3, made by
``gateway.stream.jsingest.ensure_stream``), in order, each with a dedup id that is a digest of
subject and message: an event made again after a failover (the next owner replays from the
saved state) is stored once within the stream's duplicate window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from alerting.engine import AlarmEvent
from edge.jetstream import JetStreamUplink, NatsSettings
from edge.mqtt import MqttSettings, MqttUplink
from gateway.alarms.model import AlarmMessage


def alarms_topic(enterprise: str) -> str:
    """Where a gateway publishes its enterprise's alarm events."""
    return f"mhs/v1/{enterprise}/alarms"


def alarm_message(enterprise: str, e: AlarmEvent) -> dict[str, Any]:
    """The v1 JSON object of one event (``gateway.alarms.model.AlarmMessage``)."""
    return AlarmMessage.of(enterprise, e).model_dump()


class AlarmPublisher:
    """Publishes every alarm event of one enterprise at QoS 1."""

    def __init__(self, enterprise: str, s: MqttSettings) -> None:
        self.enterprise = enterprise
        self.topic = alarms_topic(enterprise)
        self.uplink = MqttUplink(s.model_copy(update={"client_id": f"{s.client_id}-alarms"}),
                                 who="alarms")

    async def __call__(self, events: list[AlarmEvent]) -> None:
        """Publish the events in order."""
        for e in events:
            await self.uplink.publish(self.topic, orjson.dumps(alarm_message(self.enterprise, e)))

    async def close(self) -> None:
        """Wait (bounded) for the broker to acknowledge, then disconnect."""
        await self.uplink.close()


def alarms_subject(enterprise: str) -> str:
    """Where a gateway on the NATS transport publishes its enterprise's alarm events."""
    return f"hazgw.alarms.{enterprise.replace('.', '~')}"


class JetStreamAlarms:
    """Publishes every alarm event of one enterprise to JetStream, in order."""

    def __init__(self, enterprise: str, s: NatsSettings) -> None:
        self.enterprise = enterprise
        self.subject = alarms_subject(enterprise)
        self.uplink = JetStreamUplink(s, f"alarms-{enterprise}")

    async def __call__(self, events: list[AlarmEvent]) -> None:
        """Queue the events in order (acknowledged by the stream one after another)."""
        for e in events:
            await self.uplink.send_to(self.subject,
                                      orjson.dumps(alarm_message(self.enterprise, e)))

    def mark(self, done: Callable[[], None]) -> None:
        """Call ``done`` once the stream has every event queued so far: a saved state covers
        only events that are there (``gateway.stream.state``), so that a failover neither
        loses one nor, within the duplicate window, doubles one."""
        self.uplink.mark(done)

    async def close(self) -> None:
        """Wait (bounded) for the stream's acknowledgements, then close."""
        await self.uplink.close()
