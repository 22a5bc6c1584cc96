"""Core runners: one neuron core advanced one step at a time, whatever runs it.

The SNN controller (snn_controller.py) only needs ``step(currents) -> spikes``: write this tick's
analog inputs into the encoders, advance the core one step, get the spikes. Three runners implement it:

- ``GoldenRunner``: the golden model (sim/golden.py) -- a batch of B identical cores, one per run of
  a scenario, stepped together;
- ``BoardRunner``: a board over the UART link (host/board.py ``Board``): a real FPGA on a serial port,
  a pty of ``spikeforge board emulate``, or ``BoardRunner.virtual(image)``, the virtual board in
  process (host/virtual_board.py, the link protocol served by golden-model cores);
- ``RtlRunner``: the generated Verilog of the core under cocotb (the RTL backend's build), one timestep
  per call over a socket to the simulator (rtl_step_bridge.py): the closed loop runs on the RTL itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from spikeforge.core.image import CoreImage


class CoreRunner(ABC):
    """A core (or a batch of ``batch`` identical cores) loaded with one CoreImage, stepped by the host."""

    batch: int = 1
    name: str = "core"

    @abstractmethod
    def step(self, currents: np.ndarray) -> np.ndarray:
        """Advance one step with analog inputs (batch, K) int; return the spikes (batch, N) bool."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class GoldenRunner(CoreRunner):
    """The golden model: ``batch`` copies of ``image`` stepped together (GoldenCore batch mode)."""

    name = "golden"

    def __init__(self, image: CoreImage, batch: int = 1):
        from spikeforge.sim.golden import GoldenCore

        self.core = GoldenCore([image] * batch)
        self.batch = batch
        self._no_spikes = np.zeros((batch, image.config.n_inputs), dtype=bool)

    def step(self, currents: np.ndarray) -> np.ndarray:
        return self.core.step(self._no_spikes, np.asarray(currents, dtype=np.int64).reshape(self.batch, -1))


class BoardRunner(CoreRunner):
    """A spikeforge board over the UART link: ``image`` is loaded (and verified) into core ``core``;
    every ``step`` sends the analog inputs, runs one step and collects its spikes."""

    name = "board"

    def __init__(self, board, image: CoreImage, core: int = 0, own_board: bool = False):
        self.board = board
        self.core = core
        self.own_board = own_board
        board.load(image, core, verify=True)

    @classmethod
    def open(cls, port: str, image: CoreImage, core: int = 0, baud: int = 1_000_000) -> "BoardRunner":
        """A board on ``port`` (serial device, pty or pyserial URL)."""
        from spikeforge.host.board import Board

        runner = cls(Board(port, baud=baud), image, core, own_board=True)
        runner.name = f"board:{port}"
        return runner

    @classmethod
    def virtual(cls, image: CoreImage) -> "BoardRunner":
        """The virtual board in this process: the UART protocol, byte for byte, over a loopback port."""
        from spikeforge.host.board import Board
        from spikeforge.host.loopback import DeviceSerial
        from spikeforge.host.virtual_board import VirtualBoard

        device = VirtualBoard(image.config, name="blimp-virtual")
        runner = cls(Board(DeviceSerial(device, own_device=True), progress=False), image, own_board=True)
        runner.name = "virtual-board"
        return runner

    def step(self, currents: np.ndarray) -> np.ndarray:
        u = np.asarray(currents, dtype=np.int64).reshape(1, -1)
        rec = self.board.run(1, None, u, core=self.core)
        return np.asarray(rec.spikes, dtype=bool).reshape(1, -1)

    def close(self) -> None:
        if self.own_board:
            self.board.close()


