"""The compiled kernel (sim/golden_fast.py) is bit-exact with the reference (sim/golden.py).

Exact means: every field of the final image(s), every spike and every recorded variable (weights
included) equal, on random cores across the feature space, with extreme images (fields at the edges
of their widths) as often as ordinary ones, single runs and batches.
"""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge.core.random_image import random_config, random_image, random_inputs
from spikeforge.sim import golden, golden_fast
from spikeforge.sim.golden import GoldenCore, GoldenInputError

RECORD_ALL = golden.RECORDABLE


def assert_same(reference, fast):
    """(images, record) pairs from golden and golden_fast are identical."""
    (ref_img, ref_rec), (fast_img, fast_rec) = reference, fast
    ref_imgs = ref_img if isinstance(ref_img, list) else [ref_img]
    fast_imgs = fast_img if isinstance(fast_img, list) else [fast_img]
    assert len(ref_imgs) == len(fast_imgs)
    for k, (a, b) in enumerate(zip(ref_imgs, fast_imgs)):
        assert a.differences(b) == [], f"image {k} differs in {a.differences(b)}"
    np.testing.assert_array_equal(ref_rec.spikes, fast_rec.spikes, err_msg="spikes")
    assert ref_rec.spikes.dtype == fast_rec.spikes.dtype
    assert set(ref_rec.variables) == set(fast_rec.variables)
    for name, value in ref_rec.variables.items():
        assert value.shape == fast_rec[name].shape, name
        np.testing.assert_array_equal(value, fast_rec[name], err_msg=name)


def case(seed: int, steps: int = 40, extreme: bool | None = None, **overrides):
    config = random_config(seed, **overrides)
    img = random_image(config, seed, extreme=seed % 2 == 0 if extreme is None else extreme)
    spikes, currents = random_inputs(config, steps, seed, rate=0.2)
    return config, img, spikes, currents


@pytest.mark.parametrize("seed", range(60))
def test_single_run_matches_reference(seed):
    _, img, spikes, currents = case(seed)
    assert_same(golden.run(img, spikes, currents=currents, record=RECORD_ALL),
                golden_fast.run(img, spikes, currents=currents, record=RECORD_ALL))


@pytest.mark.parametrize("extreme", [False, True], ids=["ordinary", "extreme"])
@pytest.mark.parametrize("seed", range(6))
def test_all_features_together_match_reference(seed, extreme):
    _, img, spikes, currents = case(1000 + seed, steps=60, extreme=extreme, stdp=True,
                                    adaptive_threshold=True, max_delay=8, n_current_inputs=3,
                                    n_neurons=16, n_inputs=8)
    img.learning = True
    ref = golden.run(img, spikes, currents=currents, record=RECORD_ALL)
    if not extreme:  # the comparison means something only if the core is alive
        assert ref[1].spikes.any()
        assert (ref[1]["weights"][-1] != img.weights).any()
    assert_same(ref, golden_fast.run(img, spikes, currents=currents, record=RECORD_ALL))


@pytest.mark.parametrize("widths", [
    dict(v_bits=32, i_bits=32, weight_bits=16, adapt_bits=32, trace_bits=24, trace_frac=8, refrac_bits=16),
    dict(v_bits=8, i_bits=8, weight_bits=4, adapt_bits=4, trace_bits=4, trace_frac=3, refrac_bits=1),
], ids=["widest", "narrowest"])
@pytest.mark.parametrize("seed", range(6))
def test_extreme_widths_match_reference(seed, widths):
    """The widest fields (products near 2**49, 16-bit weights shifted by 15) and the narrowest (every
    value saturating) on extreme images with every feature on."""
    _, img, spikes, currents = case(3000 + seed, steps=40, extreme=True, stdp=True, adaptive_threshold=True,
                                    max_delay=4, n_current_inputs=2, n_neurons=16, **widths)
    assert_same(golden.run(img, spikes, currents=currents, record=RECORD_ALL),
                golden_fast.run(img, spikes, currents=currents, record=RECORD_ALL))


@pytest.mark.parametrize("seed", range(10))
def test_batch_matches_reference(seed):
    config = random_config(2000 + seed)
    batch = 1 + seed % 5
    images = [random_image(config, 100 * seed + k, extreme=k % 2 == 0) for k in range(batch)]
    drawn = [random_inputs(config, 30, 100 * seed + k, rate=0.2) for k in range(batch)]
    spikes = np.stack([d[0] for d in drawn])
    currents = None if config.n_current_inputs == 0 else np.stack([d[1] for d in drawn])
    ref = golden.run_batch(images, spikes, currents=currents, record=RECORD_ALL)
    for parallel in (None, False, True):
        assert_same(ref, golden_fast.run_batch(images, spikes, currents=currents, record=RECORD_ALL,
                                               parallel=parallel))


