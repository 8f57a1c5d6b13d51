"""Self-metrics of the gateway: counters and gauges, logged and written as ``gateway_stats``.

Measurement ``gateway_stats``: tags ``enterprise, instance``; integer fields as below; time =
when the snapshot was taken. Counters are totals since start (use ``non_negative_derivative``).
"""

from __future__ import annotations

from gateway.influx.schema import gateway_stats_line
from gateway.stream.core import Core
from gateway.stream.ingest import MessageBuffer, MqttIngest
from gateway.stream.jsingest import JetStreamIngest


def snapshot(core: Core, buffer: MessageBuffer | None = None,
             ingest: MqttIngest | JetStreamIngest | None = None) -> dict[str, int]:
    """Current counters and gauges by name."""
    s, w = core.stats, core.writer.stats
    out = {
        "messages": s.messages, "readings": s.readings,
        "malformed_messages": s.malformed_messages,
        "unknown_point_readings": s.unknown_point_readings,
        "duplicate_messages": s.duplicate_messages,
        "edge_stats_messages": s.edge_stats_messages,
        "sequence_gaps": core.sequences.gaps(), "missing_messages": core.sequences.missing(),
        "alarm_events": s.alarm_events, "sink_failures": s.sink_failures,
        "notifications_failed": s.notifications_failed,
        "accepted_messages": s.accepted_messages,
        "points_written": w.points_written, "batches_written": w.batches_written,
        "write_retries": w.retries, "write_throttled": w.throttled,
        "rejected_points": w.rejected_points, "pending_points": core.writer.pending_points,
        "write_split_batches": w.split_batches,
        "spooled_points": w.spooled_points, "replayed_points": w.replayed_points,
        "write_latency_ms": round(w.write_latency_ms),
    }
    out.update(core.boundary.stats())
    out.update(core.loops.stats())
    spool = core.writer.spool
    if spool is not None:
        out["spool_batches"] = len(spool)
        out["spool_bytes"] = spool.bytes
        out["spool_dropped_points"] = spool.dropped_points
        out["spool_dropped_alarm_batches"] = spool.dropped_alarm_batches
    if buffer is not None:
        out["ingest_buffered_messages"] = len(buffer)
    if ingest is not None:
        out["mqtt_connected"] = int(ingest.connected.is_set())
        if isinstance(ingest, JetStreamIngest):
            out["jetstream_delivered"] = ingest.delivered
            out["jetstream_acknowledged"] = ingest.acknowledged
            out["jetstream_consumers"] = ingest.consumers
            out["jetstream_position"] = ingest.position
            out["jetstream_lost_deliveries"] = ingest.lost_deliveries
            out["jetstream_stalls"] = ingest.stalls
        if ingest.broker_dropped is not None:
            out["broker_dropped_messages"] = ingest.broker_dropped
    return out


def stats_line(enterprise: str, instance: str, values: dict[str, int], ts_ms: int) -> bytes:
    """One ``gateway_stats`` line of line protocol."""
    return gateway_stats_line(enterprise, instance, values, ts_ms)
