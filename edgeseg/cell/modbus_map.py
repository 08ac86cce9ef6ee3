"""The Modbus register map of the latest best grasps (spec: ``docs/modbus.md``), as plain integers.

Pure functions, no pymodbus: :func:`registers` turns a published frame into
the holding-register image, :func:`decode_slot` reads one grasp back (what a
PLC program does). Values are scaled integers so PLCs need no float support;
32-bit values span two registers, high word first (Modbus big-endian).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgeseg.cell.pick_protocol import Coord, pick_fields
from edgeseg.cell.picks import Code, Pick, Snapshot

LAYOUT_VERSION = 1
HEADER_REGS = 10  # holding registers 0..9
SLOT_REGS = 16  # per grasp
SLOTS = 4  # best grasps kept in registers
TOTAL_REGS = HEADER_REGS + SLOTS * SLOT_REGS
# Header register addresses (0-based, as PLC "40001 + address").
REG_LAYOUT, REG_SEQUENCE, REG_NEW, REG_FRAME_HI, REG_FRAME_LO, REG_COUNT, REG_TOTAL, REG_CODE = range(8)
COIL_TRIGGER = 0  # PLC writes 1: take a new frame (trigger mode) / the server clears it when answered
SCORE_SCALE = 10_000  # score and quality: 0..10000 = 0..1
YAW_SCALE = 10_000  # yaw / angle: int16, 1e-4 rad
METRIC_SCALE = 1_000_000  # x, y, z, width in camera/robot frames: int32 micrometres
PIXEL_SCALE = 1_000  # x, y, width in pixels: int32 milli-pixels


def _i32(value: float, scale: int) -> tuple[int, int]:
    v = 0 if math.isnan(value) else max(-(2**31), min(2**31 - 1, round(value * scale)))
    v &= 0xFFFFFFFF
    return v >> 16, v & 0xFFFF


def _s16(value: float, scale: int) -> int:
    v = 0 if math.isnan(value) else max(-32768, min(32767, round(value * scale)))
    return v & 0xFFFF


def _u16(value: float, scale: int) -> int:
    return 0 if math.isnan(value) else max(0, min(65535, round(value * scale)))


def slot(pick: Pick) -> list[int]:
    """The 16 registers of one grasp."""
    coord, (x, y, z, yaw, width) = pick_fields(pick)
    lin = PIXEL_SCALE if coord == Coord.P else METRIC_SCALE
    r = pick.record
    return [r.class_id, r.flags, int(coord), _u16(r.score, SCORE_SCALE), _u16(r.quality, SCORE_SCALE),
            *_i32(x, lin), *_i32(y, lin), *_i32(z, lin), _s16(yaw, YAW_SCALE), *_i32(width, lin),
            pick.id >> 16, pick.id & 0xFFFF]


def registers(snap: Snapshot, sequence: int) -> list[int]:
    """The whole holding-register image (:data:`TOTAL_REGS` values) for one frame; new-result flag set."""
    picks = snap.picks[:SLOTS]
    head = [LAYOUT_VERSION, sequence & 0xFFFF, 1, snap.frame_id >> 16 & 0xFFFF, snap.frame_id & 0xFFFF, len(picks),
            min(snap.total_grasps, 0xFFFF), int(Code.OK if picks else Code.NO_GRASP), 0, 0]
    regs = head + [v for p in picks for v in slot(p)]
    return regs + [0] * (TOTAL_REGS - len(regs))


@dataclass(frozen=True)
class SlotValues:
    """One grasp as a PLC reads it back (units: metres or pixels, radians)."""

    class_id: int
    flags: int
    coord: Coord
    score: float
    quality: float
    x: float
    y: float
    z: float
    yaw: float
    width: float
    pick_id: int


def decode_slot(regs: list[int]) -> SlotValues:
    """Inverse of :func:`slot` (up to the scaling)."""
    def s32(hi: int, lo: int) -> int:
        v = hi << 16 | lo
        return v - (1 << 32) if v & 0x80000000 else v

    coord = Coord(regs[2])
    lin = PIXEL_SCALE if coord == Coord.P else METRIC_SCALE
    yaw = regs[11] - 65536 if regs[11] & 0x8000 else regs[11]
    return SlotValues(regs[0], regs[1], coord, regs[3] / SCORE_SCALE, regs[4] / SCORE_SCALE, s32(regs[5], regs[6]) / lin,
                      s32(regs[7], regs[8]) / lin, s32(regs[9], regs[10]) / lin, yaw / YAW_SCALE,
                      s32(regs[12], regs[13]) / lin, regs[14] << 16 | regs[15])
