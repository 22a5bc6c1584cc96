"""The limits analysis of the place-recognition demo (demos/place/limits.py): exact-template modules,
integrate-and-fire inference, the two readouts, and the whole analysis on a tiny route."""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest

from spikeforge.core import fixedpoint as fx
from spikeforge.demos.place import metrics
from spikeforge.demos.place.ensemble import TrainedEnsemble
from spikeforge.demos.place.limits import (
    READOUTS, SETTINGS, STAGES, LimitsOptions, analyse, exact_template_modules, exact_template_weights,
    fitting_copies, input_counts, integrate_and_fire, module_place_scores, rows, template_scores,
)
from spikeforge.demos.place.module import compile_module, input_rates
from spikeforge.demos.place.runners import GoldenRunner
from spikeforge.demos.place.training import module_specs, train

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_place_module import SHORT, tiny_dataset  # noqa: E402  (the shared tiny route and schedule)


def test_exact_template_weights_are_the_normalised_reference_images():
    ds = tiny_dataset(places=4, per_module=2)
    refs = ds.reference[:, :2]                       # (R=2, P_m=2, 12, 12)
    w, owner = exact_template_weights(refs, SHORT, w_max=113, column_sum=5000, copies=3)
    rates = input_rates(refs.reshape(4, 12, 12), SHORT)
    assert w.shape == (SHORT.n_inputs, SHORT.n_neurons) and w.min() >= 0 and w.max() <= 113
    # neuron c * 4 + i holds image i (traverse-major: i = t * P_m + p); the rest are empty and silent
    assert owner[:12].tolist() == [0, 1, 2, 3] * 3 and (owner[12:] == -1).all() and not w[:, 12:].any()
    for k in range(12):
        x = rates[owner[k]]
        assert abs(int(w[:, k].sum()) - 5000) <= SHORT.n_inputs // 2          # rounding only
        assert np.array_equal(w[:, k], np.clip(np.rint(x * 5000 / x.sum()), 0, 113))
    assert fitting_copies(50, 144, 2) == 2 and fitting_copies(50, 144, 5) == 2 and fitting_copies(144, 144, 3) == 1
    with pytest.raises(ValueError, match="needs at least 150 neurons"):
        fitting_copies(150, 144, 1)


def test_template_scores_mean_and_best_reference():
    ref = np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 3.0]]])  # (R=2, P=2, A=2)
    q = np.array([[2.0, 1.0]])
    assert template_scores(q, ref, per_image=False).tolist() == [[2.5, 2.0]]   # q . mean
    assert template_scores(q, ref, per_image=True).tolist() == [[3.0, 3.0]]    # best single reference


def test_integrate_and_fire_counts_its_weighted_input_spikes():
    """A leaky neuron forgets slow input; the integrate-and-fire one counts it: twice the input
    spikes, twice the output spikes (up to the one remainder below threshold)."""
    ds = tiny_dataset(places=4, per_module=2)
    frozen = exact_template_modules(ds, SHORT.replace(infer_inhibition=0.0), threshold_adapt=0, copies=1,
                                    column_sum=3000)[0]
    scaling = compile_module(SHORT, seed=1).scaling
    counter = integrate_and_fire(frozen, threshold_mv=2.0, scaling=scaling)
    pr = counter.profiles
    assert (pr["c_vdecay"] == fx.COEF_ONE).all() and (pr["reset_subtract"] == 1).all() and (pr["refrac"] == 0).all()
    assert not counter.adapt.any() and not counter.learning
    # pr["v_thresh"] - pr["v_rest"] is 2 mV in the module's voltage scale
    assert (pr["v_thresh"] - pr["v_rest"] == scaling.dv_to_int(2.0)).all()
    assert scaling.dv_from_int(pr["v_thresh"] - pr["v_rest"]) == pytest.approx(2.0, abs=scaling.v_lsb)

    steps = 400
    rng = np.random.default_rng(3)
    sparse = np.zeros((steps, SHORT.n_inputs), dtype=bool)
    sparse[rng.random((steps, SHORT.n_inputs)) < 0.01] = True
    dense = sparse.copy()
    extra = rng.random((steps, SHORT.n_inputs)) < 0.01
    dense |= extra & ~sparse
    n_in = [int(sparse.sum()), int(dense.sum())]
    runner = GoldenRunner()
    _, (c1, c2) = runner.run([counter, counter], [sparse, dense])
    counts = [c1[:, :SHORT.n_neurons].sum(0), c2[:, :SHORT.n_neurons].sum(0)]
    active = counts[0] > 5
    assert active.sum() >= 2
    ratio = counts[1][active] / counts[0][active]
    assert np.all(np.abs(ratio - n_in[1] / n_in[0]) < 0.25), (ratio, n_in)
    # the leaky original fires far less for the same sparse input (it forgets between spikes)
    _, (leaky,) = runner.run([frozen], [sparse])
    assert leaky[:, :SHORT.n_neurons].sum() < counts[0].sum() / 2


