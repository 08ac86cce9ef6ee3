"""Modbus TCP server read by pymodbus's own client: registers decode to the grasps of the binary frame."""

import socket
import time

import pytest
from cell_support import Loop, records_of, scene

from edgeseg.cell import modbus_map as mm
from edgeseg.cell import open_server
from edgeseg.cell.pick_protocol import Coord

client_mod = pytest.importorskip("pymodbus.client", reason="pymodbus (the cell extra) is installed by make test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cond():
        time.sleep(0.02)
    return cond()


@pytest.fixture
def plc():
    def connect(port):
        c = client_mod.ModbusTcpClient("127.0.0.1", port=port)
        assert c.connect()
        return c
    return connect


def test_registers_decode_to_the_binary_frames_grasps(plc):
    port = free_port()
    with open_server(f"modbus://127.0.0.1:{port}") as srv:
        c = plc(port)
        r, g = scene(9, n=6)
        srv(r, g, timestamp_us=1)
        assert srv.flush(5.0)
        regs = c.read_holding_registers(0, count=mm.TOTAL_REGS).registers
        i32 = c.DATATYPE.INT32
        assert regs[mm.REG_LAYOUT] == 1 and regs[mm.REG_SEQUENCE] == 1 and regs[mm.REG_NEW] == 1
        frame_id = c.convert_from_registers(regs[mm.REG_FRAME_HI:mm.REG_FRAME_LO + 1], c.DATATYPE.UINT32)
        assert frame_id == 9 and regs[mm.REG_COUNT] == mm.SLOTS and regs[mm.REG_TOTAL] == len(g) == 6
        recs = records_of(g)  # what the binary frame carries
        for k in range(mm.SLOTS):
            s = regs[mm.HEADER_REGS + k * mm.SLOT_REGS: mm.HEADER_REGS + (k + 1) * mm.SLOT_REGS]
            assert (s[0], s[1], Coord(s[2])) == (recs[k].class_id, recs[k].flags, Coord.P)
            u = c.convert_from_registers(s[5:7], i32) / mm.PIXEL_SCALE  # pymodbus's own decoding
            v = c.convert_from_registers(s[7:9], i32) / mm.PIXEL_SCALE
            width = c.convert_from_registers(s[12:14], i32) / mm.PIXEL_SCALE
            angle = c.convert_from_registers(s[11:12], c.DATATYPE.INT16) / mm.YAW_SCALE
            assert (u, v, width) == pytest.approx((recs[k].u, recs[k].v, recs[k].width_px), abs=0.5 / mm.PIXEL_SCALE)
            assert angle == pytest.approx(recs[k].angle, abs=0.5 / mm.YAW_SCALE)
            assert s[3] / mm.SCORE_SCALE == pytest.approx(recs[k].score, abs=1e-4)
            assert mm.decode_slot(s).pick_id == 1 + k
        # The PLC clears the new-result flag; everything else is read-only.
        assert not c.write_register(mm.REG_NEW, 0).isError()
        assert c.read_holding_registers(mm.REG_NEW, count=1).registers == [0]
        assert c.write_register(mm.REG_COUNT, 1).isError()
        srv(*scene(10), timestamp_us=2)
        assert wait_for(lambda: c.read_holding_registers(0, count=3).registers == [1, 2, 1])
        c.close()


def test_trigger_coil_takes_one_frame(plc):
    port = free_port()
    srv = open_server(f"modbus://127.0.0.1:{port}?trigger=1")
    loop = Loop([srv])
    loop.start()
    c = plc(port)
    try:
        time.sleep(0.2)
        assert loop.sent == {}  # nothing captured without a trigger
        for k in range(3):
            assert not c.write_coil(mm.COIL_TRIGGER, True).isError()
            assert wait_for(lambda k=k: c.read_holding_registers(mm.REG_SEQUENCE, count=2).registers == [k + 1, 1])
            assert c.read_coils(mm.COIL_TRIGGER, count=1).bits[0] is False  # cleared when answered
            c.write_register(mm.REG_NEW, 0)
        assert len(loop.sent) == 3
    finally:
        c.close()
        srv.close()
        loop.join(5.0)


def test_bad_modbus_url():
    with pytest.raises(ValueError, match="modbus://HOST:PORT"):
        open_server("modbus://")
