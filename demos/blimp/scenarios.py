"""Seeded setpoint scenarios: step sequences up and down, random buoyancy, LiDAR noise.

A Scenario is a batch of B runs of T control ticks (10 Hz): a setpoint per tick, a starting
altitude and a constant buoyancy offset per run, and the seed of the LiDAR noise. The same seed
always gives the same scenario, so SNN and PID are compared on exactly the same runs (same noise
draws too: each run has its own noise stream, seeded by the scenario seed and the run's index, so a
run flown alone -- on a board -- sees the same noise as in a batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeforge.demos.blimp.plant import CONTROL_HZ

#: Altitudes the setpoints stay within (m); the blimp starts at rest at START_ALTITUDE.
ALT_RANGE = (0.5, 3.5)
START_ALTITUDE = 1.5


@dataclass
class Scenario:
    setpoint: np.ndarray  # (B, T) m
    h0: np.ndarray  # (B,) m
    buoyancy: np.ndarray  # (B,) command units
    seed: int
    step_ticks: int  # ticks per setpoint segment
    run_ids: np.ndarray | None = None  # (B,) which runs of the seeded set these are (noise streams)

    def __post_init__(self):
        if self.run_ids is None:
            self.run_ids = np.arange(self.setpoint.shape[0])

    @property
    def batch(self) -> int:
        return self.setpoint.shape[0]

    @property
    def ticks(self) -> int:
        return self.setpoint.shape[1]

    def take(self, index) -> "Scenario":
        """The runs ``index`` (an int or slice) as a Scenario of their own."""
        idx = np.atleast_1d(np.arange(self.batch)[index])
        return Scenario(self.setpoint[idx], self.h0[idx], self.buoyancy[idx], self.seed, self.step_ticks,
                        self.run_ids[idx])


def step_sequence(rng: np.random.Generator, n_steps: int, min_step: float = 0.4, max_step: float = 1.5,
                  start: float = START_ALTITUDE) -> np.ndarray:
    """``n_steps`` setpoints, alternating up and down from ``start``, each step 0.4 .. 1.5 m, in ALT_RANGE."""
    out = []
    h = start
    up = bool(rng.integers(2))
    for _ in range(n_steps):
        size = rng.uniform(min_step, max_step)
        target = h + size if up else h - size
        if not ALT_RANGE[0] <= target <= ALT_RANGE[1]:
            target = h - size if up else h + size
        target = float(np.clip(target, *ALT_RANGE))
        out.append(target)
        h, up = target, not up
    return np.array(out)


def make_scenario(seed: int, batch: int = 8, n_steps: int = 4, step_seconds: float = 40.0,
                  buoyancy_range: tuple[float, float] = (-0.5, 0.5)) -> Scenario:
    """``batch`` runs of ``n_steps`` setpoint steps (alternating up/down) held ``step_seconds`` each,
    after a first hold at the start altitude; buoyancy uniform in ``buoyancy_range``."""
    rng = np.random.default_rng(seed)
    per = int(round(step_seconds * CONTROL_HZ))
    sp = np.zeros((batch, per * (n_steps + 1)))
    for b in range(batch):
        levels = np.concatenate([[START_ALTITUDE], step_sequence(rng, n_steps)])
        sp[b] = np.repeat(levels, per)
    buoy = rng.uniform(*buoyancy_range, size=batch)
    return Scenario(setpoint=sp, h0=np.full(batch, START_ALTITUDE), buoyancy=buoy, seed=seed, step_ticks=per)
