"""The golden backend: compiled networks behave as the physics says, in physical units."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spikeforge.compiler import compile
from spikeforge.compiler.network import (
    STDP, LIFParameters, Network, PoissonSource, Population, Projection, SpikeSource, ThresholdAdaptation,
)
from spikeforge.core.config import CoreConfig
from spikeforge.sim import golden
from spikeforge.sim.backends import simulate as simulate_any
from spikeforge.sim.golden import CoreRecord
from spikeforge.sim.golden_backend import GoldenBackendError, record_to_result, simulate


def lif_isi_ms(i_na, tau_m=20.0, cm=1.0, theta_mv=15.0, t_ref=2.0) -> float:
    """Analytic inter-spike interval of a LIF neuron with constant current, reset to rest:
    t_ref + tau_m ln(R I / (R I - theta)), R = tau_m / cm."""
    ri = i_na * tau_m / cm
    return t_ref + tau_m * math.log(ri / (ri - theta_mv))


def isi_of(raster: np.ndarray, dt: float) -> float:
    times = np.flatnonzero(raster) * dt
    return float(np.diff(times).mean())


def test_constant_current_above_rheobase_fires_at_the_analytic_lif_rate():
    dt = 0.1
    net = Network(dt=dt)
    params = LIFParameters(i_offset=np.array([1.0, 1.5, 3.0, 0.7]), tau_refrac=2.0)
    net.add(Population("p", 4, params))
    res = simulate(net, 10_000)  # 1 s
    spikes = res.spikes["p"]
    for k, i_na in enumerate((1.0, 1.5, 3.0)):
        analytic = lif_isi_ms(i_na)
        # discretisation adds < one step per interval; quantisation must not add more than that
        assert isi_of(spikes[:, k], dt) == pytest.approx(analytic, abs=dt * 1.01), i_na
        assert res.rates_hz("p")[k] == pytest.approx(1000.0 / analytic, rel=0.04)
    # 0.7 nA is below the rheobase (theta cm / tau_m = 0.75 nA): never fires
    assert spikes[:, 3].sum() == 0


def test_current_inputs_reach_the_first_neurons_and_drive_them_like_i_offset():
    dt = 0.1
    net = Network(dt=dt)
    net.add(Population("quiet", 2))
    net.add(Population("driven", 2, LIFParameters(tau_refrac=2.0), current_input=True))
    c = compile(net)
    assert c.mapping.neurons["driven"] == range(0, 2) and c.config.n_current_inputs == 2
    steps = 5000
    current = np.zeros((steps, 2))
    current[:, 0] = 1.5
    current[1000:, 1] = 3.0
    res = simulate(net, steps, currents={"driven": current}, record=("v",))
    driven = res.spikes["driven"]
    assert isi_of(driven[:, 0], dt) == pytest.approx(lif_isi_ms(1.5), abs=dt * 1.01)
    assert driven[:1000, 1].sum() == 0 and driven[1000:, 1].sum() > 0
    assert res.spikes["quiet"].sum() == 0
    # one step of 1.5 nA from rest moves the membrane by P20 * I
    p20 = 20.0 * (1 - math.exp(-dt / 20.0))
    assert res.variables["driven"]["v"][0, 0] == pytest.approx(-65.0 + p20 * 1.5, abs=c.scaling.v_lsb)
    # one array is accepted when a single population takes current input
    again = simulate(net, steps, currents=current)
    np.testing.assert_array_equal(again.spikes["driven"], driven)


def test_bad_current_inputs_are_clear_errors():
    net = Network()
    net.add(Population("a", 2))
    net.add(Population("b", 1, current_input=True))
    with pytest.raises(ValueError, match="'a', which does not take input currents"):
        simulate(net, 10, currents={"a": np.zeros((10, 2))})
    with pytest.raises(ValueError, match=r"currents\['b'\] has shape \(10, 3\), expected \(steps, size\) = \(10, 1\)"):
        simulate(net, 10, currents={"b": np.zeros((10, 3))})
    with pytest.raises(ValueError, match="beyond the analog input range"):
        simulate(net, 10, currents={"b": np.full((10, 1), 1e6)})
    with pytest.raises(GoldenBackendError, match="cannot record 'x_trace'"):
        simulate(net, 10, record=("x_trace",))


def test_a_spike_arrives_after_its_delay_with_its_weight():
    net = Network(dt=1.0)
    net.add(SpikeSource("s", 1, [[5.0]]))
    net.add(Population("p", 2))
    net.add(Projection("s", "p", weights=np.array([[0.5, 0.0]]), delays=3.0))
    net.add(Projection("s", "p", weights=np.array([[0.0, 0.8]]), receptor="inhibitory", label="inh"))
    c = compile(net)
    res = simulate(net, 20, record=("v", "ie", "ii"))
    ie = res.variables["p"]["ie"][:, 0]
    ii = res.variables["p"]["ii"][:, 1]
    # source spike time 5 ms = step 4; excitatory delay 3 -> arrives in step 7, inhibitory delay 1 -> step 5
    assert (ie[:7] == 0).all() and ie[7] == pytest.approx(0.5, rel=1 / 127)
    assert (ii[:5] == 0).all() and ii[5] == pytest.approx(-0.8, rel=1 / 127)
    assert ie[8] == pytest.approx(0.5 * math.exp(-1 / 5.0), rel=1 / 127)
    # the membrane answers one step later with P21 * I
    p21 = 5 * 20 / 15 * (math.exp(-1 / 20) - math.exp(-1 / 5))
    v = res.variables["p"]["v"]
    lsb = c.scaling.v_lsb
    assert v[7, 0] == pytest.approx(-65.0, abs=lsb) and v[8, 0] == pytest.approx(-65.0 + p21 * 0.5, rel=1e-4)
    assert v[6, 1] == pytest.approx(-65.0 - p21 * 0.8, rel=1e-4)
    assert res.meta["quantisation"]["profiles"] == c.config.n_profiles


def test_stdp_potentiation_of_a_pre_before_post_pair():
    rule = STDP(tau_plus=20.0, tau_minus=20.0, A_plus=0.05, A_minus=0.0, w_min=0.0, w_max=1.0)
    net = Network(dt=1.0)
    net.add(SpikeSource("pre", 2, [[10.0], []]))
    net.add(SpikeSource("kick", 1, [[14.0]]))
    net.add(Population("post", 1))
    net.add(Projection("pre", "post", weights=np.array([[0.2], [0.3]]), plasticity=rule))
    net.add(Projection("kick", "post", weights=np.array([[25.0]])))
    res = simulate(net, 40)
    post_steps = np.flatnonzero(res.spikes["post"][:, 0])
    gaps = post_steps - 9  # pre spike at 10 ms = step 9
    assert len(gaps) >= 1 and (gaps > 0).all()
    w = res.weights["pre->post"]
    assert w.shape == (2, 1)
    c = compile(net)
    lsb = c.scaling.plastic_lsb
    # every post spike adds A_plus * w_max * exp(-gap / tau_plus); each step rounds to half a unit
    expected = sum(0.05 * 1.0 * math.exp(-g / 20.0) for g in gaps)
    assert w[0, 0] - 0.2 == pytest.approx(expected, abs=(len(gaps) + 1) * lsb)
    assert w[0, 0] > 0.2 + 0.5 * expected
    assert w[1, 0] == pytest.approx(0.3, abs=lsb / 2)  # never spiked: unchanged
    assert "kick->post" not in res.weights


def test_threshold_adaptation_in_millivolts():
    net = Network(dt=1.0)
    net.add(Population("a", 1, LIFParameters(i_offset=2.0, tau_refrac=1.0,
                                             threshold_adaptation=ThresholdAdaptation(increment=1.0, tau=50.0))))
    res = simulate(net, 200, record=("threshold", "adapt", "v"))
    thr = res.variables["a"]["threshold"][:, 0]
    adapt = res.variables["a"]["adapt"][:, 0]
    first = int(np.flatnonzero(res.spikes["a"][:, 0])[0])
    assert thr[first] == pytest.approx(-50.0, abs=1e-3)
    assert thr[first + 1] == pytest.approx(-50.0 + math.exp(-1 / 50.0), abs=1e-3)
    assert adapt[first] == pytest.approx(1.0, abs=1e-3)  # recorded after the spike's increment
    isis = np.diff(np.flatnonzero(res.spikes["a"][:, 0]))
    assert isis[-1] > isis[0]  # adaptation slows the neuron down


def test_fast_kernel_and_numpy_reference_agree_and_seeds_work():
    net = Network(dt=1.0)
    net.add(PoissonSource("noise", 20, rate=40.0, seed=1))
    net.add(Population("p", 10, LIFParameters(tau_refrac=2.0)))
    rng = np.random.default_rng(0)
    # no weight so small that it rounds to 0 (the compiler would warn that it vanishes)
    net.add(Projection("noise", "p", weights=0.05 + rng.random((20, 10)) * 1.45, delays=2.0))
    net.add(Projection("p", "p", weights=0.02 + rng.random((10, 10)) * 0.48, receptor="inhibitory"))
    a = simulate(net, 300, seed=7, record=("v", "ii"), fast=True)
    b = simulate(net, 300, seed=7, record=("v", "ii"), fast=False)
    assert a.meta["fast_kernel"] and not b.meta["fast_kernel"]
    np.testing.assert_array_equal(a.spikes["p"], b.spikes["p"])
    np.testing.assert_array_equal(a.variables["p"]["v"], b.variables["p"]["v"])
    assert a.spikes["p"].sum() > 0
    other = simulate(net, 300, seed=8)
    assert not np.array_equal(other.spikes["p"], a.spikes["p"])
    via_registry = simulate_any(net, 300, backend="golden", seed=7)
    np.testing.assert_array_equal(via_registry.spikes["p"], a.spikes["p"])


def test_agrees_with_the_float_reference_up_to_quantisation():
    """Same spikes and membrane within 0.05 mV of the float reference (sim/float_ref.py), whose only
    difference is rounding. 12-bit weights: with 8 bits a weight is off by up to 0.5/127 of its row's
    largest, enough to move a close threshold crossing by a step."""
    from spikeforge.sim import float_ref

    net = Network(dt=0.5)
    net.add(SpikeSource("s", 3, [[5.0, 5.5, 20.0, 21.0], [7.5, 8.0, 8.5], [30.0, 31.0, 32.0]]))
    net.add(Population("p", 2, LIFParameters(tau_refrac=2.0)))
    net.add(Projection("s", "p", weights=np.array([[9.0, 3.0], [4.0, 1.5], [6.0, 8.0]]), delays=1.0))
    net.add(Projection("p", "p", weights=np.array([[0.0, 2.0], [1.0, 0.0]]), receptor="inhibitory", delays=2.0))
    g = simulate(net, 200, record=("v", "ie", "ii"), weight_bits=12)
    f = float_ref.simulate(net, 200, record=("v", "ie", "ii"))
    np.testing.assert_array_equal(g.spikes["p"], f.spikes["p"])
    assert g.spikes["p"].sum() >= 4
    # 8-bit weights: the same spike counts
    g8 = simulate(net, 200, record=("v",))
    np.testing.assert_array_equal(g8.spikes["p"].sum(axis=0), f.spikes["p"].sum(axis=0))
    np.testing.assert_allclose(g.variables["p"]["v"], f.variables["p"]["v"], atol=0.05)
    for name in ("ie", "ii"):
        np.testing.assert_allclose(g.variables["p"][name], f.variables["p"][name], atol=0.05)


def test_record_to_result_for_any_core_record():
    net = Network(dt=1.0)
    net.add(Population("a", 2, LIFParameters(i_offset=2.0)))
    net.add(Population("b", 1))
    c = compile(net, CoreConfig(n_neurons=4, n_inputs=0))
    final, rec = golden.run(c.image, steps=30, record=("v",))
    res = record_to_result(c, rec, "rtl", final_image=final, meta={"simulator": "icarus"})
    assert res.backend == "rtl" and res.steps == 30 and list(res.spikes) == ["a", "b"]
    np.testing.assert_array_equal(res.spikes["a"], rec.spikes[:, :2])
    assert res.variables["b"]["v"].shape == (30, 1)
    np.testing.assert_allclose(res.variables["b"]["v"], -65.0, atol=c.scaling.v_lsb)
    assert res.meta["simulator"] == "icarus" and res.meta["config"]["n_neurons"] == 4
    with pytest.raises(GoldenBackendError, match=r"expected \(steps, 4\)"):
        record_to_result(c, CoreRecord(spikes=np.zeros((2, 3, 4), dtype=bool)), "board")
