from __future__ import annotations

import orjson
import pytest

from edge.stats import EdgeStats, decode_stats, encode_stats
from edge.wire import WireError

STATS = EdgeStats("edge-01", 1, 1_700_000_000_000,
                  {"readings_published": 90, "spool_messages": 0},
                  {"plc-1": {"polls_ok": 10, "latency_avg_ms": 1.5}})   # ids as the site names them


def test_round_trip() -> None:
    assert decode_stats(encode_stats(STATS)) == STATS


@pytest.mark.parametrize(("change", "message"), [
    ({"v": 2}, "unsupported wire version 2"),
    ({"ts": "now"}, "edge must be a string, boot and ts integers"),
    ({"devices": {"d": {"polls_ok": "many"}}}, "devices.d.polls_ok is not a finite number"),
    ({"edge_stats": {"a b": 1}}, "unusable name"),
    ({"devices": []}, "devices is not an object"),
])
def test_bad_stats_messages_say_what_is_wrong(change: dict[str, object], message: str) -> None:
    doc = orjson.loads(encode_stats(STATS)) | change
    with pytest.raises(WireError, match=message):
        decode_stats(orjson.dumps(doc))
