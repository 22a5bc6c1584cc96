"""Placement: where every population, source and projection of a Network lives in the core.

The core has N neurons and A external inputs; its weight memory has A + N rows (sources: the inputs
first, then the neurons) and N columns (targets). The placement is fixed and simple, so that a user can
predict it:

- neurons: populations with ``current_input=True`` first (the core feeds analog input only to neurons
  0..K-1), then the other populations, each in network order, each a contiguous range;
- inputs: spike sources in network order, each a contiguous range of inputs 0..A-1;
- a projection occupies the rows of its ``pre`` (input rows, or A + neuron index) and the columns of
  its ``post``; one weight-memory cell holds one synapse, so two projections may not both put a synapse
  on the same (source, target) pair.

``gather_synapses`` flattens every projection into network-sized matrices (signed weights in nA,
delays in ms, existence, plasticity), indexed by *network source* (sources, then neurons) and neuron.
The compiler quantises those and copies them into the (possibly larger) CoreImage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikeforge.compiler.errors import CompileError
from spikeforge.compiler.network import Network, Population


@dataclass(frozen=True)
class ProjectionPlacement:
    """Where one projection's synapses are: rows of the weight memory, neuron columns, sign."""

    name: str
    pre: str
    post: str
    rows: range  # weight-memory rows of the pre population/source (CoreImage row indices)
    cols: range  # neuron indices of the post population
    sign: int  # +1 excitatory (weights > 0 in the image), -1 inhibitory (weights < 0)
    plastic: bool
    exists: np.ndarray = field(repr=False)  # (pre.size, post.size) bool: which pairs are synapses

    @property
    def n_synapses(self) -> int:
        return int(self.exists.sum())

    def to_dict(self) -> dict:
        return {
            "pre": self.pre, "post": self.post,
            "rows": [self.rows.start, self.rows.stop], "cols": [self.cols.start, self.cols.stop],
            "sign": self.sign, "plastic": self.plastic, "synapses": self.n_synapses,
        }


@dataclass
class Mapping:
    """Population label -> neuron indices, source label -> input indices, projection -> placement.

    ``n_inputs`` is the core's A: the weight-memory row of neuron i is ``n_inputs + i``."""

    neurons: dict[str, range]
    inputs: dict[str, range]
    projections: dict[str, ProjectionPlacement]
    n_inputs: int
    n_current_inputs: int  # neurons 0..K-1 of the network take analog input

    def rows_of(self, label: str) -> range:
        """Weight-memory rows of a source or population."""
        if label in self.inputs:
            return self.inputs[label]
        r = self.neurons[label]
        return range(self.n_inputs + r.start, self.n_inputs + r.stop)

    def network_row_to_image_row(self, n_source_neurons: int) -> np.ndarray:
        """Index array: network source index (sources, then neurons) -> CoreImage row."""
        n_neurons = sum(len(r) for r in self.neurons.values())
        return np.concatenate([
            np.arange(n_source_neurons), self.n_inputs + np.arange(n_neurons)
        ]).astype(np.int64)

    def to_dict(self) -> dict:
        return {
            "neurons": {k: [r.start, r.stop] for k, r in self.neurons.items()},
            "inputs": {k: [r.start, r.stop] for k, r in self.inputs.items()},
            "current_inputs": self.n_current_inputs,
            "projections": {k: p.to_dict() for k, p in self.projections.items()},
        }


@dataclass
class SynapseTable:
    """Every synapse of the network in network-sized dense matrices (S_net = A_net + N_net rows).

    ``weight`` is signed (nA; inhibitory < 0), ``owner`` the index of the projection in
    ``network.projections`` that made the synapse (-1: none)."""

    weight: np.ndarray  # (S_net, N_net) float
    delay: np.ndarray  # (S_net, N_net) float ms
    exists: np.ndarray  # (S_net, N_net) bool
    plastic: np.ndarray  # (S_net, N_net) bool
    owner: np.ndarray  # (S_net, N_net) int


def neuron_order(network: Network) -> list[Population]:
    """Populations in core order: current-input populations first, then the rest (network order)."""
    return [p for p in network.populations if p.current_input] + [
        p for p in network.populations if not p.current_input
    ]


