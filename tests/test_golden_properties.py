"""Properties of the golden model that must hold for every valid core, image and input.

Hypothesis draws the widths that decide saturation (v, i, trace and adaptation bits) and the seeds of
``spikeforge.core.random_image``'s generators, which spread everything else over the feature space
(``extreme=True`` puts fields at the edges of their ranges). Example counts are bounded so the file
stays fast; a failure prints the seed and widths to reproduce it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikeforge.core import fixedpoint as fx
from spikeforge.core.image import CoreImage
from spikeforge.core.random_image import random_config, random_image, random_inputs
from spikeforge.sim import golden, golden_fast

PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

RECORD_ALL = golden.RECORDABLE


@st.composite
def cores(draw, max_neurons: int = 64):
    """(config, image seed, extreme): a random core with hypothesis-chosen widths."""
    trace_bits = draw(st.integers(4, 16))
    config = random_config(
        draw(st.integers(0, 2**32 - 1)),
        v_bits=draw(st.sampled_from([8, 10, 16, 24])),
        i_bits=draw(st.sampled_from([8, 12, 16])),
        refrac_bits=draw(st.integers(1, 6)),
        adapt_bits=draw(st.integers(4, 16)),
        trace_bits=trace_bits,
        trace_frac=draw(st.integers(0, trace_bits - 1)),
        n_neurons=draw(st.sampled_from([n for n in (1, 4, 16, 64) if n <= max_neurons])),
    )
    return config, draw(st.integers(0, 2**32 - 1)), draw(st.booleans())


def inputs_for(config, steps, seed):
    spikes, currents = random_inputs(config, steps, seed, rate=0.3)
    return spikes, currents


def assert_records_in_range(config, rec):
    c = config
    vlo, vhi = fx.smin(c.v_bits), fx.smax(c.v_bits)
    ranges = {
        "v": (vlo, vhi),
        "ie": (fx.smin(c.i_bits), fx.smax(c.i_bits)),
        "ii": (fx.smin(c.i_bits), fx.smax(c.i_bits)),
        "refrac_count": (0, fx.umax(c.refrac_bits)),
        "adapt": (0, fx.umax(c.adapt_bits) if c.adaptive_threshold else 0),
        # the threshold is the exact sum v_thresh + adapt (docs/core-spec.md, section 4)
        "threshold": (vlo, vhi + (fx.umax(c.adapt_bits) if c.adaptive_threshold else 0)),
        "x_trace": (0, fx.umax(c.trace_bits) if c.stdp else 0),
        "y_trace": (0, fx.umax(c.trace_bits) if c.stdp else 0),
        "weights": (fx.smin(c.weight_bits), fx.smax(c.weight_bits)),
    }
    for name, (lo, hi) in ranges.items():
        values = rec[name]
        if values.size:
            assert lo <= values.min() and values.max() <= hi, (name, values.min(), values.max(), lo, hi)


@PROPERTY_SETTINGS
@given(core=cores(), steps=st.integers(1, 25), input_seed=st.integers(0, 2**32 - 1))
def test_no_state_escapes_its_width(core, steps, input_seed):
    config, seed, extreme = core
    img = random_image(config, seed, extreme=extreme)
    spikes, currents = inputs_for(config, steps, input_seed)
    out, rec = golden.run(img, spikes, currents=currents, record=RECORD_ALL)
    out.validate()  # every field of the final image within its width
    assert_records_in_range(config, rec)


@pytest.mark.parametrize("model", [golden, golden_fast], ids=["golden", "golden_fast"])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(core=cores(max_neurons=16), batch=st.integers(1, 4), steps=st.integers(0, 15),
       input_seed=st.integers(0, 2**32 - 1))
def test_batch_equals_loop_of_single_runs(model, core, batch, steps, input_seed):
    config, seed, extreme = core
    images = [random_image(config, seed + k, extreme=extreme and k % 2 == 0) for k in range(batch)]
    drawn = [inputs_for(config, steps, input_seed + k) for k in range(batch)]
    spikes = np.stack([d[0] for d in drawn])
    currents = None if config.n_current_inputs == 0 else np.stack([d[1] for d in drawn])
    outs, rec = model.run_batch(images, spikes, currents=currents, record=RECORD_ALL)
    assert rec.spikes.shape == (batch, steps, config.n_neurons)
    for k in range(batch):
        out_k, rec_k = model.run(images[k], spikes[k], currents=None if currents is None else currents[k],
                                 record=RECORD_ALL)
        assert outs[k].differences(out_k) == []
        np.testing.assert_array_equal(rec.spikes[k], rec_k.spikes)
        for name in RECORD_ALL:
            np.testing.assert_array_equal(rec[name][k], rec_k[name], err_msg=name)


@PROPERTY_SETTINGS
@given(core=cores(), steps=st.integers(1, 30), input_seed=st.integers(0, 2**32 - 1),
       neuron_seed=st.integers(0, 2**32 - 1))
def test_neuron_without_synapses_at_rest_never_spikes(core, steps, input_seed, neuron_seed):
    config, seed, extreme = core
    img = random_image(config, seed, extreme=extreme)
    k = int(np.random.default_rng(neuron_seed).integers(config.n_neurons))
    p = img.neuron_profile[k]
    rest = int(img.profiles["v_rest"][p])
    if rest == fx.smax(config.v_bits):  # the threshold must fit above rest
        rest = img.profiles["v_rest"][p] = rest - 1
    img.profiles["bias"][p] = 0
    if img.profiles["v_thresh"][p] <= rest:
        img.profiles["v_thresh"][p] = rest + 1
    img.weights[:, k] = 0
    img.plastic[:, k] = False
    img.v[k], img.ie[k], img.ii[k] = rest, 0, 0
    img.ring[:, :, k] = 0
    img.validate()
    spikes, currents = inputs_for(config, steps, input_seed)
    if currents is not None and k < config.n_current_inputs:
        currents[:, k] = 0
    out, rec = golden.run(img, spikes, currents=currents, record=["v"])
    assert not rec.spikes[:, k].any()
    assert (rec["v"][:, k] == rest).all()


@PROPERTY_SETTINGS
@given(core=cores(), steps=st.integers(0, 20), input_seed=st.integers(0, 2**32 - 1))
def test_same_image_and_inputs_give_identical_results(core, steps, input_seed):
    config, seed, extreme = core
    img = random_image(config, seed, extreme=extreme)
    spikes, currents = inputs_for(config, steps, input_seed)
    before = img.copy()
    out1, rec1 = golden.run(img, spikes, currents=currents, record=RECORD_ALL)
    out2, rec2 = golden.run(img, spikes, currents=currents, record=RECORD_ALL)
    assert img == before  # running does not touch the input image
    assert out1.differences(out2) == []
    np.testing.assert_array_equal(rec1.spikes, rec2.spikes)
    for name in RECORD_ALL:
        np.testing.assert_array_equal(rec1[name], rec2[name])


@PROPERTY_SETTINGS
@given(core=cores(), steps=st.integers(0, 15), input_seed=st.integers(0, 2**32 - 1))
def test_two_runs_of_t_steps_equal_one_run_of_2t(core, steps, input_seed):
    config, seed, extreme = core
    img = random_image(config, seed, extreme=extreme)
    spikes, currents = inputs_for(config, 2 * steps, input_seed)
    whole, rec = golden.run(img, spikes, currents=currents, record=("v", "weights"))
    half = (lambda a, part: None if a is None else a[part * steps:(part + 1) * steps])
    first, rec1 = golden.run(img, half(spikes, 0), currents=half(currents, 0), record=("v", "weights"))
    assert isinstance(first, CoreImage)
    second, rec2 = golden.run(first, half(spikes, 1), currents=half(currents, 1), record=("v", "weights"))
    assert second.differences(whole) == []
    assert second.step == img.step + 2 * steps
    np.testing.assert_array_equal(np.concatenate([rec1.spikes, rec2.spikes]), rec.spikes)
    for name in ("v", "weights"):
        np.testing.assert_array_equal(np.concatenate([rec1[name], rec2[name]]), rec[name])
