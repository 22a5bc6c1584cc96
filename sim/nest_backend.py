"""The NEST backend: a Network through PyNN 0.13 on NEST 3 (``iaf_psc_exp``, ``stdp_synapse``).

It runs the same network the core runs, with the same host-generated input spikes, so that the golden
model and the float reference can be checked against an independent, widely trusted simulator.
NEST's ``iaf_psc_exp`` uses the same exact propagators and the same update order as the core
(membrane from the previous step's currents, then current decay plus arrivals, then threshold), so
the float reference and NEST agree to floating-point rounding (tests/test_golden_vs_nest.py).

Time alignment (measured on NEST 3.10 + PyNN 0.13, see tests/test_golden_vs_nest.py):

- PyNN feeds a SpikeSourceArray through a parrot neuron one ``min_delay`` (= dt) late and subtracts dt
  from the requested times, so a spike time of dt would have to be sent at time 0, which NEST
  refuses. The backend therefore runs ONE PADDING STEP first: NEST step k+1 is our step k. During the
  padding step i_offset is 0 and v starts at ``v_rest + (v_init - v_rest) / P22``, so that after it v
  is v_init (exactly when v_init = v_rest, else to ~1e-15 mV). Our step n's input spikes are given
  to PyNN at time (n + 2) dt; NEST stamps a spike of our step n with (n + 2) dt, recorded values of
  our step n carry the time (n + 2) dt; both map back to row n.
- Current input: NEST delivers a current generator's value one step late, and PyNN shifts a
  StepCurrentSource's times by min_delay to compensate, so an amplitude given at PyNN time t
  moves v in NEST step t/dt. Our step n >= 1 is therefore an amplitude at (n + 1) dt. Step 0 cannot be
  reached by a generator at all (it would need time dt, which PyNN's shift turns into 0); its
  current is added to i_offset for that one step (the run is split: padding, step 0, the rest).
- Refractory periods: NEST rounds tau_refrac UP to whole steps, like
  ``spikeforge.compiler.propagators.refractory_steps``.

Not expressible with IF_curr_exp / stdp_synapse (a BackendError says so and suggests the float
reference): threshold adaptation, subtract-threshold reset, STDP with w_min != 0 (NEST's additive
stdp_synapse clips at 0), plastic projections onto one population with different tau_minus (a
parameter of the post neuron in NEST), v_init at or above threshold (it would fire in the padding step).

NEST's STDP convention differs from the core's: the whole delay is dendritic (a pair is timed
t_post + d - t_pre) and potentiation is applied lazily at the next pre spike. ``float_ref`` with
``stdp_convention="nest"`` reproduces it; docs/core-spec.md §11 quantifies the difference.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections import defaultdict

import numpy as np

from spikeforge.compiler.network import Network
from spikeforge.compiler.propagators import decay, delay_steps
from spikeforge.compiler.sources import network_input_rasters
from spikeforge.compiler.validate import validate
from spikeforge.sim.backends import BackendError
from spikeforge.sim.float_ref import check_record, check_steps, population_currents
from spikeforge.sim.result import SimResult

#: Per-neuron variables the NEST backend records (threshold is v_thresh: no adaptation in NEST).
RECORDABLE = ("v", "ie", "ii", "threshold")
#: NEST recordables of iaf_psc_exp and their scale to our units (mV, nA).
NEST_RECORDABLES = {"v": ("V_m", 1.0), "ie": ("I_syn_ex", 1e-3), "ii": ("I_syn_in", 1e-3)}
INSTALL_HINT = (
    "the NEST backend needs PyNN 0.13 and NEST 3: pip install 'pynn==0.13.*' nest-simulator "
    "(or pip install 'spikeforge[nest]')"
)


@contextlib.contextmanager
def _quiet():
    """Silence NEST's banner and PyNN's/NEST's deprecation chatter while we drive them."""
    os.environ.setdefault("PYNEST_QUIET", "1")
    pynn_log = logging.getLogger("PyNN")
    level = pynn_log.level
    pynn_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        pynn_log.setLevel(level)


def _import():
    """(pyNN.nest, nest), or a BackendError saying what to install."""
    with _quiet():
        try:
            import nest  # noqa: F401
            import pyNN.nest as sim
        except Exception as exc:  # ImportError, or NEST failing to load its kernel
            raise BackendError(f"{INSTALL_HINT}; importing them failed: {exc}") from exc
    return sim, nest


def _check_installed() -> None:
    """Fail fast, in this process, when PyNN or NEST is missing (without starting NEST here)."""
    import importlib.util

    for name in ("pyNN.nest", "pyNN", "nest"):
        try:
            missing = (name in sys.modules and sys.modules[name] is None) or importlib.util.find_spec(name) is None
        except (ImportError, ValueError):
            missing = True
        if missing:
            raise BackendError(f"{INSTALL_HINT}; the module {name!r} cannot be imported")


