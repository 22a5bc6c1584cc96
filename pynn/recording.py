"""Recording for the spikeforge PyNN backend: PyNN's Recorder over the segment's SimResult.

Spike times follow the core's (and NEST's) convention: a spike of step n has the time (n + 1) * dt.
A recorded variable has one sample per step plus the initial value at the segment's start, as PyNN's
other backends give it: sample k is the value at time k * dt (k = 0 the initial value).
"""

from __future__ import annotations

import numpy as np

from pyNN import recording

from spikeforge.pynn import simulator

#: PyNN variable name -> spikeforge backend variable name (SimResult.variables).
BACKEND_NAMES = {"v": "v", "isyn_exc": "ie", "isyn_inh": "ii"}


class Recorder(recording.Recorder):
    _simulator = simulator

    def _record(self, variable, new_ids, sampling_interval=None):
        if variable.name != "spikes" and variable.name not in BACKEND_NAMES:
            raise recording.errors.RecordingError(variable.name, self.population.celltype)
        if sampling_interval is not None:
            steps = sampling_interval / self._simulator.state.dt
            if abs(steps - round(steps)) > 1e-9 or round(steps) < 1:
                raise ValueError(
                    f"sampling_interval = {sampling_interval} ms: must be a whole number of timesteps "
                    f"(dt = {self._simulator.state.dt} ms)")
            self.sampling_interval = sampling_interval

    # ---- where the data is ----------------------------------------------------------------------
    def _label(self):
        state = self._simulator.state
        index = getattr(state, "index", None)
        if state.network is None or index is None:
            return None
        return index.population_labels.get(id(self.population))

    def _raster(self):
        """The (steps, size) spike raster of the population in the current segment, or None."""
        state = self._simulator.state
        label = self._label()
        if label is None:
            return None
        if self.population.is_source:
            return state.source_rasters.get(label)
        return state.result.spikes[label] if state.result is not None else None

    def _start_step(self) -> int:
        return int(round(float(self._recording_start_time) / self._simulator.state.dt))

    def _get_spiketimes(self, ids, clear=False):
        ids = np.asarray([int(i) for i in ids], dtype=int)
        raster = self._raster()
        if raster is None or ids.size == 0:
            return np.zeros(0, dtype=int), np.zeros(0)
        index = self.population.id_to_index(ids)
        index = np.atleast_1d(index)
        sub = raster[self._start_step():, index]
        steps, cols = np.nonzero(sub)
        times = (steps + self._start_step() + 1) * self._simulator.state.dt
        order = np.argsort(times, kind="stable")
        return ids[cols][order], times[order]

    def _get_all_signals(self, variable, ids, clear=False):
        state = self._simulator.state
        ids = [int(i) for i in ids]
        index = np.atleast_1d(self.population.id_to_index(np.asarray(ids, dtype=int))) if ids else np.zeros(0, int)
        initial = {"v": self.population.v_init}.get(variable.name, np.zeros(self.population.size))
        label = self._label()
        if label is not None and state.result is not None:
            rec = state.result.variables[label][BACKEND_NAMES[variable.name]]
            values = np.vstack([initial[None, :], np.asarray(rec, dtype=float)])
        else:
            values = initial[None, :]
        every = int(round(self.sampling_interval / state.dt))
        values = values[self._start_step()::every]
        return values[:, index], None

    def _local_count(self, variable, filter_ids=None):
        if variable.name != "spikes":
            raise ValueError("only spike counts can be counted")
        ids = sorted(self.filter_recorded(variable, filter_ids))
        raster = self._raster()
        counts = {}
        for i in ids:
            k = int(self.population.id_to_index(int(i)))
            counts[int(i)] = 0 if raster is None else int(raster[self._start_step():, k].sum())
        return counts

    def _clear_simulator(self):
        pass

    def _reset(self):
        pass
