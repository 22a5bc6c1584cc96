"""The simulator state of the spikeforge PyNN backend: time, the chosen backend, and the runs.

PyNN objects (populations, projections) only describe the network. At ``run()`` the state turns them
into a spikeforge Network (``pynn/build.py``) and runs it on the chosen spikeforge backend
(``spikeforge.sim.backends``: golden, float, nest, rtl; or a board through ``spikeforge.host.board``).

Why each run replays its segment from t = 0: the backends take a whole network and a number of steps,
and the RTL and board backends cannot hand their internal state back to Python between calls. A
segment's network and inputs are deterministic (Poisson sources are drawn on the host from fixed
seeds), so running steps 0..n+m reproduces steps 0..n bit for bit and continues them exactly:
``run(a); run(b)`` equals ``run(a + b)`` on every backend. Spike sources may change between runs (only
their future changes; the spikes already sent are kept). Neuron parameters and synapses may not: that
raises SegmentChangeError, whose fix is ``reset()`` (a new segment from t = 0) before the change.
"""

from __future__ import annotations

import numpy as np

from pyNN import common

name = "spikeforge"

#: setup(backend=...) values: the spikeforge simulation backends, a board, or "capture" (build the
#: Network at the first run() and stop the script, for ``spikeforge compile script.py``).
BACKEND_CHOICES = ("golden", "float", "nest", "rtl", "board", "capture")


class ID(int, common.IDMixin):
    def __init__(self, n):
        """Create an ID object with numerical value `n`."""
        int.__init__(n)
        common.IDMixin.__init__(self)


class CaptureComplete(Exception):
    """Raised by run() in capture mode: the script's network has been captured; stop the script.

    Derives from Exception (not a PyNN error) so a script's own ``except ValueError`` cannot swallow it.
    """

    def __init__(self, network, run_ms: float):
        self.network, self.run_ms = network, run_ms
        super().__init__(f"captured network {network.name!r} at run({run_ms} ms)")


class State(common.control.BaseState):
    """Everything ``setup()`` creates: time, backend, the PyNN objects and the current segment."""

    def __init__(self):
        common.control.BaseState.__init__(self)
        self.mpi_rank = 0
        self.num_processes = 1
        self.dt = 0.1
        self.min_delay = "auto"
        self.max_delay = "auto"
        self.backend = "golden"
        self.backend_options: dict = {}
        self.rng_seed = 0
        self.network_name = "pynn"
        self.stdp_amplitudes = "relative"
        self.forced_capture = False
        self.clear()

    # ---- PyNN's state protocol -----------------------------------------------------------------
    def clear(self):
        """Forget every population, projection and recorder (setup() and end())."""
        self.recorders = set()
        self.populations = []
        self.projections = []
        self.id_counter = 0
        self.segment_counter = -1
        self.write_on_end = []
        self.reset()

    def reset(self):
        """Return to t = 0 and start a new segment; the network and its initial values are kept."""
        self.running = False
        self.t = 0.0
        self.t_start = 0
        self.segment_counter += 1
        self.result = None  # SimResult of the segment so far
        self.network = None  # the Network the result came from
        self.source_rasters = {}  # label -> (steps, size) bool, what the sources sent
        self.segment_fingerprint = None
        for pop in self.populations:
            pop._start_segment()

    def run(self, simtime):
        self.run_until(self.t + simtime)

    def run_until(self, tstop):
        from spikeforge.pynn.build import build_network, check_unchanged, segment_fingerprint

        steps = int(round(tstop / self.dt))
        network, index = build_network(self, steps)
        if self.forced_capture or self.backend == "capture":
            raise CaptureComplete(network, steps * self.dt)
        fingerprint = segment_fingerprint(network)
        if self.segment_fingerprint is None:
            self.segment_fingerprint = fingerprint
        else:
            check_unchanged(self.segment_fingerprint, fingerprint, self.t)
        if steps > 0:
            self.result = self._simulate(network, steps)
            from spikeforge.compiler.sources import network_input_rasters

            self.source_rasters = network_input_rasters(network, steps, self.backend_options.get("seed"))
        self.network, self.index = network, index
        self.t = steps * self.dt
        self.running = True

    # ---- running a Network on the chosen backend -----------------------------------------------
    def recorded_variables(self) -> tuple[str, ...]:
        """The per-neuron variables (backend names) any population records."""
        from spikeforge.pynn.recording import BACKEND_NAMES

        wanted = set()
        for recorder in self.recorders:
            for variable in recorder.recorded:
                if variable.name != "spikes" and recorder.recorded[variable]:
                    wanted.add(BACKEND_NAMES[variable.name])
        return tuple(sorted(wanted))

    def _simulate(self, network, steps):
        record = self.recorded_variables()
        options = dict(self.backend_options)
        if self.backend == "board":
            return run_on_board(network, steps, record=record, **options)
        from spikeforge.sim.backends import simulate

        return simulate(network, steps, backend=self.backend, record=record, **options)


def run_on_board(network, steps, *, record=(), port=None, seed=None, **options):
    """Compile ``network`` and run it on a spikeforge board (``spikeforge.host.board``): a serial port,
    the path ``spikeforge board emulate`` printed, or ``virtual://`` for an in-process virtual board."""
    from spikeforge.sim import backends

    if "board" in backends.BACKENDS:
        return backends.simulate(network, steps, backend="board", port=port, seed=seed, record=record, **options)
    if port is None:
        raise ValueError("setup(backend='board') needs port=..., the board's serial port (e.g. port='/dev/ttyUSB1'), "
                         "or port='virtual://' for an in-process virtual board")
    try:
        from spikeforge.host.board import Board
    except ImportError as exc:
        raise RuntimeError(
            f"setup(backend='board') needs spikeforge.host.board, which is not available ({exc}); "
            "use backend='golden' (the bit-exact model of the same core) or 'rtl'"
        ) from exc
    from spikeforge.compiler import compile as compile_network

    core = int(options.pop("core", 0))
    with Board(port, **options) as board:
        # the board's core is fixed by its bitstream: compile for that CoreConfig
        compiled = compile_network(network, config=board.config(core))
        return board.run_network(compiled, steps, seed, record=record, core=core)


state = State()

