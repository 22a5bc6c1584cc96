"""Population, PopulationView and Assembly of the spikeforge PyNN backend.

Parameters live in the population as arrays (one value per neuron, PyNN's units); the spikeforge
Network is built from them at run(). Spike sources additionally keep *epochs*: setting a source's
spike times or rate after a run starts a new epoch at the current time, so the spikes already sent
stay in the segment's history and only the future changes (see simulator.py on replay).
"""

from __future__ import annotations

import copy

import numpy as np

from pyNN import common, errors
from pyNN.parameters import ParameterSpace, simplify
from pyNN.standardmodels import StandardCellType

from spikeforge.pynn import simulator
from spikeforge.pynn.errors import SUPPORTED_CELLS, UnsupportedFeatureError, note_spinnaker_only
from spikeforge.pynn.recording import Recorder
from spikeforge.pynn.standardmodels import (
    SUPPORTED_CELL_TYPES,
    IF_curr_exp,
    SpikeSourceArray,
    SpikeSourcePoisson,
)


def _check_celltype(cellclass) -> None:
    kind = cellclass if isinstance(cellclass, type) else type(cellclass)
    if not (isinstance(kind, type) and issubclass(kind, SUPPORTED_CELL_TYPES)):
        origin = getattr(kind, "__module__", "")
        hint = None
        if origin.startswith(("pyNN.", "spynnaker")) and kind.__name__ in {c.__name__ for c in SUPPORTED_CELL_TYPES}:
            hint = f"use sim.{kind.__name__} from the module you imported as sim (spikeforge.pynn), not {origin}"
        raise UnsupportedFeatureError(f"cell type {kind.__name__} (from {origin or 'unknown module'})",
                                      SUPPORTED_CELLS, hint)


class Assembly(common.Assembly):
    _simulator = simulator


class _ParameterAccess:
    """Parameter get/set on the population's arrays (as pyNN.mock does; names are PyNN's own)."""

    def _get_parameters(self, *names):
        if isinstance(self.celltype, StandardCellType):
            if any(name in self.celltype.computed_parameters() for name in names):
                native_names = self.celltype.get_native_names()
            else:
                native_names = self.celltype.get_native_names(*names)
            return self.celltype.reverse_translate(self._get_native_parameters(*native_names))
        return self._get_native_parameters(*names)


class PopulationView(_ParameterAccess, common.PopulationView):
    _assembly_class = Assembly
    _simulator = simulator

    def _get_native_parameters(self, *names):
        parameter_dict = {}
        for name in names:
            value = self.parent._parameters[name]
            if isinstance(value, np.ndarray):
                value = value[self.mask]
            parameter_dict[name] = simplify(value)
        return ParameterSpace(parameter_dict, shape=(self.size,))

    def _set_parameters(self, parameter_space):
        """parameter_space holds native parameters"""
        parameter_space.evaluate(simplify=False)
        for name, value in parameter_space.items():
            try:
                self.parent._parameters[name][self.mask] = value
            except ValueError:
                raise errors.InvalidParameterValueError(f"{name} should not be of type {type(value)}")
        self.grandparent._parameters_changed()

    def _set_initial_value_array(self, variable, initial_values):
        values = np.asarray(initial_values.evaluate(simplify=False), dtype=float)
        self.grandparent._store_initial_value(variable, values, self.index_in_grandparent(np.arange(self.size)))

    def _get_view(self, selector, label=None):
        return PopulationView(self, selector, label)

    # sPyNNaker-only calls
    def set_max_atoms_per_core(self, max_atoms_per_core):
        note_spinnaker_only("PopulationView.set_max_atoms_per_core")

    def spinnaker_get_data(self, variable, as_matrix=False, view_indexes=None):
        return self.grandparent.spinnaker_get_data(variable, as_matrix,
                                                   self.index_in_grandparent(np.arange(self.size)))


