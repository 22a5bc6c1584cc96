"""PyNN objects -> a spikeforge Network: the translation at the heart of spikeforge.pynn.

- IF_curr_exp population -> Population with LIFParameters (PyNN's names and units; the network
  model *is* IF_curr_exp) and v_init from ``initialize(v=...)`` (PyNN's default -65 mV);
- SpikeSourceArray -> SpikeSource; SpikeSourcePoisson -> PoissonSource drawn on the host from a seed
  (sPyNNaker's ``additional_parameters={"seed": s}``, else ``setup(rng_seed=...)`` and the
  population's creation order), so every backend sees the same spikes. A source whose parameters
  changed between runs becomes an explicit SpikeSource: each epoch's spikes, in its own time window;
- Projection -> one Projection per (pre population, post population) pair its neurons belong to
  (Populations, PopulationViews and Assemblies resolve to their populations), as connection rows
  (pre index, post index, |weight| nA, delay ms); the receptor gives the sign. Delays are rounded to
  whole timesteps, as NEST and sPyNNaker round them. Two synapses between one pair of neurons in one
  projection are summed when static with equal delays (exact: currents add linearly), else refused;
- STDPMechanism(SpikePairRule, AdditiveWeightDependence) -> STDP with the same parameters (PyNN's
  convention: a pair changes the weight by A_plus * w_max * exp(-dt/tau_plus); with
  ``setup(stdp_amplitudes="absolute")`` A_plus and A_minus are read as nA, as sPyNNaker 7 reads them).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from spikeforge.compiler.network import (
    STDP,
    LIFParameters,
    Network,
    PoissonSource,
    Population,
    Projection,
    SpikeSource,
)
from spikeforge.compiler.sources import source_raster, step_to_time
from spikeforge.pynn.errors import SegmentChangeError, UnsupportedFeatureError

LIF_NAMES = ("tau_m", "cm", "v_rest", "v_reset", "v_thresh", "tau_syn_E", "tau_syn_I", "tau_refrac", "i_offset")
STDP_NAMES = ("tau_plus", "tau_minus", "A_plus", "A_minus", "w_min", "w_max")
#: SpikeSourcePoisson's default duration (PyNN: 1e10 ms) means "until the end".
FOREVER_MS = 1e9


@dataclass
class ProjectionPart:
    """The rows of a PyNN projection that became one Network projection."""

    name: str
    rows: np.ndarray  # indices into the PyNN projection's connections
    pre_index: np.ndarray  # index of each row's pre neuron in its population
    post_index: np.ndarray


@dataclass
class NetworkIndex:
    """Where each PyNN object went in the Network."""

    population_labels: dict  # id(Population) -> network label
    projection_parts: dict  # id(Projection) -> [ProjectionPart]


def _unique(label: str, taken: set) -> str:
    out, k = label, 2
    while out in taken:
        out, k = f"{label}#{k}", k + 1
    taken.add(out)
    return out


def _compact(values: np.ndarray):
    """One float when every neuron has the same value, else the array."""
    arr = np.asarray(values, dtype=float)
    return float(arr[0]) if arr.size and np.all(arr == arr[0]) else arr.copy()


def build_network(state, steps: int) -> tuple[Network, NetworkIndex]:
    """The Network the PyNN objects of ``state`` describe, for a segment of ``steps`` steps."""
    dt = float(state.dt)
    network = Network(dt=dt, name=state.network_name)
    labels, taken = {}, set()
    for pop in state.populations:
        label = _unique(str(pop.label), taken)
        labels[id(pop)] = label
        if pop.is_neuron:
            params = LIFParameters(**{n: _compact(pop._parameters[n]) for n in LIF_NAMES})
            network.add(Population(label=label, size=pop.size, params=params, v_init=_compact(pop.v_init)))
        else:
            network.add(_source(pop, label, state, steps))
    parts = {}
    names = set()
    for proj in state.projections:
        parts[id(proj)] = _projection(proj, network, labels, names, state)
    _merge_overlapping(network, sizes={o.label: o.size for o in [*network.populations, *network.sources]})
    return network, NetworkIndex(labels, parts)


def _merge_overlapping(network: Network, sizes: dict) -> None:
    """PyNN allows several projections to connect one pair of neurons; the core holds one synapse per
    pair. Overlapping *static* projections with the same receptor are merged into one Network projection
    (weights of a pair summed when the delays agree: exact, the currents add); any other overlap is
    refused, naming both projections."""
    groups: dict[tuple, list[Projection]] = {}
    for p in network.projections:
        groups.setdefault((p.pre, p.post), []).append(p)
    merged_away = set()
    for (pre, post), projs in groups.items():
        if len(projs) < 2:
            continue
        post_size = sizes[post]
        keys = {id(p): set((p.connections[:, 0].astype(np.int64) * post_size
                            + p.connections[:, 1].astype(np.int64)).tolist()) for p in projs}
        for a in range(len(projs)):
            for b in range(a + 1, len(projs)):
                pa, pb = projs[a], projs[b]
                if id(pa) in merged_away or id(pb) in merged_away:
                    continue
                common = keys[id(pa)] & keys[id(pb)]
                if not common:
                    continue
                k = min(common)
                if pa.plasticity is not None or pb.plasticity is not None or pa.receptor != pb.receptor:
                    why = ("one of them is plastic" if (pa.plasticity or pb.plasticity)
                           else "their receptors differ")
                    raise UnsupportedFeatureError(
                        f"projections {pa.name!r} and {pb.name!r} both connecting {pre}[{k // post_size}] -> "
                        f"{post}[{k % post_size}] ({len(common)} shared pairs; {why})",
                        "one synapse per pair of neurons; overlapping static projections with the same receptor "
                        "are merged by summing their weights",
                        "connect disjoint pairs (e.g. split the target population with views), or combine the "
                        "projections into one")
                conn = np.vstack([pa.connections, pb.connections])
                fake = type("P", (), {"plastic": False})()
                pa.connections = _merge_duplicates(fake, f"{pa.name}+{pb.name}", conn, post_size)
                pa.label = f"{pa.name}+{pb.name}"
                keys[id(pa)] |= keys[id(pb)]
                merged_away.add(id(pb))
    network.projections = [p for p in network.projections if id(p) not in merged_away]


# ---- sources ---------------------------------------------------------------------------------------
def _poisson_seed(pop, state, epoch: int) -> int:
    base = pop._poisson_seed if pop._poisson_seed is not None else [int(state.rng_seed), pop._creation_index]
    entropy = [*np.atleast_1d(base).astype(np.int64).tolist(), epoch]
    return int(np.random.SeedSequence([abs(e) for e in entropy]).generate_state(1)[0])


def _epoch_source(pop, params: dict, label: str, state, epoch: int):
    """The Network source of one epoch's parameters (times before dt are refused)."""
    from spikeforge.pynn.standardmodels import SpikeSourceArray

    if isinstance(pop.celltype, SpikeSourceArray):
        times = []
        for k, seq in enumerate(params["spike_times"]):
            t = np.asarray(getattr(seq, "value", seq), dtype=float).ravel()
            early = t[t < state.dt * 0.5]
            if early.size:
                raise ValueError(
                    f"SpikeSourceArray {pop.label!r}, neuron {k}: spike time {early[0]} ms is before the first "
                    f"timestep (dt = {state.dt} ms); spikes are stamped at the end of a step, so the earliest "
                    f"spike time is dt. Shift the spike times to >= {state.dt} ms")
            times.append(sorted(t.tolist()))
        return SpikeSource(label=label, size=pop.size, spike_times=times)
    rate = np.asarray(params["rate"], dtype=float)
    start = np.asarray(params["start"], dtype=float)
    duration = np.asarray(params["duration"], dtype=float)
    stop = start + duration
    uniform = np.all(start == start[0]) and np.all(stop == stop[0])
    if not uniform:
        return None
    return PoissonSource(label=label, size=pop.size, rate=_compact(rate), seed=_poisson_seed(pop, state, epoch),
                         start=float(start[0]), stop=None if duration[0] >= FOREVER_MS else float(stop[0]))


