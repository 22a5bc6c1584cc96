"""Place modules: one core each, encoding, STDP training bit-exact across runners, inference readout."""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge.demos.place.dataset import PlaceDataset
from spikeforge.demos.place.ensemble import TrainedEnsemble, WeightsFileError
from spikeforge.demos.place.inference import module_scores, readout, respond
from spikeforge.demos.place.module import (
    UP5K_SPRAM_BITS, ModuleError, ModuleParameters, compile_module, encode, frozen, input_rates,
)
from spikeforge.demos.place.runners import BoardRunner, GoldenRunner
from spikeforge.demos.place.training import (
    ModuleSpec, epoch_inputs, initial_image, module_specs, normalise_weights, train,
)

#: A short schedule of the real module (same CoreConfig, fewer steps) so tests run in seconds.
SHORT = ModuleParameters(present_steps=60, train_rest_steps=10, infer_present_steps=40, rest_steps=10)


def tiny_dataset(places=4, per_module=2, seed=0) -> PlaceDataset:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2, (places, 12, 12)) * 255
    ref = np.stack([np.where(rng.random(base.shape) < 0.1, 255 - base, base) for _ in range(2)])
    query = np.where(rng.random(base.shape) < 0.15, 255 - base, base)
    return PlaceDataset("tiny", ref.astype(np.uint8), query.astype(np.uint8), calibration_places=per_module,
                        places_per_module=per_module)


# ---- sizing ------------------------------------------------------------------------------------------
def test_default_module_fits_one_up5k_core():
    p = ModuleParameters()
    p.check_fits()
    c = p.core_config()
    assert c.n_inputs == 2 * 12 * 12 and c.n_neurons == 144 and c.stdp and c.adaptive_threshold
    assert c.memory_bits()["synapses"] == (c.n_inputs + c.n_neurons) * c.n_neurons * (c.weight_bits + 1)
    assert c.memory_bits()["synapses"] <= UP5K_SPRAM_BITS and p.spram_tiles() <= 4
    assert c.v_bits == c.i_bits == 16  # the UP5K's 16 x 16 DSPs


@pytest.mark.parametrize("change", [dict(image_shape=(28, 28)), dict(n_neurons=256), dict(lanes=8, n_neurons=160)])
def test_modules_too_big_for_one_core_are_refused(change):
    with pytest.raises(ModuleError, match="SPRAM"):
        ModuleParameters(**change).check_fits()


def test_compiled_module_structure():
    p = ModuleParameters()
    img = compile_module(p, 5).image
    a, n = p.n_inputs, p.n_neurons
    assert img.plastic[:a, :n].all() and not img.plastic[a:].any()
    inh = img.weights[a:a + n, :n]
    assert (np.diag(inh) == 0).all() and (inh[~np.eye(n, dtype=bool)] < 0).all()
    assert (img.weights[:a, :n] >= 0).all()
    assert not np.array_equal(img.weights, compile_module(p, 6).image.weights)  # seed draws the weights
    f = frozen(img, p)
    assert not f.learning and (f.profiles["a_inc"] == 0).all()
    assert np.array_equal(f.weights[a:a + n, :n] < 0, inh < 0)
    assert np.abs(f.weights[a:]).max() < np.abs(img.weights[a:]).max()  # inference inhibition is weaker


def test_on_off_encoding_and_rates():
    p = ModuleParameters()
    img = np.zeros((1, 12, 12), np.uint8)
    img[0, 0, 0] = 255
    r = input_rates(img, p, training=True)[0]
    assert r[0] == 255 / p.intensity and r[144] == 0 and r[1] == 0 and r[145] == 255 / p.intensity
    assert np.allclose(input_rates(img, p)[0], r * p.infer_gain)
    raster = encode(np.full((3, 12, 12), 255, np.uint8), p, 1, training=True)
    assert raster.shape == (3 * p.train_steps_per_image, 288)
    per = raster.reshape(3, p.train_steps_per_image, 288)
    assert not per[:, p.present_steps:].any() and not per[:, :, 144:].any()
    rate = per[:, :p.present_steps, :144].mean() * 1000 / p.dt
    assert abs(rate - 255 / p.intensity) < 5
    assert np.array_equal(raster, encode(np.full((3, 12, 12), 255, np.uint8), p, 1, training=True))
    with pytest.raises(ModuleError, match="pixels"):
        encode(np.zeros((1, 10, 10)), p, 0)