def map_network(network: Network, n_inputs: int | None = None) -> Mapping:
    """The placement of ``network`` on a core with ``n_inputs`` external inputs (default: just enough)."""
    neurons: dict[str, range] = {}
    start = 0
    for pop in neuron_order(network):
        neurons[pop.label] = range(start, start + pop.size)
        start += pop.size
    inputs: dict[str, range] = {}
    start = 0
    for src in network.sources:
        inputs[src.label] = range(start, start + src.size)
        start += src.size
    n_inputs = network.n_source_neurons if n_inputs is None else n_inputs
    k = sum(p.size for p in network.populations if p.current_input)
    mapping = Mapping(neurons=neurons, inputs=inputs, projections={}, n_inputs=n_inputs, n_current_inputs=k)
    for proj in network.projections:
        if proj.name in mapping.projections:
            raise CompileError(
                f"two projections are named {proj.name!r}; give them distinct labels "
                "(Projection(label=...)) so their weights can be told apart"
            )
        pre, post = network.node(proj.pre), network.population(proj.post)
        w, _, exists = _dense(proj, pre.size, post.size)
        mapping.projections[proj.name] = ProjectionPlacement(
            name=proj.name, pre=proj.pre, post=proj.post,
            rows=mapping.rows_of(proj.pre), cols=neurons[proj.post],
            sign=-1 if proj.receptor == "inhibitory" else 1,
            plastic=proj.plasticity is not None, exists=exists,
        )
    return mapping


def _dense(proj, pre_size: int, post_size: int):
    """``proj.dense`` with the shape and index checks the compiler relies on."""
    if proj.connections is not None:
        conn = np.asarray(proj.connections, dtype=float).reshape(-1, 4)
        i, j = conn[:, 0], conn[:, 1]
        if conn.size and (i.min() < 0 or i.max() >= pre_size or j.min() < 0 or j.max() >= post_size
                          or np.any(i != np.round(i)) or np.any(j != np.round(j))):
            raise CompileError(
                f"projection {proj.name!r}: connection indices must be integers in 0..{pre_size - 1} "
                f"(pre) and 0..{post_size - 1} (post)"
            )
        pairs = i.astype(np.int64) * post_size + j.astype(np.int64)
        if np.unique(pairs).size != pairs.size:
            raise CompileError(
                f"projection {proj.name!r}: a (pre, post) pair is connected twice; the core holds one "
                "synapse per pair -- merge the duplicates (add their weights)"
            )
    elif proj.weights is None:
        raise CompileError(f"projection {proj.name!r} has neither weights nor connections")
    elif np.shape(proj.weights) != (pre_size, post_size):
        raise CompileError(
            f"projection {proj.name!r}: weights have shape {np.shape(proj.weights)}, expected "
            f"({pre_size}, {post_size}) = (size of {proj.pre!r}, size of {proj.post!r})"
        )
    w, d, exists = proj.dense(pre_size, post_size)
    if not np.all(np.isfinite(w[exists])) or not np.all(np.isfinite(d[exists])):
        raise CompileError(f"projection {proj.name!r}: weights and delays must be finite numbers")
    if np.any(w[exists] < 0):
        raise CompileError(
            f"projection {proj.name!r}: negative weight {w[exists].min()} nA; weights are magnitudes "
            "(>= 0) -- make the projection inhibitory with receptor='inhibitory' instead"
        )
    return w, d, exists


def gather_synapses(network: Network, mapping: Mapping) -> SynapseTable:
    """All projections flattened into network-sized matrices (see SynapseTable)."""
    a_net, n_net = network.n_source_neurons, network.n_neurons
    s_net = a_net + n_net
    weight = np.zeros((s_net, n_net))
    delay = np.ones((s_net, n_net))
    exists = np.zeros((s_net, n_net), dtype=bool)
    plastic = np.zeros((s_net, n_net), dtype=bool)
    owner = np.full((s_net, n_net), -1, dtype=np.int64)
    for k, proj in enumerate(network.projections):
        place = mapping.projections[proj.name]
        pre, post = network.node(proj.pre), network.population(proj.post)
        w, d, ex = _dense(proj, pre.size, post.size)
        if proj.pre in mapping.inputs:
            r = mapping.inputs[proj.pre]
        else:
            nr = mapping.neurons[proj.pre]
            r = range(a_net + nr.start, a_net + nr.stop)
        rows, cols = slice(r.start, r.stop), slice(place.cols.start, place.cols.stop)
        clash = exists[rows, cols] & ex
        if clash.any():
            i, j = (int(x[0]) for x in np.nonzero(clash))
            other = network.projections[int(owner[rows, cols][i, j])].name
            raise CompileError(
                f"projections {other!r} and {proj.name!r} both connect {proj.pre}[{i}] -> "
                f"{proj.post}[{j}]; the core holds one synapse per (source, target) pair -- merge them "
                "into one projection or drop one of the synapses"
            )
        weight[rows, cols] = np.where(ex, place.sign * w, weight[rows, cols])
        delay[rows, cols] = np.where(ex, d, delay[rows, cols])
        exists[rows, cols] |= ex
        plastic[rows, cols] |= ex & place.plastic
        owner[rows, cols] = np.where(ex, k, owner[rows, cols])
    return SynapseTable(weight=weight, delay=delay, exists=exists, plastic=plastic, owner=owner)
