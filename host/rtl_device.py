"""The RTL board link as an emulator byte device: the protocol served by the simulated ``LinkTop``.

``RtlLinkDevice(configs)`` has the byte-device interface of ``VirtualBoard`` (``attach(send)``,
``feed(bytes)``, ``close()``), so ``DeviceSerial`` (in-process) and ``spikeforge board emulate --rtl``
(a pty) put the real host driver ``Board`` in front of the RTL: every byte the host sends is shifted
bit by bit into ``uart_rx`` of the simulated ``spikeforge.hdl.link.LinkTop`` and every frame the RTL
answers is sampled bit by bit from ``uart_tx``. Nothing is modelled: UART, receiver, CRCs, command
controller and the neuron cores are the RTL.

The simulator is Amaranth's (pure Python, no build step) with a short UART bit time (``divisor``
clocks per bit, default 4), so it is slow -- about a thousand bytes a second -- but exact; use tiny
cores (N = 4..16). ``feed`` runs the simulation until the link is idle again (every command answered).
"""

from collections import deque
from typing import Callable, Sequence

from spikeforge.core import protocol as P
from spikeforge.core.config import CoreConfig

Send = Callable[[bytes], None]


class SimulatedUartDevice:
    """Any top level with ``uart_rx``, ``uart_tx`` and ``idle`` ports, simulated by Amaranth, as a byte
    device: ``feed`` shifts bytes into ``uart_rx`` bit by bit (``divisor`` clocks per bit) and runs
    until the top is idle and the line quiet; what ``uart_tx`` sends goes to ``send``."""

    def __init__(self, top, divisor: int, log: Callable[[str], None] | None = None):
        from amaranth.sim import Simulator

        self.top = top
        self.divisor = divisor
        self.log = log
        self._send: Send | None = None
        self._line: deque = deque()  # uart_rx level for each coming clock cycle
        self._out = bytearray()
        self._quiet = 0
        self.cycles = 0
        self._sim = Simulator(self.top)
        self._sim.add_clock(1e-6)
        self._sim.add_testbench(self._bench, background=True)
        self._time = 0.0

    async def _bench(self, ctx):
        top, d = self.top, self.divisor
        sampling, countdown, bits, shift = False, 0, 0, 0
        while True:
            ctx.set(top.uart_rx, self._line.popleft() if self._line else 1)
            await ctx.tick()
            self.cycles += 1
            tx = ctx.get(top.uart_tx)
            if not sampling:
                if not tx:
                    sampling, countdown, bits, shift = True, d + d // 2 - 1, 0, 0
            else:
                countdown -= 1
                if countdown == 0:
                    if bits < 8:
                        shift |= tx << bits
                        bits += 1
                        countdown = d
                    else:  # the stop bit
                        if tx:
                            self._out.append(shift)
                        sampling = False
            idle = ctx.get(top.idle)
            self._quiet = self._quiet + 1 if (idle and not self._line and not sampling and tx) else 0

    # ---- the byte-device interface ----------------------------------------------------------------
    def attach(self, send: Send | None) -> None:
        self._send = send

    def feed(self, data: bytes) -> None:
        """Shift ``data`` into the RTL and simulate until every command is answered."""
        d = self.divisor
        for byte in bytes(data):
            self._line.extend([0] * d)
            for i in range(8):
                self._line.extend([(byte >> i) & 1] * d)
            self._line.extend([1] * d)
        self._quiet = 0
        chunk = 64 * d
        while self._quiet < 12 * d:
            self._time += chunk * 1e-6
            self._sim.run_until(self._time)
            if self._out:
                out = bytes(self._out)
                self._out.clear()
                if self._send is not None:
                    self._send(out)

    def close(self) -> None:
        self._line.clear()


class RtlLinkDevice(SimulatedUartDevice):
    """K cores of ``configs`` behind the simulated RTL link (``LinkTop``).

    ``divisor``: UART clocks per bit in simulation. ``slots``, ``max_words``, ``window``, ``name``: as
    ``LinkTop``. ``clk_freq`` / ``baud``: what IDENTIFY reports (the simulation runs at ``divisor``)."""

    def __init__(self, configs: CoreConfig | Sequence[CoreConfig], *, divisor: int = 4, slots: int = 16,
                 max_words: int = 64, window: int = 2, name: str = "rtl-sim", clk_freq: int = 12_000_000,
                 baud: int = 1_000_000, log: Callable[[str], None] | None = None):
        from spikeforge.hdl.link import LinkTop

        super().__init__(LinkTop(configs, clk_freq, baud, divisor=divisor, slots=slots, max_words=max_words,
                                 window=window, name=name), divisor, log)

    def info(self) -> P.BoardInfo:
        return self.top.info()


