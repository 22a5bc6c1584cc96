"""The PID baseline: the controller the SNN learns to mimic, split into its PD and I parts.

Discrete PID at the 10 Hz control rate on the altitude error e = setpoint - measured altitude:

    P = Kp e,   D = Kd d,  d = a d + (1 - a) (e - e_prev) / dt   (derivative low-pass, a = DERIV_FILTER)
    I = Ki s,   s = clip(s + e dt, -S, S)                        (integral clamp: anti-windup)
    u = P + D + I

The derivative low-pass is the standard guard against the LiDAR's +-1 cm noise (unfiltered it would
be +-0.2 m/s of derivative noise at 10 Hz); the integral clamp keeps Ki s within the motor's range.
``PD`` and ``I`` are kept apart because the SNN has one sub-network for each (the paper's structure).
Gains are tuned by CMA-ES on the closed loop (``tune_pid`` in train.py), not by hand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from spikeforge.demos.blimp.plant import DT, U_MAX

#: Derivative low-pass factor per control step (time constant -dt/ln(0.5) = 0.14 s).
DERIV_FILTER = 0.5


@dataclass(frozen=True)
class PIDGains:
    kp: float
    ki: float
    kd: float

    @property
    def integral_limit(self) -> float:
        """Clamp of the error integral (m s): the I part alone can reach the full command."""
        return U_MAX / max(self.ki, 1e-9)

    def to_dict(self) -> dict:
        return asdict(self)


class PID:
    """A batch of B PID controllers with the same gains. ``step(e)`` -> (u, pd, i), each (B,)."""

    def __init__(self, gains: PIDGains, batch: int = 1):
        self.gains = gains
        self.B = batch
        self.reset()

    def reset(self) -> None:
        z = np.zeros(self.B)
        self.prev_error = None
        self.deriv = z.copy()
        self.integral = z.copy()

    def step(self, error) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g = self.gains
        e = np.broadcast_to(np.asarray(error, dtype=float), (self.B,))
        raw = np.zeros(self.B) if self.prev_error is None else (e - self.prev_error) / DT
        self.prev_error = e.copy()
        self.deriv = DERIV_FILTER * self.deriv + (1.0 - DERIV_FILTER) * raw
        lim = g.integral_limit
        self.integral = np.clip(self.integral + e * DT, -lim, lim)
        pd = g.kp * e + g.kd * self.deriv
        i = g.ki * self.integral
        return pd + i, pd, i


def pid_parts(gains: PIDGains, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The PD and I outputs (B, T) of a PID run open-loop over error sequences (B, T): the SNN's targets."""
    errors = np.atleast_2d(np.asarray(errors, dtype=float))
    pid = PID(gains, errors.shape[0])
    pd = np.zeros_like(errors)
    ii = np.zeros_like(errors)
    for t in range(errors.shape[1]):
        _, pd[:, t], ii[:, t] = pid.step(errors[:, t])
    return pd, ii
