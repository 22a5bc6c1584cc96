"""The closed loop: LiDAR -> error -> controller -> motor -> blimp, at 10 Hz, for a batch of runs.

Any controller with ``step(error) -> command`` on (B,) arrays fits: the PID (``PIDController``) or
the SNN (``snn_controller.SNNController`` over any core runner). The LiDAR noise is drawn from the
scenario's own seed, so two controllers run on the same scenario see the same noise draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikeforge.demos.blimp.pid import PID, PIDGains
from spikeforge.demos.blimp.plant import DT, U_MAX, Blimp
from spikeforge.demos.blimp.scenarios import Scenario


class PIDController:
    """The PID baseline behind the common ``step(error) -> command`` interface."""

    def __init__(self, gains: PIDGains, batch: int = 1):
        self.pid = PID(gains, batch)
        self.batch = batch
        self.last_parts: tuple[np.ndarray, np.ndarray] | None = None

    def step(self, error) -> np.ndarray:
        u, pd, i = self.pid.step(error)
        self.last_parts = (pd, i)
        return np.clip(u, -U_MAX, U_MAX)


@dataclass
class Trajectory:
    """What a closed-loop run recorded; arrays (B, T)."""

    time: np.ndarray  # (T,) s
    setpoint: np.ndarray
    altitude: np.ndarray  # true altitude at each tick, before the command acts
    measured: np.ndarray  # LiDAR reading the controller saw
    command: np.ndarray
    parts: dict[str, np.ndarray] = field(default_factory=dict)  # pd / i outputs when the controller has them
    spikes: np.ndarray | None = None  # (B, T, n) hidden-layer spikes of an SNN controller


def run_closed_loop(controller, scenario: Scenario, noise: bool = True, record_spikes: bool = False) -> Trajectory:
    """Run ``controller`` on every run of ``scenario``; return the Trajectory."""
    B, T = scenario.batch, scenario.ticks
    rngs = [np.random.default_rng([scenario.seed, 0x5B1A, int(k)]) for k in scenario.run_ids]
    blimp = Blimp(scenario.h0, scenario.buoyancy, noise=noise, rngs=rngs)
    alt = np.zeros((B, T))
    meas = np.zeros((B, T))
    cmd = np.zeros((B, T))
    pd = np.zeros((B, T))
    ii = np.zeros((B, T))
    spikes = [] if record_spikes else None
    for t in range(T):
        alt[:, t] = blimp.altitude
        meas[:, t] = blimp.measure()
        u = np.asarray(controller.step(scenario.setpoint[:, t] - meas[:, t]), dtype=float)
        cmd[:, t] = u
        parts = getattr(controller, "last_parts", None)
        if parts is not None:
            pd[:, t], ii[:, t] = parts
        if record_spikes:
            spikes.append(np.array(controller.last_hidden_spikes))
        blimp.step(u)
    return Trajectory(
        time=np.arange(T) * DT, setpoint=scenario.setpoint.copy(), altitude=alt, measured=meas, command=cmd,
        parts={"pd": pd, "i": ii}, spikes=None if spikes is None else np.stack(spikes, axis=1),
    )