def test_readouts_standard_mean_and_per_traverse_best():
    # reference counts (R=2, P_m=2, N=4): neuron 0 -> (day, p0), 1 -> (dusk, p0), 2 -> (day, p1), 3 -> (dusk, p1)
    ref = np.zeros((2, 2, 4))
    ref[0, 0, 0] = ref[1, 0, 1] = ref[0, 1, 2] = ref[1, 1, 3] = 5
    q = np.array([[8.0, 0.0, 3.0, 3.0]])
    assert module_place_scores(q, ref, "standard").tolist() == [[4.0, 3.0]]       # mean of (0, 1) and (2, 3)
    assert module_place_scores(q, ref, "per_traverse").tolist() == [[8.0, 3.0]]   # best traverse's group
    silent = np.zeros((2, 2, 4))
    assert not module_place_scores(q, silent, "standard").any()                   # no neuron assigned
    with pytest.raises(ValueError, match="readout 'max'"):
        module_place_scores(q, ref, "max")


def test_input_counts_are_seeded_poisson_of_one_presentation():
    ds = tiny_dataset(places=4, per_module=2)
    test = ds.split_places("test")
    a = input_counts(ds, test, SHORT, [1, 3])
    assert np.array_equal(a, input_counts(ds, test, SHORT, [1, 3]))
    assert not np.array_equal(a, input_counts(ds, test, SHORT, [2, 3]))
    lam = input_rates(ds.query[test], SHORT) * SHORT.infer_present_steps / 1000.0
    big = np.mean([input_counts(ds, test, SHORT, [s, 3]) for s in range(200)], axis=0)
    assert np.allclose(big, lam, atol=0.25 + 0.1 * lam)


def test_limits_options_are_checked():
    for bad in ({"copies": 0}, {"input_seeds": 0}, {"if_threshold_mv": 0.0}, {"copies": 1.5}):
        with pytest.raises(ValueError, match="LimitsOptions"):
            LimitsOptions(**bad)


def test_analysis_on_a_tiny_route():
    ds = tiny_dataset(places=8, per_module=4)
    specs = module_specs(ds, [1, 2])
    imgs, _ = train(specs, ds, SHORT, 2)
    ens = TrainedEnsemble.from_images(SHORT, specs, imgs, 2, ds)
    seen = []
    res = analyse(ens, ds, LimitsOptions(input_seeds=2), progress=lambda d, n: seen.append((d, n)))
    assert seen[-1][0] == seen[-1][1] and len(seen) == 6
    test = ds.split_places("test")
    sad = -metrics.sad_distances(ds.query[test], ds.reference[:, test]).astype(float)
    assert res["noise_free"]["sad"] == metrics.recall_at(sad, (1,))[1]
    assert res["places"] == 4 and res["exact_templates"]["copies"] == 2 and res["trained"]["members"] == 2
    for name in SETTINGS:
        assert set(res["exact_templates"][name]) == {*READOUTS, "mean_count"}
    # the integrate-and-fire counters count far more spikes than the leaky, inhibited neurons
    assert res["exact_templates"]["integrate_and_fire"]["mean_count"] > 5 * res["exact_templates"]["lif"]["mean_count"]
    table = rows(res)
    assert [r[0] for r in table] == [STAGES[0]] * 3 + [STAGES[1]] * 2 + [STAGES[2]] * 6 + [STAGES[3]] * 4
    assert all(0.0 <= r[2] <= 1.0 for r in table)
    # the tiny route's queries are its places with 15 % of pixels flipped: exact templates find them all
    assert res["noise_free"]["templates_per_image"] == 1.0