def check_supported(network: Network) -> None:
    """Raise BackendError naming every feature of ``network`` NEST's IF_curr_exp cannot express."""
    problems = []
    for pop in network.populations:
        p = pop.params
        if p.threshold_adaptation is not None:
            problems.append(f"population {pop.label!r} uses threshold adaptation")
        if p.reset == "subtract_threshold":
            problems.append(f"population {pop.label!r} uses reset 'subtract_threshold'")
        v_init = p.per_neuron("v_rest", pop.size) if pop.v_init is None else \
            np.broadcast_to(np.asarray(pop.v_init, dtype=float), (pop.size,))
        if np.any(v_init >= p.per_neuron("v_thresh", pop.size)):
            problems.append(f"population {pop.label!r} starts with v_init at or above v_thresh")
    tau_minus: dict[str, set] = defaultdict(set)
    for proj in network.projections:
        s = proj.plasticity
        if s is None:
            continue
        if s.w_min != 0:
            problems.append(
                f"projection {proj.name!r} has STDP w_min = {s.w_min} nA (NEST's additive stdp_synapse "
                f"clips at 0)"
            )
        tau_minus[proj.post].add(float(s.tau_minus))
    for post, taus in tau_minus.items():
        if len(taus) > 1:
            problems.append(
                f"plastic projections onto population {post!r} have different tau_minus {sorted(taus)} "
                f"(in NEST tau_minus belongs to the post neuron)"
            )
    if problems:
        raise BackendError(
            "the NEST backend (PyNN IF_curr_exp + stdp_synapse) cannot run this network: "
            + "; ".join(problems)
            + ". Use --backend float (the float reference runs every feature) or --backend golden."
        )


def simulate(network: Network, steps: int, *, seed: int | None = None, record=(), currents=None,
             isolated: bool | None = None) -> SimResult:
    """Run ``network`` for ``steps`` steps on NEST through PyNN; return a SimResult on our time grid.

    The run happens in a freshly spawned process (sim/isolated.py: NEST 3.10 may segfault when a
    second kernel is built in one process); ``isolated=False`` or SPIKEFORGE_NEST_INPROCESS=1 runs it
    here instead (one NEST run per process).

    Same arguments and result as ``spikeforge.sim.float_ref.simulate``: ``seed`` mixes into every
    Poisson source, ``record`` names per-neuron variables (``v``, ``ie``, ``ii``, ``threshold``),
    ``currents`` gives the per-step current (nA) of current-input populations, and the learned
    weights of plastic projections come back as dense (pre, post) magnitudes in nA (0 = no synapse).
    Each call builds a fresh NEST kernel, so calls are independent (not thread-safe: PyNN is global).
    """
    validate(network)
    steps = check_steps(steps)
    record = check_record(record, RECORDABLE)
    check_supported(network)
    if isolated is None:
        isolated = os.environ.get("SPIKEFORGE_NEST_INPROCESS", "") not in ("1", "true", "yes")
    if isolated:
        from spikeforge.sim.isolated import run_isolated

        _check_installed()
        return run_isolated(simulate, network, steps, seed=seed, record=record, currents=currents,
                            isolated=False, what="the NEST simulation")
    dt = float(network.dt)
    rasters = network_input_rasters(network, steps, seed)
    drive = population_currents(network, currents, steps)
    if steps == 0:
        return SimResult(
            backend="nest", dt=dt, steps=0,
            spikes={p.label: np.zeros((0, p.size), dtype=bool) for p in network.populations},
            variables={p.label: {v: np.zeros((0, p.size)) for v in record} for p in network.populations}
            if record else {},
            weights={pr.name: _dense_magnitudes(pr, network) for pr in network.projections if pr.plasticity},
            meta={"seed": seed},
        )
    sim, nest = _import()
    with _quiet():
        runner = _NestRun(sim, nest, network, steps, rasters, drive, record)
        try:
            return runner.run(seed)
        finally:
            sim.end()


def _dense_magnitudes(proj, network):
    pre, post = network.node(proj.pre), network.population(proj.post)
    w, _, exists = proj.dense(pre.size, post.size)
    return np.where(exists, w, 0.0)


