"""The network model: what a user describes, in PyNN's units (ms, mV, nA, nF, Hz).

A Network holds LIF populations, spike sources and projections. It knows nothing about hardware:
``spikeforge.compiler.compile`` turns it into a CoreImage. Files: ``spikeforge.compiler.netfile``.

Parameters may be scalars or one value per neuron (heterogeneous populations); the compiler groups
neurons with identical parameters into the core's shared parameter profiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np

ResetMode = Literal["to_v_reset", "subtract_threshold"]
Receptor = Literal["excitatory", "inhibitory"]
ConnectorKind = Literal["all_to_all", "one_to_one", "fixed_probability"]


class NetworkError(ValueError):
    """The network description is invalid; the message names the object, the field and the fix."""


#: PyNN's IF_curr_exp parameters, their defaults and units.
LIF_DEFAULTS = {
    "tau_m": (20.0, "ms"),
    "cm": (1.0, "nF"),
    "v_rest": (-65.0, "mV"),
    "v_reset": (-65.0, "mV"),
    "v_thresh": (-50.0, "mV"),
    "tau_syn_E": (5.0, "ms"),
    "tau_syn_I": (5.0, "ms"),
    "tau_refrac": (0.1, "ms"),
    "i_offset": (0.0, "nA"),
}


@dataclass
class ThresholdAdaptation:
    """Adaptive threshold: each spike raises the threshold by ``increment`` mV; the raise decays
    back with time constant ``tau`` ms (``math.inf`` = never decays)."""

    increment: float = 0.05
    tau: float = 1000.0


@dataclass
class LIFParameters:
    """Current-based LIF neuron with exponential synapses (PyNN IF_curr_exp), plus reset mode and
    optional threshold adaptation. Each field is a float or an array with one value per neuron."""

    tau_m: float | np.ndarray = 20.0
    cm: float | np.ndarray = 1.0
    v_rest: float | np.ndarray = -65.0
    v_reset: float | np.ndarray = -65.0
    v_thresh: float | np.ndarray = -50.0
    tau_syn_E: float | np.ndarray = 5.0
    tau_syn_I: float | np.ndarray = 5.0
    tau_refrac: float | np.ndarray = 0.1
    i_offset: float | np.ndarray = 0.0
    reset: ResetMode = "to_v_reset"
    threshold_adaptation: ThresholdAdaptation | None = None

    def per_neuron(self, name: str, size: int) -> np.ndarray:
        """The parameter ``name`` as a float array of length ``size``."""
        value = np.asarray(getattr(self, name), dtype=float)
        return np.full(size, float(value)) if value.ndim == 0 else value


@dataclass
class Population:
    """``size`` LIF neurons sharing a label. ``v_init`` (mV) defaults to v_rest.

    ``current_input=True`` makes the population take a per-step input current (nA) from the host
    (``inputs`` of a run): the analog input path of the core (n_current_inputs).
    """

    label: str
    size: int
    params: LIFParameters = field(default_factory=LIFParameters)
    v_init: float | np.ndarray | None = None
    current_input: bool = False


@dataclass
class SpikeSource:
    """External spikes at explicit times: ``spike_times[k]`` is the list of times (ms) of source k."""

    label: str
    size: int
    spike_times: list[list[float]] = field(default_factory=list)


@dataclass
class PoissonSource:
    """Poisson spike trains at ``rate`` Hz (scalar or per source) between ``start`` and ``stop`` ms,
    drawn on the host from ``seed``: every backend sees the same spikes."""

    label: str
    size: int
    rate: float | np.ndarray = 10.0
    seed: int = 0
    start: float = 0.0
    stop: float | None = None


Source = SpikeSource | PoissonSource


@dataclass
class STDP:
    """Pair STDP with exponential traces and additive weight dependence (PyNN SpikePairRule +
    AdditiveWeightDependence; NEST stdp_synapse convention): a pre/post pair at distance dt changes the
    weight by +A_plus * w_max * exp(-dt/tau_plus) (post after pre) or -A_minus * w_max *
    exp(-dt/tau_minus) (pre after post), and the weight stays in [w_min, w_max] (nA)."""

    tau_plus: float = 20.0
    tau_minus: float = 20.0
    A_plus: float = 0.01
    A_minus: float = 0.012
    w_min: float = 0.0
    w_max: float = 1.0


@dataclass(frozen=True)
class Connector:
    """A connection rule (PyNN's AllToAll/OneToOne/FixedProbability connectors) with one weight (nA)
    and one delay (ms) for every synapse it makes.

    The Projection's arrays (``weights``/``delays`` or ``connections``) are always the truth; a
    Projection built from a rule keeps it in ``Projection.connector`` only so that a network file can
    be written back in the compact form it was read in (``save_network`` writes the rule only while
    ``expand`` still reproduces the arrays exactly, e.g. not after learning changed the weights).

    ``fixed_probability`` draws one uniform number per (pre, post) pair from
    ``numpy.random.default_rng(seed)`` in row-major order and connects where it is < ``p``: the same
    seed gives the same synapses on every machine. ``allow_self_connections=False`` drops i -> i when a
    population projects onto itself.
    """

    kind: ConnectorKind
    weight: float
    delay: float = 1.0
    p: float | None = None
    seed: int = 0
    allow_self_connections: bool = True

    def mask(self, pre_size: int, post_size: int, same_population: bool = False) -> np.ndarray:
        """Boolean (pre_size, post_size): which pairs the rule connects."""
        if self.kind == "all_to_all":
            mask = np.ones((pre_size, post_size), dtype=bool)
        elif self.kind == "one_to_one":
            if pre_size != post_size:
                raise NetworkError(
                    f"one_to_one connects equal-sized groups, got pre size {pre_size} and post size "
                    f"{post_size}; use all_to_all, fixed_probability or a connection list"
                )
            mask = np.eye(pre_size, dtype=bool)
        elif self.kind == "fixed_probability":
            if self.p is None or not 0.0 <= self.p <= 1.0:
                raise NetworkError(f"fixed_probability needs p in [0, 1], got {self.p!r}")
            mask = np.random.default_rng(self.seed).random((pre_size, post_size)) < self.p
        else:
            raise NetworkError(
                f"unknown connector {self.kind!r}; use all_to_all, one_to_one or fixed_probability"
            )
        if same_population and not self.allow_self_connections:
            np.fill_diagonal(mask, False)
        return mask

    def expand(self, pre_size: int, post_size: int, *, plastic: bool, same_population: bool = False) -> dict:
        """The Projection fields the rule stands for: ``weights`` + ``delays`` (dense matrix, scalar
        delay) or, for a plastic projection that does not connect every pair, ``connections`` -- a
        dense plastic matrix makes every pair a (possibly zero-weight) synapse, which would lose the
        rule's sparsity."""
        mask = self.mask(pre_size, post_size, same_population)
        if plastic and not mask.all():
            i, j = np.nonzero(mask)
            rows = np.column_stack(
                [i, j, np.full(i.size, float(self.weight)), np.full(i.size, float(self.delay))]
            ).astype(float).reshape(-1, 4)
            return {"weights": None, "delays": 1.0, "connections": rows}  # delays unused with connections
        return {"weights": np.where(mask, float(self.weight), 0.0), "delays": float(self.delay), "connections": None}


@dataclass
class Projection:
    """Synapses from ``pre`` (a population or source label) to ``post`` (a population label).

    Give exactly one of:
    - ``weights``: dense matrix (pre.size, post.size) in nA, 0 = no synapse; ``delays`` then is a
      scalar or a matrix of the same shape (ms);
    - ``connections``: array of rows (pre_index, post_index, weight nA, delay ms).
    Weights are magnitudes (>= 0); ``receptor`` says whether they excite or inhibit (PyNN convention).
    ``connector``: the rule the arrays were generated from, if any (see Connector); informational.
    """

    pre: str
    post: str
    weights: np.ndarray | None = None
    delays: float | np.ndarray = 1.0
    connections: np.ndarray | None = None
    receptor: Receptor = "excitatory"
    plasticity: STDP | None = None
    label: str | None = None
    connector: Connector | None = None

    @property
    def name(self) -> str:
        return self.label or f"{self.pre}->{self.post}"

    def dense(self, pre_size: int, post_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(weights, delays, exists): three (pre_size, post_size) matrices. ``exists`` marks synapses
        (a plastic synapse may start at weight 0)."""
        if self.connections is not None:
            conn = np.asarray(self.connections, dtype=float).reshape(-1, 4)
            w = np.zeros((pre_size, post_size))
            d = np.ones((pre_size, post_size))
            exists = np.zeros((pre_size, post_size), dtype=bool)
            i, j = conn[:, 0].astype(int), conn[:, 1].astype(int)
            w[i, j], d[i, j], exists[i, j] = conn[:, 2], conn[:, 3], True
            return w, d, exists
        w = np.asarray(self.weights, dtype=float)
        d = np.broadcast_to(np.asarray(self.delays, dtype=float), w.shape).copy()
        exists = (w != 0) | (self.plasticity is not None)
        return w, d, exists


@dataclass
class Network:
    """A spiking network: populations, sources and projections, advanced in steps of ``dt`` ms."""

    dt: float = 1.0
    populations: list[Population] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    projections: list[Projection] = field(default_factory=list)
    name: str = "network"

    # ---- building --------------------------------------------------------------------------
    def add(self, obj):
        """Add a Population, SpikeSource, PoissonSource or Projection; return it."""
        if isinstance(obj, Population):
            self.populations.append(obj)
        elif isinstance(obj, (SpikeSource, PoissonSource)):
            self.sources.append(obj)
        elif isinstance(obj, Projection):
            self.projections.append(obj)
        else:
            raise NetworkError(f"cannot add {type(obj).__name__} to a Network")
        return obj

    def population(self, label: str) -> Population:
        for p in self.populations:
            if p.label == label:
                return p
        raise NetworkError(f"no population labelled {label!r}; populations: {[p.label for p in self.populations]}")

    def source(self, label: str) -> Source:
        for s in self.sources:
            if s.label == label:
                return s
        raise NetworkError(f"no source labelled {label!r}; sources: {[s.label for s in self.sources]}")

    def node(self, label: str) -> Population | Source:
        for obj in [*self.populations, *self.sources]:
            if obj.label == label:
                return obj
        raise NetworkError(
            f"no population or source labelled {label!r}; known: "
            f"{[o.label for o in [*self.populations, *self.sources]]}"
        )

    @property
    def n_neurons(self) -> int:
        return sum(p.size for p in self.populations)

    @property
    def n_source_neurons(self) -> int:
        return sum(s.size for s in self.sources)

    def steps_for(self, duration_ms: float) -> int:
        return int(round(duration_ms / self.dt))
