"""setup / run / reset / end of the spikeforge PyNN backend, and sPyNNaker's extra calls.

``setup(timestep=1.0, backend="golden", **options)`` picks where each segment runs:

- ``golden`` (default): the bit-exact model of the compiled fixed-point core;
- ``float``: the exact float64 reference of the same network (no quantisation);
- ``nest``: the same Network through PyNN on NEST (spikeforge's own NEST backend);
- ``rtl``: the generated Verilog of the core under cocotb (``simulator="icarus"|"verilator"``);
- ``board``: a spikeforge FPGA board on ``port=...`` (through ``spikeforge.host.board``);
- ``capture``: build the Network at the first ``run()`` and stop (``spikeforge compile script.py``).

Other keywords are passed to the backend (``seed``, ``simulator``, ``vcd``, ``port``, ...), except
sPyNNaker's machine options (``time_scale_factor``, ``n_boards_required``, ...), which are accepted
and ignored with a SpiNNakerOnlyCallNote so sPyNNaker scripts run unchanged.
"""

from __future__ import annotations

from pyNN import common
from pyNN.common.control import DEFAULT_MAX_DELAY, DEFAULT_MIN_DELAY
from pyNN.recording import get_io

from spikeforge.pynn import simulator
from spikeforge.pynn.errors import UnsupportedFeatureError, note_spinnaker_only

#: setup() keywords that only configure a SpiNNaker machine.
SPINNAKER_SETUP_KEYWORDS = ("time_scale_factor", "n_chips_required", "n_boards_required",
                            "database_socket_addresses")
#: setup() keywords other PyNN backends take and spikeforge has no use for.
IGNORED_SETUP_KEYWORDS = ("spike_precision", "verbosity", "threads", "t_flush", "use_cvode")


def setup(timestep=1.0, min_delay=DEFAULT_MIN_DELAY, backend="golden", **extra_params):
    """Initialise spikeforge.pynn (any existing network is discarded) and choose the backend.

    ``timestep`` (ms) is the core's dt; PyNN's own default of 0.1 ms is replaced by 1.0 ms, the
    timestep sPyNNaker and spikeforge's cores are designed for. ``rng_seed`` seeds the Poisson sources
    (default 0); ``stdp_amplitudes="absolute"`` reads STDP's A_plus/A_minus in nA as sPyNNaker 7
    does, instead of PyNN's relative-to-w_max convention; ``name`` names the Network.
    """
    if backend not in simulator.BACKEND_CHOICES:
        raise ValueError(f"setup(backend={backend!r}): choose one of {', '.join(simulator.BACKEND_CHOICES)}")
    max_delay = extra_params.pop("max_delay", DEFAULT_MAX_DELAY)
    for key in SPINNAKER_SETUP_KEYWORDS:
        if extra_params.pop(key, None) is not None:
            note_spinnaker_only(f"setup({key}=...)")
    for key in IGNORED_SETUP_KEYWORDS:
        extra_params.pop(key, None)
    state = simulator.state
    state.rng_seed = int(extra_params.pop("rng_seed", 0) or 0)
    amplitudes = extra_params.pop("stdp_amplitudes", "relative")
    if amplitudes not in ("relative", "absolute"):
        raise ValueError(f"setup(stdp_amplitudes={amplitudes!r}): use 'relative' (PyNN, NEST) or 'absolute' (sPyNNaker)")
    name = extra_params.pop("name", "pynn")
    for key in ("rank", "num_processes"):
        extra_params.pop(key, None)
    _check_backend_options(backend, extra_params)
    common.setup(timestep, min_delay, max_delay=max_delay)
    state.clear()
    state.dt = float(timestep)
    state.min_delay = min_delay
    state.max_delay = max_delay
    state.backend = backend
    state.backend_options = extra_params
    state.stdp_amplitudes = amplitudes
    state.network_name = name
    return rank()


def _check_backend_options(backend: str, options: dict) -> None:
    """Refuse setup() keywords the chosen backend does not take, naming the ones it does."""
    import importlib
    import inspect

    if backend == "capture" or not options:
        return
    if backend == "board":
        from spikeforge.host.board import Board

        accepted = {"port", "seed", "core"} | set(inspect.signature(Board.__init__).parameters) - {"self"}
    else:
        from spikeforge.sim.backends import BACKENDS

        fn = importlib.import_module(BACKENDS[backend]).simulate
        params = inspect.signature(fn).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()) and backend in ("golden", "rtl"):
            return  # compile options (weight_bits, ...) go through **compile_options
        accepted = set(params) - {"network", "steps", "record", "currents"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"setup({', '.join(f'{k}=...' for k in unknown)}): not an option of the {backend!r} backend; "
                         f"its options: {', '.join(sorted(accepted))}")


def end(compatible_output=True):
    """Write the data requested with ``write_on_end`` and release the network."""
    state = simulator.state
    for population, variables, filename in state.write_on_end:
        population.write_data(get_io(filename), variables)
    state.write_on_end = []


run, run_until = common.build_run(simulator)
run_for = run
reset = common.build_reset(simulator)
initialize = common.initialize
get_current_time, get_time_step, get_min_delay, get_max_delay, num_processes, rank = \
    common.build_state_queries(simulator)


def get_min_delay():  # noqa: F811 - 'auto' means one timestep, as in NEST and sPyNNaker
    d = simulator.state.min_delay
    return simulator.state.dt if d == "auto" else d


def last_network():
    """The spikeforge Network of the last run() (None before the first run of a segment)."""
    return simulator.state.network


def last_result():
    """The SimResult of the current segment (None before its first run)."""
    return simulator.state.result


# ---- sPyNNaker's extra functions --------------------------------------------------------------------
def set_number_of_neurons_per_core(neuron_type, max_permitted):
    """sPyNNaker: how many neurons of a type share a SpiNNaker core. No-op (one spikeforge core holds
    the whole network)."""
    note_spinnaker_only("set_number_of_neurons_per_core")


def set_number_of_synapse_cores(neuron_type, n_synapse_cores):
    note_spinnaker_only("set_number_of_synapse_cores")


def set_allow_delay_extensions(neuron_type, allow):
    note_spinnaker_only("set_allow_delay_extensions", "the core holds delays up to its max_delay directly")


def get_machine():
    raise UnsupportedFeatureError("get_machine() (a SpiNNaker machine description)",
                                  "spikeforge's CoreConfig, see spikeforge inspect",
                                  "use spikeforge.sim.spinnaker_backend to run on SpiNNaker")


def NativeRNG(seed_value):
    raise UnsupportedFeatureError("NativeRNG", "pyNN.random.NumpyRNG (sim.NumpyRNG)")


class _UnsupportedNamespace:
    """sPyNNaker's ``extra_models`` and ``external_devices``: attribute look-ups succeed (so imports
    work), using any of them explains that it is not supported."""

    def __init__(self, name: str, what: str):
        self._name, self._what = name, what

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        name, what = self._name, self._what

        def refuse(*args, **kwargs):
            raise UnsupportedFeatureError(f"sim.{name}.{attr} ({what})",
                                          "IF_curr_exp, SpikeSourceArray, SpikeSourcePoisson, StaticSynapse "
                                          "and pair STDP with additive weights")

        return refuse


extra_models = _UnsupportedNamespace("extra_models", "a sPyNNaker-specific model")
external_devices = _UnsupportedNamespace("external_devices", "SpiNNaker live I/O")