class Population(_ParameterAccess, common.Population):
    __doc__ = common.Population.__doc__
    _simulator = simulator
    _recorder_class = Recorder
    _assembly_class = Assembly

    def __init__(self, size, cellclass, cellparams=None, structure=None, initial_values={}, label=None,
                 additional_parameters=None, **additional_kwargs):
        """As PyNN's Population; ``additional_parameters`` (sPyNNaker) may give ``seed`` for a
        SpikeSourcePoisson; sPyNNaker's mapping hints (splitter, max rate, ...) are ignored."""
        _check_celltype(cellclass)
        extra = dict(additional_parameters or {})
        extra.update(additional_kwargs)
        self._poisson_seed = extra.pop("seed", None)
        if extra:
            note_spinnaker_only(f"Population(additional_parameters={sorted(extra)})")
        self._v_init = None
        common.Population.__init__(self, size, cellclass, cellparams, structure, initial_values, label)
        self._creation_index = len(simulator.state.populations)
        simulator.state.populations.append(self)
        self._start_segment()

    # ---- what kind of population -------------------------------------------------------------
    @property
    def is_neuron(self) -> bool:
        return isinstance(self.celltype, IF_curr_exp)

    @property
    def is_source(self) -> bool:
        return isinstance(self.celltype, (SpikeSourceArray, SpikeSourcePoisson))

    # ---- PyNN backend protocol ----------------------------------------------------------------
    def _create_cells(self):
        state = simulator.state
        id_range = np.arange(state.id_counter, state.id_counter + self.size)
        self.all_cells = np.array([simulator.ID(i) for i in id_range], dtype=simulator.ID)
        self._mask_local = np.ones(self.size, dtype=bool)
        parameter_space = self.celltype.native_parameters
        parameter_space.shape = (self.size,)
        parameter_space.evaluate(mask=self._mask_local, simplify=False)
        self._parameters = parameter_space.as_dict()
        for id in self.all_cells:
            id.parent = self
        state.id_counter += self.size

    def _set_initial_value_array(self, variable, initial_values):
        values = np.asarray(initial_values.evaluate(simplify=False), dtype=float)
        self._store_initial_value(variable, values, np.arange(self.size))

    def _store_initial_value(self, variable, values, indices):
        if variable == "v":
            if self._v_init is None:
                self._v_init = np.full(self.size, -65.0)
            self._v_init[indices] = values
        elif variable in ("isyn_exc", "isyn_inh"):
            if np.any(values != 0):
                raise UnsupportedFeatureError(
                    f"initial {variable} != 0 (population {self.label!r})",
                    "initial membrane potential v; synaptic currents start at 0 nA",
                    "drive the population with a spike source at the start of the run instead")
        else:
            raise errors.RecordingError(variable, self.celltype)

    def _get_view(self, selector, label=None):
        return PopulationView(self, selector, label)

    def _get_native_parameters(self, *names):
        return ParameterSpace({name: simplify(self._parameters[name]) for name in names},
                              shape=(self.local_size,))

    def _set_parameters(self, parameter_space):
        """parameter_space holds native parameters"""
        parameter_space.evaluate(simplify=False, mask=self._mask_local)
        for name, value in parameter_space.items():
            self._parameters[name] = value
        self._parameters_changed()

    def inject(self, current_source):
        raise UnsupportedFeatureError(
            f"current injection into population {self.label!r}", "i_offset (a constant current per neuron)",
            "set i_offset with pop.set(i_offset=...)")

    # ---- initial values and source epochs ---------------------------------------------------
    @property
    def v_init(self) -> np.ndarray:
        """The initial membrane potential of every neuron (mV); PyNN's default is -65 mV."""
        return np.full(self.size, -65.0) if self._v_init is None else self._v_init.copy()

    def _start_segment(self):
        """A new segment (setup or reset): the sources' current parameters hold from t = 0."""
        self._epochs = [(0.0, self._snapshot())] if self.is_source else []

    def _snapshot(self) -> dict:
        return {name: copy.deepcopy(value) for name, value in self._parameters.items()}

    def _parameters_changed(self):
        """A source changed: from now on its new parameters hold (the past stays as it was)."""
        if not self.is_source:
            return
        t = float(simulator.state.t)
        if self._epochs and self._epochs[-1][0] >= t:
            self._epochs[-1] = (t, self._snapshot())
        else:
            self._epochs.append((t, self._snapshot()))

    # ---- sPyNNaker-only calls ------------------------------------------------------------------
    def set_max_atoms_per_core(self, max_atoms_per_core):
        note_spinnaker_only("Population.set_max_atoms_per_core")

    def add_placement_constraint(self, x, y, p=None):
        note_spinnaker_only("Population.add_placement_constraint")

    def set_constraint(self, constraint):
        note_spinnaker_only("Population.set_constraint")

    def spinnaker_get_data(self, variable, as_matrix=False, view_indexes=None):
        """sPyNNaker's numpy form of recorded data: spikes as rows (neuron index, time ms); a
        variable as rows (neuron index, time ms, value), or with ``as_matrix`` a (times, neurons)
        matrix."""
        if isinstance(variable, (list, tuple)):
            if len(variable) != 1:
                raise ValueError("spinnaker_get_data takes one variable at a time")
            variable = variable[0]
        block = self.get_data(variable)
        segment = block.segments[-1]
        wanted = None if view_indexes is None else set(int(i) for i in view_indexes)
        if variable == "spikes":
            rows = [(st.annotations["source_index"], float(t))
                    for st in segment.spiketrains for t in st.magnitude
                    if wanted is None or st.annotations["source_index"] in wanted]
            rows.sort(key=lambda r: (r[1], r[0]))
            return np.array(rows, dtype=float).reshape(-1, 2)
        signal = next(s for s in segment.analogsignals if s.name == variable)
        index = np.asarray(signal.array_annotations["channel_index"])
        keep = np.array([wanted is None or int(i) in wanted for i in index], dtype=bool)
        values = np.asarray(signal.magnitude)[:, keep]
        if as_matrix:
            return values
        times = np.asarray(signal.times.rescale("ms").magnitude)
        rows = [(int(i), float(t), float(values[k, c]))
                for c, i in enumerate(index[keep]) for k, t in enumerate(times)]
        return np.array(rows, dtype=float).reshape(-1, 3)