class CocotbLinkDevice:
    """The same byte device served by the LinkTop Verilog under cocotb (Verilator by default; Icarus
    does not run the link's Verilog yet, docs/link-rtl.md): much faster than the Amaranth simulator,
    and the same Verilog a bitstream is built from. ``top="bridge"``
    serves the bus bridge's Verilog instead (one core; ``info()`` then means nothing).

    The simulator runs in a thread of this process (cocotb's runner starts it as a subprocess) and
    talks to this object over a Unix socket (``spikeforge/sim/cocotb_tb/link_bridge.py``)."""

    def __init__(self, configs: CoreConfig | Sequence[CoreConfig], *, divisor: int = 4, slots: int = 16,
                 max_words: int = 64, window: int = 2, name: str = "rtl-cocotb", clk_freq: int = 12_000_000,
                 baud: int = 1_000_000, simulator: str = "verilator", timeout: float = 600.0,
                 log: Callable[[str], None] | None = None, top: str = "link"):
        import struct

        from spikeforge.sim.cocotb_tb.link_build import build_link, run_link_bridge
        from spikeforge.sim.cocotb_tb.socket_bridge import SimulationSocket

        configs = [configs] if isinstance(configs, CoreConfig) else list(configs)
        self._info = P.BoardInfo(cores=tuple(configs), name=name, window=window, clock_hz=int(clk_freq),
                                 baud=int(baud), max_words=max_words, slots=slots, flags=0)
        self._struct = struct
        self.log = log
        self._send: Send | None = None
        self.build = build_link(configs, divisor=divisor, slots=slots, max_words=max_words, window=window,
                                name=name, clk_freq=clk_freq, baud=baud, simulator=simulator, top=top)
        self._bridge = bridge = SimulationSocket("spikeforge-link-", "cocotb link simulation")
        bridge.start(lambda: run_link_bridge(self.build, bridge.path, bridge.work / "run"), timeout)

    def info(self) -> P.BoardInfo:
        return self._info

    def attach(self, send: Send | None) -> None:
        self._send = send

    def feed(self, data: bytes) -> None:
        data = bytes(data)
        self._bridge.sendall(b"D" + self._struct.pack("<I", len(data)) + data)
        while True:
            kind = self._bridge.recv(1)
            if kind == b"I":
                return
            (n,) = self._struct.unpack("<I", self._bridge.recv(4))
            chunk = self._bridge.recv(n)
            if self._send is not None:
                self._send(chunk)

    def close(self) -> None:
        self._bridge.close(join_timeout=30)


def build_rtl_device(cores: int | None = None, config=None, network=None, *, slots: int = 16,
                     backend: str = "cocotb", simulator: str = "verilator", **options):
    """Factory for ``spikeforge.host.emulator.DEVICES["rtl"]`` (``spikeforge board emulate --device rtl``):
    the cores that ``--cores/--config/--network`` describe (as for the golden device) behind the
    simulated RTL link. ``slots`` is rounded up to a power of two (the RTL indexes slots by step bits).
    ``backend``: ``cocotb`` (the LinkTop Verilog under cocotb; ``simulator`` ``verilator``, the default,
    or ``icarus``, which does not work yet: docs/link-rtl.md) or ``amaranth`` (the Amaranth simulator,
    slow: about 3,000 clocks/s)."""
    from spikeforge.host.emulator import board_configs

    configs = board_configs(cores, config, network)
    slots = 1 << max(0, int(slots) - 1).bit_length()
    if backend == "cocotb":
        return CocotbLinkDevice(configs, slots=slots, simulator=simulator, **options)
    if backend == "amaranth":
        return RtlLinkDevice(configs, slots=slots, **options)
    raise ValueError(f"backend = {backend!r}: choose amaranth (Python simulator) or cocotb (Icarus)")
