"""Every rule of the timestep (docs/core-spec.md, section 4) against values computed by hand.

Each test builds a tiny core from ``CoreImage.blank`` (no decay, no synapses, threshold at the top
of the range) and sets only the fields the rule needs; the expected integers are worked out in the
test with the arithmetic in a comment. Every test runs on the reference model (golden.py) and on
the compiled kernel (golden_fast.py), so both are held to the hand-computed values.
"""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge.core import fixedpoint as fx
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage
from spikeforge.sim import golden, golden_fast
from spikeforge.sim.golden import GoldenInputError

ONE = fx.COEF_ONE  # 32768 = 1.0 in Q1.15
HALF = ONE // 2  # 16384 = 0.5
QUARTER = ONE // 4  # 8192 = 0.25


@pytest.fixture(params=["golden", "golden_fast"])
def run(request):
    """The ``run`` function of the model under test."""
    return {"golden": golden.run, "golden_fast": golden_fast.run}[request.param]


def blank(n_neurons=1, n_inputs=0, **config) -> CoreImage:
    """A blank core with one profile: no decay (coefficients 1.0), no gain, rest/reset 0, threshold
    at the top of the v range, refractory 0, no synapses."""
    return CoreImage.blank(CoreConfig(n_neurons=n_neurons, n_inputs=n_inputs, n_profiles=1, **config))


def profile(img: CoreImage, **fields) -> CoreImage:
    for name, value in fields.items():
        img.profiles[name][0] = value
    return img


def spikes_at(steps: int, width: int, events) -> np.ndarray:
    """A (steps, width) input raster with True at each (step, input) of ``events``."""
    raster = np.zeros((steps, width), dtype=bool)
    for t, a in events:
        raster[t, a] = True
    return raster


# ---- Phase 1: membrane ------------------------------------------------------------------------
def test_leak_toward_rest_rounds_toward_zero_above_rest(run):
    img = profile(blank(), c_vdecay=30000, v_rest=100)
    img.v[0] = 1100
    out, _ = run(img, steps=1)
    # acc = 30000 * (1100 - 100) = 30_000_000; 30_000_000 / 32768 = 915.53 -> rtz 915; v = 915 + 100
    assert out.v[0] == 1015


def test_leak_toward_rest_rounds_toward_zero_below_rest(run):
    img = profile(blank(), c_vdecay=30000, v_rest=100)
    img.v[0] = -900
    out, _ = run(img, steps=1)
    # acc = 30000 * (-900 - 100) = -30_000_000; / 32768 = -915.53 -> rtz -915 (floor would give -916)
    assert out.v[0] == -915 + 100


@pytest.mark.parametrize("offset", [1, -1])
def test_leak_reaches_rest_exactly(run, offset):
    img = profile(blank(), c_vdecay=32767, v_rest=-40)
    img.v[0] = -40 + offset
    out, _ = run(img, steps=1)
    # acc = 32767 * (+-1) -> +-0.99997 -> rtz 0: a decaying membrane lands exactly on v_rest
    assert out.v[0] == -40


def test_bias_is_added_every_step_after_the_leak(run):
    img = profile(blank(), c_vdecay=HALF, bias=7)
    _, rec = run(img, steps=3, record=["v"])
    # step 0: rtz(0.5 * 0) + 0 + 7 = 7; step 1: rtz(0.5 * 7 = 3.5) = 3, + 7 = 10; step 2: 5 + 7 = 12
    assert rec["v"][:, 0].tolist() == [7, 10, 12]


def test_current_to_voltage_gains_round_once(run):
    img = profile(blank(), c_ie=HALF, c_ii=QUARTER)
    img.ie[0], img.ii[0] = 1001, -603
    out, _ = run(img, steps=1)
    # acc = 32768 * 0 + 16384 * 1001 + 8192 * (-603) = 16_400_384 - 4_939_776 = 11_460_608
    # 11_460_608 / 32768 = 349.75 -> rtz 349 (rounding each product first would give 500 - 150 = 350)
    assert out.v[0] == 349
    assert (out.ie[0], out.ii[0]) == (1001, -603)  # c_edecay = c_idecay = 1.0: currents unchanged


