"""The SNN controller behind the closed loop's ``step(error) -> command`` interface.

Each tick: the host turns the error into the encoders' analog inputs (snn.encoder_inputs, integers),
the core runner advances the core one step, and the host decodes the hidden spikes of the PD and the
I sub-network with their leaky integrators (snn.Decoder) and adds them. Nothing but integers crosses
to the core and nothing but spikes comes back, so every runner that is bit-exact with the golden model
gives the same commands, to the last bit.
"""

from __future__ import annotations

import numpy as np

from spikeforge.demos.blimp import snn
from spikeforge.demos.blimp.plant import U_MAX
from spikeforge.demos.blimp.runners import CoreRunner


class SNNController:
    """``controller`` (trained parameters) running on ``runner`` (a loaded core or batch of cores)."""

    def __init__(self, controller: snn.Controller, runner: CoreRunner, log_currents: bool = False):
        self.controller = controller
        self.runner = runner
        self.batch = runner.batch
        self.decoders = {"pd": snn.Decoder(controller.pd), "i": snn.Decoder(controller.i)}
        self.hidden = {name: np.asarray(controller.hidden_range(name)) for name in ("pd", "i")}
        self.hidden_all = np.concatenate([self.hidden["pd"], self.hidden["i"]])
        self.last_parts = None
        self.last_hidden_spikes = None
        self.currents_log: list[np.ndarray] | None = [] if log_currents else None
        self.spikes_log: list[np.ndarray] | None = [] if log_currents else None

    def currents(self, error) -> np.ndarray:
        """The analog inputs (B, K) of all encoders for errors (B,): PD encoders, then I encoders."""
        e = np.broadcast_to(np.asarray(error, dtype=float), (self.batch,))
        return np.concatenate([snn.encoder_inputs(self.controller.pd, e),
                               snn.encoder_inputs(self.controller.i, e)], axis=-1)

    def step(self, error) -> np.ndarray:
        u = self.currents(error)
        spikes = self.runner.step(u)
        if self.currents_log is not None:
            self.currents_log.append(u.copy())
            self.spikes_log.append(np.array(spikes, dtype=bool))
        pd = self.decoders["pd"].step(spikes[:, self.hidden["pd"]])
        ii = self.decoders["i"].step(spikes[:, self.hidden["i"]])
        self.last_parts = (pd, ii)
        self.last_hidden_spikes = spikes[:, self.hidden_all]
        return np.clip(pd + ii, -U_MAX, U_MAX)
