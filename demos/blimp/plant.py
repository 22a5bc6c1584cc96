"""The blimp: altitude dynamics identified on a real blimp, a motor with a dead zone, a LiDAR.

Dynamics (docs/blimp.md explains every number). The predecessor project tudelft/blimp_snn
(``ros_radar_mine/neuro_learning/controller/blimp_model/blimp_id_synthetic.py``, class ``TF_ran``)
identified a discrete second-order transfer function from the motor command to the altitude of the
real blimp, sampled at 30 Hz (the rate its ``evol_pid.py`` runs that model at, ``DT = 1/30``):

    h[k] = -A1 h[k-1] - A2 h[k-2] + B1 u[k-1] + B2 u[k-2]          (h: altitude change, m)

with the coefficients below. Its poles are two slow real poles (time constants ~4.8 s and ~12.3 s:
a heavily damped, nearly double-integrating body), its zero lies just outside the unit circle (a small
initial dip opposite to the thrust, a non-minimum-phase effect of the fit) and its static gain is
~2.7 m per unit of command. We use it unchanged at its own 30 Hz and hold each 10 Hz control command
for three model steps (zero-order hold), so no re-identification or discretisation error enters.

Around it: the command is saturated to [-3.3, 3.3] and the motor does not turn inside the dead zone
[-0.1, 0.1]; non-neutral buoyancy is a constant force, i.e. a constant offset ``b`` on the thrust the
model sees (b < 0: heavier than air); the TFmini-S LiDAR reads the altitude with +-1 cm uniform noise
and 1 cm resolution. Everything is vectorised over a batch of independent blimps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Identified coefficients (TF_ran of tudelft/blimp_snn): denominator 1 + A1 z^-1 + A2 z^-2 ...
A1, A2 = -1.990293321618669, 0.990311599031747
#: ... and numerator B1 z^-1 + B2 z^-2 (motor command -> altitude in m).
B1, B2 = -0.000969428630164, 0.001018772629138
#: The identified model's sample rate (Hz) and the control loop's.
MODEL_HZ = 30.0
CONTROL_HZ = 10.0
SUBSTEPS = int(round(MODEL_HZ / CONTROL_HZ))
DT = 1.0 / CONTROL_HZ
#: Motor command limits and dead zone (arXiv 2309.12937).
U_MAX = 3.3
DEAD_ZONE = 0.1
#: LiDAR (TFmini-S): +-1 cm accuracy, 1 cm resolution.
LIDAR_NOISE = 0.01
LIDAR_RESOLUTION = 0.01


def static_gain() -> float:
    """Altitude change (m) per unit of constant command once the model has settled."""
    return (B1 + B2) / (1.0 + A1 + A2)


def time_constants() -> tuple[float, float]:
    """The two time constants (s) of the identified poles."""
    poles = np.roots([1.0, A1, A2]).real
    return tuple(sorted(float(-1.0 / (MODEL_HZ * np.log(p))) for p in poles))


def motor(u) -> np.ndarray:
    """The thrust the blimp feels for command ``u``: saturated to +-U_MAX, zero inside the dead zone."""
    u = np.clip(np.asarray(u, dtype=float), -U_MAX, U_MAX)
    return np.where(np.abs(u) < DEAD_ZONE, 0.0, u)


@dataclass
class BlimpState:
    """Model memory of a batch of blimps: altitude change h[k-1], h[k-2] and inputs u[k-1], u[k-2]."""

    h1: np.ndarray
    h2: np.ndarray
    u1: np.ndarray
    u2: np.ndarray


class Blimp:
    """A batch of ``B`` blimps starting at rest at ``h0`` m with buoyancy offsets ``buoyancy`` (command
    units, constant; negative = sinks). ``step(u)`` applies one 10 Hz command to each and returns the
    true altitudes; ``measure()`` the LiDAR readings, drawn from ``rng`` (one generator for the batch)
    or ``rngs`` (one per blimp: a blimp's noise then does not depend on the batch it flies in)."""

    def __init__(self, h0, buoyancy, rng: np.random.Generator | None = None, noise: bool = True, rngs=None):
        self.h0 = np.atleast_1d(np.asarray(h0, dtype=float))
        self.buoyancy = np.broadcast_to(np.asarray(buoyancy, dtype=float), self.h0.shape).copy()
        self.B = self.h0.size
        z = np.zeros(self.B)
        self.state = BlimpState(z.copy(), z.copy(), z.copy(), z.copy())
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.rngs = list(rngs) if rngs is not None else None
        self.noise = noise

    @property
    def altitude(self) -> np.ndarray:
        return self.h0 + self.state.h1

    def step(self, u) -> np.ndarray:
        """Hold command ``u`` (B,) for one control period (SUBSTEPS model steps); return the altitudes."""
        s = self.state
        force = motor(u) + self.buoyancy
        for _ in range(SUBSTEPS):
            h = -A1 * s.h1 - A2 * s.h2 + B1 * s.u1 + B2 * s.u2
            s.h2, s.h1 = s.h1, h
            s.u2, s.u1 = s.u1, force
        return self.altitude

    def measure(self) -> np.ndarray:
        """LiDAR readings (B,): altitude plus uniform +-1 cm noise, rounded to 1 cm."""
        h = self.altitude
        if self.noise and self.rngs is not None:
            h = h + np.array([r.uniform(-LIDAR_NOISE, LIDAR_NOISE) for r in self.rngs])
        elif self.noise:
            h = h + self.rng.uniform(-LIDAR_NOISE, LIDAR_NOISE, size=h.shape)
        return np.round(h / LIDAR_RESOLUTION) * LIDAR_RESOLUTION