def test_membrane_uses_the_currents_of_the_previous_step(run):
    img = profile(blank(), c_ie=ONE, c_edecay=HALF)
    img.ie[0] = 100
    _, rec = run(img, steps=2, record=["v", "ie"])
    # step 0: v = rtz(1.0 * 100) = 100 (old ie), then ie = rtz(0.5 * 100) = 50
    # step 1: v = 100 + 50 = 150, then ie = 25
    assert rec["v"][:, 0].tolist() == [100, 150]
    assert rec["ie"][:, 0].tolist() == [50, 25]


# ---- Phase 2: synaptic currents ----------------------------------------------------------------
def test_synaptic_current_decay_rounds_toward_zero(run):
    img = profile(blank(n_neurons=2), c_edecay=HALF, c_idecay=HALF)
    img.ie[:] = [1001, 7]
    img.ii[:] = [-1001, -7]
    out, _ = run(img, steps=1)
    # 0.5 * 1001 = 500.5 -> 500; 0.5 * 7 = 3.5 -> 3; and on the inhibitory side toward zero, -500, -3
    assert out.ie.tolist() == [500, 3]
    assert out.ii.tolist() == [-500, -3]


def test_arrivals_are_added_after_decay_and_the_slot_is_cleared(run):
    img = profile(blank(), c_edecay=HALF, c_idecay=HALF)
    img.ie[0], img.ii[0] = 1000, -1000
    img.ring[0, 0, 0], img.ring[0, 1, 0] = 300, -300
    out, _ = run(img, steps=1)
    # ie = rtz(0.5 * 1000) + 300 = 800 (not (1000 + 300) / 2 = 650); ii = -500 - 300 = -800
    assert (out.ie[0], out.ii[0]) == (800, -800)
    assert out.ring[0, :, 0].tolist() == [0, 0]


def test_weight_sign_routes_to_excitatory_or_inhibitory_current(run):
    img = blank(n_neurons=2, n_inputs=1)
    img.weights[0] = [5, -3]
    _, rec = run(img, spikes_at(2, 1, [(0, 0)]), record=["ie", "ii"])
    # spike in step 0 -> ring slot read in step 1: neuron 0 gets ie += 5, neuron 1 gets ii += -3
    assert rec["ie"][1].tolist() == [5, 0]
    assert rec["ii"][1].tolist() == [0, -3]
    assert rec["ie"][0].tolist() == [0, 0] and rec["ii"][0].tolist() == [0, 0]


def test_row_shift_scales_the_weight(run):
    img = blank(n_neurons=2, n_inputs=2)
    img.weights[0, 0], img.weights[1, 1] = 5, -3
    img.row_shift[:2] = [3, 4]  # rows 0, 1: the inputs
    _, rec = run(img, spikes_at(2, 2, [(0, 0), (0, 1)]), record=["ie", "ii"])
    # 5 << 3 = 40 into ie of neuron 0; -3 << 4 = -48 into ii of neuron 1
    assert rec["ie"][1].tolist() == [40, 0]
    assert rec["ii"][1].tolist() == [0, -48]


def test_spikes_from_several_sources_add_up(run):
    img = blank(n_neurons=1, n_inputs=3)
    img.weights[:3, 0] = [4, 6, -9]  # rows 0..2: the inputs
    _, rec = run(img, spikes_at(2, 3, [(0, 0), (0, 1), (0, 2), (1, 0)]), record=["ie", "ii"])
    # step 1 sees step 0's spikes: ie = 4 + 6 = 10, ii = -9; step 2 would see step 1's input 0 (+4)
    assert (rec["ie"][1, 0], rec["ii"][1, 0]) == (10, -9)


# ---- Phase 3: threshold, spike, reset, refractory ---------------------------------------------
def test_spike_at_threshold_and_reset_to_v_reset(run):
    img = profile(blank(), c_vdecay=0, v_thresh=10, bias=10, v_reset=-5)
    out, rec = run(img, steps=1, record=["v"])
    # v = rtz(0 * 0) + 0 + 10 = 10 >= 10: spike, v <- v_reset = -5
    assert rec.spikes[:, 0].tolist() == [True]
    assert out.v[0] == -5


def test_no_spike_below_threshold(run):
    img = profile(blank(), c_vdecay=0, v_thresh=10, bias=9)
    out, rec = run(img, steps=3)
    assert not rec.spikes.any() and out.v[0] == 9


