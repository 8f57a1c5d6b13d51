"""Pure register work: plan the fewest reads for a register map, decode replies to values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.devices import Register

_TYPE_CODE = {"int16": 0, "uint16": 1, "int32": 2, "uint32": 3, "float32": 4}


@dataclass(frozen=True)
class ReadBlock:
    """One read request and how to turn its registers into point values."""

    table: str
    start: int
    count: int
    point_ids: list[str]
    offset: npt.NDArray[np.intp]
    type_code: npt.NDArray[np.int8]
    swap_words: npt.NDArray[np.bool_]
    scale: npt.NDArray[np.float64]
    add: npt.NDArray[np.float64]

    def decode(self, registers: Sequence[int]) -> npt.NDArray[np.float64]:
        """Engineering values of this block's points from the registers read."""
        regs = np.asarray(registers, dtype=np.uint16)
        if len(regs) < self.count:
            raise ValueError(f"expected {self.count} registers, got {len(regs)}")
        first = regs[self.offset].astype(np.uint32)
        # Width-1 values at the end of the block have no second word; clip keeps the index valid
        # and the result is not selected for them.
        second = regs[np.minimum(self.offset + 1, len(regs) - 1)].astype(np.uint32)
        hi = np.where(self.swap_words, second, first)
        lo = np.where(self.swap_words, first, second)
        u32 = (hi << 16) | lo
        u16 = first.astype(np.uint16)
        raw = np.select(
            [self.type_code == 0, self.type_code == 1, self.type_code == 2,
             self.type_code == 3],
            [u16.view(np.int16).astype(np.float64), u16.astype(np.float64),
             u32.view(np.int32).astype(np.float64), u32.astype(np.float64)],
            u32.view(np.float32).astype(np.float64),
        )
        result: npt.NDArray[np.float64] = raw * self.scale + self.add
        return result


def plan_reads(registers: dict[str, Register], max_count: int = 125,
               max_gap: int = 0) -> list[ReadBlock]:
    """Merge neighbouring registers of one table into reads of at most ``max_count``.

    Registers closer than ``max_gap`` unused addresses share a read; wider holes split it,
    because some devices answer an exception for unmapped addresses.
    """
    blocks: list[ReadBlock] = []
    for table in ("holding", "input"):
        items = sorted(((r.address, pid, r) for pid, r in registers.items() if r.table == table),
                       key=lambda t: t[0])
        group: list[tuple[int, str, Register]] = []
        for addr, pid, reg in items:
            if group:
                start = group[0][0]
                end = max(a + r.width for a, _, r in group)
                if addr - end > max_gap or addr + reg.width - start > max_count:
                    blocks.append(_block(table, group))
                    group = []
            group.append((addr, pid, reg))
        if group:
            blocks.append(_block(table, group))
    return blocks


def _block(table: str, group: list[tuple[int, str, Register]]) -> ReadBlock:
    start = group[0][0]
    end = max(a + r.width for a, _, r in group)
    return ReadBlock(
        table=table, start=start, count=end - start,
        point_ids=[pid for _, pid, _ in group],
        offset=np.array([a - start for a, _, _ in group], dtype=np.intp),
        type_code=np.array([_TYPE_CODE[r.type] for _, _, r in group], dtype=np.int8),
        swap_words=np.array([r.word_order == "CDAB" for _, _, r in group], dtype=bool),
        scale=np.array([r.scale for _, _, r in group], dtype=np.float64),
        add=np.array([r.offset for _, _, r in group], dtype=np.float64),
    )


def encode_values(reg: Register, value: float) -> list[int]:
    """Registers holding ``value`` as ``reg`` describes it (the inverse of decode; simulator)."""
    raw = (value - reg.offset) / reg.scale
    if reg.type in ("int16", "uint16"):
        dt = np.int16 if reg.type == "int16" else np.uint16
        info = np.iinfo(dt)
        return [int(np.array(np.clip(round(raw), info.min, info.max), dtype=dt).view(np.uint16))]
    if reg.type == "float32":
        u32 = int(np.array(raw, dtype=np.float32).view(np.uint32))
    else:
        dt32 = np.int32 if reg.type == "int32" else np.uint32
        info32 = np.iinfo(dt32)
        u32 = int(np.array(np.clip(round(raw), info32.min, info32.max), dtype=dt32)
                  .view(np.uint32))
    words = [u32 >> 16, u32 & 0xFFFF]
    return words[::-1] if reg.word_order == "CDAB" else words
