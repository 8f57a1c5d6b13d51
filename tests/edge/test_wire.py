from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from edge import wire


def test_round_trip_keeps_columns_and_turns_nan_into_null() -> None:
    payload = wire.encode("edge-01", 1700, 5, ["a", "b"], [1, 2], [1.5, math.nan], [0, 2])
    assert orjson.loads(payload)["val"] == [1.5, None]
    wb = wire.decode(payload)
    assert (wb.edge, wb.boot, wb.seq) == ("edge-01", 1700, 5)
    assert wb.ids == ["a", "b"]
    assert wb.ts_ms.tolist() == [1, 2]
    assert wb.value[0] == 1.5 and np.isnan(wb.value[1])
    assert wb.quality.tolist() == [0, 2]


def test_empty_batch_round_trips() -> None:
    assert len(wire.decode(wire.encode("e", 1, 0, [], [], [], []))) == 0


def test_topic_layout() -> None:
    assert wire.readings_topic("91320582MA1W3K4X5R", "edge-01") == \
        "mhs/v1/91320582MA1W3K4X5R/edge-01/readings"


GOOD = {"v": 1, "edge": "e", "boot": 1, "seq": 0, "ids": ["a"], "ts": [1], "val": [2.0],
        "q": [0]}


@pytest.mark.parametrize(("change", "message"), [
    ({"v": 2}, "unsupported wire version 2"),
    ({"edge": ""}, "'edge' must be a non-empty string"),
    ({"seq": -1}, "'boot' and 'seq' must be non-negative integers"),
    ({"ids": "a"}, "'ids' must be a list of strings"),
    ({"ids": [{"x": 1}]}, "'ids' must be a list of strings"),
    ({"ids": [7]}, "'ids' must be a list of strings"),
    ({"ts": [1, 2]}, "field 'ts' has 2 entries, 'ids' has 1"),
    ({"val": ["high"]}, "field 'val'"),
    ({"q": [7]}, "quality code outside 0..3"),
])
def test_invalid_messages_name_the_problem(change: dict[str, object], message: str) -> None:
    with pytest.raises(wire.WireError, match=message):
        wire.decode(orjson.dumps({**GOOD, **change}))


def test_not_json_and_not_an_object() -> None:
    with pytest.raises(wire.WireError, match="not JSON"):
        wire.decode(b"\x00garbage")
    with pytest.raises(wire.WireError, match="must be a JSON object"):
        wire.decode(b"[1, 2]")


def test_wire_quality_codes_are_the_cores() -> None:
    from alerting.batch import Quality as CoreQuality
    assert {q.name: int(q) for q in wire.Quality} == {q.name: int(q) for q in CoreQuality}


@pytest.mark.parametrize(("change", "field"), [
    ({"boot": -1}, "'boot'"), ({"seq": True}, "'seq'"), ({"boot": 2**63}, "'boot'"),
    ({"seq": 1.5}, "'seq'"), ({"ts": [1.5]}, "'ts'"), ({"ts": [[1, 2]]}, "'ts'"),
    ({"ts": [[]]}, "'ts'"), ({"q": [[0, 0]]}, "'q'"), ({"q": [0.5]}, "'q'"),
    ({"val": [[1.0]]}, "'val'"), ({"val": ["1.5"]}, "'val'"), ({"val": [1e400]}, "'val'"),
    ({"ts": ["1"]}, "'ts'"), ({"ts": [2**63 - 1, True]}, "'ts'"),
])
def test_what_the_docstring_forbids_is_refused(change: dict[str, object], field: str) -> None:
    msg = {"v": 1, "edge": "e", "boot": 1, "seq": 0, "ids": ["A"], "ts": [1_700_000_000_000],
           "val": [1.0], "q": [0], **change}
    payload = orjson.dumps(msg)
    if change.get("val") == [1e400]:        # orjson writes infinity as null: say it in JSON
        payload = payload.replace(b'"val":[null]', b'"val":[1e400]')
        field = "not JSON"                  # orjson refuses to parse it at all
    with pytest.raises(wire.WireError, match=field):
        wire.decode(payload)


def test_nulls_and_integers_in_the_value_column_are_numbers() -> None:
    wb = wire.decode(orjson.dumps({"v": 1, "edge": "e", "boot": 0, "seq": 0, "ids": ["A", "B", "C"],
                              "ts": [1, 2, 3], "val": [None, 2, 2.5], "q": [2, 0, 0]}))
    assert np.isnan(wb.value[0]) and wb.value[1:].tolist() == [2.0, 2.5]
    assert wb.ts_ms.dtype == np.int64 and wb.quality.dtype == np.uint8


def test_a_quality_detail_round_trips_and_is_left_out_when_there_is_none() -> None:
    payload = wire.encode("e", 1, 0, ["a", "b"], [1, 2], [1.0, math.nan], [0, 2], [0, 2])
    assert orjson.loads(payload)["qd"] == [0, 2]
    wb = wire.decode(payload)
    assert wb.detail is not None and wb.detail.tolist() == [0, 2]
    plain = wire.encode("e", 1, 0, ["a"], [1], [1.0], [0], [0])
    assert "qd" not in orjson.loads(plain) and wire.decode(plain).detail is None


@pytest.mark.parametrize(("qd", "message"), [
    ([300], "outside 0..255"), ([-1], "outside 0..255"), ([2, 2], "has 2 entries"),
    ([[2]], "'qd' must be a flat list"), (["2"], "'qd' must be a flat list"),
    ([0.5], "'qd' must be a flat list"),
])
def test_a_bad_quality_detail_is_refused(qd: list[object], message: str) -> None:
    with pytest.raises(wire.WireError, match=message):
        wire.decode(orjson.dumps({**GOOD, "q": [2], "val": [None], "qd": qd}))


def test_a_detail_on_a_good_reading_is_refused() -> None:
    with pytest.raises(wire.WireError, match="detail to a reading of good quality"):
        wire.decode(orjson.dumps({**GOOD, "qd": [2]}))