def test_refractory_holds_v_counts_down_and_blocks_spikes(run):
    # v_reset above threshold: only the refractory period can stop the next spikes
    img = profile(blank(), c_vdecay=0, v_thresh=10, bias=10, v_reset=20, refrac=3)
    _, rec = run(img, steps=9, record=["v", "refrac_count"])
    # step 0: v = 10 -> spike, v = 20, count = 3. Steps 1..3 refractory: count 2, 1, 0; v held at 20
    # (>= threshold, bias not added) and no spike. Step 4: v = 0 + 10 = 10 -> spike again. Period 4.
    assert np.flatnonzero(rec.spikes[:, 0]).tolist() == [0, 4, 8]
    assert rec["refrac_count"][:, 0].tolist() == [3, 2, 1, 0, 3, 2, 1, 0, 3]
    assert rec["v"][:, 0].tolist() == [20, 20, 20, 20, 20, 20, 20, 20, 20]


@pytest.mark.parametrize("refrac", [0, 1, 5])
def test_refractory_period_lasts_refrac_steps(run, refrac):
    img = profile(blank(), c_vdecay=0, v_thresh=10, bias=10, refrac=refrac)
    _, rec = run(img, steps=20)
    # spikes every refrac + 1 steps: the neuron is silent for exactly `refrac` steps after a spike
    assert np.flatnonzero(rec.spikes[:, 0]).tolist() == list(range(0, 20, refrac + 1))


def test_refractory_neuron_ignores_analog_input(run):
    img = profile(blank(n_current_inputs=1), refrac=2)
    img.refrac_count[0] = 1
    out, rec = run(img, steps=2, currents=[[50], [50]], record=["v"])
    # step 0: refractory (count 1 -> 0), v held at 0; step 1: v = 0 + 50
    assert rec["v"][:, 0].tolist() == [0, 50]


def test_subtract_reset_keeps_the_overshoot(run):
    img = profile(blank(), v_thresh=10, v_reset=2, reset_subtract=1, bias=13)
    _, rec = run(img, steps=3, record=["v"])
    # step 0: v = 13 -> spike, v = 13 - (10 - 2) = 5; step 1: 5 + 13 = 18 -> 18 - 8 = 10;
    # step 2: 10 + 13 = 23 -> 15
    assert rec["v"][:, 0].tolist() == [5, 10, 15]
    assert rec.spikes[:, 0].all()


def test_subtract_reset_saturates(run):
    img = profile(blank(v_bits=8), c_vdecay=0, v_thresh=-100, v_reset=100, reset_subtract=1, bias=100)
    out, rec = run(img, steps=1)
    # v = 100 >= -100: spike, v = 100 - (-100 - 100) = 300 -> sat(8 bits) = 127
    assert rec.spikes[0, 0] and out.v[0] == 127


def test_v_saturates_at_both_ends(run):
    # an adaptation of 10 puts the threshold at 127 + 10, above the 8-bit range, so v can sit at 127
    img = profile(blank(n_neurons=2, v_bits=8, adaptive_threshold=True), v_thresh=127, c_ie=ONE, c_ii=ONE)
    img.adapt[:] = 10
    img.v[:] = [100, -100]
    img.ie[0], img.ii[1] = 100, -100
    out, rec = run(img, steps=1, record=["v", "threshold"])
    # neuron 0: 100 + 100 = 200 -> 127; neuron 1: -100 - 100 = -200 -> -128
    assert out.v.tolist() == [127, -128]
    assert not rec.spikes.any()
    assert rec["threshold"][0].tolist() == [137, 137]  # 127 + 10: exact, not saturated


def test_synaptic_currents_saturate_at_both_ends(run):
    img = blank(i_bits=8)
    img.ie[0], img.ii[0] = 100, -100
    img.ring[0, 0, 0], img.ring[0, 1, 0] = 100, -100
    out, _ = run(img, steps=1)
    # ie = 100 + 100 = 200 -> 127, ii = -100 - 100 = -200 -> -128 (8-bit)
    assert (out.ie[0], out.ii[0]) == (127, -128)


def test_current_decay_above_one_saturates(run):
    img = profile(blank(i_bits=8), c_edecay=fx.COEF_MAX)
    img.ie[0] = 100
    out, _ = run(img, steps=1)
    # rtz(65535 * 100 / 32768 = 199.997) = 199 -> sat 127
    assert out.ie[0] == 127


