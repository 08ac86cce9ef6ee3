"""Modbus TCP server (``--serve modbus://HOST:PORT``): the latest best grasps for PLCs, and a trigger coil.

pymodbus serves the registers (``pymodbus.server.ModbusTcpServer`` over a
``SimDevice``, on its own asyncio loop in a thread); the register image comes
from :mod:`edgeseg.cell.modbus_map` (layout: ``docs/modbus.md``). pymodbus is
optional (the ``cell`` extra) and imported when a Modbus server is opened.

A device ``action`` (pymodbus' hook on every register access) copies the
current image into the registers being read, clears the new-result flag when
the PLC writes 0 to it, and turns a write of 1 to the trigger coil into a
capture request (trigger mode) that the next published frame answers, clearing
the coil.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from urllib.parse import urlsplit

from edgeseg import protocol
from edgeseg.cell import modbus_map as mm
from edgeseg.cell.picks import PickBook
from edgeseg.cell.trigger import TriggerGate
from edgeseg.hooks.base import Hook, HookItem
from edgeseg.hooks.options import split_options

log = logging.getLogger("edgeseg.cell")
OPTIONS = {"trigger": bool, "reply_timeout_s": float}


def _pymodbus():
    try:
        import pymodbus.server as server  # noqa: PLC0415 - optional dependency
        from pymodbus.simulator import DataType, SimData, SimDevice  # noqa: PLC0415
    except ImportError:
        raise ImportError("the Modbus server needs pymodbus: pip install 'edgeseg[cell]'") from None
    return server, SimData, SimDevice, DataType


class ModbusServer(Hook):
    """Holding registers with the latest frame's best grasps; coil 0 triggers a capture.

    Args:
        host: Address to listen on.
        port: TCP port (502 is the standard one and needs root; 5020 is common).
        trigger: Trigger mode: frames are taken only when the PLC sets the trigger coil.
        reply_timeout_s: Unused by Modbus (the PLC polls); accepted for symmetry
            with the pick server's options.
        **opts: :class:`~edgeseg.hooks.base.Hook` options.

    Attributes:
        address: ``(host, port)``.
        book: The frames published (their picks get ids as in the pick server).
    """

    name = "modbus"

    def __init__(self, host: str = "127.0.0.1", port: int = 5020, *, trigger: bool = False,
                 reply_timeout_s: float = 5.0, **opts) -> None:
        server_mod, SimData, SimDevice, DataType = _pymodbus()  # noqa: N806 - pymodbus class names
        super().__init__(**opts)
        self.book = PickBook()
        self.trigger_gate = TriggerGate() if trigger else None
        self.address = (host, port)
        self._lock = threading.Lock()
        self._regs = [mm.LAYOUT_VERSION] + [0] * (mm.TOTAL_REGS - 1)
        self._coil = False
        self._sequence = 0
        device = SimDevice(
            id=0,
            simdata=([SimData(0, count=16, values=False, datatype=DataType.BITS)],
                     [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                     [SimData(0, count=mm.TOTAL_REGS, values=0, datatype=DataType.REGISTERS)],
                     [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)]),
            action=self._action,
        )
        self._loop = asyncio.new_event_loop()
        self._server = None
        ready = threading.Event()
        make = lambda: server_mod.ModbusTcpServer(device, address=(host, port))  # noqa: E731 - needs the loop
        self._thread_srv = threading.Thread(target=self._serve, args=(make, ready), name="edgeseg-modbus",
                                            daemon=True)
        self._thread_srv.start()
        if not ready.wait(10.0) or self._error is not None:
            raise OSError(f"Modbus server could not listen on {host}:{port}: {self._error}")
        log.info("Modbus TCP server on %s:%d (%s)", host, port, "trigger coil 0" if trigger else "free-run")

    _error: Exception | None = None

    def _serve(self, make, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            try:
                self._server = make()  # pymodbus binds its transport to the running loop
                await self._server.listen()
            except OSError as e:
                self._error = e
                ready.set()
                return
            ready.set()
            await self._server.serving

        self._loop.run_until_complete(main())

    @classmethod
    def from_url(cls, url: str, **opts) -> ModbusServer:
        bare, q = split_options(url, OPTIONS)
        parts = urlsplit(bare)
        if parts.scheme != "modbus" or not parts.hostname:
            raise ValueError(f"Modbus server URL must be modbus://HOST:PORT, got {url!r}")
        return cls(parts.hostname, parts.port if parts.port is not None else 502, **{**opts, **q})

    def registers(self) -> list[int]:
        """A copy of the holding-register image."""
        with self._lock:
            return list(self._regs)

    # -- pymodbus side ---------------------------------------------------------------------------
    async def _action(self, function_code, start_address, address, count, current_registers, set_values):
        with self._lock:
            if function_code in (1, 5, 15):  # coils
                if set_values is not None and address <= mm.COIL_TRIGGER < address + len(set_values) \
                        and set_values[mm.COIL_TRIGGER - address]:
                    self._coil = True
                    if self.trigger_gate is not None:
                        self.trigger_gate.request()
                current_registers[mm.COIL_TRIGGER - start_address] = self._coil
                return None
            if function_code in (3, 6, 16, 22, 23):  # holding registers
                if set_values is not None:  # only the new-result flag is writable (the PLC clears it)
                    if address != mm.REG_NEW or len(set_values) != 1 or set_values[0] != 0:
                        from pymodbus.constants import ExcCodes  # noqa: PLC0415

                        return ExcCodes.ILLEGAL_ADDRESS
                    self._regs[mm.REG_NEW] = 0
                current_registers[:] = self._regs[start_address:start_address + len(current_registers)]
        return None

    # -- hook side ------------------------------------------------------------------------------
    def _deliver(self, item: HookItem) -> None:
        records = tuple(protocol.GraspRecord.from_grasp(g) for g in item.grasps)
        snap = self.book.publish(item.frame_id, item.timestamp_us, records, item.total_grasps)
        with self._lock:
            self._sequence = (self._sequence + 1) & 0xFFFF
            self._regs = mm.registers(snap, self._sequence)
            self._coil = False

    def _close_sink(self) -> None:
        if self.trigger_gate is not None:
            self.trigger_gate.close()
        if self._server is not None and self._thread_srv.is_alive():
            fut = asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
            try:
                fut.result(5.0)
            except Exception as e:  # noqa: BLE001 - closing must not raise
                log.debug("Modbus server shutdown: %s", e)
        self._thread_srv.join(5.0)
