"""Where the SNN loses Recall@1 against SAD, measured step by step (``spikeforge demo place --limits``).

A module is a template matcher read out through spiking neurons: a neuron's drive is the dot
product of its weights with the input rates, and a place's score is the spike count of the
neurons assigned to it. This analysis separates what each stage costs on the test split:

1. **noise-free matchers** (no spikes): SAD (the baseline), and dot products with exact ON/OFF
   templates -- one per place (the mean of its reference images) or one per reference image (the
   best of them). These bound any module that learns templates;
2. **the input spikes**: the same matchers fed the Poisson spike counts of one inference
   presentation instead of the image (SAD on the image the counts estimate, and the per-image
   templates as perfect integrators of the weighted input spikes). If these stay at the
   noise-free level, the input coding loses nothing;
3. **modules that hold the exact per-image templates** (the best weights learning could reach,
   ``copies`` neurons per reference image, normalised like the trained modules, one shared
   threshold: the median learned one), run on the golden model under the inference settings of
   the trained modules, without lateral inhibition, and as integrate-and-fire neurons (no leak,
   reset by subtraction, no refractory period, a low threshold: the neuron counts its weighted
   input spikes). Two readouts: the standard one (mean count of the neurons assigned to a place)
   and a per-traverse one (neurons assigned to a place *in one reference traverse*, the best
   traverse's mean count), which is what "the best of the per-image templates" needs;
4. **the trained ensemble** with both readouts (no regularisation).

Everything is seeded; the golden model is deterministic, so the numbers reproduce exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from spikeforge.compiler.scaling import Scaling
from spikeforge.core import fixedpoint as fx
from spikeforge.core.image import CoreImage
from spikeforge.demos.place import metrics
from spikeforge.demos.place.dataset import PlaceDataset
from spikeforge.demos.place.ensemble import TrainedEnsemble
from spikeforge.demos.place.inference import inference_image, module_scores, readout as assign, respond
from spikeforge.demos.place.module import ModuleParameters, compile_module, input_rates
from spikeforge.demos.place.runners import CoreRunner, GoldenRunner
from spikeforge.demos.place.training import ModuleSpec, initial_image

#: The inference settings the exact-template modules are run under (key -> label).
SETTINGS = {
    "lif": "LIF as trained modules infer",
    "lif_no_inhibition": "LIF, no inhibition",
    "integrate_and_fire": "integrate-and-fire",
}
READOUTS = ("standard", "per_traverse")


@dataclass(frozen=True)
class LimitsOptions:
    copies: int = 2                 # neurons per reference image in the exact-template modules
    input_seeds: int = 5            # Poisson draws of the query for the input-spike bounds
    if_threshold_mv: float = 5.0    # threshold above rest of the integrate-and-fire neurons
    seed: int = 7                   # inference Poisson spikes (as the evaluation's --seed)

    def __post_init__(self):
        if int(self.copies) != self.copies or self.copies < 1:
            raise ValueError(f"LimitsOptions.copies = {self.copies!r}: expected a whole number >= 1")
        if int(self.input_seeds) != self.input_seeds or self.input_seeds < 1:
            raise ValueError(f"LimitsOptions.input_seeds = {self.input_seeds!r}: expected a whole number >= 1")
        if not self.if_threshold_mv > 0:
            raise ValueError(f"LimitsOptions.if_threshold_mv = {self.if_threshold_mv!r}: expected > 0 mV")


# ---- 1. noise-free matchers --------------------------------------------------------------------
def template_scores(query_rates: np.ndarray, reference_rates: np.ndarray, per_image: bool) -> np.ndarray:
    """(Q, P) dot-product scores of queries against ON/OFF templates built from ``reference_rates``
    (R, P, A): the mean over the references (``per_image=False``) or the best single reference."""
    ref = np.asarray(reference_rates, dtype=np.float64)
    q = np.asarray(query_rates, dtype=np.float64)
    if not per_image:
        return q @ ref.mean(axis=0).T
    return np.max([q @ ref[t].T for t in range(ref.shape[0])], axis=0)


def noise_free_recall(dataset: PlaceDataset, params: ModuleParameters) -> dict[str, float]:
    """Recall@1 on the test split of SAD and of exact templates (no spikes)."""
    test = dataset.split_places("test")
    q = input_rates(dataset.query[test], params)
    ref = _reference_rates(dataset, test, params)
    sad = -metrics.sad_distances(dataset.query[test], dataset.reference[:, test]).astype(float)
    return {
        "sad": _r1(sad),
        "templates_per_place": _r1(template_scores(q, ref, per_image=False)),
        "templates_per_image": _r1(template_scores(q, ref, per_image=True)),
    }


# ---- 2. the information in the input spikes ----------------------------------------------------
def input_counts(dataset: PlaceDataset, places: np.ndarray, params: ModuleParameters, seed) -> np.ndarray:
    """Poisson input spike counts (Q, A) of one inference presentation of the queries of ``places``
    (the counts the core's inputs would deliver: rate x presentation time)."""
    rates = input_rates(dataset.query[places], params)
    lam = rates * params.infer_present_steps * params.dt / 1000.0
    return np.random.default_rng(seed).poisson(lam).astype(np.float64)


def input_spike_recall(dataset: PlaceDataset, params: ModuleParameters, seeds: int) -> dict[str, dict]:
    """Recall@1 (mean and sd over ``seeds`` draws) of SAD and of the per-image templates when the
    query is known only through its input spike counts. SAD gets the image the ON/OFF counts
    estimate (x = 255 on / (on + off)); the templates integrate the counts (an ideal linear neuron)."""
    if not params.on_off:
        raise ValueError("the input-spike bounds need ON/OFF inputs (ModuleParameters.on_off)")
    test = dataset.split_places("test")
    p = params.n_pixels
    ref = _reference_rates(dataset, test, params)
    ref_images = dataset.reference[:, test].reshape(dataset.n_traverses, len(test), -1).astype(np.float64)
    sad, tmpl = [], []
    for s in range(seeds):
        c = input_counts(dataset, test, params, [int(s), 3])
        on, off = c[:, :p], c[:, p:]
        estimate = 255.0 * on / np.maximum(on + off, 1.0)
        d = np.min([np.abs(estimate[:, None] - ref_images[t][None]).sum(axis=2)
                    for t in range(dataset.n_traverses)], axis=0)
        sad.append(_r1(-d))
        tmpl.append(_r1(template_scores(c, ref / ref.sum(axis=2, keepdims=True), per_image=True)))
    return {"sad_on_input_counts": _mean_sd(sad), "templates_on_input_counts": _mean_sd(tmpl)}


# ---- 3. modules holding exact templates ----------------------------------------------------------
def exact_template_weights(reference_images: np.ndarray, params: ModuleParameters, w_max: int, column_sum: int,
                           copies: int) -> tuple[np.ndarray, np.ndarray]:
    """Plastic weights (A, N) whose columns are the ON/OFF rates of the reference images (R, P_m,
    H, W) scaled to ``column_sum`` weight units (as the host normalisation leaves trained weights),
    ``copies`` neurons per image; and the owner of every neuron (N,): index t * P_m + p of its image,
    -1 for neurons left without one (zero weights, silent)."""
    r, pm = reference_images.shape[:2]
    rates = input_rates(reference_images.reshape(r * pm, *reference_images.shape[2:]), params)
    n_images = r * pm
    if n_images * copies > params.n_neurons:
        raise ValueError(f"{n_images} reference images x {copies} copies need {n_images * copies} neurons; "
                         f"the module has {params.n_neurons} (lower LimitsOptions.copies)")
    a, n = params.n_inputs, params.n_neurons
    weights = np.zeros((a, n), dtype=np.int64)
    owner = np.full(n, -1, dtype=np.int64)
    for c in range(copies):
        for i, x in enumerate(rates):
            k = c * n_images + i
            weights[:, k] = np.clip(np.rint(x * column_sum / max(x.sum(), 1e-12)), 0, w_max)
            owner[k] = i
    return weights, owner


def integrate_and_fire(image: CoreImage, threshold_mv: float, scaling: Scaling) -> CoreImage:
    """The frozen image with its neurons turned into integrate-and-fire counters: no leak
    (c_vdecay = 1.0), reset by subtraction, no refractory period, adaptation cleared, threshold
    ``threshold_mv`` above rest (in the voltage units of the module's compiled ``scaling``)."""
    out = image.copy()
    pr = out.profiles
    pr["c_vdecay"] = np.full_like(pr["c_vdecay"], fx.COEF_ONE)
    pr["refrac"] = np.zeros_like(pr["refrac"])
    pr["reset_subtract"] = np.ones_like(pr["reset_subtract"])
    pr["v_thresh"] = pr["v_rest"] + int(scaling.dv_to_int(threshold_mv))
    out.adapt = np.zeros_like(out.adapt)
    return out.validate()


def exact_template_modules(dataset: PlaceDataset, params: ModuleParameters, threshold_adapt: int,
                           copies: int, column_sum: int) -> list[CoreImage]:
    """The frozen test-split modules holding exact per-image templates (module docstring, step 3):
    ``copies`` neurons per reference image (``fitting_copies`` says how many fit), every template scaled to
    ``column_sum`` weight units, every used neuron at threshold adaptation ``threshold_adapt``."""
    images = []
    for places in dataset.module_places("test"):
        spec = ModuleSpec(tuple(int(p) for p in places), member_seed=1)
        base = initial_image(spec, params)
        w_max = int(base.stdp["w_max"])
        w, owner = exact_template_weights(dataset.reference[:, list(places)], params, w_max, column_sum, copies)
        trained = base.copy()
        trained.weights[:params.n_inputs, :params.n_neurons] = w
        trained.adapt[:params.n_neurons] = np.where(owner >= 0, int(threshold_adapt), 0)
        images.append(inference_image(base, trained.validate(), params))
    return images


def fitting_copies(n_images: int, n_neurons: int, wanted: int) -> int:
    """Neurons per reference image that fit the module: ``wanted``, fewer if the module is too small."""
    if n_images > n_neurons:
        raise ValueError(f"a module of {n_images} reference images needs at least {n_images} neurons for exact "
                         f"templates; it has {n_neurons} (fewer places per module or more neurons)")
    return min(int(wanted), n_neurons // n_images)


# ---- readouts --------------------------------------------------------------------------------------
def module_place_scores(query_counts: np.ndarray, reference_counts: np.ndarray, readout: str) -> np.ndarray:
    """(Q, P_m) scores of one module from its counts for the queries (Q, N) and for the reference
    images of its own places (R, P_m, N).

    ``standard``: a neuron belongs to the place whose reference images (mean over the traverses)
    make it fire most; score = mean count of the place's neurons (inference.module_scores).
    ``per_traverse``: a neuron belongs to the (traverse, place) image that makes it fire most;
    score = the best traverse's mean count of the place's neurons of that traverse."""
    ref = np.asarray(reference_counts)
    r, pm, n = ref.shape
    if readout == "standard":
        return module_scores(query_counts, assign(range(pm), ref), threshold=0)
    if readout == "per_traverse":  # every (traverse, place) image a place of its own, then the best traverse
        per_image = module_scores(query_counts, assign(range(r * pm), ref.reshape(1, r * pm, n)), threshold=0)
        return per_image.reshape(-1, r, pm).max(axis=1)
    raise ValueError(f"readout {readout!r}: expected one of {READOUTS}")


def split_recall(query_counts: Sequence[np.ndarray], reference_counts: Sequence[np.ndarray],
                 module_places: Sequence[np.ndarray], test: np.ndarray, readout: str,
                 members: int = 1) -> float:
    """Recall@1 on the test split of modules listed member by member (the members' scores summed)."""
    column = {int(p): k for k, p in enumerate(test)}
    per_member = len(module_places)
    total = np.zeros((len(test), len(test)))
    for m in range(members):
        for j, places in enumerate(module_places):
            k = m * per_member + j
            cols = [column[int(p)] for p in places]
            total[:, cols] += module_place_scores(query_counts[k], reference_counts[k], readout)
    return _r1(total)


def run_modules(images: Sequence[CoreImage], dataset: PlaceDataset, params: ModuleParameters, seed: int,
                runner: CoreRunner | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Counts of test-split modules (in dataset.module_places("test") order) for the test queries
    and for the reference images of each module's own places."""
    test = dataset.split_places("test")
    r = dataset.n_traverses
    stimuli = np.concatenate([dataset.reference[:, test].reshape(-1, *dataset.image_shape), dataset.query[test]])
    counts = respond(images, stimuli, params, seed, runner or GoldenRunner())
    index = {int(p): k for k, p in enumerate(test)}
    queries, references = [], []
    places_per_member = dataset.module_places("test")
    for k in range(len(images)):
        places = places_per_member[k % len(places_per_member)]
        ref = counts[k, :r * len(test)].reshape(r, len(test), -1)
        references.append(ref[:, [index[int(p)] for p in places]])
        queries.append(counts[k, r * len(test):])
    return queries, references


# ---- the whole analysis ---------------------------------------------------------------------------
def analyse(ensemble: TrainedEnsemble, dataset: PlaceDataset, options: LimitsOptions = LimitsOptions(),
            runner: CoreRunner | None = None, progress: Callable[[int, int], None] | None = None) -> dict:
    """Every step of the module docstring; returns Recall@1 values (test split) as a dict."""
    params = ensemble.params
    runner = runner or GoldenRunner()
    steps = 2 + len(SETTINGS) + 1
    tick = progress or (lambda done, total: None)
    out: dict = {"places": int(len(dataset.split_places("test")))}
    out["noise_free"] = noise_free_recall(dataset, params)
    tick(1, steps)
    out["input_spikes"] = input_spike_recall(dataset, params, options.input_seeds)
    tick(2, steps)

    # the exact templates get what training gave the neurons: the median learned threshold and the
    # median column sum of the trained weights (the normalisation's target when it is on)
    learned = np.concatenate([a[a > 0] for a in ensemble.adapt]) if ensemble.adapt else np.zeros(0)
    threshold_adapt = int(np.median(learned)) if learned.size else 0
    sums = np.concatenate([w.sum(axis=0) for w in ensemble.weights]) if ensemble.weights else np.zeros(0)
    column_sum = int(np.median(sums[sums > 0])) if (sums > 0).any() else 1
    test = dataset.split_places("test")
    places = dataset.module_places("test")
    copies = fitting_copies(dataset.n_traverses * max(len(m) for m in places), params.n_neurons, options.copies)
    out["exact_templates"] = {"copies": copies, "threshold_adapt_units": threshold_adapt, "column_sum": column_sum,
                              "if_threshold_mv": options.if_threshold_mv, "settings": SETTINGS}
    for i, name in enumerate(SETTINGS):
        run_params = params if name == "lif" else params.replace(infer_inhibition=0.0)
        images = exact_template_modules(dataset, run_params, threshold_adapt, copies, column_sum)
        if name == "integrate_and_fire":
            scaling = compile_module(params, seed=1).scaling
            images = [integrate_and_fire(im, options.if_threshold_mv, scaling) for im in images]
        q, ref = run_modules(images, dataset, run_params, options.seed, runner)
        out["exact_templates"][name] = {ro: split_recall(q, ref, places, test, ro) for ro in READOUTS}
        out["exact_templates"][name]["mean_count"] = float(np.mean([x.mean() for x in q]))
        tick(3 + i, steps)

    # the trained ensemble, standard inference, no regularisation
    index = {(s.member_seed, tuple(s.places)): k for k, s in enumerate(ensemble.specs)}
    wanted = [tuple(int(p) for p in m) for m in places]
    missing = [(m, w) for m in ensemble.members for w in wanted if (m, w) not in index]
    if missing:
        raise ValueError(f"the ensemble has no module for member {missing[0][0]}, places {list(missing[0][1])} of "
                         "the test split: train all modules of both splits")
    frozen_images = ensemble.inference_images()
    trained = [frozen_images[index[(m, w)]] for m in ensemble.members for w in wanted]
    q, ref = run_modules(trained, dataset, params, options.seed, runner)
    per_member = len(wanted)
    out["trained"] = {
        "single": {ro: split_recall(q[:per_member], ref[:per_member], places, test, ro) for ro in READOUTS},
        "ensemble": {ro: split_recall(q, ref, places, test, ro, members=len(ensemble.members)) for ro in READOUTS},
        "members": len(ensemble.members),
    }
    tick(steps, steps)
    return out


#: The stages of the analysis, in order (the first element of every row).
STAGES = ("no spikes", "input spikes", "exact-template module", "trained modules")

def rows(result: dict) -> list[tuple[str, str, float, str]]:
    """(stage, what, Recall@1, note) rows of ``analyse``'s result, in the order of the analysis."""
    nf, ins, ex, tr = result["noise_free"], result["input_spikes"], result["exact_templates"], result["trained"]
    out = [
        ("no spikes", "SAD (the baseline)", nf["sad"], "the preprocessed images"),
        ("no spikes", "templates, one per place", nf["templates_per_place"], "dot product, mean reference"),
        ("no spikes", "templates, one per reference image", nf["templates_per_image"], "best reference"),
    ]
    for key, label in (("sad_on_input_counts", "SAD"), ("templates_on_input_counts", "templates, one per image")):
        v = ins[key]
        out.append(("input spikes", label, v["mean"], f"+- {v['sd']:.3f} over {v['draws']} Poisson draws"))
    for name in SETTINGS:
        for ro in READOUTS:
            out.append(("exact-template module", f"{SETTINGS[name]}, {ro.replace('_', ' ')} readout",
                        ex[name][ro], f"{ex[name]['mean_count']:.1f} spikes per neuron and query"))
    for which in ("single", "ensemble"):
        for ro in READOUTS:
            label = "one member" if which == "single" else f"ensemble of {tr['members']}"
            out.append(("trained modules", f"{label}, {ro.replace('_', ' ')} readout", tr[which][ro],
                        "no regularisation"))
    return out


# ---- helpers -------------------------------------------------------------------------------------
def _reference_rates(dataset: PlaceDataset, places: np.ndarray, params: ModuleParameters) -> np.ndarray:
    r = dataset.n_traverses
    return input_rates(dataset.reference[:, places].reshape(-1, *dataset.image_shape), params).reshape(
        r, len(places), -1)


def _r1(scores: np.ndarray) -> float:
    return float(metrics.recall_at(scores, (1,))[1])


def _mean_sd(values: Sequence[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "sd": float(v.std()), "draws": int(v.size)}