def test_ring_buffer_accumulation_saturates(run):
    img = blank(n_neurons=2, n_inputs=3, i_bits=8)
    img.weights[:3, 0] = 100  # rows 0..2: the inputs
    img.weights[:3, 1] = -100
    out, rec = run(img, spikes_at(2, 3, [(0, 0), (0, 1), (0, 2)]), record=["ie", "ii"])
    # step 0 delivers 3 x 100 = 300 -> 127 into neuron 0's exc slot, 3 x -100 = -300 -> -128 into
    # neuron 1's inh slot; step 1 consumes them
    assert rec["ie"][1].tolist() == [127, 0]
    assert rec["ii"][1].tolist() == [0, -128]


def test_ring_buffer_saturates_on_top_of_a_stored_value(run):
    img = blank(n_neurons=2, n_inputs=1, i_bits=8, max_delay=2)
    img.weights[0] = [50, -50]
    img.ring[1, 0, 0], img.ring[1, 1, 1] = 100, -100  # slot 1 already holds arrivals for step 1
    out, _ = run(img, spikes_at(1, 1, [(0, 0)]))
    # step 0's spike with delay 1 goes to slot (0 + 1) mod 2 = 1: 100 + 50 = 150 -> 127,
    # -100 - 50 = -150 -> -128 (8-bit)
    assert out.ring[1, 0].tolist() == [127, 0]
    assert out.ring[1, 1].tolist() == [0, -128]


# ---- delays -----------------------------------------------------------------------------------
@pytest.mark.parametrize("delay", [1, 2, 3, 4])
def test_delay_d_reaches_current_at_n_plus_d_and_membrane_at_n_plus_d_plus_1(run, delay):
    img = profile(blank(n_inputs=1, max_delay=4), c_ie=ONE)
    img.weights[0, 0] = 10
    img.delays[0, 0] = delay
    n = 2
    _, rec = run(img, spikes_at(9, 1, [(n, 0)]), record=["ie", "v"])
    # ie first non-zero after step n + d; v (which uses last step's ie) after step n + d + 1
    expected_ie = [10 if t >= n + delay else 0 for t in range(9)]
    expected_v = [10 * max(0, t - (n + delay)) for t in range(9)]  # no decay: v grows by ie per step
    assert rec["ie"][:, 0].tolist() == expected_ie
    assert rec["v"][:, 0].tolist() == expected_v


def test_delay_ring_wraps_around(run):
    img = blank(n_neurons=2, n_inputs=2, max_delay=4)
    img.weights[0, 0], img.weights[1, 1] = 1, 1
    img.delays[0, 0], img.delays[1, 1] = 2, 4
    img.step = 6  # the run starts at step 6: slots 2, 3, 0, 1, 2, ...
    _, rec = run(img, spikes_at(8, 2, [(1, 0), (1, 1)]), record=["ie"])
    # both spike in step 7 (run step 1): delay 2 -> slot (7 + 2) mod 4 = 1, read in step 9 (run step 3);
    # delay 4 = D -> slot (7 + 4) mod 4 = 3, the slot step 7 just cleared, read in step 11 (run step 5)
    assert np.flatnonzero(rec["ie"][:, 0]).tolist() == [3, 4, 5, 6, 7]
    assert np.flatnonzero(rec["ie"][:, 1]).tolist() == [5, 6, 7]


def test_spike_train_through_the_longest_delay_arrives_once_per_step(run):
    img = profile(blank(n_inputs=1, max_delay=4), c_edecay=0)
    img.weights[0, 0] = 1
    img.delays[0, 0] = 4
    _, rec = run(img, np.ones((12, 1), dtype=bool), record=["ie"])
    # c_edecay = 0: ie is exactly this step's arrivals; a spike every step with delay 4 arrives from
    # step 4 on, one per step, through every slot of the ring in turn
    assert rec["ie"][:, 0].tolist() == [0, 0, 0, 0] + [1] * 8


# ---- adaptive threshold -----------------------------------------------------------------------
def test_adaptation_decays_and_raises_the_threshold(run):
    img = profile(blank(adaptive_threshold=True), c_adecay=HALF, v_thresh=100)
    img.adapt[0] = 1001
    out, rec = run(img, steps=2, record=["adapt", "threshold"])
    # adapt: rtz(0.5 * 1001) = 500, then 250; threshold = 100 + adapt
    assert rec["adapt"][:, 0].tolist() == [500, 250]
    assert rec["threshold"][:, 0].tolist() == [600, 350]


