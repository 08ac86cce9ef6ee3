"""docs/modbus.md: the example register image is what the server holds, read by pymodbus's client."""

import pathlib
import re
import socket

import pytest
from protocol_examples import T0, examples

from edgeseg.cell import modbus_map as mm
from edgeseg.cell import open_server

client_mod = pytest.importorskip("pymodbus.client", reason="pymodbus (the cell extra) is installed by make test")
DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "modbus.md"


def documented() -> dict[int, list[int]]:
    block = re.search(r"```registers\n(.*?)```", DOC.read_text(), re.S).group(1)
    return {int(a): [int(v) for v in vals.split()] for a, vals in (ln.split(":") for ln in block.splitlines())}


def test_example_registers():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open_server(f"modbus://127.0.0.1:{port}") as srv:
        metric, planar = examples()["grasps-3d"][1].grasps[0], examples()["grasps-2d"][1].grasps[0]
        snap = srv.book.publish(42, T0, (metric, planar), 5)
        srv._regs = mm.registers(snap, 1)  # what _deliver writes, without planning grasps from a Result
        c = client_mod.ModbusTcpClient("127.0.0.1", port=port)
        assert c.connect()
        for address, values in documented().items():
            assert c.read_holding_registers(address, count=len(values)).registers == values, address
        slot0 = mm.decode_slot(c.read_holding_registers(10, count=16).registers)
        assert (slot0.x, slot0.y, slot0.z, slot0.width, slot0.pick_id) == (0.375, 0.25, 0.03125, 0.0625, 1)
        c.close()
