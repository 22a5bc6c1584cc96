"""Quantisation formulas (docs/quantisation.md) against hand-computed values, and the report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from spikeforge.compiler import QuantisationWarning, compile
from spikeforge.compiler import propagators as prop
from spikeforge.compiler.network import (
    STDP, LIFParameters, Network, Population, Projection, SpikeSource, ThresholdAdaptation,
)
from spikeforge.compiler.quantise import stdp_pair_reach_ms, trace_saturation_rate_hz
from spikeforge.compiler.scaling import choose_current_scale, choose_voltage_scale, voltage_rooms
from spikeforge.core import fixedpoint as fx


def single(params=None, dt=1.0, **kw) -> Network:
    net = Network(dt=dt)
    net.add(Population("p", 1, params or LIFParameters(), **kw))
    return net


def fed(weights_by_row, receptor="excitatory", dt=1.0, plasticity=None) -> Network:
    """Sources 'in' (one per row) projecting onto population 'p' with the given (rows, cols) weights."""
    w = np.asarray(weights_by_row, dtype=float)
    net = Network(dt=dt)
    net.add(SpikeSource("in", w.shape[0], [[] for _ in range(w.shape[0])]))
    net.add(Population("p", w.shape[1]))
    net.add(Projection("in", "p", weights=w, receptor=receptor, plasticity=plasticity))
    return net


# ---- propagators ---------------------------------------------------------------------------------
def test_propagators_match_the_textbook_formulas():
    dt, tau_m, tau_s, cm = 0.1, 20.0, 5.0, 0.25
    expected_p21 = tau_s * tau_m / (cm * (tau_m - tau_s)) * (math.exp(-dt / tau_m) - math.exp(-dt / tau_s))
    assert prop.p21(dt, tau_m, tau_s, cm) == pytest.approx(expected_p21, rel=1e-12)
    assert prop.p20(dt, tau_m, cm) == pytest.approx(tau_m / cm * (1 - math.exp(-dt / tau_m)), rel=1e-12)
    # equal taus: the limit dt/cm exp(-dt/tau); nearly equal taus: continuous, no cancellation
    assert prop.p21(dt, 10.0, 10.0, cm) == pytest.approx(dt / cm * math.exp(-dt / 10.0), rel=1e-12)
    assert prop.p21(dt, 10.0, 10.0 + 1e-10, cm) == pytest.approx(dt / cm * math.exp(-dt / 10.0), rel=1e-9)
    # perfect integrator
    assert prop.p20(dt, math.inf, 2.0) == pytest.approx(dt / 2.0)


def test_psp_peak_is_the_maximum_of_the_kernel():
    t = np.linspace(0, 200, 200001)
    kernel = 5 * 20 / 15 * (np.exp(-t / 20) - np.exp(-t / 5))
    assert prop.psp_peak(20.0, 5.0, 1.0) == pytest.approx(kernel.max(), rel=1e-6)
    assert prop.psp_peak(10.0, 10.0, 1.0) == pytest.approx((t * np.exp(-t / 10.0)).max(), rel=1e-6)


# ---- voltage scale ---------------------------------------------------------------------------------
def test_voltage_window_spans_the_parameters_with_room_and_uses_every_bit():
    v_lsb, v_offset, choice = choose_voltage_scale(-65.0, -50.0, -50.0, below=0.0, above=0.0, v_bits=16)
    # no inhibition, adaptation or subtract reset: a quarter span (3.75 mV) of room on each side
    assert choice.window == (-68.75, -46.25)
    assert v_lsb == pytest.approx(22.5 / (2 ** 16 - 2))
    assert v_offset == pytest.approx(-57.5)
    lo, hi = v_offset + v_lsb * fx.smin(16), v_offset + v_lsb * fx.smax(16)
    assert lo <= -68.75 and hi >= -46.25 - 1e-12
    _, _, wide = choose_voltage_scale(-65.0, -50.0, -50.0, below=40.0, above=10.0, v_bits=16)
    assert wide.window == (-105.0, -40.0)


def test_voltage_rooms_follow_the_mechanisms():
    span = 15.0
    assert voltage_rooms(span, 0.0, 0.0, False, 0.0, 0.0) == (0.0, 0.0)
    assert voltage_rooms(span, 10.0, 0.0, False, 0.0, 0.0)[0] == 10.0  # one inhibitory volley
    assert voltage_rooms(span, 500.0, 0.0, False, 0.0, 0.0)[0] == 60.0  # at most 4 spans
    assert voltage_rooms(span, 0.0, 0.0, True, 0.0, 0.0)[0] == 15.0  # analog input may be negative
    assert voltage_rooms(span, 0.0, 7.0, False, 0.0, 0.0)[0] == 7.0  # negative i_offset equilibrium
    assert voltage_rooms(span, 0.0, 0.0, False, 100.0, 0.0)[1] == 30.0  # adaptation: at most 2 spans
    assert voltage_rooms(span, 0.0, 0.0, False, 4.0, 0.0)[1] == 6.0  # 1.5 x the regular-train peak
    assert voltage_rooms(span, 0.0, 0.0, False, 0.0, 4.0)[1] == 4.0  # subtract-reset overshoot
    assert voltage_rooms(span, 0.0, 0.0, False, 4.0, 4.0)[1] == 10.0  # overshoot above an adapted threshold


def test_compiled_window_holds_inhibition_below_rest():
    net = fed([[2.0, 2.0]], receptor="inhibitory")
    c = compile(net)
    dip = 2.0 * prop.psp_peak(20.0, 5.0, 1.0)
    assert c.scaling.voltage_window[0] <= -65.0 - dip
    assert not any(r.kind == "voltage" for r in c.report.risks)


def test_voltage_parameters_quantise_within_half_an_lsb():
    net = single(LIFParameters(v_rest=-65.0, v_reset=-70.123, v_thresh=-52.3456))
    c = compile(net)
    s = c.scaling
    for name, value in (("v_rest", -65.0), ("v_reset", -70.123), ("v_thresh", -52.3456)):
        q = int(c.image.profiles[name][0])
        assert q == round((value - s.v_offset) / s.v_lsb)
        assert abs(s.v_from_int(q) - value) <= s.v_lsb / 2
        assert c.report.parameter(name).abs_error <= s.v_lsb / 2
    assert c.image.v[0] == c.image.profiles["v_rest"][0]  # v_init defaults to v_rest


def test_voltage_range_override():
    c = compile(single(), voltage_range=(-100.0, 0.0))
    lo, hi = c.scaling.voltage_window
    assert c.scaling.v_lsb == pytest.approx(100.0 / 65534)
    assert lo == pytest.approx(-100.0, abs=c.scaling.v_lsb) and hi == pytest.approx(0.0, abs=c.scaling.v_lsb)


def test_adaptation_widens_the_window_above_threshold():
    plain = compile(single())
    adaptive = compile(single(LIFParameters(threshold_adaptation=ThresholdAdaptation(increment=0.5, tau=1e6))))
    # adaptation room is capped at two spans (2 * 15 mV) above threshold
    assert adaptive.scaling.voltage_window[1] == pytest.approx(-50.0 + 30.0)
    assert adaptive.scaling.voltage_window[1] > plain.scaling.voltage_window[1]


# ---- coefficients and per-neuron integers -----------------------------------------------------------
def test_coefficients_bias_refractory_and_adaptation_by_hand():
    dt = 0.5
    params = LIFParameters(tau_m=12.0, cm=0.5, tau_syn_E=3.0, tau_syn_I=7.0, i_offset=0.3, tau_refrac=2.2,
                           threshold_adaptation=ThresholdAdaptation(increment=0.2, tau=80.0))
    c = compile(single(params, dt=dt))
    s, p = c.scaling, {k: int(v[0]) for k, v in c.image.profiles.items()}
    assert p["c_vdecay"] == fx.coef(math.exp(-dt / 12.0))
    assert p["c_edecay"] == fx.coef(math.exp(-dt / 3.0))
    assert p["c_idecay"] == fx.coef(math.exp(-dt / 7.0))
    p21e = 3.0 * 12.0 / (0.5 * 9.0) * (math.exp(-dt / 12.0) - math.exp(-dt / 3.0))
    p21i = 7.0 * 12.0 / (0.5 * 5.0) * (math.exp(-dt / 12.0) - math.exp(-dt / 7.0))
    assert p["c_ie"] == fx.coef(p21e * s.i_lsb / s.v_lsb)
    assert p["c_ii"] == fx.coef(p21i * s.i_lsb / s.v_lsb)
    assert max(p["c_ie"], p["c_ii"]) <= fx.COEF_MAX
    p20 = 12.0 / 0.5 * (1 - math.exp(-dt / 12.0))
    assert p["bias"] == round(p20 * 0.3 / s.v_lsb)
    assert p["refrac"] == 5  # 2.2 ms / 0.5 ms = 4.4 steps, rounded up as NEST does
    assert p["a_inc"] == round(0.2 / s.v_lsb)
    assert p["c_adecay"] == fx.coef(math.exp(-dt / 80.0))
    assert p["reset_subtract"] == 0
    assert c.config.adaptive_threshold


def test_refractory_rounds_up_and_adaptation_without_decay_is_exactly_one():
    c = compile(single(LIFParameters(tau_refrac=0.1, reset="subtract_threshold",
                                     threshold_adaptation=ThresholdAdaptation(increment=0.1, tau=math.inf))))
    assert int(c.image.profiles["refrac"][0]) == 1
    assert int(c.image.profiles["c_adecay"][0]) == fx.COEF_ONE
    assert int(c.image.profiles["reset_subtract"][0]) == 1


def test_current_scale_respects_the_gain_limit_and_the_current_range():
    v_lsb = 2.0 ** -10
    p21 = 0.8833
    i_lsb, choice = choose_current_scale(v_lsb, p21, plausible_current=3.0, row_max_weights=np.array([0.5, 1.0]),
                                         i_bits=16, weight_bits=8)
    assert fx.coef(p21 * i_lsb / v_lsb) <= fx.COEF_MAX
    assert i_lsb == 2.0 ** math.floor(math.log2(i_lsb))
    assert i_lsb * fx.smax(16) >= 3.0
    assert i_lsb <= 0.5 / 127  # the smallest row still uses its full 8 bits
    # a huge plausible current wins over weight precision (saturation is worse than resolution)
    i_big, choice = choose_current_scale(v_lsb, p21, plausible_current=500.0, row_max_weights=np.array([0.01]),
                                         i_bits=16, weight_bits=8)
    assert i_big * fx.smax(16) >= 500.0 or i_big * 2 > choice.i_lsb_gain_max
    assert "range" in choice.limited_by


# ---- weights ------------------------------------------------------------------------------------------
def test_row_shift_is_the_smallest_that_fits_and_weights_round_to_nearest():
    w = np.array([[1.0, 0.3, 0.0], [0.05, 0.02, 0.01]])
    c = compile(fed(w))
    s = c.scaling
    rows = c.mapping.rows_of("in")
    for k, r in enumerate(rows):
        shift = int(c.image.row_shift[r])
        big = w[k].max()
        assert round(big / (s.i_lsb * 2 ** shift)) <= 127
        assert shift == 0 or round(big / (s.i_lsb * 2 ** (shift - 1))) > 127
        expected = np.rint(w[k] / (s.i_lsb * 2 ** shift)).astype(int)
        np.testing.assert_array_equal(c.image.weights[r, :3], expected)
    # the relative error of the largest weight of a row is at most half a unit in 127
    assert c.report.projection("in->p").max_rel_error <= 0.5 / 0.01 * s.i_lsb * 2 ** int(c.image.row_shift[rows[1]])


def test_inhibitory_weights_are_negative_integers():
    c = compile(fed([[0.4, 0.2]], receptor="inhibitory"))
    r = c.mapping.rows_of("in")[0]
    assert (c.image.weights[r, :2] < 0).all()
    lsb = c.scaling.weight_lsb([r])[0]
    np.testing.assert_allclose(-c.image.weights[r, :2] * lsb, [0.4, 0.2], rtol=1 / 127)
    assert c.mapping.projections["in->p"].sign == -1


def test_synapses_that_round_to_zero_are_counted_and_warned_about():
    w = np.array([[2.0, 0.001, 0.004, 0.5]])
    with pytest.warns(QuantisationWarning, match="round to weight 0"):
        c = compile(fed(w))
    row = c.report.projection("in->p")
    lsb = c.scaling.weight_lsb([c.mapping.rows_of("in")[0]])[0]
    expected_zero = int(np.sum(np.rint(w[0] / lsb) == 0))
    assert expected_zero >= 1
    assert row.rounded_to_zero == expected_zero == c.report.zero_weight_count
    assert any(r.kind == "weights" and r.severity == "warning" for r in c.report.risks)
    # with 16-bit weights nothing vanishes
    c16 = compile(fed(w), weight_bits=16, warn=False)
    assert c16.report.zero_weight_count == 0


def test_delays_in_steps():
    net = fed([[0.5, 0.5]], dt=0.5)
    net.projections[0].delays = np.array([[0.5, 3.0]])
    c = compile(net)
    r = c.mapping.rows_of("in")[0]
    np.testing.assert_array_equal(c.image.delays[r, :2], [1, 6])
    assert c.config.max_delay == 6


# ---- STDP ---------------------------------------------------------------------------------------------
def test_stdp_constants_by_hand():
    rule = STDP(tau_plus=16.8, tau_minus=33.7, A_plus=0.01, A_minus=0.012, w_min=0.0, w_max=0.8)
    net = fed([[0.3, 0.6]], plasticity=rule)
    net.add(SpikeSource("other", 1, [[]]))
    net.add(Projection("other", "p", weights=np.array([[3.0, 0.0]])))  # a static row with larger weights
    c = compile(net)
    s = c.scaling
    sp = s.plastic_shift
    wlsb = s.i_lsb * 2 ** sp
    assert round(0.8 / wlsb) <= 127 and (sp == 0 or round(0.8 / (wlsb / 2)) > 127)
    st = c.image.stdp
    f = c.config.trace_frac
    assert st["c_xdecay"] == fx.coef(math.exp(-1.0 / 16.8))
    assert st["c_ydecay"] == fx.coef(math.exp(-1.0 / 33.7))
    assert st["x_inc"] == round(0.01 * 0.8 / wlsb * 2 ** f)
    assert st["y_inc"] == round(0.012 * 0.8 / wlsb * 2 ** f)
    assert st["w_min"] == 0 and st["w_max"] == round(0.8 / wlsb)
    plastic_row = c.mapping.rows_of("in")[0]
    static_row = c.mapping.rows_of("other")[0]
    assert c.image.row_shift[plastic_row] == sp
    assert c.image.plastic[plastic_row, :2].all() and not c.image.plastic[static_row].any()
    assert c.image.row_shift[static_row] > sp  # larger static weights get their own scale
    assert c.config.stdp
    assert c.scaling.trace_lsb == pytest.approx(wlsb / 2 ** f)


def test_stdp_steps_that_round_to_zero_are_reported():
    rule = STDP(A_plus=1e-5, A_minus=1e-5, w_max=1.0)
    c = compile(fed([[0.5]], plasticity=rule))
    assert c.image.stdp["x_inc"] < 2 ** (c.config.trace_frac - 1)
    assert any(r.kind == "stdp" and "round to 0" in r.message for r in c.report.risks)
    assert c.report.stdp["pair_reach_ms"]["potentiation"] == 0.0


def test_stdp_helper_formulas():
    # rnd(inc * exp(-d/tau) >> 4) >= 1  <=>  inc * exp(-d/tau) >= 8
    assert stdp_pair_reach_ms(32, 20.0, 4) == pytest.approx(20.0 * math.log(4.0))
    assert stdp_pair_reach_ms(7, 20.0, 4) == 0.0
    # peak of a regular train inc / (1 - exp(-T/tau)) reaches 4095 at T = -tau ln(1 - inc/4095)
    rate = trace_saturation_rate_hz(1000, 20.0, 1.0, 12)
    period = 1000.0 / rate
    assert 1000 / (1 - math.exp(-period / 20.0)) == pytest.approx(4095.0, rel=1e-9)
    # small increments cannot saturate even when the neuron fires every step
    assert trace_saturation_rate_hz(100, 20.0, 1.0, 12) == 1000.0
    assert trace_saturation_rate_hz(100, math.inf, 1.0, 12) == 0.0


# ---- report -------------------------------------------------------------------------------------------
def test_report_is_json_and_text():
    net = fed([[0.5, 0.25]])
    net.populations[0].params = LIFParameters(i_offset=np.array([0.0, 0.37]), tau_refrac=2.0)
    c = compile(net)
    d = c.report.to_dict()
    json.dumps(d)
    assert d["profiles"] == 2 == c.config.n_profiles
    assert d["memory_bits"] == c.config.memory_bits()
    assert d["memory_bits_total"] == sum(c.config.memory_bits().values())
    text = c.report.to_text()
    for section in ("Scaling", "Neuron parameters", "Projections", "Risks", "Memory"):
        assert section in text
    row = c.report.parameter("i_offset", profile=1)
    p20 = 20.0 * (1 - math.exp(-1 / 20.0))
    quantised = round(p20 * 0.37 / c.scaling.v_lsb) * c.scaling.v_lsb / p20
    assert row.quantised == pytest.approx(quantised)
    assert row.rel_error == pytest.approx(abs(quantised - 0.37) / 0.37)
    assert len(c.report.rich_tables()) == len(c.report.sections())


def test_small_i_offset_that_rounds_to_nothing_is_a_warning():
    c = compile(single(LIFParameters(i_offset=1e-9)))
    assert int(c.image.profiles["bias"][0]) == 0
    assert any(r.kind == "parameters" and "no drive" in r.message for r in c.report.warnings)


def test_current_range_option_sizes_the_current_scale():
    net = fed([[0.5, 0.5]])
    c = compile(net, current_range=100.0)
    assert 100.0 <= c.scaling.current_range <= 200.0
    assert c.scaling.current.limited_by == "current range given by the user"
    with pytest.raises(ValueError, match="current_range = -1"):
        compile(net, current_range=-1.0)


def test_wide_widths_keep_every_weight_reachable_by_the_row_shift():
    """32-bit membrane and currents would make i_lsb tiny; the largest weight must still fit 127 x 2**15."""
    net = fed([[0.5, 0.25]])
    c = compile(net, v_bits=32, i_bits=32)
    r = c.mapping.rows_of("in")[0]
    assert 0 <= c.image.row_shift[r] <= fx.ROW_SHIFT_MAX
    lsb = c.scaling.weight_lsb([r])[0]
    np.testing.assert_allclose(c.image.weights[r, :2] * lsb, [0.5, 0.25], rtol=1 / 127)
    assert max(c.image.profiles["c_ie"][0], c.image.profiles["c_ii"][0]) <= fx.COEF_MAX