def test_adaptation_increment_on_spike(run):
    img = profile(blank(adaptive_threshold=True), c_adecay=HALF, v_thresh=10, c_vdecay=0, bias=600,
                  a_inc=300)
    img.adapt[0] = 1000
    _, rec = run(img, steps=2, record=["adapt", "threshold"])
    # step 0: adapt = 500, threshold 510, v = 600 -> spike, adapt = 500 + 300 = 800
    # step 1: adapt = 400, threshold 410, v = 600 -> spike, adapt = 700
    assert rec.spikes[:, 0].tolist() == [True, True]
    assert rec["threshold"][:, 0].tolist() == [510, 410]
    assert rec["adapt"][:, 0].tolist() == [800, 700]


def test_adaptation_blocks_a_spike(run):
    img = profile(blank(adaptive_threshold=True), v_thresh=10, c_vdecay=0, bias=15)
    img.adapt[0] = 6
    _, rec = run(img, steps=1)
    assert not rec.spikes.any()  # v = 15 < 10 + 6


def test_adaptation_saturates_at_adapt_bits(run):
    img = profile(blank(n_neurons=2, adaptive_threshold=True, adapt_bits=4), v_thresh=10, c_vdecay=0,
                  bias=100, a_inc=9)
    img.adapt[:] = [10, 12]
    img.profiles["c_adecay"][0] = ONE
    out, _ = run(img, steps=1)
    # 10 + 9 = 19 -> 15 (4 bits); 12 + 9 = 21 -> 15
    assert out.adapt.tolist() == [15, 15]


def test_adaptation_decay_above_one_saturates(run):
    img = profile(blank(adaptive_threshold=True, adapt_bits=4), c_adecay=fx.COEF_MAX)
    img.adapt[0] = 10
    out, _ = run(img, steps=1)
    # rtz(65535 * 10 / 32768 = 19.9997) = 19 -> usat(4 bits) = 15
    assert out.adapt[0] == 15


# ---- STDP -------------------------------------------------------------------------------------
def stdp_core(**stdp) -> CoreImage:
    """One input and one neuron; a plastic synapse input 0 -> neuron 0 of weight 10; trace_frac 4
    (a trace of 16 is one weight LSB). The neuron spikes whenever ``bias`` (set per test) reaches 10."""
    img = blank(n_neurons=1, n_inputs=1, stdp=True, trace_bits=12, trace_frac=4)
    img = profile(img, c_vdecay=0, v_thresh=10)
    img.weights[0, 0] = 10
    img.plastic[0, 0] = True
    img.stdp.update(w_min=-100, w_max=100)
    img.stdp.update(stdp)
    return img


@pytest.mark.parametrize("x, dw", [(40, 3), (24, 2), (23, 1), (7, 0), (8, 1)])
def test_potentiation_adds_the_rounded_pre_trace(run, x, dw):
    img = profile(stdp_core(), bias=10)  # the neuron spikes in step 0, the input does not
    img.x_trace[0] = x
    out, _ = run(img, steps=1)
    # rnd(x, 4) = (x + 8) >> 4: 40 -> 48 >> 4 = 3; 24 (1.5) -> 2, halves up; 23 -> 1; 7 -> 0; 8 -> 1
    assert out.weights[0, 0] == 10 + dw


def test_potentiation_uses_the_decayed_pre_trace(run):
    img = profile(stdp_core(c_xdecay=HALF), bias=10)
    img.x_trace[0] = 81
    out, _ = run(img, steps=1)
    # x decays first: rtz(0.5 * 81) = 40, rnd(40, 4) = 3
    assert out.weights[0, 0] == 13


def test_depression_subtracts_the_rounded_post_trace(run):
    img = stdp_core()  # bias 0: the neuron does not spike; the input does
    img.y_trace[0] = 40
    out, _ = run(img, spikes_at(1, 1, [(0, 0)]))
    assert out.weights[0, 0] == 10 - 3  # rnd(40, 4) = 3


def test_potentiation_comes_before_depression(run):
    img = profile(stdp_core(w_max=12), bias=10)
    img.x_trace[0], img.y_trace[0] = 40, 40
    out, rec = run(img, spikes_at(1, 1, [(0, 0)]))
    # both spike in step 0: w = min(10 + 3, 12) = 12, then 12 - 3 = 9
    # (depression first would give min(10 - 3 + 3, 12) = 10)
    assert rec.spikes[0, 0]
    assert out.weights[0, 0] == 9


