"""The float reference (sim/float_ref.py) against values worked out by hand.

Every expected value below comes from the closed-form solution of IF_curr_exp, written out in the test,
not from running the reference: relaxation to i_offset * R, the exponential PSC and its PSP,
refractory periods, delays, resets, threshold adaptation, analog input and the STDP pair rule (both
conventions). Tolerances are 1e-9 (float64 rounding over a few hundred steps).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from spikeforge.compiler.network import (
    STDP,
    LIFParameters,
    Network,
    PoissonSource,
    Population,
    Projection,
    SpikeSource,
    ThresholdAdaptation,
)
from spikeforge.compiler.propagators import propagators, refractory_steps
from spikeforge.compiler.validate import NetworkValidationError
from spikeforge.sim.backends import simulate
from spikeforge.sim.float_ref import FloatReferenceError

TOL = 1e-9
QUIET = dict(v_thresh=1000.0)  # a threshold that is never reached: pure subthreshold dynamics


def one_input(weight=1.0, delay=1.0, receptor="excitatory", spike_ms=5.0, dt=1.0, **params):
    """One source spiking once at ``spike_ms`` onto one neuron."""
    net = Network(dt=dt)
    net.add(SpikeSource("src", 1, [[spike_ms]]))
    net.add(Population("n", 1, LIFParameters(**{**QUIET, **params})))
    net.add(Projection("src", "n", weights=np.array([[weight]]), delays=delay, receptor=receptor))
    return net


def run(net, steps, **kw):
    return simulate(net, steps, backend="float", **kw)


# ---- membrane ------------------------------------------------------------------------------------
def test_relaxation_to_offset_current_is_the_analytic_exponential():
    # v(t) = v_rest + i_offset * tau_m/cm * (1 - exp(-t/tau_m)), t = (n+1) dt at row n
    net = Network(dt=0.5)
    net.add(Population("n", 3, LIFParameters(**QUIET, i_offset=np.array([0.5, 1.0, -0.3]),
                                             tau_m=np.array([10.0, 20.0, 35.0]), cm=np.array([1.0, 0.5, 2.0]))))
    res = run(net, 400, record=("v",))
    t = (np.arange(400) + 1) * 0.5
    i, tau, cm = np.array([0.5, 1.0, -0.3]), np.array([10.0, 20.0, 35.0]), np.array([1.0, 0.5, 2.0])
    expected = -65.0 + i * tau / cm * (1 - np.exp(-t[:, None] / tau))
    assert np.abs(res.variables["n"]["v"] - expected).max() < TOL


def test_v_init_relaxes_back_to_rest():
    net = Network(dt=1.0)
    net.add(Population("n", 2, LIFParameters(**QUIET, tau_m=12.0), v_init=np.array([-55.0, -80.0])))
    v = run(net, 100, record=("v",)).variables["n"]["v"]
    t = np.arange(1, 101)[:, None]
    assert np.abs(v - (-65.0 + np.array([10.0, -15.0]) * np.exp(-t / 12.0))).max() < TOL


@pytest.mark.parametrize("tau_syn", [5.0, 20.0, 19.999999])  # general, equal to tau_m, nearly equal
def test_psc_and_psp_shape(tau_syn):
    # a spike at 5 ms (step 4) with delay 2 steps arrives in step 6: ie(row 6) = w, then w exp(-k/tau_s);
    # v first moves in step 7: v - v_rest = w * tau_s tau_m / (cm (tau_m - tau_s)) (e^{-t/tau_m} - e^{-t/tau_s})
    w, tau_m, cm = 2.0, 20.0, 0.8
    res = run(one_input(weight=w, delay=2.0, tau_syn_E=tau_syn, tau_m=tau_m, cm=cm), 200, record=("v", "ie", "ii"))
    ie, v = res.variables["n"]["ie"][:, 0], res.variables["n"]["v"][:, 0]
    assert np.all(ie[:6] == 0) and np.all(v[:7] == -65.0)
    k = np.arange(0, 194)
    assert np.abs(ie[6:] - w * np.exp(-k / tau_syn)).max() < TOL
    t = np.arange(1, 194)
    if abs(tau_m - tau_syn) < 1e-3:
        kernel = t / cm * np.exp(-t / tau_m)  # the equal-tau limit
        tol = 1e-5  # 19.999999 vs 20 differs from the limit by ~1e-7 relative
    else:
        kernel = tau_syn * tau_m / (cm * (tau_m - tau_syn)) * (np.exp(-t / tau_m) - np.exp(-t / tau_syn))
        tol = TOL
    assert np.abs(v[7:] - (-65.0 + w * kernel)).max() < tol
    assert np.all(res.variables["n"]["ii"] == 0)


def test_inhibitory_current_is_negative_and_mirrors_excitation():
    exc = run(one_input(weight=1.5), 60, record=("v", "ie"))
    inh = run(one_input(weight=1.5, receptor="inhibitory"), 60, record=("v", "ii"))
    assert np.abs(inh.variables["n"]["ii"] + exc.variables["n"]["ie"]).max() < TOL
    assert inh.variables["n"]["ii"].min() == pytest.approx(-1.5)
    assert np.abs((inh.variables["n"]["v"] + 65) + (exc.variables["n"]["v"] + 65)).max() < TOL


def test_propagators_match_their_definitions():
    p = propagators(np.array([20.0, 10.0]), np.array([1.0, 0.25]), 5.0, np.array([20.0, 3.0]), 0.1)
    assert p["P22"] == pytest.approx(np.exp(-0.1 / np.array([20.0, 10.0])), rel=1e-15)
    assert p["P20"] == pytest.approx(np.array([20.0, 40.0]) * (1 - np.exp(-0.1 / np.array([20.0, 10.0]))))
    p21_general = 3.0 * 10.0 / (0.25 * 7.0) * (np.exp(-0.1 / 10.0) - np.exp(-0.1 / 3.0))
    assert p["P21in"][1] == pytest.approx(p21_general, rel=1e-12)
    assert p["P21in"][0] == pytest.approx(0.1 / 1.0 * np.exp(-0.1 / 20.0), rel=1e-12)  # tau_syn == tau_m


# ---- spikes, refractoriness, resets -------------------------------------------------------------
@pytest.mark.parametrize("tau_refrac, steps_held", [(0.0, 0), (0.1, 1), (1.0, 1), (2.5, 3), (4.0, 4)])
def test_refractory_period_rounds_up_like_nest(tau_refrac, steps_held):
    # a huge i_offset crosses threshold in every step the neuron is free: ISI = held steps + 1
    assert refractory_steps(tau_refrac, 1.0) == steps_held
    net = Network(dt=1.0)
    net.add(Population("n", 1, LIFParameters(i_offset=100.0, tau_refrac=tau_refrac)))
    res = run(net, 50, record=("v",))
    times = np.flatnonzero(res.spikes["n"][:, 0])
    assert np.all(np.diff(times) == steps_held + 1)
    # v is held at v_reset while refractory
    for t in times[:-1]:
        assert np.all(res.variables["n"]["v"][t:t + steps_held + 1, 0] == -65.0)


def test_first_spike_time_of_offset_driven_neuron():
    # i_offset 1 nA, R = 20 MOhm: v = -65 + 20 (1 - e^{-t/20}) >= -50 first at t >= 20 ln 4 = 27.7 ms
    net = Network(dt=1.0)
    net.add(Population("n", 1, LIFParameters(i_offset=1.0, tau_refrac=2.0)))
    res = run(net, 100)
    first = int(np.flatnonzero(res.spikes["n"][:, 0])[0])
    assert (first + 1) == math.ceil(20 * math.log(4))  # row n = time (n+1) ms


def test_subtract_reset_keeps_the_overshoot():
    net = Network(dt=1.0)
    net.add(Population("n", 1, LIFParameters(i_offset=3.0, tau_refrac=0.0, reset="subtract_threshold",
                                             v_reset=-60.0)))
    res = run(net, 40, record=("v",))
    v, spikes = res.variables["n"]["v"][:, 0], res.spikes["n"][:, 0]
    t = int(np.flatnonzero(spikes)[0])
    p = propagators(20.0, 1.0, 5.0, 5.0, 1.0)
    before = -65.0 + p["P22"] * (v[t - 1] + 65.0) + p["P20"] * 3.0  # the crossing value
    assert before >= -50.0
    assert v[t] == pytest.approx(before - (-50.0 - -60.0), abs=TOL)


def test_threshold_adaptation_jumps_and_decays():
    net = Network(dt=1.0)
    net.add(Population("n", 1, LIFParameters(i_offset=2.0, tau_refrac=0.0,
                                             threshold_adaptation=ThresholdAdaptation(increment=1.5, tau=50.0))))
    res = run(net, 300, record=("threshold",))
    th, spikes = res.variables["n"]["threshold"][:, 0], res.spikes["n"][:, 0]
    times = np.flatnonzero(spikes)
    # reconstruct a(t): decays by exp(-1/50) every step, +1.5 after every spike (threshold is read before)
    a, expected = 0.0, []
    for n in range(300):
        a *= math.exp(-1 / 50)
        expected.append(-50.0 + a)
        if spikes[n]:
            a += 1.5
    assert np.abs(th - np.array(expected)).max() < TOL
    isi = np.diff(times)
    assert isi[-1] > isi[0]  # adaptation slows the neuron down


# ---- delays and analog input ---------------------------------------------------------------------
@pytest.mark.parametrize("delay", [1.0, 2.0, 7.0])
def test_delay_moves_arrival_and_first_membrane_change(delay):
    res = run(one_input(weight=1.0, delay=delay, spike_ms=10.0), 40, record=("v", "ie"))
    ie, v = res.variables["n"]["ie"][:, 0], res.variables["n"]["v"][:, 0]
    arrive = 9 + int(delay)  # spike at 10 ms = step 9
    assert np.flatnonzero(ie)[0] == arrive
    assert np.flatnonzero(v != -65.0)[0] == arrive + 1


def test_current_input_acts_in_its_own_step_like_i_offset():
    net = Network(dt=1.0)
    net.add(Population("n", 2, LIFParameters(**QUIET), current_input=True))
    cur = np.zeros((30, 2))
    cur[0, 0] = 1.0  # step 0
    cur[10:15, 1] = -0.5
    v = run(net, 30, record=("v",), currents={"n": cur}).variables["n"]["v"]
    p = propagators(20.0, 1.0, 5.0, 5.0, 1.0)
    assert v[0, 0] == pytest.approx(-65.0 + p["P20"] * 1.0, abs=TOL)
    assert np.all(v[:10, 1] == -65.0) and v[10, 1] == pytest.approx(-65.0 - 0.5 * p["P20"], abs=TOL)
    # same as the same current given as i_offset
    ref = Network(dt=1.0)
    ref.add(Population("n", 1, LIFParameters(**QUIET, i_offset=-0.5)))
    v_ref = run(ref, 5, record=("v",)).variables["n"]["v"][:, 0]
    assert np.abs(v[10:15, 1] - v_ref).max() < TOL


def test_heterogeneous_population_equals_separate_neurons():
    tau = np.array([8.0, 15.0, 30.0])
    net = Network(dt=1.0)
    net.add(PoissonSource("in", 20, rate=50.0, seed=4))
    net.add(Population("n", 3, LIFParameters(tau_m=tau, i_offset=np.array([0.2, 0.4, 0.1]), tau_refrac=2.0)))
    w = np.random.default_rng(0).uniform(0, 0.8, (20, 3))
    net.add(Projection("in", "n", weights=w))
    whole = run(net, 300, record=("v",))
    for k in range(3):
        one = Network(dt=1.0)
        one.add(PoissonSource("in", 20, rate=50.0, seed=4))
        one.add(Population("n", 1, LIFParameters(tau_m=tau[k], i_offset=[0.2, 0.4, 0.1][k], tau_refrac=2.0)))
        one.add(Projection("in", "n", weights=w[:, k:k + 1]))
        single = run(one, 300, record=("v",))
        assert np.array_equal(single.spikes["n"][:, 0], whole.spikes["n"][:, k])
        assert np.abs(single.variables["n"]["v"][:, 0] - whole.variables["n"]["v"][:, k]).max() < TOL


# ---- STDP ----------------------------------------------------------------------------------------
def pair_network(pre_ms, post_ms, delay=1.0, w0=0.5, rule=None):
    """A plastic synapse pre -> post; the post neuron is forced to fire at ``post_ms`` by a teacher
    whose spike arrives one step earlier with a current that crosses threshold at once."""
    rule = rule or STDP(tau_plus=20.0, tau_minus=15.0, A_plus=0.1, A_minus=0.12, w_min=0.0, w_max=1.0)
    net = Network(dt=1.0)
    net.add(SpikeSource("pre", 1, [pre_ms]))
    net.add(SpikeSource("teacher", 1, [[t - 2.0 for t in post_ms]]))
    net.add(Population("post", 1, LIFParameters(tau_syn_E=1.0, tau_m=10.0, tau_refrac=1.0)))
    net.add(Projection("teacher", "post", weights=np.array([[40.0]])))
    net.add(Projection("pre", "post", weights=np.array([[w0]]), delays=delay, plasticity=rule, label="syn"))
    return net, rule


def learned(net, steps=120, **kw):
    res = run(net, steps, **kw)
    return res, float(res.weights["syn"][0, 0])


@pytest.mark.parametrize("gap", [1, 4, 15])
def test_stdp_potentiation_of_one_pair(gap):
    net, rule = pair_network([20.0], [20.0 + gap])
    res, w = learned(net)
    assert np.flatnonzero(res.spikes["post"][:, 0]).tolist() == [19 + gap]
    assert w == pytest.approx(0.5 + rule.A_plus * rule.w_max * math.exp(-gap / rule.tau_plus), abs=TOL)


@pytest.mark.parametrize("gap", [1, 6])
def test_stdp_depression_of_one_pair(gap):
    net, rule = pair_network([40.0 + gap], [40.0])
    _, w = learned(net)
    assert w == pytest.approx(0.5 - rule.A_minus * rule.w_max * math.exp(-gap / rule.tau_minus), abs=TOL)


def test_stdp_coincident_pair_does_nothing():
    net, _ = pair_network([30.0], [30.0])
    _, w = learned(net)
    assert w == 0.5


def test_stdp_is_all_to_all_and_clips():
    # two pre spikes before one post spike: both pairs count
    net, rule = pair_network([10.0, 14.0], [20.0])
    _, w = learned(net)
    expected = 0.5 + rule.A_plus * rule.w_max * (math.exp(-10 / 20) + math.exp(-6 / 20))
    assert w == pytest.approx(expected, abs=TOL)
    # a big A_plus clips at w_max; a big A_minus clips at w_min
    big = STDP(tau_plus=20.0, tau_minus=20.0, A_plus=5.0, A_minus=5.0, w_min=0.1, w_max=0.9)
    assert learned(pair_network([10.0], [12.0], rule=big)[0])[1] == pytest.approx(0.9)
    assert learned(pair_network([12.0], [10.0], rule=big)[0])[1] == pytest.approx(0.1)


def test_stdp_nest_convention_times_pairs_at_the_synapse():
    # NEST: the post spike reaches the synapse `delay` later, potentiation waits for the next pre spike
    net, rule = pair_network([20.0], [25.0], delay=3.0)
    _, w_core = learned(net)
    _, w_nest = learned(net, stdp_convention="nest")
    assert w_core == pytest.approx(0.5 + rule.A_plus * math.exp(-5 / 20), abs=TOL)
    assert w_nest == 0.5  # no later pre spike: NEST has not applied the potentiation yet
    net, rule = pair_network([20.0, 90.0], [25.0], delay=3.0)
    _, w_nest = learned(net, stdp_convention="nest")
    # pair interval t_post + d - t_pre = 8 ms; the pre spike at 90 ms then depresses by the post
    # trace at 90 - 3 ms: interval 62 ms
    expected = 0.5 + rule.A_plus * math.exp(-8 / 20) - rule.A_minus * math.exp(-62 / 15)
    assert w_nest == pytest.approx(expected, abs=TOL)
    # depression: pre 6 ms after post, delay 3 -> NEST interval 3 ms, core interval 6 ms
    net, rule = pair_network([46.0], [40.0], delay=3.0)
    assert learned(net, stdp_convention="nest")[1] == pytest.approx(0.5 - rule.A_minus * math.exp(-3 / 15), abs=TOL)
    assert learned(net)[1] == pytest.approx(0.5 - rule.A_minus * math.exp(-6 / 15), abs=TOL)


# ---- interface -----------------------------------------------------------------------------------
def test_result_shapes_and_meta():
    net = Network(dt=1.0)
    net.add(PoissonSource("in", 5, rate=100.0, seed=1))
    net.add(Population("a", 3, LIFParameters()))
    net.add(Population("b", 2, LIFParameters()))
    net.add(Projection("in", "a", weights=np.full((5, 3), 1.0)))
    res = run(net, 50, record=("v", "ie", "ii", "threshold"), seed=7)
    assert res.backend == "float" and res.steps == 50 and res.dt == 1.0
    assert res.spikes["a"].shape == (50, 3) and res.spikes["b"].shape == (50, 2)
    assert set(res.variables["b"]) == {"v", "ie", "ii", "threshold"}
    assert res.meta["seed"] == 7
    # the run seed changes the Poisson inputs, reproducibly
    again = run(net, 50, record=("v",), seed=7)
    other = run(net, 50, record=("v",), seed=8)
    assert np.array_equal(again.variables["a"]["v"], res.variables["a"]["v"])
    assert not np.array_equal(other.variables["a"]["v"], res.variables["a"]["v"])


def test_bad_arguments_are_named():
    net = Network(dt=1.0)
    net.add(Population("n", 2, LIFParameters(), current_input=True))
    net.add(Population("m", 1, LIFParameters()))
    with pytest.raises(FloatReferenceError, match="cannot record 'w'"):
        run(net, 5, record=("w",))
    with pytest.raises(FloatReferenceError, match=r"currents\['n'\] has shape \(4, 2\)"):
        run(net, 5, currents={"n": np.zeros((4, 2))})
    with pytest.raises(FloatReferenceError, match="current_input=False"):
        run(net, 5, currents={"m": np.zeros((5, 1))})
    with pytest.raises(FloatReferenceError, match="steps"):
        run(net, -1)
    with pytest.raises(FloatReferenceError, match="stdp_convention"):
        run(net, 5, stdp_convention="brian")
    bad = Network(dt=1.0)
    bad.add(Population("n", 1, LIFParameters(tau_m=-1.0)))
    with pytest.raises(NetworkValidationError, match="tau_m"):
        run(bad, 5)
