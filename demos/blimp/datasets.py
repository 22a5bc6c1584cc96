"""Training data for the two sub-networks (the paper's recipe, arXiv 2309.12937, section III).

- PD: recorded-style error signals -- the error the LiDAR-fed controller sees while the PID flies the
  identified blimp through random setpoint steps with random buoyancy and noise (the PID's gains are
  jittered +-40 % per recording so the errors cover more than one closed loop's habits). The target
  is the tuned PID's PD output on those errors, clipped to the motor's range (the derivative kick of a
  setpoint step reaches ~20 command units, of which the motor sees 3.3).
- I: a double integrator x'' = k (u + b) under the PID, with b ~ U(-B_MAX, B_MAX) drawn anew at every
  setpoint step (5 steps of 50 s per data set). k is the identified blimp's short-time acceleration
  gain, so the errors have the blimp's scale. The target is the PID's I output on those errors.

Both return (errors, targets) of shape (n, T).
"""

from __future__ import annotations

import numpy as np

from spikeforge.demos.blimp import plant
from spikeforge.demos.blimp.closed_loop import PIDController, run_closed_loop
from spikeforge.demos.blimp.pid import PID, PIDGains, pid_parts
from spikeforge.demos.blimp.scenarios import make_scenario, step_sequence, START_ALTITUDE

#: Buoyancy range of the I data sets (command units).
B_MAX = 0.6
I_STEPS, I_STEP_SECONDS = 5, 50.0
#: Disturbance range of the I data sets (command units): wider than the buoyancy, because holding the
#: identified blimp away from its start altitude also needs a steady command (its static gain is
#: 2.7 m per unit), so the integral part must reach ~1.5 units (0.5 of buoyancy + 2 m of offset).
I_B_MAX = 1.5


def pd_datasets(gains: PIDGains, n: int, seed: int, n_steps: int = 4, step_seconds: float = 30.0):
    """``n`` PD data sets: errors from closed-loop PID flights of the blimp; targets = PD output."""
    sc = make_scenario(seed, batch=n, n_steps=n_steps, step_seconds=step_seconds, buoyancy_range=(-B_MAX, B_MAX))
    rng = np.random.default_rng([seed, 1])
    errors = np.zeros((n, sc.ticks))
    for b in range(n):
        jitter = rng.uniform(0.6, 1.4, size=3)
        g = PIDGains(gains.kp * jitter[0], gains.ki * jitter[1], gains.kd * jitter[2])
        tr = run_closed_loop(PIDController(g, 1), sc.take(b))
        errors[b] = tr.setpoint[0] - tr.measured[0]
    pd, _ = pid_parts(gains, errors)
    return errors, np.clip(pd, -plant.U_MAX, plant.U_MAX)


def double_integrator_errors(gains: PIDGains, n: int, seed: int, b_max: float = B_MAX) -> np.ndarray:
    """Errors (n, T) of the PID flying x'' = k (u + b) through setpoint steps, b redrawn at each step."""
    rng = np.random.default_rng(seed)
    k = plant.static_gain() / np.prod(plant.time_constants())  # m/s^2 per unit command
    per = int(round(I_STEP_SECONDS * plant.CONTROL_HZ))
    T = per * I_STEPS
    errors = np.zeros((n, T))
    sp = np.zeros((n, T))
    b = np.zeros((n, T))
    for r in range(n):
        sp[r] = np.repeat(np.concatenate([[START_ALTITUDE], step_sequence(rng, I_STEPS - 1)]), per)
        b[r] = np.repeat(rng.uniform(-b_max, b_max, size=I_STEPS), per)
    x = np.full(n, START_ALTITUDE)
    v = np.zeros(n)
    pid = PID(gains, n)
    for t in range(T):
        meas = np.round((x + rng.uniform(-plant.LIDAR_NOISE, plant.LIDAR_NOISE, n)) / plant.LIDAR_RESOLUTION) \
            * plant.LIDAR_RESOLUTION
        errors[:, t] = sp[:, t] - meas
        u, _, _ = pid.step(errors[:, t])
        acc = k * (plant.motor(u) + b[:, t])
        v = v + acc * plant.DT
        x = x + v * plant.DT
    return errors


def i_datasets(gains: PIDGains, n: int, seed: int, b_max: float = I_B_MAX):
    """``n`` I data sets: double-integrator errors; targets = the PID's I output."""
    errors = double_integrator_errors(gains, n, seed, b_max)
    _, ii = pid_parts(gains, errors)
    return errors, np.clip(ii, -plant.U_MAX, plant.U_MAX)