def _source(pop, label: str, state, steps: int):
    epochs = pop._epochs
    if len(epochs) == 1:
        src = _epoch_source(pop, epochs[0][1], label, state, 0)
        if src is not None:
            return src
    # Several epochs (or per-neuron Poisson windows): realise each epoch's spikes in its window.
    dt = float(state.dt)
    times_of_step = step_to_time(np.arange(steps), dt)
    raster = np.zeros((steps, pop.size), dtype=bool)
    run_seed = state.backend_options.get("seed")
    for k, (t_from, params) in enumerate(epochs):
        t_to = epochs[k + 1][0] if k + 1 < len(epochs) else np.inf
        window = (times_of_step > t_from + 1e-9 * dt) & (times_of_step <= t_to + 1e-9 * dt)
        src = _epoch_source(pop, params, label, state, k)
        if src is None:  # Poisson with per-neuron start/stop
            rate = np.asarray(params["rate"], dtype=float)
            start = np.asarray(params["start"], dtype=float)
            stop = start + np.asarray(params["duration"], dtype=float)
            src = PoissonSource(label=label, size=pop.size, rate=rate, seed=_poisson_seed(pop, state, k))
            part = source_raster(src, dt, steps, run_seed)
            part &= (times_of_step[:, None] > start[None, :]) & (times_of_step[:, None] <= stop[None, :])
        else:
            part = source_raster(src, dt, steps, run_seed if isinstance(src, PoissonSource) else None)
        raster |= part & window[:, None]
    spike_times = [step_to_time(np.flatnonzero(raster[:, k]), dt).tolist() for k in range(pop.size)]
    return SpikeSource(label=label, size=pop.size, spike_times=spike_times)


