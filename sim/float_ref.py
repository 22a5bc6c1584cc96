"""The float reference: what a Network *means*, in float64, with the core's step order and no rounding.

The golden model (sim/golden.py) runs the compiled integers; this module runs the Network itself with
exact exponential integration (compiler/propagators.py, NEST's iaf_psc_exp scheme) in the SAME phase
order as the core (docs/core-spec.md, section 4):

1. membrane: a refractory neuron counts down and holds v; otherwise
   ``v = v_rest + P22 (v - v_rest) + P21ex Ie + P21in Ii + P20 (i_offset + I_ext)``;
2. synaptic currents decay, then this step's arrivals are added (inhibitory arrivals negative);
3. threshold adaptation decays, theta = v_thresh + a; a neuron that is not refractory and has
   v >= theta spikes, resets (to v_reset, or by subtracting theta - v_reset), starts its refractory
   count and raises a by the increment;
4-6. STDP: traces decay, potentiation of the columns of neurons that spiked (pre traces before this
   step's increments), depression of the rows of sources that spiked, trace increments;
7. delivery: a spike of step n adds its weight to the target's current in step n + delay.

So the golden model and this reference differ only by quantisation, which docs/core-spec.md §11 bounds,
and this reference and NEST (sim/nest_backend.py) differ only by floating-point rounding (~1e-12 mV).

STDP has two conventions (``stdp_convention``):

- ``"core"`` (default): the core's rule, docs/core-spec.md section 6 -- a pair is timed by the spike
  *emission* steps, whatever the synapse's delay.
- ``"nest"``: NEST's ``stdp_synapse``, where the whole delay is dendritic: the post spike reaches the
  synapse ``d`` steps after it is emitted, so a pair is timed t_post + d - t_pre; and NEST applies
  potentiation lazily, at the synapse's next pre spike, so the weights NEST reports at the end miss the
  potentiation since each synapse's last pre spike. This mode exists to check the NEST backend to
  rounding precision and to measure what the convention difference costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from spikeforge.compiler.network import Network, Population, Projection
from spikeforge.compiler.propagators import decay, delay_steps, propagators, refractory_steps
from spikeforge.compiler.sources import network_input_rasters
from spikeforge.compiler.validate import validate
from spikeforge.sim.result import SimResult

#: Per-neuron variables the float reference can record (mV, nA, nA, mV).
RECORDABLE = ("v", "ie", "ii", "threshold")
STDP_CONVENTIONS = ("core", "nest")


class FloatReferenceError(ValueError):
    """Bad arguments to the float reference (steps, record, currents); the message names the fix."""


# ---- arguments ---------------------------------------------------------------------------------
def check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise FloatReferenceError(f"steps = {steps!r}: expected a whole number of steps >= 0")
    return int(steps)


def check_record(record, recordable=RECORDABLE) -> tuple[str, ...]:
    record = (record,) if isinstance(record, str) else tuple(record)
    for name in record:
        if name not in recordable:
            raise FloatReferenceError(
                f"cannot record {name!r}; recordable variables: {', '.join(recordable)}"
            )
    if len(set(record)) != len(record):
        raise FloatReferenceError(f"record names a variable twice: {record}")
    return record


def population_currents(network: Network, currents, steps: int) -> dict[str, np.ndarray]:
    """The external current (nA, shape (steps, size)) of every population with ``current_input=True``.

    ``currents`` is a mapping label -> array (steps, size), or one array when exactly one population
    takes current input; a current-input population without an entry gets 0 nA. Shared with the NEST
    backend so both read ``currents`` the same way.
    """
    takers = [p for p in network.populations if p.current_input]
    if currents is None:
        return {p.label: np.zeros((steps, p.size)) for p in takers}
    if not isinstance(currents, Mapping):
        if len(takers) != 1:
            raise FloatReferenceError(
                f"currents is one array, but {len(takers)} populations take current input "
                f"({[p.label for p in takers]}); give a dict {{population label: (steps, size) array}}"
            )
        currents = {takers[0].label: currents}
    out = {}
    known = {p.label: p for p in network.populations}
    for label, value in currents.items():
        if label not in known:
            raise FloatReferenceError(
                f"currents given for {label!r}, which is not a population; populations taking current "
                f"input: {[p.label for p in takers]}"
            )
        if not known[label].current_input:
            raise FloatReferenceError(
                f"currents given for population {label!r}, which has current_input=False; set "
                f"Population(current_input=True) to feed it a per-step current"
            )
        arr = np.asarray(value, dtype=float)
        size = known[label].size
        if arr.ndim == 1 and size == 1:
            arr = arr[:, None]
        if arr.shape != (steps, size):
            raise FloatReferenceError(
                f"currents[{label!r}] has shape {arr.shape}, expected (steps, size) = ({steps}, {size}) nA"
            )
        if not np.all(np.isfinite(arr)):
            raise FloatReferenceError(f"currents[{label!r}] holds NaN or infinite values")
        out[label] = arr
    for p in takers:
        out.setdefault(p.label, np.zeros((steps, p.size)))
    return out


# ---- the network as arrays -----------------------------------------------------------------------
@dataclass
class NeuronArrays:
    """Parameters of all neurons of the network, concatenated in population order (float64, (N,))."""

    offsets: dict[str, slice]
    v_rest: np.ndarray
    v_reset: np.ndarray
    v_thresh: np.ndarray
    i_offset: np.ndarray
    v_init: np.ndarray
    refrac: np.ndarray  # int steps
    subtract: np.ndarray  # bool
    a_inc: np.ndarray  # mV
    a_decay: np.ndarray
    P: dict[str, np.ndarray]

    @classmethod
    def build(cls, network: Network) -> "NeuronArrays":
        offsets, start = {}, 0
        cols: dict[str, list[np.ndarray]] = {}
        names = ("tau_m", "cm", "tau_syn_E", "tau_syn_I", "v_rest", "v_reset", "v_thresh", "i_offset",
                 "tau_refrac")
        extra: dict[str, list[np.ndarray]] = {"v_init": [], "subtract": [], "a_inc": [], "a_tau": []}
        for pop in network.populations:
            offsets[pop.label] = slice(start, start + pop.size)
            start += pop.size
            for name in names:
                cols.setdefault(name, []).append(pop.params.per_neuron(name, pop.size))
            v_rest = pop.params.per_neuron("v_rest", pop.size)
            v_init = v_rest if pop.v_init is None else np.broadcast_to(
                np.asarray(pop.v_init, dtype=float), (pop.size,))
            extra["v_init"].append(np.asarray(v_init, dtype=float))
            extra["subtract"].append(np.full(pop.size, pop.params.reset == "subtract_threshold"))
            ta = pop.params.threshold_adaptation
            extra["a_inc"].append(np.full(pop.size, 0.0 if ta is None else float(ta.increment)))
            extra["a_tau"].append(np.full(pop.size, np.inf if ta is None else float(ta.tau)))
        cat = lambda parts, dtype=float: (np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype))
        c = {name: cat(cols.get(name, [])) for name in names}
        dt = network.dt
        return cls(
            offsets=offsets,
            v_rest=c["v_rest"], v_reset=c["v_reset"], v_thresh=c["v_thresh"], i_offset=c["i_offset"],
            v_init=cat(extra["v_init"]),
            refrac=refractory_steps(c["tau_refrac"], dt),
            subtract=cat(extra["subtract"], bool),
            a_inc=cat(extra["a_inc"]),
            a_decay=decay(dt, cat(extra["a_tau"])),
            P=propagators(c["tau_m"], c["cm"], c["tau_syn_E"], c["tau_syn_I"], dt) if start else
            {k: np.zeros(0) for k in ("P22", "P11ex", "P11in", "P21ex", "P21in", "P20")},
        )

    @property
    def n(self) -> int:
        return self.v_rest.size


class ProjectionArrays:
    """One projection: dense weight magnitudes (pre, post) in nA, delays in steps, and, when plastic,
    its STDP state. ``channel`` 0 = excitatory, 1 = inhibitory (weights delivered negative)."""

    def __init__(self, proj: Projection, network: Network, neurons: NeuronArrays, convention: str):
        pre = network.node(proj.pre)
        post = network.population(proj.post)
        w, d, exists = proj.dense(pre.size, post.size)
        self.name = proj.name
        self.pre_label = proj.pre
        self.pre_is_population = isinstance(pre, Population)
        self.post = neurons.offsets[proj.post]
        self.sign = -1.0 if proj.receptor == "inhibitory" else 1.0
        self.channel = 1 if proj.receptor == "inhibitory" else 0
        self.exists = exists
        self.w = np.where(exists, w, 0.0)
        self.delay = np.where(exists, delay_steps(np.where(exists, d, network.dt), network.dt), 1)
        self.delay_values = np.unique(self.delay[exists]) if exists.any() else np.array([1])
        self.delay_masks = {int(k): exists & (self.delay == k) for k in self.delay_values}
        self.max_delay = int(self.delay_values.max())
        s = proj.plasticity
        self.plastic = s is not None
        if self.plastic:
            dt = network.dt
            self.x_decay, self.y_decay = float(decay(dt, s.tau_plus)), float(decay(dt, s.tau_minus))
            self.dw_plus = s.A_plus * s.w_max
            self.dw_minus = s.A_minus * s.w_max
            self.w_min, self.w_max = float(s.w_min), float(s.w_max)
            # STDP timing shift per synapse: 0 (core) or the delay (NEST: dendritic delay)
            self.stdp_shift = np.zeros_like(self.delay) if convention == "core" else self.delay
            self.shift_values = [int(k) for k in np.unique(self.stdp_shift[exists])] if exists.any() else [0]
            self.shift_masks = {k: exists & (self.stdp_shift == k) for k in self.shift_values}
            depth = max(self.shift_values) + 2
            self.x = np.zeros(pre.size)
            self.post_history = np.zeros((depth, post.size), dtype=bool)  # post spikes of step k
            self.y_history = np.zeros((depth, post.size))  # post trace after step k's increments
            self.lazy = convention == "nest"
            self.w_reported = self.w.copy()

    def stdp(self, n: int, pre_spikes: np.ndarray, post_spikes: np.ndarray) -> None:
        """Phases 4-6 for this projection at step n (weights clip to [w_min, w_max])."""
        depth = self.post_history.shape[0]
        self.post_history[n % depth] = post_spikes
        self.x *= self.x_decay
        # potentiation: a post spike reaching the synapse this step pairs with every earlier pre spike
        for k, mask in self.shift_masks.items():
            reach = self.post_history[(n - k) % depth]
            if reach.any():
                grow = mask & reach[None, :]
                self.w = np.where(grow, np.minimum(self.w + self.dw_plus * self.x[:, None], self.w_max), self.w)
        # depression: a pre spike pairs with every post spike that reached the synapse before this step
        if pre_spikes.any():
            rows = np.flatnonzero(pre_spikes)
            for k, mask in self.shift_masks.items():
                y = self.y_history[(n - k - 1) % depth] * self.y_decay
                sub = mask[rows]
                self.w[rows] = np.where(sub, np.maximum(self.w[rows] - self.dw_minus * y[None, :], self.w_min),
                                        self.w[rows])
            self.w_reported[rows] = self.w[rows]
        self.x[pre_spikes] += 1.0
        self.y_history[n % depth] = self.y_history[(n - 1) % depth] * self.y_decay + post_spikes

    @property
    def learned_weights(self) -> np.ndarray:
        return self.w_reported if self.lazy else self.w


# ---- the simulation ------------------------------------------------------------------------------
def simulate(
    network: Network,
    steps: int,
    *,
    seed: int | None = None,
    record=(),
    currents=None,
    stdp_convention: str = "core",
) -> SimResult:
    """Run ``network`` for ``steps`` steps of ``network.dt`` ms in float64; return a SimResult.

    ``seed`` is the run seed mixed into every Poisson source (compiler/sources.py). ``record`` names
    per-neuron variables to record every step: ``v`` (mV), ``ie``, ``ii`` (nA; ii <= 0) and
    ``threshold`` (mV, v_thresh plus adaptation); row n holds the value at the end of step n.
    ``currents``: per-step external current (nA) of populations with ``current_input=True``, a dict
    label -> (steps, size) array (see ``population_currents``). The learned weights of every plastic
    projection are returned in ``SimResult.weights[projection name]`` as a dense (pre, post) matrix of
    magnitudes in nA (0 where there is no synapse).
    """
    validate(network)
    steps = check_steps(steps)
    record = check_record(record)
    if stdp_convention not in STDP_CONVENTIONS:
        raise FloatReferenceError(
            f"stdp_convention = {stdp_convention!r}: use 'core' (the core's rule) or 'nest' (NEST stdp_synapse)"
        )
    dt = float(network.dt)
    nrn = NeuronArrays.build(network)
    N = nrn.n
    projections = [ProjectionArrays(p, network, nrn, stdp_convention) for p in network.projections]
    rasters = network_input_rasters(network, steps, seed)
    I_ext = np.zeros((steps, N))
    for label, arr in population_currents(network, currents, steps).items():
        I_ext[:, nrn.offsets[label]] = arr
    drive = nrn.i_offset[None, :] + I_ext  # (steps, N) nA

    P = nrn.P
    ring_depth = max([p.max_delay for p in projections], default=1)
    ring = np.zeros((ring_depth, 2, N))
    # state; v is kept relative to v_rest as NEST does, so both round alike
    u = nrn.v_init - nrn.v_rest
    ie = np.zeros(N)
    ii = np.zeros(N)
    refrac = np.zeros(N, dtype=np.int64)
    adapt = np.zeros(N)
    theta_rel = nrn.v_thresh - nrn.v_rest
    reset_rel = nrn.v_reset - nrn.v_rest

    spikes = np.zeros((steps, N), dtype=bool)
    rec = {name: np.zeros((steps, N)) for name in record}
    for n in range(steps):
        # phase 1
        refractory = refrac > 0
        u_new = u * P["P22"] + ie * P["P21ex"] + ii * P["P21in"] + drive[n] * P["P20"]
        u = np.where(refractory, u, u_new)
        refrac = np.where(refractory, refrac - 1, refrac)
        # phase 2
        slot = n % ring_depth
        ie = ie * P["P11ex"] + ring[slot, 0]
        ii = ii * P["P11in"] + ring[slot, 1]
        ring[slot] = 0.0
        # phase 3
        adapt = adapt * nrn.a_decay
        theta = theta_rel + adapt
        spk = ~refractory & (u >= theta)
        u = np.where(spk, np.where(nrn.subtract, u - (theta - reset_rel), reset_rel), u)
        refrac = np.where(spk, nrn.refrac, refrac)
        adapt = np.where(spk, adapt + nrn.a_inc, adapt)
        spikes[n] = spk
        # phases 4-7, projection by projection
        for p in projections:
            pre = spk[nrn.offsets[p.pre_label]] if p.pre_is_population else rasters[p.pre_label][n]
            if p.plastic:
                p.stdp(n, pre, spk[p.post])
            if not pre.any():
                continue
            rows = np.flatnonzero(pre)
            for d, mask in p.delay_masks.items():
                arrive = (p.w[rows] * mask[rows]).sum(axis=0)
                ring[(n + d) % ring_depth, p.channel, p.post] += p.sign * arrive
        if record:
            now = {"v": u, "ie": ie, "ii": ii, "threshold": theta}
            for name in record:
                rec[name][n] = now[name]

    for name in ("v", "threshold"):
        if name in rec:
            rec[name] += nrn.v_rest[None, :]
    result_spikes = {label: spikes[:, sl] for label, sl in nrn.offsets.items()}
    variables = {label: {name: rec[name][:, sl] for name in record} for label, sl in nrn.offsets.items()} \
        if record else {}
    weights = {p.name: p.learned_weights.copy() for p in projections if p.plastic}
    return SimResult(
        backend="float", dt=dt, steps=steps, spikes=result_spikes, variables=variables, weights=weights,
        meta={"seed": seed, "stdp_convention": stdp_convention},
    )
