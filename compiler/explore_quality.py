"""What a core choice costs in quality: the metric of ``spikeforge explore`` at one sweep point.

Three tasks, one interface (:class:`QualityTask`): a task gives the network the sweep compiles, compiles
it for a point (a dict of CoreConfig width fields) and measures the quality of the compiled network.

- ``spikes`` (no ``--task``): spike-train agreement of the golden model (the core, bit-exact) with the
  float reference (``sim/float_ref.py``, exact integration in float64) on the same input spikes. The
  metric is Kistler's coincidence factor (Kistler, Gerstner & van Hemmen 1997, Neural Comput. 9:1015):
  per neuron, Gamma = (N_coinc - <N_coinc>) / (0.5 (N_core + N_float)) / (1 - (2D+1) p_float), where
  N_coinc counts the core's spikes with a float spike within +-D steps (D = ``window_ms``/dt, rounded)
  and <N_coinc> = (2D+1) p_float N_core is what a Poisson train of the float rate would score by
  chance. Gamma = 1 for identical trains, ~0 for unrelated ones; the reported value is the mean over
  neurons that spike in either model. The relative rate error sum|c_core - c_float| / sum c_float
  (per-neuron spike counts) is reported beside it: a network whose exact spike times diverge (a
  chaotic balanced network does, for any finite precision) can still keep every neuron's rate.
- ``blimp``: closed-loop altitude tracking RMSE (m) of the shipped blimp controller (demos/blimp)
  compiled at the point (its Network view, ``snn.network``, with the controller's voltage window and
  current range), flown on the golden model over the evaluation scenarios; the PID it mimics on the
  same scenarios is the baseline.
- ``place``: Recall@1 of one place-recognition module (demos/place, shipped synthetic weights, the
  first test-split module of the first ensemble member) over its own places. The shipped weights
  were learned at 12 bits; at another width they are re-quantised (:func:`requantise_weights`), which
  is what storing the trained module in narrower (or wider) synapse words does.

Lanes never change the dynamics (the core is bit-exact for every P), so the sweep measures quality
once per point without ``lanes`` (:meth:`QualityTask.quality_key`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from spikeforge.compiler.compile import CompiledNetwork, compile as compile_network
from spikeforge.compiler.errors import QuantisationWarning
from spikeforge.compiler.network import Network
from spikeforge.core import fixedpoint as fx
from spikeforge.core.image import CoreImage

#: the tasks ``--task`` takes (``spikes`` is the default when none is given)
TASKS = ("spikes", "blimp", "place")


class ExploreError(ValueError):
    """Bad input to ``spikeforge explore``: the message names the problem and the fix."""


# ---- spike-train agreement -------------------------------------------------------------------------
def coincidence_factor(test: np.ndarray, reference: np.ndarray, window: int) -> np.ndarray:
    """Kistler's coincidence factor per neuron of two (steps, n) boolean rasters (module docstring).

    NaN for neurons silent in both. Each reference spike can match at most one test spike (the count
    of coincidences is capped at min(N_test, N_ref))."""
    test = np.asarray(test, dtype=bool)
    reference = np.asarray(reference, dtype=bool)
    if test.shape != reference.shape:
        raise ValueError(f"rasters differ in shape: {test.shape} vs {reference.shape}")
    steps = test.shape[0]
    if window < 0:
        raise ValueError(f"window = {window}: expected >= 0 steps")
    ref = reference.astype(np.int64)
    # reference spikes within +-window of each step: a moving sum over the time axis
    c = np.cumsum(np.pad(ref, ((window + 1, window), (0, 0))), axis=0)
    near = (c[2 * window + 1:] - c[:-2 * window - 1])[:steps] > 0
    n_test = test.sum(axis=0).astype(float)
    n_ref = ref.sum(axis=0).astype(float)
    coinc = np.minimum((test & near).sum(axis=0), np.minimum(n_test, n_ref))
    p_ref = n_ref / max(steps, 1)
    span = (2 * window + 1) * p_ref
    expected = span * n_test
    norm = 0.5 * (n_test + n_ref) * (1.0 - span)
    with np.errstate(invalid="ignore", divide="ignore"):
        gamma = (coinc - expected) / norm
    gamma[(n_test + n_ref) == 0] = np.nan
    gamma[(norm <= 0) & ((n_test + n_ref) > 0)] = 0.0  # a reference spiking in every window: no information
    return gamma


def spike_agreement(core: dict[str, np.ndarray], reference: dict[str, np.ndarray], dt: float,
                    window_ms: float = 2.0) -> dict:
    """Coincidence factor (mean over neurons that spike in either) and relative rate error of the
    populations of two SimResult spike dicts."""
    labels = [label for label in reference if label in core]
    a = np.concatenate([np.asarray(core[k], dtype=bool) for k in labels], axis=1)
    b = np.concatenate([np.asarray(reference[k], dtype=bool) for k in labels], axis=1)
    window = max(0, int(round(window_ms / dt)))
    gamma = coincidence_factor(a, b, window)
    counts_a, counts_b = a.sum(axis=0), b.sum(axis=0)
    total = counts_b.sum()
    active = ~np.isnan(gamma)
    return {
        "coincidence": float(np.nanmean(gamma)) if active.any() else 1.0,
        "rate_error": float(np.abs(counts_a - counts_b).sum() / total) if total else float(counts_a.sum() > 0),
        "core_rate_hz": float(counts_a.mean() / (a.shape[0] * dt / 1000.0)) if a.size else 0.0,
        "float_rate_hz": float(counts_b.mean() / (b.shape[0] * dt / 1000.0)) if b.size else 0.0,
        "window_steps": window,
    }


# ---- re-quantising trained weights ---------------------------------------------------------------
def requantise_weights(image: CoreImage, weight_bits: int) -> CoreImage:
    """``image`` with its weights stored in ``weight_bits``-bit words: the same currents
    (weight << row_shift) as closely as the narrower word allows, each row at the smallest shift at
    which its largest weight fits (the compiler's rule, compiler/quantise.py). Wider words keep every
    value exactly (the shift drops where it can). The STDP bounds are scaled and clipped alike."""
    old = image.config.weight_bits
    config = image.config.replace(weight_bits=weight_bits)
    out = image.copy()
    out.config = config
    w = np.asarray(image.weights, dtype=np.int64)
    shift = np.asarray(image.row_shift, dtype=np.int64)
    lo, hi = fx.smin(weight_bits), fx.smax(weight_bits)
    if weight_bits >= old:
        down = np.minimum(shift, weight_bits - old)
        out.weights = w << down[:, None]
        out.row_shift = shift - down
    else:
        value = (w << shift[:, None]).astype(float)  # the current increments of the trained module
        new_shift = np.array(shift)
        new_w = np.zeros_like(w)
        for s_extra in range(fx.ROW_SHIFT_MAX + 1):  # at most ROW_SHIFT_MAX passes, rows settle early
            cand = np.rint(value / np.exp2(new_shift)[:, None]).astype(np.int64)
            bad = (cand.max(axis=1, initial=0) > hi) | (cand.min(axis=1, initial=0) < lo)
            bad &= new_shift < fx.ROW_SHIFT_MAX
            new_w = cand
            if not bad.any():
                break
            new_shift = np.where(bad, new_shift + 1, new_shift)
        out.weights = np.clip(new_w, lo, hi)
        out.row_shift = new_shift
    scale = 2.0 ** (weight_bits - old)
    for name in ("w_min", "w_max"):
        out.stdp[name] = int(np.clip(np.rint(image.stdp[name] * scale), lo, hi))
    return out.validate()


# ---- the tasks -------------------------------------------------------------------------------------
@dataclass
class QualityTask:
    """One quality metric of a sweep. Subclasses set the metric and how to compile and measure."""

    name: str = "spikes"
    metric: str = "coincidence"            # the name of the ``quality`` column
    unit: str = ""
    higher_is_better: bool = True
    description: str = ""
    baseline: dict = field(default_factory=dict)   # a reference figure (the PID, SAD), if the task has one
    #: the sweep keys the task can vary (None: every width of compiler.fit.WIDTH_FIELDS)
    sweep_keys: tuple[str, ...] | None = None

    def default_network(self) -> Network | None:
        """The network the task runs when no NET is given (None: NET is required)."""
        return None

    def compile(self, network: Network, point: dict) -> CompiledNetwork:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", QuantisationWarning)
            return compile_network(network, warn=False, **point)

    def quality_key(self, point: dict) -> tuple:
        """Points with the same key have the same quality (lanes never change the dynamics)."""
        return tuple(sorted((k, v) for k, v in point.items() if k != "lanes"))

    def measure(self, compiled: CompiledNetwork, point: dict) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def reference(self) -> dict:
        """The task's baseline on the same data ({"name": ..., metric: value}), {} if it has none."""
        return {}


@dataclass
class SpikeAgreement(QualityTask):
    """Golden model vs float reference (module docstring)."""

    steps: int = 1000
    seed: int = 0
    window_ms: float = 2.0
    _reference: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.description = (f"coincidence factor (Kistler 1997, +-{self.window_ms:g} ms) of the golden model "
                            f"against the float reference over {self.steps} steps, seed {self.seed}; "
                            "1 = identical spike trains")

    def measure(self, compiled: CompiledNetwork, point: dict) -> dict:
        from spikeforge.sim import float_ref
        from spikeforge.sim.golden_backend import simulate as golden

        network = compiled.network
        key = id(network)
        if key not in self._reference:
            self._reference[key] = float_ref.simulate(network, self.steps, seed=self.seed).spikes
        core = golden(network, self.steps, seed=self.seed, compiled=compiled).spikes
        out = spike_agreement(core, self._reference[key], network.dt, self.window_ms)
        return {"quality": out.pop("coincidence"), **out}


@dataclass
class BlimpTracking(QualityTask):
    """The blimp controller's closed-loop tracking error (module docstring)."""

    runs: int = 8
    _controller: object = field(default=None, repr=False)

    def __post_init__(self):
        self.name, self.metric, self.unit, self.higher_is_better = "blimp", "rmse_m", "m", False
        self.description = (f"closed-loop altitude RMSE (m) of the shipped blimp controller on the golden "
                            f"model, {self.runs} evaluation runs (demos/blimp/evaluation.py); lower is better")

    def controller(self):
        if self._controller is None:
            from importlib.resources import files

            from spikeforge.demos.blimp import snn

            self._controller = snn.Controller.load(files("spikeforge.demos.blimp") / "trained" / "controller.json")
        return self._controller

    def default_network(self) -> Network:
        from spikeforge.demos.blimp import snn

        return snn.network(self.controller())

    def compile(self, network: Network, point: dict) -> CompiledNetwork:
        from spikeforge.demos.blimp import snn

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", QuantisationWarning)
            return compile_network(network, warn=False, **snn.compile_options(), **point)

    def measure(self, compiled: CompiledNetwork, point: dict) -> dict:
        from spikeforge.demos.blimp import evaluation, metrics
        from spikeforge.demos.blimp.closed_loop import run_closed_loop
        from spikeforge.demos.blimp.runners import GoldenRunner
        from spikeforge.demos.blimp.snn_controller import SNNController

        c = self.controller()
        if compiled.config.n_current_inputs != c.n_encoders:
            raise ExploreError(
                f"--task blimp flies the shipped controller ({c.n_encoders} analog inputs); the network given "
                f"has {compiled.config.n_current_inputs}. Leave NET out (or 'blimp') with --task blimp")
        scenario = evaluation.eval_scenario(self.runs)
        trajectory = run_closed_loop(SNNController(c, GoldenRunner(compiled.image, scenario.batch)), scenario)
        snn = metrics.summarise(trajectory.altitude, trajectory.setpoint)
        return {"quality": snn["rmse_m"], "steady_state_error_m": snn["steady_state_error_m"],
                "rmse_over_pid": snn["rmse_m"] / self.reference()["rmse_m"]}

    def reference(self) -> dict:
        """The PID the controller mimics, on the same scenarios."""
        if not self.baseline:
            from spikeforge.demos.blimp import evaluation, metrics
            from spikeforge.demos.blimp.pid import PIDGains

            pid = evaluation.run_pid(PIDGains(**self.controller().meta["pid_gains"]), evaluation.eval_scenario(self.runs))
            self.baseline = {"name": "PID", **metrics.summarise(pid.altitude, pid.setpoint)}
        return self.baseline


@dataclass
class PlaceRecall(QualityTask):
    """Recall@1 of one place-recognition module (module docstring)."""

    seed: int = 7
    _state: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.name, self.metric, self.unit, self.higher_is_better = "place", "recall_at_1", "", True
        self.sweep_keys = ("weight_bits", "lanes")  # the module's other widths are fixed by its training
        self.description = ("Recall@1 of one place-recognition module (shipped synthetic weights, first test "
                            "module of the first member) over its own places; higher is better")

    def _load(self) -> dict:
        if not self._state:
            from spikeforge.demos.place.demo import SHIPPED_WEIGHTS, DemoOptions, load_dataset
            from spikeforge.demos.place.ensemble import TrainedEnsemble

            ensemble = TrainedEnsemble.load(SHIPPED_WEIGHTS["synthetic"])
            dataset = load_dataset(DemoOptions(), ensemble.params)
            test = {tuple(m.tolist()) for m in dataset.module_places("test")}
            k = next(i for i, s in enumerate(ensemble.specs) if tuple(s.places) in test)
            self._state = {"ensemble": ensemble, "dataset": dataset, "k": k,
                           "image": ensemble.inference_images()[k]}
        return self._state

    def default_network(self) -> Network:
        from spikeforge.demos.place.module import build_network

        s = self._load()
        return build_network(s["ensemble"].params, s["ensemble"].specs[s["k"]].module_seed)

    def compile(self, network: Network, point: dict) -> CompiledNetwork:
        s = self._load()
        params = s["ensemble"].params
        config = params.core_config().replace(**point)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", QuantisationWarning)
            return compile_network(network, config, voltage_range=tuple(params.voltage_range), warn=False)

    def measure(self, compiled: CompiledNetwork, point: dict) -> dict:
        from spikeforge.demos.place import metrics
        from spikeforge.demos.place.inference import module_scores, readout, respond

        s = self._load()
        dataset, ensemble = s["dataset"], s["ensemble"]
        image = s["image"]
        wb = point.get("weight_bits", image.config.weight_bits)
        image = requantise_weights(image, wb).copy()
        places = np.asarray(ensemble.specs[s["k"]].places)
        shape = dataset.image_shape
        stimuli = np.concatenate([dataset.reference[:, places].reshape(-1, *shape), dataset.query[places]])
        counts = respond([image], stimuli, ensemble.params, self.seed)[0]
        r, p = dataset.n_traverses, len(places)
        reference = counts[:r * p].reshape(r, p, -1)
        scores = module_scores(counts[r * p:], readout(np.arange(p), reference), 0)
        recall = metrics.recall_at(scores, (1, 5))
        return {"quality": recall[1], "recall_at_5": recall[5]}

    def reference(self) -> dict:
        """Sum of absolute differences of the pixels (the demo's baseline) over the module's places."""
        if not self.baseline:
            from spikeforge.demos.place import metrics

            s = self._load()
            dataset = s["dataset"]
            places = np.asarray(s["ensemble"].specs[s["k"]].places)
            sad = -metrics.sad_distances(dataset.query[places], dataset.reference[:, places]).astype(float)
            self.baseline = {"name": "SAD", "recall_at_1": metrics.recall_at(sad, (1,))[1]}
        return self.baseline


def make_task(name: str | None, *, steps: int = 1000, seed: int = 0) -> QualityTask:
    """The task called ``name`` (None = spike agreement)."""
    if name in (None, "", "spikes"):
        return SpikeAgreement(steps=steps, seed=seed)
    if name == "blimp":
        return BlimpTracking()
    if name == "place":
        return PlaceRecall()
    raise ExploreError(f"--task {name!r}: choose one of {', '.join(TASKS)} (or leave it out for spike agreement)")


def finite(x) -> float | None:
    return float(x) if x is not None and isinstance(x, (int, float)) and math.isfinite(x) else None