# ---- training is the same on every runner --------------------------------------------------------------
def test_batched_training_equals_module_by_module():
    ds = tiny_dataset()
    specs = module_specs(ds, [1, 2])
    together, _ = train(specs, ds, SHORT, 1)
    for spec, img in zip(specs, together):
        alone, _ = train([spec], ds, SHORT, 1)
        assert alone[0] == img


def test_training_on_the_virtual_board_learns_the_golden_weights():
    """Two modules on a 2-core virtual board (lock-step, over the UART protocol) end training with
    exactly the golden model's images -- weights, thresholds, traces, everything -- including the
    host's weight normalisation between the runs of ``norm_every`` images (here 2 runs per epoch)."""
    from spikeforge.demos.place.deploy import virtual_board

    ds = tiny_dataset()
    params = SHORT.replace(norm_every=2)
    specs = module_specs(ds, [1])  # calibration module and test module
    start = [initial_image(s, params) for s in specs]
    golden, log = train(specs, ds, params, 1, GoldenRunner())
    assert min(log.spikes_per_image[0]) > 0
    a, n = SHORT.n_inputs, SHORT.n_neurons
    for s0, g in zip(start, golden):  # learning happened: plastic weights and thresholds moved
        assert not np.array_equal(s0.weights[:a, :n], g.weights[:a, :n]) and g.adapt.any()
    board = virtual_board(start)
    try:
        on_board, _ = train(specs, ds, params, 1, BoardRunner(board))
    finally:
        board.close()
    for g, b in zip(golden, on_board):
        assert g.differences(b) == []


