"""Evaluate a trained ensemble on a PlaceDataset: SNN variants against SAD, calibrated regularisation.

Steps (docs/place-recognition.md, "Evaluation"):

1. every frozen module is shown the reference images of every place (all traverses) and every
   query image, in one continuous run per module (all modules in one batch);
2. readouts: neuron assignments from the module's own places, place counts for regularisation;
3. on the calibration split, the regularisation threshold that maximises Recall@1 is chosen (from
   ``REGULARISATION_THRESHOLDS``; ties go to the smaller threshold), separately for the ensemble
   and for the single module set;
4. on the test split: ``snn_ensemble`` (sum of the members' score matrices, calibrated threshold),
   ``snn_single`` (first member alone, its calibrated threshold), ``snn_no_regularisation`` (the
   ensemble with no neuron ignored) and ``sad`` (metrics.sad_distances against the test places).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from spikeforge.demos.place import metrics
from spikeforge.demos.place.dataset import PlaceDataset
from spikeforge.demos.place.ensemble import TrainedEnsemble
from spikeforge.demos.place.inference import REGULARISATION_THRESHOLDS, ModuleReadout, readout, respond, split_scores
from spikeforge.demos.place.runners import CoreRunner, GoldenRunner

VARIANTS = ("snn_ensemble", "snn_single", "snn_no_regularisation", "sad")


@dataclass
class Responses:
    """Spike counts of every module: reference (B, R, P, N) and query (B, P, N)."""

    reference: np.ndarray
    query: np.ndarray
    seconds: float
    module_steps: int


@dataclass
class Evaluation:
    scores: dict[str, np.ndarray]                  # test split score matrices (Q_test, P_test)
    metrics: dict[str, dict]                       # variant -> {"recall": {"1", "5", "10"}, "pr_auc"}
    thresholds: dict[str, int]                     # calibrated regularisation threshold per SNN variant
    calibration_curve: dict[str, dict[int, float]]  # variant -> threshold -> calibration Recall@1
    readouts: list[ModuleReadout]
    responses: Responses
    test_places: np.ndarray
    extra: dict = field(default_factory=dict)


def present_all(ensemble: TrainedEnsemble, dataset: PlaceDataset, runner: CoreRunner | None = None,
                seed: int = 7, progress: Callable[[int, int], None] | None = None) -> Responses:
    """Step 1: responses of every module to every reference and query image."""
    runner = runner or GoldenRunner()
    params = ensemble.params
    images = ensemble.inference_images()
    r, p = dataset.n_traverses, dataset.n_places
    stimuli = np.concatenate([dataset.reference.reshape(r * p, *dataset.image_shape), dataset.query])
    t0 = time.perf_counter()
    counts = respond(images, stimuli, params, seed, runner, progress=progress)
    seconds = time.perf_counter() - t0
    ref = counts[:, :r * p].reshape(len(images), r, p, -1)
    query = counts[:, r * p:]
    return Responses(reference=ref, query=query, seconds=seconds,
                     module_steps=len(images) * len(stimuli) * params.steps_per_image)


def _member_scores(ensemble, readouts, responses, dataset, split, threshold) -> list[np.ndarray]:
    """One (Q_split, P_split) score matrix per ensemble member."""
    places = dataset.split_places(split)
    wanted = {tuple(m.tolist()) for m in dataset.module_places(split)}
    out = []
    for member in ensemble.members:
        idx = [k for k, s in enumerate(ensemble.specs) if s.member_seed == member and tuple(s.places) in wanted]
        if len(idx) != len(wanted):
            raise ValueError(f"member {member} lacks modules of the {split} split; train all modules of both splits")
        counts = [responses.query[k][places] for k in idx]
        out.append(split_scores(counts, [readouts[k] for k in idx], places, threshold))
    return out


def evaluate(ensemble: TrainedEnsemble, dataset: PlaceDataset, runner: CoreRunner | None = None, *,
             seed: int = 7, responses: Responses | None = None,
             progress: Callable[[int, int], None] | None = None) -> Evaluation:
    """The whole evaluation (module docstring); ``responses`` reuses step 1 if already done."""
    responses = responses or present_all(ensemble, dataset, runner, seed, progress)
    readouts = [readout(spec.places, responses.reference[k]) for k, spec in enumerate(ensemble.specs)]

    def ensemble_scores(split, threshold):
        return sum(_member_scores(ensemble, readouts, responses, dataset, split, threshold))

    def single_scores(split, threshold):
        return _member_scores(ensemble, readouts, responses, dataset, split, threshold)[0]

    curves: dict[str, dict[int, float]] = {"snn_ensemble": {}, "snn_single": {}}
    for name, fn in (("snn_ensemble", ensemble_scores), ("snn_single", single_scores)):
        for t in REGULARISATION_THRESHOLDS:
            curves[name][t] = metrics.recall_at(fn("calibration", t), (1,))[1]
    thresholds = {name: max(curve, key=lambda t: (curve[t], -t)) for name, curve in curves.items()}
    thresholds["snn_no_regularisation"] = 0

    test_places = dataset.split_places("test")
    scores = {
        "snn_ensemble": ensemble_scores("test", thresholds["snn_ensemble"]),
        "snn_single": single_scores("test", thresholds["snn_single"]),
        "snn_no_regularisation": ensemble_scores("test", 0),
        "sad": -metrics.sad_distances(dataset.query[test_places], dataset.reference[:, test_places]).astype(float),
    }
    results = {name: metrics.summary(s) for name, s in scores.items()}
    return Evaluation(scores=scores, metrics=results, thresholds=thresholds, calibration_curve=curves,
                      readouts=readouts, responses=responses, test_places=test_places)
