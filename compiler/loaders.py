"""``load_any``: one entry point for every network description spikeforge reads.

- ``.yaml`` / ``.yml`` / ``.json``: the spikeforge network format (compiler/netfile.py);
- ``.nir`` / ``.h5`` / ``.hdf5``: a NIR graph (compiler/nir_frontend.py; needs ``dt`` unless spikeforge
  wrote the file);
- ``.py``: a PyNN script, run with spikeforge.pynn in capture mode: its ``import pyNN.nest``,
  ``pyNN.spiNNaker`` (or ``spikeforge.pynn``) gives spikeforge's backend, the network is captured at
  the script's first ``run()``, and the script stops there (nothing is simulated, nothing after the
  run -- plotting, analysis -- executes).

The CLI's ``sim``, ``compile``, ``inspect`` and ``export`` take any of these.
"""

from __future__ import annotations

import contextlib
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

from spikeforge.compiler.network import Network, NetworkError

NETFILE_SUFFIXES = (".yaml", ".yml", ".json")
NIR_SUFFIXES = (".nir", ".h5", ".hdf5")
PYNN_SUFFIXES = (".py",)
#: PyNN backend modules a captured script may import; each becomes spikeforge.pynn.
PYNN_MODULES = ("pyNN.nest", "pyNN.spiNNaker", "pyNN.neuron", "pyNN.brian2", "pyNN.mock", "spynnaker.pyNN",
                "spynnaker8")


class LoadError(NetworkError):
    """A network description cannot be loaded; the message names the file and the fix."""


@dataclass
class CapturedScript:
    """A PyNN script's network as it stood at its first run(), and that run's duration (ms)."""

    network: Network
    run_ms: float

    @property
    def steps(self) -> int:
        return self.network.steps_for(self.run_ms)


@contextlib.contextmanager
def _pynn_as_spikeforge():
    """Make ``import pyNN.nest`` (and the other backends) import spikeforge.pynn, in capture mode."""
    import spikeforge.pynn as sf
    from spikeforge.pynn import simulator

    saved = {name: sys.modules.get(name) for name in PYNN_MODULES}
    for name in PYNN_MODULES:
        sys.modules[name] = sf
    parents = {}
    for name in PYNN_MODULES:
        parent, _, child = name.rpartition(".")
        if parent and parent in sys.modules:
            parents[(parent, child)] = getattr(sys.modules[parent], child, None)
            setattr(sys.modules[parent], child, sf)
    # the script gets a simulator state of its own: a capture may happen while a spikeforge.pynn
    # simulation runs in this process (a board opened from inside a script compiles its network),
    # and the script's setup() must not reset that simulation
    outer = simulator.state
    simulator.state = simulator.State()
    simulator.state.forced_capture = True
    try:
        yield
    finally:
        simulator.state = outer
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        for (parent, child), value in parents.items():
            if value is None:
                with contextlib.suppress(AttributeError):
                    delattr(sys.modules[parent], child)
            else:
                setattr(sys.modules[parent], child, value)


def capture_pynn_script(path, argv: list[str] | None = None) -> CapturedScript:
    """Run the PyNN script at ``path`` with spikeforge.pynn until its first run(); return its network."""
    from spikeforge.pynn.simulator import CaptureComplete

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such PyNN script")
    import pyNN  # noqa: F401 - the package must exist so that pyNN.<backend> can be redirected

    old_argv = sys.argv
    sys.argv = [str(path), *(argv or [])]
    try:
        with _pynn_as_spikeforge():
            runpy.run_path(str(path), run_name="__main__")
    except CaptureComplete as done:
        network = done.network
        network.name = path.stem if network.name == "pynn" else network.name
        return CapturedScript(network, done.run_ms)
    except SystemExit as exc:
        raise LoadError(f"{path}: the script exited (code {exc.code}) before its first run(); spikeforge captures "
                        "the network at the first sim.run()") from exc
    finally:
        sys.argv = old_argv
    raise LoadError(f"{path}: the script finished without calling run(); spikeforge captures the network at the "
                    "first sim.run(), so the script must build a network and run it")


def load_any(path, dt: float | None = None, **options) -> Network:
    """Load a network from any supported description, chosen by the file's suffix (module docstring).

    ``dt`` (ms) is the timestep for NIR files (required unless spikeforge wrote the file); other
    formats carry their own timestep, and a ``dt`` given for them must agree with it. ``options`` go
    to the NIR reader (``time_unit``, ``input_rate``, ...).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such network file")
    suffix = path.suffix.lower()
    if suffix in NETFILE_SUFFIXES:
        from spikeforge.compiler.netfile import load_network

        network = load_network(path)
    elif suffix in NIR_SUFFIXES:
        from spikeforge.compiler.nir_frontend import read_nir

        return read_nir(path, dt, **options)
    elif suffix in PYNN_SUFFIXES:
        network = capture_pynn_script(path).network
    else:
        raise LoadError(
            f"{path}: unknown network file type {suffix or '(no suffix)'}; spikeforge reads "
            f"{', '.join(NETFILE_SUFFIXES)} (network files), {', '.join(NIR_SUFFIXES)} (NIR) and .py (PyNN scripts)")
    if options:
        raise LoadError(f"{path}: options {sorted(options)} apply to NIR files only")
    if dt is not None and abs(float(dt) - network.dt) > 1e-12 * max(1.0, network.dt):
        raise LoadError(f"{path}: the network's timestep is {network.dt} ms, but dt = {dt} ms was given; "
                        "leave dt out for this file or change the file's timestep")
    return network
