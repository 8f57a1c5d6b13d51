"""Pure register work: plan the fewest reads for a register map, decode replies to values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.config import Register
from edge.wire import Quality

_TYPES = ("bit", "int16", "uint16", "int32", "uint32", "int64", "float32", "float64", "bool")
BIT_TABLES = ("coil", "discrete")
MAX_BITS_PER_READ = 2000   # Modbus limit for function codes 1 and 2
_TYPE_CODE = {t: i for i, t in enumerate(_TYPES)}
_U64 = np.uint64
_BIG_ENDIAN = {"int16": ">i2", "uint16": ">u2", "int32": ">i4", "uint32": ">u4", "int64": ">i8",
               "float32": ">f4", "float64": ">f8"}


@dataclass(frozen=True)
class _Group:
    """The fields of a block that share a type and byte order, decoded in one step."""

    fields: npt.NDArray[np.intp]       # positions among the block's fields
    words: npt.NDArray[np.intp]        # (fields, width): register offsets, most significant first
    dtype: str                         # big-endian numpy type, or "bit"
    swap_bytes: bool
    bit: npt.NDArray[np.intp]


def _groups(group: list[tuple[int, str, Register]], start: int) -> tuple[_Group, ...]:
    by_kind: dict[tuple[str, str], list[int]] = {}
    for i, (_, _, r) in enumerate(group):
        by_kind.setdefault((r.type, r.word_order), []).append(i)
    out = []
    for (rtype, order), fields in by_kind.items():
        width = group[fields[0]][2].width
        j = np.arange(width)
        if order in ("CDAB", "DCBA"):
            j = j[::-1]
        words = np.array([[group[i][0] - start + k for k in j] for i in fields], dtype=np.intp)
        out.append(_Group(np.array(fields, dtype=np.intp), words.reshape(len(fields), width),
                          "bit" if rtype == "bit" else _BIG_ENDIAN.get(rtype, ">u2"),
                          order in ("BADC", "DCBA"),
                          np.array([group[i][2].bit or 0 for i in fields], dtype=np.intp)))
    return tuple(out)


@dataclass(frozen=True)
class ReadBlock:
    """One read request and how to turn its registers into point values."""

    table: str
    start: int
    count: int
    point_ids: list[str]
    offset: npt.NDArray[np.intp]
    type_code: npt.NDArray[np.int8]
    width: npt.NDArray[np.intp]
    swap_words: npt.NDArray[np.bool_]
    swap_bytes: npt.NDArray[np.bool_]
    bit: npt.NDArray[np.intp]
    scale: npt.NDArray[np.float64]
    add: npt.NDArray[np.float64]
    loop: npt.NDArray[np.float64]     # (fields, 4): raw at 4 mA, raw at 20 mA, eng low/high
    groups: tuple[_Group, ...] = ()
    has_loop: bool = False

    def decode_with_quality(self, registers: Sequence[int] | Sequence[bool],
                            ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint8]]:
        """Values and qualities: 4–20 mA inputs outside NAMUR NE43's ranges are uncertain or
        bad (bad ones carry no value); everything else is good."""
        values = self.decode(registers)
        quality = np.zeros(len(values), np.uint8)
        if not self.has_loop:
            return values, quality
        is_loop = ~np.isnan(self.loop[:, 0])
        r4, r20, e_lo, e_hi = self.loop.T
        with np.errstate(invalid="ignore"):
            ma = 4.0 + 16.0 * (values - r4) / (r20 - r4)
            eng = e_lo + (ma - 4.0) / 16.0 * (e_hi - e_lo)
            bad = is_loop & ((ma < 3.6) | (ma > 21.0))
            uncertain = is_loop & ~bad & ((ma < 3.8) | (ma > 20.5))
        values = np.where(is_loop, np.where(bad, np.nan, eng), values)
        quality[uncertain] = Quality.UNCERTAIN
        quality[bad] = Quality.BAD
        return values, quality

    def decode(self, registers: Sequence[int] | Sequence[bool]) -> npt.NDArray[np.float64]:
        """Engineering values of this block's points from the registers (or, for coils and
        discrete inputs, bits) read, vectorised over the block's fields."""
        if self.table in BIT_TABLES:
            bits = np.asarray(registers, dtype=np.float64)
            if len(bits) < self.count:
                raise ValueError(f"expected {self.count} bits, got {len(bits)}")
            out: npt.NDArray[np.float64] = bits[self.offset] * self.scale + self.add
            return out
        regs = np.asarray(registers, dtype=np.uint16)
        if len(regs) < self.count:
            raise ValueError(f"expected {self.count} registers, got {len(regs)}")
        if self.groups:
            # a float register holding a signalling NaN raises the FP "invalid" flag when
            # widened; it stays NaN (no value, bad quality), which is the right answer
            with np.errstate(invalid="ignore"):
                return self._decode_groups(regs)
        return self._decode_generic(regs)

    def _decode_groups(self, regs: npt.NDArray[np.uint16]) -> npt.NDArray[np.float64]:
        # One gather, byte swap and dtype view per (type, order) group: a few numpy calls per
        # poll whatever the number of fields, where a per-field select cost ~300 µs at 125.
        out = np.empty(len(self.point_ids))
        for g in self.groups:
            w = regs[g.words]
            if g.swap_bytes:
                w = (w << np.uint16(8)) | (w >> np.uint16(8))
            if g.dtype == "bit":
                out[g.fields] = (w[:, 0] >> g.bit.astype(np.uint16)) & 1
            else:
                out[g.fields] = w.astype(">u2").view(g.dtype).ravel()
        result: npt.NDArray[np.float64] = out * self.scale + self.add
        return result

    def _decode_generic(self, regs: npt.NDArray[np.uint16]) -> npt.NDArray[np.float64]:
        """Per-field decoding (blocks built without groups)."""
        # words of each value, most significant first: (fields, 4), unused ones zero
        j = np.arange(4)
        used = j < self.width[:, None]
        pos = np.where(self.swap_words[:, None], self.width[:, None] - 1 - j, j)
        idx = np.minimum(self.offset[:, None] + np.where(used, pos, 0), len(regs) - 1)
        words = np.where(used, regs[idx], 0).astype(_U64)
        words = np.where(self.swap_bytes[:, None],
                         ((words & _U64(0xFF)) << _U64(8)) | (words >> _U64(8)), words)
        shift = (16 * (self.width[:, None] - 1 - j)).clip(0).astype(_U64)
        raw = np.bitwise_or.reduce(np.where(used, words << shift, _U64(0)), axis=1)
        u16 = (raw & _U64(0xFFFF)).astype(np.uint16)
        u32 = (raw & _U64(0xFFFFFFFF)).astype(np.uint32)
        code = self.type_code
        value = np.select(
            [code == 0, code == 1, code == 2, code == 3, code == 4, code == 5, code == 6],
            [((u16 >> self.bit.astype(np.uint16)) & 1).astype(np.float64),
             u16.view(np.int16).astype(np.float64), u16.astype(np.float64),
             u32.view(np.int32).astype(np.float64), u32.astype(np.float64),
             raw.view(np.int64).astype(np.float64), _widen(u32.view(np.float32))],
            raw.view(np.float64),
        )
        result: npt.NDArray[np.float64] = value * self.scale + self.add
        return result


