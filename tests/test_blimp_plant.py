"""The blimp plant, the PID baseline and the closed-loop metrics (demos/blimp)."""

import numpy as np
import pytest

from spikeforge.demos.blimp import metrics, plant
from spikeforge.demos.blimp.closed_loop import PIDController, run_closed_loop
from spikeforge.demos.blimp.pid import PID, PIDGains, pid_parts
from spikeforge.demos.blimp.scenarios import make_scenario


def test_identified_model_numbers():
    # two slow real poles and a static gain of ~2.7 m per unit of command (docs/blimp.md)
    t1, t2 = plant.time_constants()
    assert 4.0 < t1 < 5.5 and 12.0 < t2 < 14.0
    assert plant.static_gain() == pytest.approx(2.70, abs=0.01)


def test_step_equals_difference_equation_with_zero_order_hold():
    rng = np.random.default_rng(3)
    u = rng.uniform(-3, 3, size=40)
    blimp = plant.Blimp([0.0], [0.0], noise=False)
    got = np.array([blimp.step([x])[0] for x in u])
    # reference: the 30 Hz difference equation, each command held for three model steps
    h1 = h2 = u1 = u2 = 0.0
    ref = []
    for x in u:
        f = float(plant.motor(x))
        for _ in range(3):
            h = -plant.A1 * h1 - plant.A2 * h2 + plant.B1 * u1 + plant.B2 * u2
            h2, h1, u2, u1 = h1, h, u1, f
        ref.append(h)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_motor_dead_zone_and_saturation():
    np.testing.assert_array_equal(plant.motor([0.05, -0.099, 0.1, -0.1, 5.0, -7.0]), [0, 0, 0.1, -0.1, 3.3, -3.3])


def test_buoyancy_sinks_and_thrust_lifts():
    heavy = plant.Blimp([1.0], [-0.3], noise=False)
    for _ in range(300):
        heavy.step([0.0])
    assert heavy.altitude[0] < 0.5
    lift = plant.Blimp([1.0], [0.0], noise=False)
    for _ in range(100):
        lift.step([1.0])
    assert lift.altitude[0] > 1.5


def test_lidar_noise_is_bounded_and_on_the_centimetre_grid():
    blimp = plant.Blimp(np.full(2000, 1.234), np.zeros(2000), rng=np.random.default_rng(0))
    m = blimp.measure()
    assert np.all(np.abs(m - 1.234) <= 0.01 + 0.005 + 1e-12)
    np.testing.assert_allclose(m * 100, np.round(m * 100), atol=1e-9)
    assert len(np.unique(m)) >= 3  # it is noisy


def test_pid_parts_add_up_and_integral_is_clamped():
    g = PIDGains(2.0, 0.5, 1.0)
    e = np.concatenate([np.full(50, 1.0), np.full(2000, 3.0)])[None]
    pd, ii = pid_parts(g, e)
    pid = PID(g, 1)
    u = np.array([pid.step(x)[0][0] for x in e[0]])
    np.testing.assert_allclose(u, pd[0] + ii[0], atol=1e-12)
    assert ii.max() == pytest.approx(3.3)  # Ki * clamp = U_MAX
    assert pd[0, 10] == pytest.approx(2.0)  # constant error: no derivative left, P only


def test_metrics_on_a_known_trajectory():
    sp = np.concatenate([np.full(100, 1.0), np.full(400, 2.0), np.full(400, 1.0)])
    alt = sp.copy()
    alt[100:150] = 2.3  # up step: overshoot 0.3, settles at tick 150 -> 5.0 s
    alt[500:520] = 0.8  # down step: overshoot 0.2, 2.0 s
    alt[-100:] = 1.02  # last 10 s off by 2 cm
    m = metrics.summarise(alt, sp)
    assert m["overshoot_up_m"] == pytest.approx(0.3)
    assert m["overshoot_down_m"] == pytest.approx(0.2)
    assert m["settling_time_s"] == pytest.approx((5.0 + 2.0) / 2)  # 2 cm off at the end is inside the 5 cm band
    alt[-100:] = 1.08  # 8 cm off: the down step never settles -> its whole segment, 40 s
    assert metrics.summarise(alt, sp)["settling_time_s"] == pytest.approx((5.0 + 40.0) / 2)
    assert m["steady_state_error_m"] == pytest.approx(0.02 / 3)
    alt[-100:] = 1.02
    assert m["rmse_m"] == pytest.approx(np.sqrt(np.mean((alt - sp) ** 2)))


def test_pid_closed_loop_tracks_steps():
    sc = make_scenario(5, batch=2, n_steps=2)
    tr = run_closed_loop(PIDController(PIDGains(3.0, 0.08, 2.8), 2), sc)
    m = metrics.summarise(tr.altitude, tr.setpoint)
    assert m["steady_state_error_m"] < 0.05
    assert np.abs(tr.command).max() <= plant.U_MAX