class RtlRunner(CoreRunner):
    """The generated Verilog of the core under cocotb (Icarus or Verilator), stepped by the host.

    ``sim/cocotb_tb/runner.build`` makes (or reuses from the cache) the same simulator build the RTL
    backend (``spikeforge sim --backend rtl``) runs; instead of a batch job, the simulator runs the
    test module ``rtl_step_bridge`` in a thread of this process, which loads ``image`` (verified by a
    full read-back unless ``verify=False``: about 15 s of Icarus for the blimp core) and then runs one
    timestep per ``step`` call over a Unix socket. So the closed loop drives the RTL exactly as it
    drives the golden model or a board. ``cycles`` collects each step's clock cycles (start to done)."""

    name = "rtl"

    def __init__(self, image: CoreImage, simulator: str = "icarus", verify: bool = True, timeout: float = 600.0):
        import struct

        from spikeforge.sim.cocotb_tb import runner as rtl
        from spikeforge.sim.cocotb_tb.socket_bridge import SimulationSocket
        from spikeforge.sim.cocotb_tb.tb_top import TB_TOPLEVEL

        if simulator not in rtl.SIMULATORS:
            raise ValueError(f"simulator = {simulator!r}: choose one of {', '.join(rtl.SIMULATORS)}")
        self.config = image.config
        self.simulator = simulator
        self.cycles: list[int] = []
        self._struct = struct
        self.build = rtl.build(image.config, simulator=simulator)
        self._bridge = bridge = SimulationSocket("spikeforge-rtl-steps-", f"{simulator} simulation of the core")
        work, path = bridge.work, bridge.path
        image.save(work / "image.npz")
        self.log = log = work / "sim.log"
        build = self.build

        def simulate():
            rtl._runner(simulator, False).test(
                test_module="spikeforge.demos.blimp.rtl_step_bridge", hdl_toplevel=TB_TOPLEVEL,
                hdl_toplevel_lang="verilog", build_dir=build.build_dir, test_dir=work, log_file=log,
                plusargs=[f"+spikeforge_step_socket={path}", f"+spikeforge_step_image={work / 'image.npz'}",
                          f"+spikeforge_step_work={work}", f"+spikeforge_step_verify={int(verify)}",
                          f"+spikeforge_burst_in={work / 'burst_in.hex'}",
                          f"+spikeforge_burst_out={work / 'burst_out.hex'}"],
                timescale=("1ns", "1ps") if simulator == "icarus" else None,
                results_xml=str(work / "results.xml"),
            )

        bridge.start(simulate, timeout, log_tail=lambda: rtl._tail(log, 15))
        if self._recv(1) != b"L":
            self._fail()

    def _recv(self, n: int) -> bytes:
        try:
            return self._bridge.recv(n)
        except ConnectionError:
            self._fail(ended=True)

    def _fail(self, ended: bool = False):
        """Raise the simulator's error message (or say that it ended)."""
        if ended:
            raise RuntimeError(f"the RTL simulation ended unexpectedly ({self._bridge.error}); log: {self.log}")
        (n,) = self._struct.unpack("<I", self._recv(4))
        raise RuntimeError("RTL core: " + self._recv(n).decode(errors="replace"))

    def step(self, currents: np.ndarray) -> np.ndarray:
        K, A, N = self.config.n_current_inputs, self.config.n_inputs, self.config.n_neurons
        u = np.asarray(currents, dtype=np.int64).reshape(-1)
        if u.size != K:
            raise ValueError(f"step: {u.size} analog inputs given, the core takes {K}")
        self._bridge.sendall(b"S" + u.astype("<i4").tobytes() + bytes(A))
        kind = self._recv(1)
        if kind != b"P":
            self._fail()
        cycles, n = self._struct.unpack("<II", self._recv(8))
        idx = np.frombuffer(self._recv(4 * n), dtype="<u4") if n else np.zeros(0, dtype=np.uint32)
        self.cycles.append(int(cycles))
        spikes = np.zeros((1, N), dtype=bool)
        spikes[0, idx.astype(np.int64)] = True
        return spikes

    def close(self) -> None:
        self._bridge.close(join_timeout=60)
