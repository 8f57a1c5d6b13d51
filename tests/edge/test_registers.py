from __future__ import annotations

import numpy as np
import pytest

from edge.config import Register
from edge.registers import encode_values, plan_reads

VALUES = {"int16": -1234, "uint16": 65000, "int32": -70000, "uint32": 4_000_000_000,
          "int64": -9_000_000_000_000, "float32": -0.375, "float64": 1234.5678901234}


@pytest.mark.parametrize("order", ["ABCD", "CDAB", "BADC", "DCBA"])
@pytest.mark.parametrize("rtype", sorted(VALUES))
def test_decode_inverts_encode_for_every_type_and_order(rtype: str, order: str) -> None:
    reg = Register.model_validate({"address": 3, "type": rtype, "word_order": order})
    words = encode_values(reg, VALUES[rtype])
    block = plan_reads({"p": reg})[0]
    assert block.decode(words).tolist() == [VALUES[rtype]]


@pytest.mark.parametrize(("order", "image"), [
    ("ABCD", [0x4148, 0x0000]), ("CDAB", [0x0000, 0x4148]),
    ("BADC", [0x4841, 0x0000]), ("DCBA", [0x0000, 0x4841])])
def test_the_four_orders_of_12_5(order: str, image: list[int]) -> None:
    # 12.5 as IEEE-754 float32 is 0x41 48 00 00 (bytes A B C D)
    reg = Register.model_validate({"address": 0, "type": "float32", "word_order": order})
    assert encode_values(reg, 12.5) == image
    assert plan_reads({"p": reg})[0].decode(image).tolist() == [12.5]


def test_a_block_mixing_types_and_bits_decodes_each_field() -> None:
    regs = {
        "f64": Register.model_validate({"address": 0, "type": "float64", "word_order": "DCBA"}),
        "b3": Register.model_validate({"address": 4, "type": "bit", "bit": 3}),
        "b0": Register.model_validate({"address": 4, "type": "bit", "bit": 0}),
        "i16": Register.model_validate({"address": 5, "type": "int16", "scale": 0.1}),
    }
    image = [*encode_values(regs["f64"], -2.25), 0b1000, *encode_values(regs["i16"], -12.3)]
    [block] = plan_reads(regs, max_gap=0)
    got = dict(zip(block.point_ids, block.decode(image).tolist(), strict=True))
    assert got == {"f64": -2.25, "b3": 1.0, "b0": 0.0, "i16": pytest.approx(-12.3)}


def test_bit_needs_its_bit_number() -> None:
    with pytest.raises(ValueError, match="bit is required"):
        Register.model_validate({"address": 0, "type": "bit"})


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


def test_current_loop_scales_4_20_ma_and_flags_namur_ranges() -> None:
    # a 0–27648 count analog card (Siemens style: 4 mA = 5530, 20 mA = 27648), 0–100 %LEL
    loop = {"raw_at_4ma": 5530, "raw_at_20ma": 27648, "eng_low": 0, "eng_high": 100}
    regs = {f"p{i}": Register.model_validate({"address": i, "type": "uint16",
                                              "current_loop": loop}) for i in range(5)}
    [block] = plan_reads(regs)

    def counts(ma: float) -> int:
        return round(5530 + (ma - 4) / 16 * (27648 - 5530))

    values, quality = block.decode_with_quality(
        [counts(12.0), counts(3.7), counts(2.0), counts(20.8), counts(22.0)])
    assert values[0] == pytest.approx(50.0, abs=0.01)
    assert quality.tolist() == [0, 1, 2, 1, 2]        # good, uncertain, bad, uncertain, bad
    assert np.isnan(values[2]) and np.isnan(values[4])    # a broken loop carries no value


def test_grouped_decoding_agrees_with_per_field_decoding_on_random_images() -> None:
    rng = np.random.default_rng(3)
    types = ["bit", "int16", "uint16", "int32", "uint32", "int64", "float32", "float64"]
    for _ in range(20):
        regs: dict[str, Register] = {}
        addr = 0
        for i in range(40):
            rtype = str(rng.choice(types))
            fields: dict[str, object] = {"address": addr, "type": rtype,
                                         "word_order": str(rng.choice(["ABCD", "CDAB", "BADC",
                                                                       "DCBA"]))}
            if rtype == "bit":
                fields["bit"] = int(rng.integers(16))
            reg = Register.model_validate(fields)
            regs[f"p{i}"] = reg
            addr += reg.width + int(rng.integers(2))
        for block in plan_reads(regs, 125, max_gap=1):
            image = rng.integers(0, 65536, block.count).astype(np.uint16)
            grouped = block.decode(image.tolist())
            generic = block._decode_generic(image)
            assert np.array_equal(grouped, generic, equal_nan=True)