class _NestRun:
    """One NEST kernel holding one network: build, run in three pieces, read back."""

    def __init__(self, sim, nest, network, steps, rasters, drive, record):
        self.sim, self.nest, self.net = sim, nest, network
        self.steps, self.rasters, self.drive, self.record = steps, rasters, drive, record
        self.dt = dt = float(network.dt)
        max_delay = dt
        for proj in network.projections:
            pre, post = network.node(proj.pre), network.population(proj.post)
            _, d, exists = proj.dense(pre.size, post.size)
            if exists.any():
                max_delay = max(max_delay, float(delay_steps(d[exists], dt).max()) * dt)
        sim.setup(timestep=dt, min_delay=dt, max_delay=max_delay, spike_precision="on_grid",
                  verbosity="error")
        # PyNN turns on precise (off-grid) spike times; a time like 3 * 0.1 = 0.30000000000000004 ms
        # would then be emitted one step late. On the grid, NEST rounds each time to its step.
        nest.SetDefaults("spike_generator", {"precise_times": False})
        self.pops = {p.label: self._population(p) for p in network.populations}
        self.sources = {s.label: self._source(s) for s in network.sources}
        self.projections = {pr.name: self._projection(pr) for pr in network.projections}
        self._current_sources()
        self.spike_recorder = nest.Create("spike_recorder")
        self.multimeter = None
        names = [NEST_RECORDABLES[v][0] for v in record if v in NEST_RECORDABLES]
        all_nodes = [self.pops[p.label].node_collection for p in network.populations]
        if all_nodes:
            nodes = all_nodes[0]
            for nc in all_nodes[1:]:
                nodes = nodes + nc
            nest.Connect(nodes, self.spike_recorder, syn_spec={"delay": dt})
            if names:
                self.multimeter = nest.Create("multimeter", params={"record_from": names, "interval": dt})
                nest.Connect(self.multimeter, nodes, syn_spec={"delay": dt})

    # ---- building -------------------------------------------------------------------------------
    def _population(self, pop):
        sim, p = self.sim, pop.params
        params = {name: p.per_neuron(name, pop.size) for name in
                  ("tau_m", "cm", "v_rest", "v_reset", "v_thresh", "tau_syn_E", "tau_syn_I", "tau_refrac")}
        params = {k: (float(v[0]) if np.all(v == v[0]) else v) for k, v in params.items()}
        cell = sim.IF_curr_exp(i_offset=0.0, **params)  # i_offset is off during the padding step
        population = sim.Population(pop.size, cell, label=pop.label)
        v_rest = p.per_neuron("v_rest", pop.size)
        v_init = v_rest if pop.v_init is None else np.broadcast_to(np.asarray(pop.v_init, dtype=float), (pop.size,))
        # start so that one padding step of pure relaxation lands on v_init
        v0 = v_rest + (v_init - v_rest) / decay(self.dt, p.per_neuron("tau_m", pop.size))
        population.initialize(v=v0)
        return population

    def _source(self, src):
        from pyNN.parameters import Sequence

        raster = self.rasters[src.label]
        times = [Sequence((np.flatnonzero(raster[:, k]) + 2) * self.dt) for k in range(src.size)]
        return self.sim.Population(src.size, self.sim.SpikeSourceArray(spike_times=times), label=src.label)

    def _projection(self, proj):
        sim, net, dt = self.sim, self.net, self.dt
        pre_obj, post_obj = net.node(proj.pre), net.population(proj.post)
        w, d, exists = proj.dense(pre_obj.size, post_obj.size)
        i, j = np.nonzero(exists)
        sign = -1.0 if proj.receptor == "inhibitory" else 1.0  # PyNN: current-based inhibition is negative
        rows = np.column_stack([i, j, sign * w[i, j], delay_steps(d[i, j], dt) * dt]) if i.size else \
            np.zeros((0, 4))
        connector = sim.FromListConnector(rows, column_names=["weight", "delay"])
        s = proj.plasticity
        if s is None:
            synapse = sim.StaticSynapse()
        else:
            synapse = sim.STDPMechanism(
                timing_dependence=sim.SpikePairRule(tau_plus=s.tau_plus, tau_minus=s.tau_minus,
                                                    A_plus=s.A_plus, A_minus=s.A_minus),
                weight_dependence=sim.AdditiveWeightDependence(w_min=0.0, w_max=s.w_max),
                weight=0.0, delay=dt,
            )
        pre = self.pops.get(proj.pre) or self.sources[proj.pre]
        return sim.Projection(pre, self.pops[proj.post], connector, synapse, receptor_type=proj.receptor,
                              label=proj.name)

    def _current_sources(self):
        """One StepCurrentSource per current-input neuron for steps 1.. (step 0 goes via i_offset)."""
        sim, dt = self.sim, self.dt
        self.current_devices = []
        for label, amps in self.drive.items():
            if self.steps < 2 or not np.any(amps[1:]):
                continue
            pop = self.pops[label]
            for k in range(amps.shape[1]):
                a = amps[1:, k]
                change = np.flatnonzero(np.diff(np.concatenate([[0.0], a])) != 0)
                if change.size == 0:
                    continue
                times = (change + 2) * dt  # our step n = change + 1 -> PyNN time (n + 1) dt
                source = sim.StepCurrentSource(times=times, amplitudes=a[change])
                source.inject_into(pop[k:k + 1])
                self.current_devices.append(source)

    # ---- running --------------------------------------------------------------------------------
    def run(self, seed) -> SimResult:
        """Padding step, our step 0 (with its current in i_offset), the other steps, one flush step.

        NEST is driven with ``nest.Simulate`` because PyNN's first ``run`` adds one min_delay to the
        requested time; ``state.run(0)`` (PyNN's simulator state) still wires PyNN's parrot neurons.
        NEST delivers the spikes of a step (and so makes their STDP updates) at the start of the next
        step, and hands over recorded values one step late: the flush step completes our last step.
        Spikes emitted in the flush step itself would be delivered only after it: they change nothing.
        """
        sim, nest, net, dt = self.sim, self.nest, self.net, self.dt
        i_offset = {p.label: p.params.per_neuron("i_offset", p.size) for p in net.populations}
        sim.simulator.state.run(0.0)
        nest.Simulate(dt)  # padding step
        for p in net.populations:
            extra = self.drive[p.label][0] if p.label in self.drive else 0.0
            self._set_i_offset(p.label, i_offset[p.label] + extra)
        nest.Simulate(dt)  # our step 0
        for label in self.drive:
            self._set_i_offset(label, i_offset[label])
        if self.steps > 1:
            nest.Simulate((self.steps - 1) * dt)
        nest.Simulate(dt)  # flush
        return self._collect(seed, self._weights())

    def _set_i_offset(self, label, values):
        values = np.asarray(values, dtype=float)
        self.pops[label].set(i_offset=float(values[0]) if np.all(values == values[0]) else values)

    # ---- reading back ---------------------------------------------------------------------------
    def _weights(self) -> dict[str, np.ndarray]:
        """Learned weights of the plastic projections: (pre, post) magnitudes in nA, 0 = no synapse."""
        weights = {}
        for proj in self.net.projections:
            if proj.plasticity is not None:
                w = np.asarray(self.projections[proj.name].get("weight", format="array"), dtype=float)
                weights[proj.name] = np.abs(np.nan_to_num(w, nan=0.0))
        return weights

    def _collect(self, seed, weights) -> SimResult:
        """Spikes and recorded values back onto our grid: NEST time t is our row round(t/dt) - 2."""
        net, dt, steps = self.net, self.dt, self.steps
        labels = [p.label for p in net.populations]
        # every NEST node id -> (population number, column), as lookup arrays
        ids = [np.asarray(self.pops[label].node_collection.tolist(), dtype=np.int64) for label in labels]
        top = max((int(i.max()) for i in ids if i.size), default=0) + 1
        pop_of = np.full(top, -1, dtype=np.int64)
        col_of = np.zeros(top, dtype=np.int64)
        for k, i in enumerate(ids):
            pop_of[i], col_of[i] = k, np.arange(i.size)

        def scatter(times, senders, values, fill, dtype):
            rows = np.rint(np.asarray(times, dtype=float) / dt).astype(np.int64) - 2
            senders = np.asarray(senders, dtype=np.int64)
            ok = (rows >= 0) & (rows < steps)
            out = {}
            for k, p in enumerate(net.populations):
                arr = np.full((steps, p.size), fill, dtype=dtype)
                sel = ok & (pop_of[senders] == k)
                arr[rows[sel], col_of[senders[sel]]] = values[sel] if values is not None else True
                out[p.label] = arr
            return out

        ev = self.spike_recorder.get("events")
        spikes = scatter(ev["times"], ev["senders"], None, False, bool)
        variables = {}
        if self.record:
            variables = {label: {} for label in labels}
            mm = self.multimeter.get("events") if self.multimeter is not None else None
            for name in self.record:
                if name == "threshold":
                    for p in net.populations:
                        variables[p.label][name] = np.broadcast_to(
                            p.params.per_neuron("v_thresh", p.size), (steps, p.size)).copy()
                    continue
                nest_name, scale = NEST_RECORDABLES[name]
                values = np.asarray(mm[nest_name], dtype=float) * scale
                for label, arr in scatter(mm["times"], mm["senders"], values, np.nan, float).items():
                    variables[label][name] = arr
        import nest as _nest
        import pyNN

        return SimResult(
            backend="nest", dt=dt, steps=steps, spikes=spikes, variables=variables, weights=weights,
            meta={"seed": seed, "nest_version": getattr(_nest, "__version__", "?"),
                  "pynn_version": pyNN.__version__, "stdp_convention": "nest"},
        )
