"""The cycle-model check: LAST_CYCLES of every step against ``sim/cycle_model.py``'s prediction.

The cycle model predicts a step's cycles from its spike vectors (inputs in, neurons out) and the
learning switch. If the cycle model module is missing the check is reported as unavailable (the
case result has no predicted cycles) rather than silently passed.
"""

from __future__ import annotations

import numpy as np

from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage

try:  # written with the RTL design
    from spikeforge.sim import cycle_model as _cycle_model
except ImportError:  # pragma: no cover - depends on the checkout
    _cycle_model = None


class CyclePredictor:
    def __init__(self, config: CoreConfig):
        self.config = config
        self.available = _cycle_model is not None and hasattr(_cycle_model, "predict_step_cycles")
        self._learning = True

    def reset(self, image: CoreImage):
        self._learning = bool(image.learning)

    def step(self, in_spikes: np.ndarray, out_spikes: np.ndarray) -> int | None:
        """Predicted cycles of the step just run, or None without a cycle model."""
        if not self.available:
            return None
        return int(_cycle_model.predict_step_cycles(self.config, in_spikes, out_spikes,
                                                    learning=self._learning))