def plan_reads(registers: dict[str, Register], max_count: int = 125,
               max_gap: int = 0) -> list[ReadBlock]:
    """Merge neighbouring registers of one table into reads of at most ``max_count``.

    Registers closer than ``max_gap`` unused addresses share a read; wider holes split it,
    because some devices answer an exception for unmapped addresses.
    """
    blocks: list[ReadBlock] = []
    for table in ("holding", "input", *BIT_TABLES):
        limit = MAX_BITS_PER_READ if table in BIT_TABLES else max_count
        items = sorted(((r.address, pid, r) for pid, r in registers.items() if r.table == table),
                       key=lambda t: t[0])
        group: list[tuple[int, str, Register]] = []
        end = 0
        for addr, pid, reg in items:
            if group and (addr - end > max_gap or addr + reg.width - group[0][0] > limit):
                blocks.append(_block(table, group))
                group = []
            end = max(end, addr + reg.width) if group else addr + reg.width
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
        width=np.array([r.width for _, _, r in group], dtype=np.intp),
        swap_words=np.array([r.word_order in ("CDAB", "DCBA") for _, _, r in group], bool),
        swap_bytes=np.array([r.word_order in ("BADC", "DCBA") for _, _, r in group], bool),
        bit=np.array([r.bit or 0 for _, _, r in group], dtype=np.intp),
        # a current loop scales from raw counts itself: scale 1, offset 0 before it
        scale=np.array([1.0 if r.current_loop else r.scale for _, _, r in group]),
        add=np.array([0.0 if r.current_loop else r.offset for _, _, r in group]),
        loop=np.array([[r.current_loop.raw_at_4ma, r.current_loop.raw_at_20ma,
                        r.current_loop.eng_low, r.current_loop.eng_high] if r.current_loop
                       else [np.nan] * 4 for _, _, r in group], dtype=np.float64).reshape(-1, 4),
        groups=() if table in BIT_TABLES else _groups(group, start),
        has_loop=any(r.current_loop for _, _, r in group),
    )


def encode_values(reg: Register, value: float) -> list[int]:
    """Registers holding ``value`` as ``reg`` describes it (the inverse of decode; simulator).
    A bit is written alone in its register."""
    if reg.current_loop is not None:
        c = reg.current_loop
        raw = c.raw_at_4ma + (value - c.eng_low) / (c.eng_high - c.eng_low) \
            * (c.raw_at_20ma - c.raw_at_4ma)
    else:
        raw = (value - reg.offset) / reg.scale
    if reg.type == "bool":
        return [1 if round(raw) else 0]
    if reg.type == "bit":
        return [(1 << (reg.bit or 0)) if round(raw) else 0]
    big_endian = _BIG_ENDIAN[reg.type]
    if reg.type in ("float32", "float64"):
        data = np.array(raw, dtype=big_endian).tobytes()
    else:
        info = np.iinfo(np.dtype(big_endian))
        data = np.array(min(max(round(raw), info.min), info.max), dtype=big_endian).tobytes()
    words = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
    if reg.word_order in ("BADC", "DCBA"):
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    if reg.word_order in ("CDAB", "DCBA"):
        words = words[::-1]
    return words


def _widen(f32: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """float32 → float64; a signalling NaN stays NaN without the FP "invalid" warning."""
    with np.errstate(invalid="ignore"):
        return f32.astype(np.float64)
