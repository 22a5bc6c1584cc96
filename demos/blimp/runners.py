"""Core runners: one neuron core advanced one step at a time, whatever runs it.

The SNN controller (snn_controller.py) only needs ``step(currents) -> spikes``: write this tick's
analog inputs into the encoders, advance the core one step, get the spikes. Three runners implement it:

- ``GoldenRunner``: the golden model (sim/golden.py) -- a batch of B identical cores, one per run of
  a scenario, stepped together;
- ``BoardRunner``: a board over the UART link (host/board.py ``Board``): a real FPGA on a serial port,
  a pty of ``spikeforge board emulate``, or ``BoardRunner.virtual(image)``, the virtual board in
  process (host/virtual_board.py, the link protocol served by golden-model cores);
- the RTL is checked by replay (``rtl_replay``): the whole closed loop is deterministic given the
  spikes, so feeding the RTL the analog inputs the golden closed loop produced and getting the same
  spikes back step for step proves the RTL closed loop would follow the same trajectory.
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


def rtl_replay(image: CoreImage, currents: np.ndarray, expected_spikes: np.ndarray,
               simulator: str = "icarus") -> dict:
    """Run ``image`` on the RTL core (cocotb, sim/rtl_backend.py) with the analog inputs (T, K) a closed
    loop produced; compare with that loop's spikes (T, N). Returns a summary dict (``identical``,
    ``first_difference``, ``steps``, ``cycles``, ``seconds``)."""
    import time

    from spikeforge.sim.rtl_backend import run_image

    currents = np.asarray(currents, dtype=np.int64)
    steps = currents.shape[0]
    inputs = np.zeros((steps, image.config.n_inputs), dtype=bool)
    t0 = time.perf_counter()
    _, rec, cycles = run_image(image, inputs, currents, simulator=simulator)
    spikes = np.asarray(rec.spikes, dtype=bool)
    diff = np.flatnonzero((spikes != np.asarray(expected_spikes, dtype=bool)).any(axis=1))
    return {"identical": diff.size == 0, "first_difference": int(diff[0]) if diff.size else None,
            "steps": steps, "cycles_per_step_max": max(cycles) if cycles else 0,
            "seconds": time.perf_counter() - t0, "simulator": simulator, "spikes": spikes}