def test_pairs_at_zero_distance_use_traces_before_this_steps_increments(run):
    img = profile(stdp_core(x_inc=160, y_inc=160), bias=10)
    out, _ = run(img, spikes_at(1, 1, [(0, 0)]))
    # traces start at 0: potentiation +rnd(0) and depression -rnd(0) do nothing; then both traces jump
    assert out.weights[0, 0] == 10
    assert (out.x_trace[0], out.x_trace[1], out.y_trace[0]) == (160, 160, 160)


@pytest.mark.parametrize("w0, bias, inputs, x, y, expected", [
    (98, 10, [], 64, 0, 100),  # 98 + rnd(64, 4) = 98 + 4 = 102 -> w_max 100
    (-98, 0, [(0, 0)], 0, 64, -100),  # -98 - 4 = -102 -> w_min -100
])
def test_weights_stay_within_w_min_w_max(run, w0, bias, inputs, x, y, expected):
    img = profile(stdp_core(), bias=bias)
    img.weights[0, 0] = w0
    img.x_trace[0], img.y_trace[0] = x, y
    out, _ = run(img, spikes_at(1, 1, inputs))
    assert out.weights[0, 0] == expected


def test_non_plastic_synapse_does_not_learn(run):
    img = profile(stdp_core(), bias=10)
    img.plastic[0, 0] = False
    img.x_trace[0], img.y_trace[0] = 400, 400
    out, _ = run(img, spikes_at(2, 1, [(1, 0)]))
    assert out.weights[0, 0] == 10


def test_learning_off_freezes_weights_but_traces_move(run):
    img = profile(stdp_core(c_xdecay=HALF, c_ydecay=HALF, x_inc=30, y_inc=20), bias=10)
    img.learning = False
    img.x_trace[0], img.y_trace[0] = 100, 100
    out, _ = run(img, spikes_at(1, 1, [(0, 0)]))
    assert out.weights[0, 0] == 10
    # x: rtz(0.5 * 100) + 30 = 80; y: 50 + 20 = 70; the neuron's own pre trace (row 1): 0 + 30
    assert out.x_trace.tolist() == [80, 30]
    assert out.y_trace.tolist() == [70]
    assert out.learning is False


def test_trace_decay_increment_and_saturation(run):
    img = profile(stdp_core(c_xdecay=HALF, c_ydecay=QUARTER, x_inc=30, y_inc=200), bias=10)
    img.x_trace[0], img.y_trace[0] = 101, 4095
    _, rec = run(img, spikes_at(3, 1, [(1, 0)]), record=["x_trace", "y_trace"])
    # x (row 0, input): step 0 decay only: rtz(50.5) = 50; step 1: 25 + 30 = 55; step 2: rtz(27.5) = 27
    assert rec["x_trace"][:, 0].tolist() == [50, 55, 27]
    # y (neuron spikes every step): 4095 * 0.25 = 1023.75 -> 1023 + 200 = 1223; 305 + 200 = 505; 126 + 200
    assert rec["y_trace"][:, 0].tolist() == [1223, 505, 326]


def test_traces_saturate_at_trace_bits(run):
    img = blank(n_neurons=1, n_inputs=1, stdp=True, trace_bits=8, trace_frac=4)
    img = profile(img, c_vdecay=0, v_thresh=10, bias=10)
    img.stdp.update(x_inc=30, y_inc=30, c_xdecay=ONE, c_ydecay=fx.COEF_MAX)
    img.x_trace[0], img.y_trace[0] = 250, 200
    out, _ = run(img, spikes_at(1, 1, [(0, 0)]))
    # x: 250 + 30 = 280 -> 255 (8 bits); y: rtz(65535 * 200 / 32768 = 399.99) = 399 -> 255, + 30 -> 255
    assert out.x_trace[0] == 255 and out.y_trace[0] == 255


def test_input_spike_is_a_pre_spike(run):
    img = stdp_core(x_inc=50)
    img.y_trace[0] = 32
    out, _ = run(img, spikes_at(1, 1, [(0, 0)]))
    # input 0 spikes: its row is depressed by rnd(32, 4) = 2 and its pre trace jumps by x_inc
    assert out.weights[0, 0] == 8
    assert out.x_trace[0] == 50