# ---- projections -----------------------------------------------------------------------------------
def _resolve(obj, idx: np.ndarray):
    """[(population, mask over idx, index in population)] for the neurons ``idx`` of a Population,
    PopulationView or Assembly."""
    from spikeforge.pynn.populations import Assembly, PopulationView

    if isinstance(obj, Assembly):
        out, offset = [], 0
        for member in obj.populations:
            inside = (idx >= offset) & (idx < offset + member.size)
            for pop, mask, local in _resolve(member, idx[inside] - offset):
                full = np.zeros(idx.size, dtype=bool)
                full[np.flatnonzero(inside)[mask]] = True
                out.append((pop, full, local))
            offset += member.size
        return out
    if isinstance(obj, PopulationView):
        return [(obj.grandparent, np.ones(idx.size, dtype=bool),
                 np.asarray(obj.index_in_grandparent(idx), dtype=np.int64).reshape(-1))]
    return [(obj, np.ones(idx.size, dtype=bool), idx)]


def _uniform(proj, name: str, values: np.ndarray) -> float:
    if values.size and not np.all(values == values[0]):
        raise UnsupportedFeatureError(
            f"per-synapse STDP parameter {name} (projection {proj.label!r} has {np.unique(values).size} values)",
            "one STDP rule per projection: the same tau_plus, tau_minus, A_plus, A_minus, w_min, w_max for "
            "all its synapses", "split the projection into one projection per parameter set")
    return float(values[0]) if values.size else 0.0


def _stdp(proj, rows: np.ndarray, state) -> STDP:
    values = {n: _uniform(proj, n, proj._params[n][rows]) for n in STDP_NAMES}
    if state.stdp_amplitudes == "absolute":
        w_max = values["w_max"]
        if w_max <= 0:
            raise ValueError(f"projection {proj.label!r}: stdp_amplitudes='absolute' needs w_max > 0")
        values["A_plus"] /= w_max
        values["A_minus"] /= w_max
    return STDP(**values)


def _projection(proj, network: Network, labels: dict, names: set, state) -> list[ProjectionPart]:
    dt = float(state.dt)
    pre_idx, post_idx = proj._pre_idx, proj._post_idx
    weight = np.asarray(proj._params["weight"], dtype=float)
    delay = np.asarray(proj._params["delay"], dtype=float)
    receptor = proj.receptor_type
    base = proj.label or f"{proj.pre.label}->{proj.post.label}"
    if receptor == "excitatory" and np.any(weight < 0):
        raise ValueError(
            f"projection {base!r}: negative weights ({weight.min()} nA) on the excitatory receptor; weights are "
            "magnitudes in PyNN. Fix: give positive weights, with receptor_type='inhibitory' for inhibition")
    steps_d = np.floor(delay / dt + 0.5)
    if np.any(steps_d < 1):
        bad = float(delay[steps_d < 1][0])
        raise ValueError(
            f"projection {base!r}: delay {bad} ms is shorter than one timestep (dt = {dt} ms); the core delivers a "
            f"spike at the earliest in the next step. Fix: use delays >= {dt} ms")
    delay = steps_d * dt
    out = []
    pre_parts = _resolve(proj.pre, pre_idx)
    post_parts = _resolve(proj.post, post_idx)
    for pre_pop, pre_mask, pre_local in pre_parts:
        for post_pop, post_mask, post_local in post_parts:
            both = pre_mask & post_mask
            if not both.any():  # no synapse between these two populations
                continue
            rows = np.flatnonzero(both)
            # pre_local lists the rows of pre_mask; keep those that are also in this pair
            i = pre_local[both[pre_mask]]
            j = post_local[both[post_mask]]
            name = base if len(pre_parts) == 1 and len(post_parts) == 1 else \
                f"{base}[{labels[id(pre_pop)]}->{labels[id(post_pop)]}]"
            name = _unique(name, names)
            conn = np.column_stack([i, j, np.abs(weight[rows]), delay[rows]]).astype(float).reshape(-1, 4)
            conn = _merge_duplicates(proj, name, conn, post_pop.size)
            plasticity = _stdp(proj, rows, state) if proj.plastic else None
            network.add(Projection(pre=labels[id(pre_pop)], post=labels[id(post_pop)], connections=conn,
                                   receptor=receptor, plasticity=plasticity, label=name))
            out.append(ProjectionPart(name=name, rows=rows, pre_index=i.astype(np.int64),
                                      post_index=j.astype(np.int64)))
    return out


