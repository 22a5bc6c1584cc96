"""The reference model of the testbench: the golden model, stepped in lock-step with the RTL.

The golden model (``sim/golden.py``) *is* the spec, so the testbench does not re-implement anything;
this wrapper only gives it the per-step interface the scoreboard needs (one step in, the spikes and
any state field out) without copying the whole image every step.
"""

from __future__ import annotations

import numpy as np

from spikeforge.core.image import CoreImage
from spikeforge.sim.golden import GoldenCore

#: State fields the scoreboard can ask for, by CoreImage name.
STATE_FIELDS = ("v", "ie", "ii", "refrac_count", "adapt", "y_trace", "x_trace", "ring",
                "weights", "plastic", "delays", "step", "learning")


class ReferenceModel:
    def __init__(self, image: CoreImage):
        self.config = image.config
        self._core = GoldenCore(image.copy())

    def step(self, in_spikes: np.ndarray, currents: np.ndarray | None) -> np.ndarray:
        """Advance one step; return the (N,) bool spikes the core must emit."""
        c = self.config
        cur = None if currents is None or not c.n_current_inputs else np.asarray(currents)[None]
        return self._core.step(np.asarray(in_spikes, dtype=bool).reshape(1, c.n_inputs), cur)[0]

    def field(self, name: str) -> np.ndarray:
        """The current value of one state field (no batch axis)."""
        core = self._core
        if name == "step":
            return np.asarray(int(core.step_count[0]))
        if name == "learning":
            return np.asarray(bool(core.learning[0]))
        return np.asarray(getattr(core, name)[0])

    def threshold(self) -> np.ndarray:
        """theta of every neuron in the last step (v_thresh + adapt), for recording."""
        return np.asarray(self._core._threshold[0])

    def image(self) -> CoreImage:
        return self._core.images()
