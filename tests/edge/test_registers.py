from __future__ import annotations

import pytest

from edge.devices import Register
from edge.registers import encode_values, plan_reads


@pytest.mark.parametrize(("rtype", "order", "value"), [
    ("int16", "ABCD", -1234), ("uint16", "ABCD", 65000), ("int32", "ABCD", -70000),
    ("int32", "CDAB", -70000), ("uint32", "ABCD", 4_000_000_000),
    ("uint32", "CDAB", 4_000_000_000), ("float32", "ABCD", 12.5), ("float32", "CDAB", -0.375),
])
def test_decode_inverts_encode(rtype: str, order: str, value: float) -> None:
    reg = Register.model_validate({"address": 3, "type": rtype, "word_order": order})
    words = encode_values(reg, value)
    block = plan_reads({"p": reg})[0]
    assert block.decode(words).tolist() == [value]


def test_known_register_images() -> None:
    # 12.5 as IEEE-754 float32 is 0x41480000: ABCD sends 0x4148 first, CDAB 0x0000 first.
    abcd = Register.model_validate({"address": 0, "type": "float32"})
    cdab = Register.model_validate({"address": 0, "type": "float32", "word_order": "CDAB"})
    assert encode_values(abcd, 12.5) == [0x4148, 0x0000]
    assert plan_reads({"p": cdab})[0].decode([0x0000, 0x4148]).tolist() == [12.5]


def test_scale_and_offset() -> None:
    reg = Register.model_validate({"address": 0, "type": "int16", "scale": 0.1, "offset": -40})
    assert plan_reads({"p": reg})[0].decode([655]).tolist() == [pytest.approx(25.5)]


def test_planner_merges_neighbours_and_splits_tables_gaps_and_size() -> None:
    regs = {
        "a": Register.model_validate({"address": 0, "type": "float32"}),
        "b": Register.model_validate({"address": 2, "type": "int16"}),
        "c": Register.model_validate({"address": 10, "type": "uint16"}),
        "d": Register.model_validate({"table": "input", "address": 2, "type": "uint16"}),
    }
    blocks = plan_reads(regs)
    assert [(b.table, b.start, b.count, b.point_ids) for b in blocks] == [
        ("holding", 0, 3, ["a", "b"]), ("holding", 10, 1, ["c"]), ("input", 2, 1, ["d"])]
    merged = plan_reads(regs, max_gap=10)
    assert [(b.start, b.count) for b in merged][:1] == [(0, 11)]
    small = plan_reads({f"p{i}": Register.model_validate({"address": 2 * i, "type": "float32"})
                        for i in range(100)}, max_count=125)
    assert [(b.start, b.count) for b in small] == [(0, 124), (124, 76)]


def test_register_past_the_address_space_is_rejected() -> None:
    with pytest.raises(ValueError, match="runs past register 65535"):
        Register.model_validate({"address": 65535, "type": "float32"})
