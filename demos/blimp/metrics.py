"""Closed-loop metrics of an altitude trajectory against its setpoint steps.

Per setpoint segment (the ticks between two setpoint changes):

- overshoot: how far the altitude passes the new setpoint in the direction of the step (m, >= 0),
  kept apart for up and down steps (the paper reports 14 cm up, 20 cm down for its PID);
- settling time: seconds from the step until the altitude enters and then stays within
  +-SETTLE_BAND of the setpoint for the rest of the segment (the segment length if it never does);
- steady-state error: mean |altitude - setpoint| over the last STEADY_SECONDS of the segment.

The first segment (holding the start altitude while the buoyancy pulls) counts for RMSE and steady
state only. RMSE is over the whole run. Metrics use the true altitude, not the noisy LiDAR reading.
"""

from __future__ import annotations

import numpy as np

from spikeforge.demos.blimp.plant import CONTROL_HZ

SETTLE_BAND = 0.05
STEADY_SECONDS = 10.0
KEYS = ("rmse_m", "steady_state_error_m", "overshoot_up_m", "overshoot_down_m", "settling_time_s")


def segments(setpoint: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) tick ranges of constant setpoint in one run's setpoint (T,)."""
    change = np.flatnonzero(np.diff(setpoint) != 0) + 1
    edges = np.concatenate([[0], change, [setpoint.size]])
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def settling_ticks(err: np.ndarray, band: float = SETTLE_BAND) -> int:
    """Ticks until |err| enters ``band`` and stays there to the end (len(err) if it never settles)."""
    outside = np.flatnonzero(np.abs(err) > band)
    return 0 if outside.size == 0 else int(outside[-1]) + 1


def run_metrics(altitude: np.ndarray, setpoint: np.ndarray) -> dict:
    """Metrics of one run: altitude, setpoint (T,). Overshoot/settling lists are per step."""
    altitude = np.asarray(altitude, dtype=float)
    setpoint = np.asarray(setpoint, dtype=float)
    err = altitude - setpoint
    steady = int(round(STEADY_SECONDS * CONTROL_HZ))
    up, down, settle, sse = [], [], [], []
    segs = segments(setpoint)
    for k, (a, b) in enumerate(segs):
        e = err[a:b]
        sse.append(float(np.mean(np.abs(e[-steady:]))))
        if k == 0:
            continue
        step = setpoint[a] - setpoint[a - 1]
        if step > 0:
            up.append(float(max(0.0, e.max())))
        else:
            down.append(float(max(0.0, -e.min())))
        settle.append(settling_ticks(e) / CONTROL_HZ)
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "sse": sse, "up": up, "down": down, "settle": settle}


def summarise(altitude: np.ndarray, setpoint: np.ndarray) -> dict:
    """Metrics of a batch of runs (B, T), averaged over runs and steps: the keys of metrics.json."""
    altitude = np.atleast_2d(altitude)
    setpoint = np.atleast_2d(setpoint)
    runs = [run_metrics(a, s) for a, s in zip(altitude, setpoint)]
    cat = lambda key: [x for r in runs for x in r[key]]
    mean = lambda xs: float(np.mean(xs)) if xs else 0.0
    return {
        "rmse_m": float(np.sqrt(np.mean([r["rmse"] ** 2 for r in runs]))),
        "steady_state_error_m": mean(cat("sse")),
        "steady_state_error_max_m": float(max(cat("sse"))),
        "overshoot_up_m": mean(cat("up")),
        "overshoot_down_m": mean(cat("down")),
        "settling_time_s": mean(cat("settle")),
    }
