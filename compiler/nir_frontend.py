"""NIR (the Neuromorphic Intermediate Representation) <-> spikeforge Network.

``read_nir(path_or_graph, dt)`` maps a NIR graph onto the core's neuron (PyNN's IF_curr_exp) and
``write_nir(network, path)`` writes a Network as NIR. docs/nir.md states every rule; in short:

- NIR is continuous-time and carries no timestep: the user gives ``dt`` (ms). Time constants and
  delays in the file are in ``time_unit`` ("s" by default, as snnTorch, Norse and Rockpool write
  them; or "ms").
- Input nodes become spike sources (no spikes unless ``inputs`` or ``input_rate`` gives them);
  LIF, CubaLIF and IF become IF_curr_exp populations; LI, CubaLI and I become populations that do not
  spike (a read-out: record v); Output nodes are dropped (record the populations instead).
- Affine, Linear, Scale and Delay chains between them compose into projections: the product of the
  matrices is the weight (its sign picks the receptor), the sum of the delays plus the core's one step
  of transport the delay, an Affine bias a constant current (i_offset) of the neurons it reaches.
- Neuron parameters: LIF tau dv/dt = (v_leak - v) + R I  ->  tau_m = tau, cm = tau / R,
  v_rest = v_leak, v_reset, v_thresh = v_threshold; an input spike of weight w moves v by R w / tau.
  CubaLIF's synaptic current is IF_curr_exp's (tau_syn_E = tau_syn_I = tau_syn, weight
  w_in * w / tau_syn); LIF's instantaneous input becomes a synaptic current of SHORT_TAU_SYN_STEPS of a
  step whose weight w (1 - tau_s/tau_m) / tau_s gives the same membrane jump (the jump lands within one
  step; docs/nir.md bounds the error).
- Cycles (a node feeding itself, or a loop through other neurons) are recurrent projections; a cycle
  of linear nodes with no neuron in it has no meaning in discrete time and is refused.
- Conv1d/Conv2d, pooling, Flatten, Threshold and every other node stop the reading with an error
  naming the node and its type.

``write_nir`` writes populations as CubaLIF, sources as Input, projections as Linear (+ Delay) and
i_offset as an Affine bias, and keeps what NIR cannot say (refractory period, initial v, source spikes,
STDP, names) in each node's metadata under ``spikeforge.*``, so a spikeforge round trip is exact and
other tools read a valid NIR graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from spikeforge.compiler.network import (
    STDP,
    LIFParameters,
    Network,
    NetworkError,
    PoissonSource,
    Population,
    Projection,
    SpikeSource,
)

TIME_UNITS = {"s": 1000.0, "ms": 1.0}
#: A plain LIF's (instantaneous) input becomes a synaptic current with this time constant, in steps.
SHORT_TAU_SYN_STEPS = 0.125
#: IF and I have no leak: their membrane time constant becomes this (ms); exp(-dt/tau) rounds to 1.
NO_LEAK_TAU_MS = 1e9
#: LI, CubaLI and I do not spike: their threshold sits this far (mV) above the larger of v_leak and 0.
READOUT_THRESHOLD_MARGIN = 1000.0
META = "spikeforge."


class NIRMappingError(NetworkError):
    """A NIR graph cannot be mapped onto the core; the message names the node, its type and the fix."""


def _nir():
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - nir is a declared optional dependency
        raise NIRMappingError("reading and writing NIR needs the nir package: pip install 'spikeforge[nir]'") from exc
    return nir


# ---- reading -----------------------------------------------------------------------------------------
@dataclass
class _Term:
    """A linear path from a spiking node: signal = matrix @ spikes, delayed by ``delay`` (file units)."""

    matrix: np.ndarray
    delay: float
    first_linear: str | None = None  # the first weight node on the path (its metadata names the projection)


@dataclass
class _Graph:
    nodes: dict
    edges: list
    top_inputs: set = field(default_factory=set)
    top_outputs: set = field(default_factory=set)


def _flatten(graph, prefix: str = "", top: bool = True) -> _Graph:
    """Nested NIRGraphs become one flat graph; the Input/Output nodes of a subgraph become pass-throughs."""
    nir = _nir()
    out = _Graph({}, [])
    entries, exits = {}, {}
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        if isinstance(node, nir.NIRGraph):
            sub = _flatten(node, f"{full}.", top=False)
            out.nodes.update(sub.nodes)
            out.edges.extend(sub.edges)
            entries[name] = [f"{full}.{n}" for n, v in node.nodes.items() if isinstance(v, nir.Input)]
            exits[name] = [f"{full}.{n}" for n, v in node.nodes.items() if isinstance(v, nir.Output)]
            continue
        out.nodes[full] = node
        if top and isinstance(node, nir.Input):
            out.top_inputs.add(full)
        if top and isinstance(node, nir.Output):
            out.top_outputs.add(full)
    for src, dst in graph.edges:
        srcs = exits.get(src, [f"{prefix}{src}"])
        dsts = entries.get(dst, [f"{prefix}{dst}"])
        out.edges.extend((s, d) for s in srcs for d in dsts)
    for s, d in out.edges:
        for end in (s, d):
            if end not in out.nodes:
                raise NIRMappingError(f"NIR edge {s!r} -> {d!r} names a node {end!r} that is not in the graph")
    return out


def _arr(x, shape=None) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    return a.reshape(-1) if shape is None else np.broadcast_to(a, shape).astype(float).reshape(-1)


def _kind(node) -> str:
    nir = _nir()
    table = [
        (nir.CubaLIF, "neuron"), (nir.LIF, "neuron"), (nir.IF, "neuron"),
        (nir.CubaLI, "readout"), (nir.LI, "readout"), (nir.I, "readout"),
        (nir.Affine, "linear"), (nir.Linear, "linear"), (nir.Scale, "linear"), (nir.Delay, "linear"),
        (nir.Input, "input"), (nir.Output, "output"),
    ]
    identity = getattr(getattr(nir.ir, "graph", None), "Identity", None)
    if identity is not None:
        table.append((identity, "pass"))
    for cls, kind in table:
        if type(node) is cls:
            return kind
    return "unsupported"


UNSUPPORTED_HINTS = {
    "Conv1d": "convolutions have no core equivalent; unroll the convolution into an Affine/Linear weight matrix",
    "Conv2d": "convolutions have no core equivalent; unroll the convolution into an Affine/Linear weight matrix",
    "SumPool2d": "pooling has no core equivalent; express it as a Linear weight matrix",
    "AvgPool2d": "pooling has no core equivalent; express it as a Linear weight matrix",
    "Flatten": "the core's populations are one-dimensional; export the graph with flat (1-D) layers",
    "Threshold": "a stateless threshold has no core equivalent; use a LIF or IF node",
}


def _check_nodes(g: _Graph) -> None:
    for name, node in g.nodes.items():
        if _kind(node) == "unsupported":
            t = type(node).__name__
            raise NIRMappingError(
                f"NIR node {name!r} of type {t} cannot be mapped onto the spikeforge core: "
                f"{UNSUPPORTED_HINTS.get(t, 'not a supported node')}. Supported nodes: Input, Output, Affine, "
                "Linear, Scale, Delay, LIF, CubaLIF, IF, LI, CubaLI, I (and nested graphs of them)")


def _size(name, node) -> int:
    """Number of neurons of a neuron/read-out node, or the size of an Input."""
    nir = _nir()
    if isinstance(node, nir.Input):
        shape = np.asarray(node.input_type.get("input", node.output_type.get("output")), dtype=int).reshape(-1)
    else:
        field_ = {"LIF": "v_threshold", "CubaLIF": "v_threshold", "IF": "v_threshold", "LI": "v_leak",
                  "CubaLI": "v_leak", "I": "r"}[type(node).__name__]
        shape = np.asarray(np.shape(getattr(node, field_)), dtype=int)
    return int(np.prod(shape)) if shape.size else 1


def _meta(node, key, default=None):
    metadata = getattr(node, "metadata", None)
    if not isinstance(metadata, dict):  # NIRGraph's default metadata is the dict *type*
        return default
    value = metadata.get(META + key, default)
    if isinstance(value, bytes):
        value = value.decode("utf8")
    if isinstance(value, np.ndarray) and value.dtype.kind in "SO" and value.ndim == 0:
        value = value.item().decode("utf8") if isinstance(value.item(), bytes) else value.item()
    return value


def _propagate(g: _Graph, start: str, start_size: int, succ: dict):
    """Follow every linear path from ``start`` (a spiking node, an Input, or an Affine whose constant
    bias is being pushed forward); return {target neuron node: [_Term]}."""
    found: dict[str, list[_Term]] = {}

    def visit(name: str, term: _Term, path: tuple):
        for nxt in succ.get(name, ()):
            node = g.nodes[nxt]
            kind = _kind(node)
            if kind in ("neuron", "readout"):  # a path ends at the first neuron (itself: recurrence)
                found.setdefault(nxt, []).append(term)
                continue
            if nxt in path:
                raise NIRMappingError(
                    f"NIR nodes {' -> '.join([*path[path.index(nxt):], nxt])} form a cycle of linear nodes without a "
                    "neuron in it; in discrete time such an algebraic loop has no meaning. Put a neuron node in the "
                    "loop (a recurrent connection must pass through a LIF/CubaLIF/IF)")
            if kind == "output" and nxt in g.top_outputs:
                continue
            if kind == "input" and nxt in g.top_inputs:
                raise NIRMappingError(f"NIR edge into the graph's Input node {nxt!r}; an Input has no incoming edges")
            t = type(node).__name__
            dim = term.matrix.shape[0]
            if kind in ("input", "output", "pass"):  # a nested graph's port, or Identity: pass through
                visit(nxt, term, (*path, nxt))
                continue
            if t in ("Affine", "Linear"):
                w = np.asarray(node.weight, dtype=float)
                if w.ndim != 2:
                    raise NIRMappingError(f"NIR {t} node {nxt!r} has a {w.ndim}-D weight {w.shape}; only 2-D "
                                          "(out, in) weights map onto projections")
                if w.shape[1] != dim:
                    raise NIRMappingError(f"NIR {t} node {nxt!r}: weight {w.shape} takes {w.shape[1]} inputs but "
                                          f"receives {dim} from {path[-1]!r}")
                first = term.first_linear or nxt
                visit(nxt, _Term(w @ term.matrix, term.delay, first), (*path, nxt))
            elif t == "Scale":
                s = _arr(node.scale)
                if s.size not in (1, dim):
                    raise NIRMappingError(f"NIR Scale node {nxt!r} has {s.size} factors for a signal of size {dim}")
                visit(nxt, _Term(np.broadcast_to(s, (dim,))[:, None] * term.matrix, term.delay, term.first_linear),
                      (*path, nxt))
            elif t == "Delay":
                d = np.broadcast_to(_arr(node.delay), (dim,))
                if np.any(d < 0) or not np.all(np.isfinite(d)):
                    raise NIRMappingError(f"NIR Delay node {nxt!r}: delays must be finite and >= 0")
                for value in np.unique(d):
                    mask = (d == value)[:, None]
                    visit(nxt, _Term(np.where(mask, term.matrix, 0.0), term.delay + float(value), term.first_linear),
                          (*path, nxt))

    visit(start, _Term(np.eye(start_size), 0.0), (start,))
    return found


def _bias_terms(g: _Graph, succ: dict):
    """{target: summed constant input vector} from every Affine bias, pushed through the linear nodes after it."""
    nir = _nir()
    out: dict[str, np.ndarray] = {}
    for name, node in g.nodes.items():
        if isinstance(node, nir.Affine):
            b = _arr(node.bias)
            if not np.any(b):
                continue
            for target, terms in _propagate(g, name, b.size, succ).items():
                for term in terms:
                    out[target] = out.get(target, 0.0) + term.matrix @ b
    return out


def _population(name: str, node, dt: float, scale: float, bias: np.ndarray | None):
    """(Population, factor per neuron): a NIR weight w into this node becomes a synapse of w * factor nA."""
    t = type(node).__name__
    n = _size(name, node)
    get = lambda f: _arr(getattr(node, f), (n,))
    meta = lambda k: _meta(node, k)
    if t in ("CubaLIF", "CubaLI", "LIF", "LI"):
        tau_m = get("tau_mem" if t.startswith("Cuba") else "tau") * scale
        r = get("r")
        v_leak = get("v_leak")
    else:  # IF, I: no leak
        tau_m = np.full(n, NO_LEAK_TAU_MS)
        r = get("r")
        v_leak = _arr(node.v_reset, (n,)) if t == "IF" else np.zeros(n)
    if np.any(r <= 0) or np.any(tau_m <= 0):
        raise NIRMappingError(f"NIR {t} node {name!r}: r and the time constants must be > 0")
    cm = tau_m / r if t not in ("IF", "I") else scale / r
    # A spike is an input of 1 during one step (the NIR reference implementation's convention, which
    # snnTorch and Norse follow): through a weight w it carries the charge w * dt (nA ms, I in nA).
    if t in ("CubaLIF", "CubaLI"):
        tau_s = get("tau_syn") * scale
        w_in = get("w_in")
        factor = w_in * dt / tau_s  # the synaptic current jumps by w_in * w * dt / tau_syn
        offset_gain = w_in
    else:
        # no synaptic current in NIR: a short one whose (extrapolated) membrane jump is the same
        tau_s = np.full(n, SHORT_TAU_SYN_STEPS * dt)
        leak = 1.0 - tau_s / tau_m if t in ("LIF", "LI") else np.ones(n)
        factor = dt * leak / tau_s
        offset_gain = np.ones(n)
    if t in ("CubaLIF", "LIF", "IF"):
        v_thresh = get("v_threshold")
        v_reset = get("v_reset")
    else:
        top = np.maximum(v_leak, 0.0)
        v_thresh = top + READOUT_THRESHOLD_MARGIN
        v_reset = v_leak.copy()
    i_offset = np.zeros(n) if bias is None else offset_gain * bias
    tau_refrac = meta("tau_refrac")
    v_init = meta("v_init")
    compact = lambda a: float(a[0]) if np.all(a == a[0]) else a
    params = LIFParameters(
        tau_m=compact(tau_m), cm=compact(cm), v_rest=compact(v_leak), v_reset=compact(v_reset),
        v_thresh=compact(v_thresh), tau_syn_E=compact(tau_s), tau_syn_I=compact(tau_s),
        tau_refrac=0.0 if tau_refrac is None else compact(_arr(tau_refrac, (n,))),
        i_offset=compact(i_offset))
    pop = Population(label=name, size=n, params=params,
                     v_init=compact(v_leak) if v_init is None else compact(_arr(v_init, (n,))))
    return pop, factor


def _source(name: str, node, inputs, input_rate, seed):
    n = _size(name, node)
    given = None if inputs is None else inputs.get(name)
    if given is not None:
        if isinstance(given, (SpikeSource, PoissonSource)):
            given.label = name
            return given
        if isinstance(given, np.ndarray) and given.dtype == bool:
            raise NIRMappingError(f"inputs[{name!r}]: give spike times (a list of lists, ms), a rate in Hz or a "
                                  "SpikeSource/PoissonSource, not a raster")
        if np.ndim(given) == 0:
            return PoissonSource(label=name, size=n, rate=float(given), seed=seed)
        times = [list(map(float, t)) for t in given]
        if len(times) != n:
            raise NIRMappingError(f"inputs[{name!r}] has {len(times)} spike-time lists; the Input has {n} channels")
        return SpikeSource(label=name, size=n, spike_times=times)
    kind = _meta(node, "source")
    if kind == "poisson":
        stop = _meta(node, "stop")
        return PoissonSource(label=name, size=n, rate=_compact_arr(_meta(node, "rate")), seed=int(_meta(node, "seed")),
                             start=float(_meta(node, "start")), stop=None if stop is None or stop < 0 else float(stop))
    if kind == "spikes":
        flat = _arr(_meta(node, "spike_times"))
        counts = np.asarray(_meta(node, "spike_counts"), dtype=int).reshape(-1)
        splits = np.split(flat, np.cumsum(counts)[:-1]) if counts.size else [np.zeros(0)] * n
        return SpikeSource(label=name, size=n, spike_times=[s.tolist() for s in splits])
    if input_rate is not None:
        return PoissonSource(label=name, size=n, rate=float(input_rate), seed=seed)
    return SpikeSource(label=name, size=n, spike_times=[[] for _ in range(n)])


def _compact_arr(x):
    a = _arr(x)
    return float(a[0]) if a.size == 1 or np.all(a == a[0]) else a


def read_nir(source, dt: float | None = None, *, time_unit: str = "s", inputs: dict | None = None,
             input_rate: float | None = None, seed: int = 0, name: str | None = None) -> Network:
    """Map a NIR graph (a file path or a ``nir.NIRGraph``) onto a spikeforge Network with timestep ``dt`` ms.

    ``time_unit``: the unit of the file's time constants and delays ("s", as snnTorch/Norse/Rockpool
    write them, or "ms"). ``inputs``: per Input node, spike times (one list per channel, ms), a rate
    (Hz, Poisson) or a SpikeSource/PoissonSource; ``input_rate`` gives every other Input a Poisson
    rate; Inputs without either have no spikes. ``dt`` may be omitted for files spikeforge wrote (they
    record it). See the module docstring and docs/nir.md for the mapping.
    """
    nir = _nir()
    if time_unit not in TIME_UNITS:
        raise NIRMappingError(f"time_unit = {time_unit!r}: use 's' or 'ms' (the unit of the NIR file's time constants)")
    scale = TIME_UNITS[time_unit]
    label = name
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such NIR file")
        try:
            graph = nir.read(path)
        except Exception as exc:
            raise NIRMappingError(f"{path}: not a readable NIR file ({type(exc).__name__}: {exc})") from exc
        label = label or path.stem
    elif isinstance(source, nir.NIRGraph):
        graph = source
    else:
        raise NIRMappingError(f"read_nir takes a NIR file path or a nir.NIRGraph, got {type(source).__name__}")
    graph_dt = _meta(graph, "dt")
    if dt is None:
        if graph_dt is None:
            raise NIRMappingError("NIR carries no timestep: give dt (ms), e.g. read_nir(path, dt=1.0) or "
                                  "spikeforge sim net.nir --dt 1.0")
        dt = float(graph_dt)
        file_unit = _meta(graph, "time_unit")
        if file_unit in TIME_UNITS:
            scale = TIME_UNITS[file_unit]
    if not (np.isfinite(dt) and dt > 0):
        raise NIRMappingError(f"dt = {dt!r} ms: the timestep must be a number > 0")
    g = _flatten(graph)
    _check_nodes(g)
    unknown = sorted(set(inputs or {}) - g.top_inputs)
    if unknown:
        raise NIRMappingError(f"inputs given for {unknown}, which are not Input nodes of the graph; its Input nodes: "
                              f"{sorted(g.top_inputs)}")
    succ: dict[str, list[str]] = {}
    for s, d in g.edges:
        succ.setdefault(s, []).append(d)
    net = Network(dt=float(dt), name=label or str(_meta(graph, "name") or "nir"))

    # spiking origins of projections: top-level Inputs and spiking neurons; read-outs may only feed Outputs
    factors = {}
    biases = _bias_terms(g, succ)
    # files spikeforge wrote keep the network's order (h5 stores nodes alphabetically)
    ordered = sorted(g.nodes.items(), key=lambda kv: (_meta(kv[1], "order", float("inf")),))
    for nname, node in ordered:
        kind = _kind(node)
        if kind in ("neuron", "readout"):
            b = biases.get(nname)
            pop, factor = _population(nname, node, float(dt), scale, None if b is None else np.asarray(b))
            net.add(pop)
            factors[nname] = factor
        elif kind == "input" and nname in g.top_inputs and _meta(node, "source") != "bias":
            net.add(_source(nname, node, inputs, input_rate, seed))
    for nname in list(biases):
        if nname not in factors:
            raise NIRMappingError(f"an Affine bias reaches NIR node {nname!r}, which is not a neuron")
    for nname, node in g.nodes.items():
        if _kind(node) == "readout":
            targets = _propagate(g, nname, _size(nname, node), succ)
            if targets:
                raise NIRMappingError(
                    f"NIR {type(node).__name__} node {nname!r} drives {sorted(targets)}: its output is a membrane "
                    "potential, not spikes, and the core's synapses carry spikes only. Use a spiking node "
                    "(LIF, CubaLIF, IF) there, or end the read-out in an Output")
    taken = set()
    origins = [n for n in sorted(g.top_inputs) if _meta(g.nodes[n], "source") != "bias"]
    made = []
    for origin in [*origins, *[n for n in g.nodes if _kind(g.nodes[n]) == "neuron"]]:
        size = _size(origin, g.nodes[origin])
        for target, terms in _propagate(g, origin, size, succ).items():
            made += _projections(origin, target, terms, factors[target], float(dt), scale, g, taken)
    for _, proj in sorted(made, key=lambda op: op[0]):
        net.add(proj)
    return net


def _unique_label(base: str, taken: set) -> str:
    label, k = base, 2
    while label in taken:
        label, k = f"{base} #{k}", k + 1
    taken.add(label)
    return label


def _projections(origin, target, terms, factor, dt, scale, g, taken):
    """The projections of one (origin, target) pair: its paths grouped by (projection name, delay), each
    group split by the sign of its weights into an excitatory and an inhibitory projection. Returns
    (order, Projection) pairs; ``order`` is the position spikeforge wrote into the metadata, if any."""
    groups: dict[tuple, dict] = {}
    for term in terms:
        steps = 1 + int(np.floor(term.delay * scale / dt + 0.5))  # the core's step of transport + Delay nodes
        meta_node = g.nodes.get(term.first_linear) if term.first_linear else None
        pname = _meta(meta_node, "projection") if meta_node is not None else None
        entry = groups.setdefault((pname, steps), {"w": 0.0, "node": meta_node})
        entry["w"] = entry["w"] + term.matrix  # (target, origin), NIR charge units
    owner: dict = {}
    pending: dict = {}  # (projection key, receptor) -> [rows], plasticity, order
    several = len({k[1] for k in groups}) > 1
    for (pname, steps), entry in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        w = np.asarray(entry["w"], dtype=float).T  # (origin, target)
        node = entry["node"]
        exists_meta = _meta(node, "exists") if node is not None else None
        exists = (w != 0) if exists_meta is None else np.asarray(exists_meta, dtype=bool).T.reshape(w.shape)
        for i, j in zip(*np.nonzero(exists)):
            if owner.setdefault((int(i), int(j)), (pname, steps)) != (pname, steps):
                raise NIRMappingError(
                    f"NIR paths from {origin!r}[{i}] to {target!r}[{j}] have different delays or belong to different "
                    "projections; the core has one synapse per pair of neurons. Merge the paths or give them the "
                    "same delay")
        receptor_meta = _meta(node, "receptor") if node is not None else None
        if receptor_meta in ("excitatory", "inhibitory"):
            by_receptor = [(receptor_meta, exists)]
        else:
            by_receptor = [("excitatory", exists & (w > 0)), ("inhibitory", exists & (w < 0))]
        weights_na = np.abs(w) * factor[None, :]
        # a named projection (spikeforge wrote the file) is one projection over all its delays
        key = pname if pname is not None else (None, steps)
        for receptor, mask in by_receptor:
            if not mask.any():
                continue
            i, j = np.nonzero(mask)
            rows = np.column_stack([i, j, weights_na[i, j], np.full(i.size, steps * dt)]).astype(float)
            slot = pending.setdefault((key, receptor), {"rows": [], "stdp": _stdp_from_meta(node), "order":
                                                        _meta(node, "order", float("inf")) if node is not None
                                                        else float("inf"), "steps": steps})
            slot["rows"].append(rows)
    out = []
    for (key, receptor), slot in pending.items():
        if isinstance(key, str):
            base = key
        else:
            base = f"{origin}->{target}" + (" (inh)" if receptor == "inhibitory" else "")
            if several:
                base += f" @{slot['steps'] * dt:g}ms"
        conn = np.vstack(slot["rows"])
        out.append((slot["order"], Projection(pre=origin, post=target, connections=conn, receptor=receptor,
                                              plasticity=slot["stdp"], label=_unique_label(base, taken))))
    return out


def _stdp_from_meta(node):
    if node is None or _meta(node, "stdp.tau_plus") is None:
        return None
    return STDP(**{k: float(_meta(node, f"stdp.{k}")) for k in ("tau_plus", "tau_minus", "A_plus", "A_minus",
                                                                 "w_min", "w_max")})


# ---- writing -----------------------------------------------------------------------------------------
def _per(value, n) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=float), (n,)).astype(float).copy()


def to_nir(network: Network, *, time_unit: str = "s"):
    """The NIR graph of a Network (see write_nir)."""
    nir = _nir()
    from spikeforge.compiler.validate import validate

    validate(network)
    if time_unit not in TIME_UNITS:
        raise NIRMappingError(f"time_unit = {time_unit!r}: use 's' or 'ms'")
    scale = TIME_UNITS[time_unit]
    dt = float(network.dt)
    nodes, edges = {}, []
    sizes = {o.label: o.size for o in [*network.populations, *network.sources]}
    reserved = {o.label for o in [*network.populations, *network.sources]}

    def fresh(base):
        name, k = base, 2
        while name in nodes or name in reserved:
            name, k = f"{base}_{k}", k + 1
        return name

    tau_syn = {}
    for pop in network.populations:
        p, n = pop.params, pop.size
        where = f"population {pop.label!r}"
        if p.reset != "to_v_reset":
            raise NIRMappingError(f"{where}: reset = {p.reset!r}; NIR's neurons reset to v_reset. Use to_v_reset "
                                  "to export")
        if p.threshold_adaptation is not None:
            raise NIRMappingError(f"{where}: NIR has no adaptive threshold; remove threshold_adaptation to export")
        if pop.current_input:
            raise NIRMappingError(f"{where}: current_input has no NIR equivalent; drive it with a source to export")
        te, ti = _per(p.tau_syn_E, n), _per(p.tau_syn_I, n)
        if not np.array_equal(te, ti):
            raise NIRMappingError(f"{where}: tau_syn_E != tau_syn_I, but NIR's CubaLIF has one synaptic time constant. "
                                  "Give both the same value to export")
        tau_m = _per(p.tau_m, n)
        r = tau_m / _per(p.cm, n)
        metadata = {META + "tau_refrac": _per(p.tau_refrac, n), META + "order": len(nodes)}
        if pop.v_init is not None:
            metadata[META + "v_init"] = _per(pop.v_init, n)
        nodes[pop.label] = nir.CubaLIF(
            tau_syn=te / scale, tau_mem=tau_m / scale, r=r, v_leak=_per(p.v_rest, n),
            v_threshold=_per(p.v_thresh, n), v_reset=_per(p.v_reset, n), w_in=np.ones(n), metadata=metadata)
        tau_syn[pop.label] = te
    for k, src in enumerate(network.sources):
        n = src.size
        if isinstance(src, PoissonSource):
            metadata = {META + "source": "poisson", META + "rate": _per(src.rate, n), META + "seed": int(src.seed),
                        META + "start": float(src.start), META + "stop": -1.0 if src.stop is None else float(src.stop)}
        else:
            times = [np.asarray(t, dtype=float) for t in src.spike_times] or [np.zeros(0)] * n
            metadata = {META + "source": "spikes",
                        META + "spike_times": np.concatenate(times) if times else np.zeros(0),
                        META + "spike_counts": np.array([t.size for t in times], dtype=np.int64)}
        metadata[META + "order"] = len(network.populations) + k
        nodes[src.label] = nir.Input(input_type={"input": np.array([n])}, metadata=metadata)
    biased = set()
    for order, proj in enumerate(network.projections):
        pre_n, post_n = sizes[proj.pre], sizes[proj.post]
        w, d, exists = proj.dense(pre_n, post_n)
        sign = -1.0 if proj.receptor == "inhibitory" else 1.0
        steps = np.rint(d / dt).astype(int)
        for s in np.unique(steps[exists]):
            mask = exists & (steps == s)
            # a current jump of w nA on a CubaLIF with w_in = 1 is the NIR weight w * tau_syn / dt
            weight = (sign * np.where(mask, w, 0.0) * (tau_syn[proj.post][None, :] / dt)).T
            lname = fresh(proj.name.replace("/", "_") if len(np.unique(steps[exists])) == 1
                          else f"{proj.name.replace('/', '_')}@{s}")
            metadata = {META + "projection": proj.name, META + "receptor": proj.receptor,
                        META + "exists": mask.T.astype(np.uint8), META + "order": order}
            if proj.plasticity is not None:
                for k, v in vars(proj.plasticity).items():
                    metadata[META + f"stdp.{k}"] = float(v)
            bias = None
            if proj.post not in biased and np.any(network.population(proj.post).params.i_offset):
                bias = _per(network.population(proj.post).params.i_offset, post_n)
                biased.add(proj.post)
            if bias is None:
                nodes[lname] = nir.Linear(weight=weight, metadata=metadata)
            else:
                nodes[lname] = nir.Affine(weight=weight, bias=bias, metadata=metadata)
            edges.append((proj.pre, lname))
            if s > 1:
                dname = fresh(f"{lname}.delay")
                nodes[dname] = nir.Delay(delay=np.full(post_n, (s - 1) * dt / scale))
                edges += [(lname, dname), (dname, proj.post)]
            else:
                edges.append((lname, proj.post))
    for pop in network.populations:
        if pop.label in biased or not np.any(pop.params.i_offset):
            continue
        # i_offset without an incoming projection: an Affine with zero weights from a one-channel Input
        feed = fresh(f"{pop.label}.bias_input")
        nodes[feed] = nir.Input(input_type={"input": np.array([1])}, metadata={META + "source": "bias"})
        aname = fresh(f"{pop.label}.bias")
        nodes[aname] = nir.Affine(weight=np.zeros((pop.size, 1)), bias=_per(pop.params.i_offset, pop.size),
                                  metadata={META + "bias_only": 1})
        edges += [(feed, aname), (aname, pop.label)]
    for pop in network.populations:
        out = fresh(f"{pop.label}.output")
        nodes[out] = nir.Output(output_type={"output": np.array([pop.size])})
        edges.append((pop.label, out))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={META + "dt": dt, META + "time_unit": time_unit,
                                                            META + "name": network.name})


def write_nir(network: Network, path, *, time_unit: str = "s") -> Path:
    """Write ``network`` as a NIR file (HDF5); return the path. See the module docstring."""
    nir = _nir()
    path = Path(path)
    graph = to_nir(network, time_unit=time_unit)
    nir.write(path, graph)
    return path


# ---- the CLI command (registered by spikeforge/cli.py as ``spikeforge export``) ---------------------------
def export_command(
    net: Path = typer.Argument(..., help="Network to export: .yaml/.json network file, .nir, or a PyNN script (.py)."),
    out: Path = typer.Option(..., "--out", "-o", help="The NIR file to write (.nir)."),
    dt: Optional[float] = typer.Option(None, "--dt", help="Timestep (ms) when NET is a NIR file from elsewhere."),
    time_unit: str = typer.Option("s", "--time-unit",
                                  help="Unit of the NIR file's time constants and delays: s (as snnTorch, Norse "
                                       "and Rockpool write them) or ms."),
):
    """Export a network as NIR (the Neuromorphic Intermediate Representation), for snnTorch, Norse,
    Rockpool, Lava, SpiNNaker2 and other NIR tools. What NIR cannot express (refractory period, initial
    v, source spikes, STDP) travels in the nodes' metadata, so spikeforge reads the file back exactly."""
    from spikeforge.compiler.loaders import load_any

    try:
        network = load_any(net, dt)
        path = write_nir(network, out, time_unit=time_unit)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"wrote {path}: {len(network.populations)} populations as CubaLIF, {len(network.sources)} sources "
               f"as Input, {len(network.projections)} projections (time unit {time_unit}, dt {network.dt} ms)")
