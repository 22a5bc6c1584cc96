"""One entry point for every simulation backend: ``simulate(network, steps, backend=...)``.

Each backend lives in its own module and exposes
``simulate(network, steps, *, seed=None, record=(), currents=None, **options) -> SimResult``:

- ``golden``  the bit-exact NumPy core model on the compiled CoreImage (sim/golden_backend.py)
- ``float``   exact exponential integration of the Network in float64 (sim/float_ref.py)
- ``nest``    the Network through PyNN on NEST (sim/nest_backend.py)
- ``rtl``     the generated Verilog under cocotb (sim/rtl_backend.py)

``record`` names per-neuron variables to record (``v``, ``ie``, ``ii``, ...), ``currents`` gives the
per-step input current (nA, shape (steps, size)) of populations with ``current_input=True``.
"""

from __future__ import annotations

import importlib

from spikeforge.compiler.network import Network
from spikeforge.sim.result import SimResult

BACKENDS = {
    "golden": "spikeforge.sim.golden_backend",
    "float": "spikeforge.sim.float_ref",
    "nest": "spikeforge.sim.nest_backend",
    "rtl": "spikeforge.sim.rtl_backend",
    "spinnaker": "spikeforge.sim.spinnaker_backend",
}


class BackendError(RuntimeError):
    """A backend is unknown or cannot run here; the message says what to install or change."""


def simulate(network: Network, steps: int, backend: str = "golden", **options) -> SimResult:
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    try:
        module = importlib.import_module(BACKENDS[backend])
    except ModuleNotFoundError as exc:
        raise BackendError(f"backend {backend!r} is not available: {exc}") from exc
    return module.simulate(network, steps, **options)