def test_larger_core_with_many_spikes_matches_reference():
    config = random_config(7, n_neurons=256, n_inputs=64, stdp=True, max_delay=4, adaptive_threshold=True)
    img = random_image(config, 7, density=0.2)
    spikes, currents = random_inputs(config, 50, 7, rate=0.3)
    ref = golden.run(img, spikes, currents=currents, record=("v", "weights"))
    assert ref[1].spikes.mean() > 0.01
    assert_same(ref, golden_fast.run(img, spikes, currents=currents, record=("v", "weights")))


def test_state_carries_over_between_fast_runs():
    _, img, spikes, currents = case(11, steps=40, stdp=True, max_delay=4)
    whole = golden.run(img, spikes, currents=currents)
    first, _ = golden_fast.run(img, spikes[:17], currents=None if currents is None else currents[:17])
    second = golden_fast.run(first, spikes[17:], currents=None if currents is None else currents[17:])
    assert whole[0].differences(second[0]) == []


def test_run_core_continues_a_golden_core():
    """run_core advances a GoldenCore in place, so the reference and the kernel can take turns."""
    _, img, spikes, currents = case(12, steps=30, stdp=True)
    cut = lambda a, s: None if a is None else a[s]
    ref_core = GoldenCore(img)
    ref_core.run(spikes, currents=currents)
    mixed = GoldenCore(img)
    golden_fast.run_core(mixed, spikes[:10], currents=cut(currents, slice(0, 10)))
    mixed.run(spikes[10:20], currents=cut(currents, slice(10, 20)))
    golden_fast.run_core(mixed, spikes[20:], currents=cut(currents, slice(20, None)))
    assert ref_core.images().differences(mixed.images()) == []


def test_zero_steps_and_empty_record_shapes_match_reference():
    _, img, spikes, currents = case(3, n_current_inputs=2)
    assert_same(golden.run(img, steps=0, record=RECORD_ALL), golden_fast.run(img, steps=0, record=RECORD_ALL))
    assert_same(golden.run(img, spikes, currents=currents), golden_fast.run(img, spikes, currents=currents))


def test_input_errors_are_the_references():
    config, img, spikes, _ = case(5, n_inputs=8, n_current_inputs=0)
    for model in (golden, golden_fast):
        with pytest.raises(GoldenInputError, match="expected \\(steps, 8\\)"):
            model.run(img, spikes[:, :3])
        with pytest.raises(GoldenInputError, match="cannot record"):
            model.run(img, spikes, record=["spikes"])
        with pytest.raises(GoldenInputError, match="n_current_inputs = 0"):
            model.run(img, spikes, currents=np.ones((len(spikes), 2), dtype=int))
        with pytest.raises(GoldenInputError, match="use run_batch"):
            model.run([img], spikes)
        with pytest.raises(GoldenInputError, match="use run for a single image"):
            model.run_batch(img, spikes)
        with pytest.raises(GoldenInputError, match=r"expected \(2, steps, 8\)"):
            model.run_batch([img, img], spikes)
        with pytest.raises(GoldenInputError, match="different CoreConfig"):
            model.run_batch([img, random_image(config.replace(v_bits=12), 0)], steps=3)


@pytest.mark.slow
@pytest.mark.parametrize("block", range(10))
def test_long_random_sweep_matches_reference(block):
    for seed in range(10_000 + 100 * block, 10_000 + 100 * (block + 1)):
        _, img, spikes, currents = case(seed, steps=80)
        assert_same(golden.run(img, spikes, currents=currents, record=RECORD_ALL),
                    golden_fast.run(img, spikes, currents=currents, record=RECORD_ALL))


def test_kernel_primitives_equal_fixedpoint():
    """The kernel's branch-free rtz and its rnd are fixedpoint.rtz / fixedpoint.rnd."""
    from spikeforge.core import fixedpoint as fx

    values = [0, 1, -1, 32767, 32768, -32767, -32768, -32769, 98303, -98303, 2**40 + 5, -(2**40) - 5]
    for f in (0, 1, 4, 15):
        for x in values:
            assert golden_fast._rtz(x, f) == fx.rtz(x, f), (x, f)
            if x >= 0:
                assert golden_fast._rnd(x, f) == fx.rnd(x, f), (x, f)