def test_weight_normalisation_sets_every_column_sum_and_keeps_the_template():
    img = initial_image(ModuleSpec((0, 1), 1), SHORT)
    a, n, w_max = SHORT.n_inputs, SHORT.n_neurons, int(img.stdp["w_max"])
    rng = np.random.default_rng(3)
    img.weights[:a, :n] = rng.integers(0, w_max // 3, (a, n))
    img.weights[:a, 0] = 0                                   # a column with nothing to scale
    out = normalise_weights(img, SHORT)
    w = out.weights[:a, :n]
    target = round(SHORT.weight_norm * w_max * a)
    sums = w.sum(axis=0)
    assert sums[0] == 0 and np.all(np.abs(sums[1:] - target) <= a)   # rounding: at most 1/2 unit per weight
    assert w.min() >= 0 and w.max() <= w_max
    # a scaling keeps the order of a column's weights (the template), up to rounding ties
    assert np.corrcoef(w[:, 5], img.weights[:a, 5])[0, 1] > 0.99
    # only the plastic block changes; lateral inhibition, thresholds and state are untouched
    assert np.array_equal(out.weights[a:], img.weights[a:]) and np.array_equal(out.adapt, img.adapt)
    assert normalise_weights(img, SHORT.replace(weight_norm=0)) is img


def test_training_normalises_before_every_chunk_of_norm_every_images():
    """The runner is called once per chunk of norm_every images (4 images, norm_every 3: 3 + 1) and
    every image it is given has normalised weights; with weight_norm = 0 an epoch is one call."""
    ds = tiny_dataset()
    seen = []

    class Recording(GoldenRunner):
        def run(self, images, inputs):
            seen.append(([i.weights[:SHORT.n_inputs, :SHORT.n_neurons].sum(axis=0) for i in images],
                         [len(x) for x in inputs]))
            return super().run(images, inputs)

    params = SHORT.replace(norm_every=3)
    train(module_specs(ds, [2])[:1], ds, params, 1, Recording())
    per = params.train_steps_per_image
    assert [steps for _, steps in seen] == [[3 * per], [1 * per]]
    w_max = int(initial_image(ModuleSpec((0, 1), 2), params).stdp["w_max"])
    target = round(params.weight_norm * w_max * params.n_inputs)
    for sums, _ in seen:
        assert all(np.all(np.abs(s - target) <= params.n_inputs) for s in sums)
    seen.clear()
    train(module_specs(ds, [2])[:1], ds, params.replace(weight_norm=0), 1, Recording())
    assert [steps for _, steps in seen] == [[4 * per]]


def test_numpy_reference_and_numba_kernel_train_alike():
    ds = tiny_dataset()
    spec = module_specs(ds, [3])[0]
    fast, _ = train([spec], ds, SHORT.replace(present_steps=20, train_rest_steps=5), 1, GoldenRunner("fast"))
    ref, _ = train([spec], ds, SHORT.replace(present_steps=20, train_rest_steps=5), 1, GoldenRunner("golden"))
    assert fast[0] == ref[0]


def test_epoch_inputs_are_seeded_per_module_and_epoch():
    ds = tiny_dataset()
    s = ModuleSpec((0, 1), 1)
    assert np.array_equal(epoch_inputs(s, ds, SHORT, 0), epoch_inputs(s, ds, SHORT, 0))
    assert not np.array_equal(epoch_inputs(s, ds, SHORT, 0), epoch_inputs(s, ds, SHORT, 1))
    assert not np.array_equal(epoch_inputs(s, ds, SHORT, 0), epoch_inputs(ModuleSpec((0, 1), 2), ds, SHORT, 0))


# ---- readout ------------------------------------------------------------------------------------------
def test_assignment_place_count_and_scores():
    # 3 neurons, module of places (2, 3) in a route of 4 places; R = 2 traverses
    ref = np.zeros((2, 4, 3))
    ref[:, 2, 0] = 5          # neuron 0 fires for place 2 only
    ref[:, 3, 1] = 4          # neuron 1 for place 3 ...
    ref[0, :, 1] += 1         # ... and a little for every place in traverse 0: hyperactive
    m = readout([2, 3], ref)
    assert m.assignment.tolist() == [0, 1, -1]
    assert m.place_count.tolist() == [1, 4, 0]
    q = np.array([[6, 1, 9], [0, 3, 9]])
    np.testing.assert_array_equal(module_scores(q, m, 0), [[6, 1], [0, 3]])
    np.testing.assert_array_equal(module_scores(q, m, 4), [[6, 0], [0, 0]])  # neuron 1 silenced at >= 4


def test_weights_file_roundtrip_and_data_check(tmp_path):
    ds = tiny_dataset()
    specs = module_specs(ds, [1])
    imgs, _ = train(specs, ds, SHORT, 1)
    ens = TrainedEnsemble.from_images(SHORT, specs, imgs, 1, ds)
    path = ens.save(tmp_path / "w.npz")
    back = TrainedEnsemble.load(path)
    assert back.params == SHORT and back.specs == specs
    for k in range(len(specs)):
        t = back.trained_image(k)
        assert np.array_equal(t.weights, imgs[k].weights) and np.array_equal(t.adapt, imgs[k].adapt)
    back.check_dataset(ds)
    with pytest.raises(WeightsFileError, match="other data"):
        back.check_dataset(tiny_dataset(seed=1))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(WeightsFileError):
        TrainedEnsemble.load(tmp_path / "bad.npz")
    with pytest.raises(WeightsFileError, match="no such weights file"):
        TrainedEnsemble.load(tmp_path / "missing.npz")


def test_respond_chunking_changes_nothing():
    ds = tiny_dataset()
    specs = module_specs(ds, [1])
    imgs, _ = train(specs, ds, SHORT, 1)
    frozen_imgs = [frozen(i, SHORT) for i in imgs]
    a = respond(frozen_imgs, ds.query, SHORT, 5, chunk=1)
    b = respond(frozen_imgs, ds.query, SHORT, 5, chunk=50)
    assert np.array_equal(a, b) and a.sum() > 0