def test_neuron_spike_is_a_pre_spike_for_its_own_row(run):
    img = blank(n_neurons=2, n_inputs=0, stdp=True, trace_bits=12, trace_frac=4)
    img = profile(img, c_vdecay=0, v_thresh=10, bias=10)
    img.weights[0, 1] = 10  # neuron 0 -> neuron 1, plastic
    img.plastic[0, 1] = True
    img.stdp.update(x_inc=50, w_min=-100, w_max=100)
    img.y_trace[1] = 48
    img.x_trace[0] = 16
    out, _ = run(img, steps=1)
    # both neurons spike: potentiation of column 1 by rnd(16, 4) = 1, then depression of row 0 (neuron
    # 0 spiked) by rnd(48, 4) = 3: 10 + 1 - 3 = 8; neuron 0's pre trace: 16 + 50
    assert out.weights[0, 1] == 8
    assert out.x_trace[0] == 66


def test_only_the_spiking_neurons_column_is_potentiated(run):
    img = blank(n_neurons=2, n_inputs=1, stdp=True, trace_frac=0)
    img = profile(img, c_vdecay=0, c_ie=ONE, v_thresh=10)
    img.weights[0] = [10, 10]
    img.plastic[0] = True
    img.stdp.update(w_min=-100, w_max=100)
    img.x_trace[0] = 3
    img.ie[:] = [10, 0]  # neuron 0: v = rtz(1.0 * 10) = 10 -> spikes; neuron 1 stays at 0
    out, rec = run(img, steps=1)
    assert rec.spikes[0].tolist() == [True, False]
    assert out.weights[0].tolist() == [13, 10]  # trace_frac 0: rnd(3, 0) = 3, column 0 only


# ---- analog inputs and the step counter ------------------------------------------------------
def test_analog_inputs_drive_neurons_below_k_only(run):
    img = blank(n_neurons=3, n_current_inputs=2)
    _, rec = run(img, currents=[[5, -7], [5, -7]], record=["v"])
    # u adds to v every step for neurons 0 and 1 (no decay); neuron 2 has no analog input
    assert rec["v"].tolist() == [[5, -7, 0], [10, -14, 0]]


def test_analog_inputs_must_fit_the_membrane_width(run):
    img = blank(n_neurons=2, n_current_inputs=1, v_bits=8)
    with pytest.raises(GoldenInputError, match="currents: value 128 outside -128 .. 127"):
        run(img, currents=[[128]])
    with pytest.raises(GoldenInputError, match="currents has shape"):
        run(img, currents=[[1, 2]])
    with pytest.raises(GoldenInputError, match="integers"):
        run(img, currents=[[1.5]])


def test_currents_for_a_core_without_analog_inputs_are_refused(run):
    with pytest.raises(GoldenInputError, match="n_current_inputs = 0"):
        run(blank(n_neurons=2), currents=[[1, 1]])


def test_step_counter_advances(run):
    img = blank()
    img.step = 5
    out, _ = run(img, steps=3)
    assert out.step == 8
    out2, _ = run(out, steps=0)
    assert out2.step == 8


def test_bad_inputs_are_refused_with_a_clear_message(run):
    img = blank(n_neurons=2, n_inputs=3)
    with pytest.raises(GoldenInputError, match=r"inputs has shape \(4, 2\), expected \(steps, 3\)"):
        run(img, np.zeros((4, 2), dtype=bool))
    with pytest.raises(GoldenInputError, match="0/1"):
        run(img, np.full((4, 3), 2))
    with pytest.raises(GoldenInputError, match="covers 4 steps, but steps = 5"):
        run(img, np.zeros((4, 3), dtype=bool), steps=5)
    with pytest.raises(GoldenInputError, match="give inputs or the number of steps"):
        run(img)
    with pytest.raises(GoldenInputError, match="steps = -1"):
        run(img, steps=-1)
    with pytest.raises(GoldenInputError, match="cannot record 'voltage'"):
        run(img, steps=1, record=["voltage"])
    with pytest.raises(GoldenInputError, match="use run_batch"):
        run([img, img], steps=1)


def test_the_input_image_is_not_modified(run):
    img = profile(blank(n_inputs=1), bias=3)
    img.weights[0, 0] = 4
    before = img.copy()
    run(img, spikes_at(3, 1, [(0, 0)]))
    assert img == before
