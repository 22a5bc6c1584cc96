"""Projection of the spikeforge PyNN backend.

PyNN's own connectors (AllToAll, OneToOne, FixedProbability, FromList, Array, FixedNumberPre/Post,
DistanceDependentProbability, ...) generate the synapses through ``_convergent_connect``; they are
stored as flat arrays (pre index, post index, one array per synapse parameter). ``get`` returns the
weights the last run learned (plastic projections) or the initial ones; ``set`` changes them before the
next segment.
"""

from __future__ import annotations

import numpy as np

from pyNN import common
from pyNN.space import Space

from spikeforge.pynn import simulator
from spikeforge.pynn.errors import SUPPORTED_SYNAPSES, UnsupportedFeatureError
from spikeforge.pynn.standardmodels import STDPMechanism, StaticSynapse


class Connection(common.Connection):
    """One synapse of a Projection, as PyNN's iteration over a projection yields it."""

    def __init__(self, projection, k):
        self.projection, self.k = projection, k

    @property
    def presynaptic_index(self):
        return int(self.projection._pre_idx[self.k])

    @property
    def postsynaptic_index(self):
        return int(self.projection._post_idx[self.k])

    def __getattr__(self, name):
        if name in ("projection", "k"):
            raise AttributeError(name)
        values = self.projection._values(name)
        return float(values[self.k])

    def as_tuple(self, *attribute_names):
        return tuple(getattr(self, name) for name in attribute_names)


class Projection(common.Projection):
    __doc__ = common.Projection.__doc__
    _simulator = simulator
    _static_synapse_class = StaticSynapse

    def __init__(self, presynaptic_population, postsynaptic_population, connector, synapse_type=None,
                 source=None, receptor_type=None, space=Space(), label=None):
        if synapse_type is not None and not isinstance(synapse_type, (StaticSynapse, STDPMechanism)):
            raise UnsupportedFeatureError(f"synapse type {type(synapse_type).__name__}", SUPPORTED_SYNAPSES)
        if source is not None:
            raise UnsupportedFeatureError(f"Projection(source={source!r})",
                                          "point neurons with one spike source each")
        for who, pop in (("post", postsynaptic_population),):
            for cell_pop in _populations_of(pop):
                if not cell_pop.is_neuron:
                    raise UnsupportedFeatureError(
                        f"a projection onto {cell_pop.label!r} ({type(cell_pop.celltype).__name__})",
                        "projections onto IF_curr_exp populations; spike sources only send")
        common.Projection.__init__(self, presynaptic_population, postsynaptic_population, connector,
                                   synapse_type, source, receptor_type, space, label)
        self._chunks_pre, self._chunks_post, self._chunks = [], [], {}
        self._pre_idx = np.zeros(0, dtype=np.int64)
        self._post_idx = np.zeros(0, dtype=np.int64)
        self._params: dict[str, np.ndarray] = {}
        connector.connect(self)
        self._consolidate()
        simulator.state.projections.append(self)

    @property
    def plastic(self) -> bool:
        return isinstance(self.synapse_type, STDPMechanism)

    # ---- building ---------------------------------------------------------------------------------
    def _convergent_connect(self, presynaptic_indices, postsynaptic_index, location_selector=None,
                            **connection_parameters):
        if location_selector is not None:
            raise UnsupportedFeatureError("multi-compartment synapse locations", "point neurons")
        pre = np.asarray(presynaptic_indices, dtype=np.int64).ravel()
        self._chunks_pre.append(pre)
        self._chunks_post.append(np.full(pre.size, int(postsynaptic_index), dtype=np.int64))
        for name, value in connection_parameters.items():
            arr = np.broadcast_to(np.asarray(value, dtype=float), pre.shape) if pre.size else np.zeros(0)
            self._chunks.setdefault(name, []).append(np.array(arr, dtype=float))

    def _consolidate(self):
        if self._chunks_pre:
            self._pre_idx = np.concatenate([self._pre_idx, *self._chunks_pre])
            self._post_idx = np.concatenate([self._post_idx, *self._chunks_post])
            for name, chunks in self._chunks.items():
                old = self._params.get(name, np.zeros(0))
                self._params[name] = np.concatenate([old, *chunks])
        self._chunks_pre, self._chunks_post, self._chunks = [], [], {}

    def __len__(self):
        return int(self._pre_idx.size)

    def __getitem__(self, i):
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return Connection(self, i % len(self))

    # ---- values ------------------------------------------------------------------------------------
    def _values(self, name: str) -> np.ndarray:
        """The current values of a synapse attribute, one per connection."""
        if name == "presynaptic_index":
            return self._pre_idx
        if name == "postsynaptic_index":
            return self._post_idx
        if name == "weight":
            learned = self._learned_weights()
            if learned is not None:
                return learned
        if name not in self._params:
            raise AttributeError(f"projection {self.label!r} has no synapse attribute {name!r}")
        return self._params[name]

    def _learned_weights(self) -> np.ndarray | None:
        """The weights the current segment's run ended with (plastic projections), else None."""
        state = self._simulator.state
        if not self.plastic or state.result is None or getattr(state, "index", None) is None:
            return None
        parts = state.index.projection_parts.get(id(self))
        if not parts:
            return None
        weights = np.array(self._params["weight"], dtype=float)
        for part in parts:
            learned = state.result.weights.get(part.name)
            if learned is None:
                continue
            magnitude = learned[part.pre_index, part.post_index]
            weights[part.rows] = np.where(self._params["weight"][part.rows] < 0, -magnitude, magnitude)
        return weights

    def _get_attributes_as_list(self, names):
        columns = [self._values(n) for n in names]
        ints = {"presynaptic_index", "postsynaptic_index"}
        return [tuple(int(c[k]) if n in ints else float(c[k]) for n, c in zip(names, columns))
                for k in range(len(self))]

    def _get_attributes_as_arrays(self, names, multiple_synapses="sum"):
        op = common.Projection.MULTI_SYNAPSE_OPERATIONS[multiple_synapses]
        out = []
        for name in names:
            if name.endswith("s") and name[:-1] in self._params:  # weights -> weight, as PyNN allows
                name = name[:-1]
            values = np.full((self.pre.size, self.post.size), np.nan)
            column = self._values(name)
            pairs = self._pre_idx * self.post.size + self._post_idx
            if np.unique(pairs).size == pairs.size:
                values[self._pre_idx, self._post_idx] = column
            else:
                for i, j, v in zip(self._pre_idx, self._post_idx, column):
                    values[i, j] = v if np.isnan(values[i, j]) else op(values[i, j], v)
            out.append(values)
        return out

    def _set_attributes(self, parameter_space):
        """Set synapse attributes from a (pre, post)-shaped parameter space (PyNN's ``set``)."""
        parameter_space.evaluate(simplify=False)
        learned = self._learned_weights()
        if learned is not None:  # keep what was learned for the attributes not being set
            self._params["weight"] = learned
        for name, value in parameter_space.items():
            arr = np.asarray(value, dtype=float)
            if arr.ndim == 0:
                self._params[name] = np.full(len(self), float(arr))
            else:
                self._params[name] = np.array(arr[self._pre_idx, self._post_idx], dtype=float)


def _populations_of(obj):
    """The Populations whose neurons a Population, PopulationView or Assembly holds."""
    from spikeforge.pynn.populations import Assembly, PopulationView

    if isinstance(obj, Assembly):
        out = []
        for member in obj.populations:
            out.extend(_populations_of(member))
        return out
    if isinstance(obj, PopulationView):
        return [obj.grandparent]
    return [obj]