def _merge_duplicates(proj, name: str, conn: np.ndarray, post_size: int) -> np.ndarray:
    key = conn[:, 0].astype(np.int64) * post_size + conn[:, 1].astype(np.int64)
    uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    if uniq.size == key.size:
        return conn
    first = np.flatnonzero(counts > 1)[0]
    rows = np.flatnonzero(inverse == first)
    if proj.plastic or np.unique(conn[rows, 3]).size > 1 or any(
            np.unique(conn[inverse == u, 3]).size > 1 for u in np.flatnonzero(counts > 1)):
        i, j = int(conn[rows[0], 0]), int(conn[rows[0], 1])
        raise UnsupportedFeatureError(
            f"several {'plastic ' if proj.plastic else ''}synapses between one pair of neurons "
            f"(projection {name!r}: {len(rows)} synapses {i} -> {j})",
            "one synapse per (pre, post) pair; static synapses with equal delays are merged by summing",
            "use a connector without repeats (e.g. with_replacement=False, allow_self_connections=False)")
    merged = np.zeros((uniq.size, 4))
    merged[:, 0] = uniq // post_size
    merged[:, 1] = uniq % post_size
    np.add.at(merged[:, 2], inverse, conn[:, 2])
    merged[inverse, 3] = conn[:, 3]
    return merged


# ---- a segment's network must not change between runs -----------------------------------------------
def _digest(*arrays) -> str:
    h = hashlib.sha1()
    for a in arrays:
        if isinstance(a, str):
            h.update(a.encode())
        else:
            arr = np.ascontiguousarray(np.asarray(a, dtype=float))
            h.update(str(arr.shape).encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def segment_fingerprint(network: Network) -> dict[str, str]:
    """A digest of every neuron population and projection (not the sources, whose future may change)."""
    out = {"structure": _digest("|".join(f"{type(o).__name__}:{o.label}:{o.size}"
                                         for o in [*network.populations, *network.sources]))}
    for pop in network.populations:
        p = pop.params
        out[f"population {pop.label!r}"] = _digest(*[np.broadcast_to(getattr(p, n), (pop.size,)) for n in LIF_NAMES],
                                                    np.broadcast_to(pop.v_init, (pop.size,)))
    for proj in network.projections:
        stdp = proj.plasticity
        out[f"projection {proj.name!r}"] = _digest(
            proj.pre, proj.post, proj.receptor, np.asarray(proj.connections),
            "static" if stdp is None else repr(stdp))
    return out


def check_unchanged(before: dict, now: dict, t: float) -> None:
    """Raise SegmentChangeError naming the first object that changed since the segment's first run."""
    for key in sorted(set(before) | set(now)):
        if before.get(key) != now.get(key):
            what = "the set of populations and sources" if key == "structure" else key
            if key not in before:
                what = f"{key} (created after run())"
            raise SegmentChangeError(
                f"{what} changed after run() at t = {t} ms. spikeforge.pynn runs each segment from t = 0 on "
                "the chosen backend (so run(a); run(b) equals run(a + b) exactly), and cannot change neuron "
                "parameters, initial values or synapses in the middle of a segment. Fix: make the change before "
                "the first run(), or call sim.reset() first (a new segment from t = 0; spike sources may change "
                "between runs at any time)")
