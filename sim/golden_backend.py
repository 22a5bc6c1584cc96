"""The ``golden`` backend: compile the Network, run the bit-exact golden model, answer in physical units.

``simulate`` is what ``spikeforge sim --backend golden`` runs. ``record_to_result`` turns any CoreRecord
(golden model, RTL simulation, a board) of a compiled network into a SimResult, so every backend that
runs a CoreImage reports spikes, membrane traces and learned weights the same way.

Units of the result: spikes per population (steps, size) with row n = time (n+1)*dt; ``v`` and
``threshold`` in mV, ``adapt`` in mV, ``ie``/``ii`` in nA (ii <= 0), ``refrac_count`` in steps; learned
weights of every plastic projection as (pre, post) magnitudes in nA.
"""

from __future__ import annotations

import numpy as np

from spikeforge.compiler.compile import CompiledNetwork, compile
from spikeforge.compiler.network import Network
from spikeforge.core.image import CoreImage
from spikeforge.sim.golden import CoreRecord
from spikeforge.sim.result import SimResult

#: Per-neuron variables this backend records, and how each converts to physical units.
RECORDABLE = ("v", "ie", "ii", "threshold", "adapt", "refrac_count")


class GoldenBackendError(ValueError):
    """Bad arguments to the golden backend; the message says what to change."""


def _runner(fast: bool | None):
    """The golden model's ``run``: the numba kernel (sim/golden_fast.py) when available, else golden.py.

    ``fast=True`` insists on the kernel, ``fast=False`` uses the NumPy reference; both are bit-exact."""
    if fast is False:
        from spikeforge.sim.golden import run
        return run, False
    try:
        from spikeforge.sim.golden_fast import run
        return run, True
    except ImportError as exc:
        if fast:
            raise GoldenBackendError(f"fast=True, but the numba kernel is not available: {exc}") from exc
        from spikeforge.sim.golden import run
        return run, False


def _check_record(record) -> tuple[str, ...]:
    record = (record,) if isinstance(record, str) else tuple(record)
    for name in record:
        if name not in RECORDABLE:
            raise GoldenBackendError(f"cannot record {name!r}; recordable variables: {', '.join(RECORDABLE)}")
    if len(set(record)) != len(record):
        raise GoldenBackendError(f"record names a variable twice: {record}")
    return record


def _normalise_currents(network: Network, currents, steps: int) -> dict[str, np.ndarray]:
    """``currents`` as a dict label -> (steps, size): one array is accepted when exactly one population
    takes current input (the float and NEST backends read ``currents`` the same way)."""
    if currents is None:
        return {}
    if isinstance(currents, dict):
        return currents
    takers = [p.label for p in network.populations if p.current_input]
    if len(takers) != 1:
        raise GoldenBackendError(
            f"currents is one array, but {len(takers)} populations take current input ({takers}); "
            "give a dict {population label: (steps, size) array}"
        )
    return {takers[0]: currents}


def prepare_run(network: Network, steps, seed, record, currents, config, compiled: CompiledNetwork | None,
                compile_options: dict, error: type[Exception]):
    """What every core backend (golden model, RTL) does before it runs: check ``steps`` and ``record``
    (bad values raise ``error``), compile (or check ``compiled``), and turn the network's sources and
    input currents into the core's input raster and per-step currents.
    Returns (steps, record, compiled, inputs, currents)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise error(f"steps = {steps!r}: expected a whole number of steps >= 0")
    steps = int(steps)
    record = _check_record(record)
    if compiled is None:
        compiled = compile(network, config, **compile_options)
    elif compiled.network is not network:
        raise error("compiled= was compiled from a different Network object")
    inputs = compiled.input_raster(steps, seed)
    u = compiled.core_currents(_normalise_currents(network, currents, steps), steps)
    return steps, record, compiled, inputs, u


def simulate(
    network: Network,
    steps: int,
    *,
    seed: int | None = None,
    record=(),
    currents=None,
    config=None,
    fast: bool | None = None,
    compiled: CompiledNetwork | None = None,
    **compile_options,
) -> SimResult:
    """Compile ``network`` (or use ``compiled``) and run it for ``steps`` steps on the golden model.

    ``seed``: the run seed mixed into every Poisson source. ``record``: variables of RECORDABLE.
    ``currents``: per-step input currents (nA) of current-input populations, label -> (steps, size)
    (or one array if only one population takes current input); the current of step n acts during
    step n like i_offset. ``config``: the CoreConfig to compile for (None = the smallest that fits);
    other keyword options go to ``compile`` (weight_bits, voltage_range, ...). ``fast``: None = the
    numba kernel when importable, True = insist, False = the NumPy reference (bit-identical).
    """
    steps, record, compiled, inputs, u = prepare_run(network, steps, seed, record, currents, config, compiled,
                                                     compile_options, GoldenBackendError)
    run, used_fast = _runner(fast)
    final, rec = run(compiled.image, inputs, steps=steps, currents=u, record=record)
    return record_to_result(
        compiled, rec, "golden", final_image=final,
        meta={"seed": seed, "fast_kernel": used_fast},
    )


def record_to_result(
    compiled: CompiledNetwork,
    record: CoreRecord,
    backend: str,
    *,
    final_image: CoreImage | None = None,
    meta: dict | None = None,
) -> SimResult:
    """Turn a CoreRecord of ``compiled.image`` (from any backend that runs CoreImages) into a SimResult.

    Spikes go to population rasters, recorded core variables to physical units per population
    (variables not in RECORDABLE, e.g. traces, are left out), and -- with ``final_image`` -- the learned
    weights of every plastic projection in nA. ``meta`` gets the config, mapping and quantisation report.
    """
    spikes = np.asarray(record.spikes, dtype=bool)
    if spikes.ndim != 2 or spikes.shape[1] != compiled.config.n_neurons:
        raise GoldenBackendError(
            f"record.spikes has shape {spikes.shape}, expected (steps, {compiled.config.n_neurons}); "
            "pass a single-core (not batched) CoreRecord"
        )
    steps = spikes.shape[0]
    s = compiled.scaling
    convert = {
        "v": s.v_from_int, "threshold": s.v_from_int, "adapt": s.dv_from_int,
        "ie": s.i_from_int, "ii": s.i_from_int, "refrac_count": lambda x: np.asarray(x, dtype=np.int64),
    }
    variables: dict[str, dict[str, np.ndarray]] = {}
    for name, values in record.variables.items():
        if name not in convert:
            continue
        values = convert[name](values)
        for label, r in compiled.populations():
            variables.setdefault(label, {})[name] = values[:, r.start:r.stop]
    weights = compiled.projection_weights(final_image) if final_image is not None else {}
    info = {
        "config": compiled.config.to_dict(),
        "mapping": compiled.mapping.to_dict(),
        "quantisation": compiled.report.to_dict(),
    }
    info.update(meta or {})
    return SimResult(
        backend=backend, dt=compiled.dt, steps=steps, spikes=compiled.population_spikes(spikes),
        variables=variables, weights=weights, meta=info,
    )
