"""The place-recognition demo end to end: data -> (training) -> evaluation -> metrics, plots, checks.

``run_demo`` is what ``spikeforge demo place`` runs (demos/place/cli.py adds the command line). Its
default is the synthetic benchmark with the shipped weights (demos/place/trained/synthetic.npz);
``train=True`` retrains the ensemble first.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from spikeforge.demos.place import metrics, plots
from spikeforge.demos.place.dataset import DatasetError, PlaceDataset
from spikeforge.demos.place.ensemble import TrainedEnsemble
from spikeforge.demos.place.evaluation import VARIANTS, Evaluation, evaluate
from spikeforge.demos.place.module import ModuleParameters
from spikeforge.demos.place.synthetic import SyntheticRoute
from spikeforge.demos.place.throughput import default_clock_hz, golden_scaling, hardware_prediction
from spikeforge.demos.place.training import module_specs, train

TRAINED_DIR = Path(__file__).resolve().parent / "trained"
SHIPPED_WEIGHTS = {"synthetic": TRAINED_DIR / "synthetic.npz"}
DEFAULT_MEMBERS = (1, 2, 3)
DEFAULT_EPOCHS = 30

#: (label, callback(done, total)) -> context manager yielding the callback; the CLI passes rich bars.
ProgressFactory = Callable[[str], object]


@dataclass
class DemoOptions:
    out: Path = Path("out/place")
    dataset: str = "synthetic"
    data: Path | None = None
    frames: Path | None = None
    train: bool = False
    weights: Path | None = None
    weights_out: Path | None = None
    members: int = len(DEFAULT_MEMBERS)
    epochs: int = DEFAULT_EPOCHS
    calibration_places: int | None = None
    test_places: int | None = None
    places_per_module: int = 25
    skip: int | None = None
    board_cores: int = 0
    spinnaker: bool = False
    scaling: bool = True
    limits: bool = False
    bitstream: str | None = None    # board name: build one module's core for it (place and route)
    sequence: int = 1               # > 1: also report every method with sequence matching over this many frames
    seed: int = 7


@dataclass
class DemoResult:
    metrics: dict
    evaluation: Evaluation
    dataset: PlaceDataset
    ensemble: TrainedEnsemble
    files: list[Path] = field(default_factory=list)


def load_dataset(opts: DemoOptions, params: ModuleParameters, progress=None) -> PlaceDataset:
    """The data set the options name (synthetic, nordland, oxford-robotcar)."""
    if opts.dataset == "synthetic":
        if opts.data is not None:
            raise DatasetError("--data is for real data sets; the synthetic benchmark is generated (drop --data)")
        return SyntheticRoute(image_shape=tuple(params.image_shape)).generate()
    from spikeforge.demos.place.loaders import LAYOUTS, load_layout

    if opts.dataset not in LAYOUTS:
        raise DatasetError(f"--dataset {opts.dataset!r}: choose synthetic, nordland or oxford-robotcar")
    if opts.data is None:
        layout = LAYOUTS[opts.dataset]
        raise DatasetError(f"--dataset {opts.dataset} needs --data DIR, the folder laid out as {layout.example}")
    return load_layout(opts.data, LAYOUTS[opts.dataset], image_shape=tuple(params.image_shape),
                       patch_size=SyntheticRoute().patch_size, calibration_places=opts.calibration_places,
                       test_places=opts.test_places, places_per_module=opts.places_per_module, skip=opts.skip,
                       frames=opts.frames, progress=progress)


def obtain_ensemble(opts: DemoOptions, dataset: PlaceDataset, progress=None) -> tuple[TrainedEnsemble, dict]:
    """Shipped/loaded weights, or a freshly trained ensemble (``opts.train``); returns it and timing."""
    info: dict = {}
    if not opts.train:
        path = opts.weights or SHIPPED_WEIGHTS.get(opts.dataset)
        if path is None:
            raise DatasetError(
                f"no shipped weights for --dataset {opts.dataset}; train them with --train (and keep them with "
                "--weights-out FILE), or give --weights FILE"
            )
        ensemble = TrainedEnsemble.load(path)
        ensemble.check_dataset(dataset)
        info["weights"] = str(path)
        return ensemble, info
    if opts.members < 1 or opts.epochs < 1:
        raise ValueError(f"--members {opts.members} and --epochs {opts.epochs}: both must be >= 1")
    params = ModuleParameters()
    members = list(range(1, opts.members + 1))
    specs = module_specs(dataset, members)
    t0 = time.perf_counter()
    images, log = train(specs, dataset, params, opts.epochs, progress=progress)
    info["train_seconds"] = time.perf_counter() - t0
    info["train_module_steps"] = int(sum(len(s.places) for s in specs) * dataset.n_traverses
                                     * params.train_steps_per_image * opts.epochs)
    info["last_epoch_spikes_per_image"] = float(np.mean(log.spikes_per_image[-1]))
    ensemble = TrainedEnsemble.from_images(params, specs, images, opts.epochs, dataset,
                                           trained_with="golden-fast", data=dataset.summary())
    out = opts.weights_out or (opts.out / "weights.npz")
    ensemble.save(out)
    info["weights"] = str(out)
    return ensemble, info


def run_demo(opts: DemoOptions, progress: ProgressFactory | None = None, log: Callable[[str], None] = print) -> DemoResult:
    """Everything ``spikeforge demo place`` does; returns the metrics and the evaluation."""
    t_start = time.perf_counter()
    if opts.sequence < 1:
        raise ValueError(f"--sequence {opts.sequence}: expected a number of frames >= 1 (1 = off)")
    if opts.bitstream:  # a misspelt board fails now, not after training and evaluation
        from spikeforge.boards.catalog import get_board

        get_board(opts.bitstream)
    opts.out.mkdir(parents=True, exist_ok=True)
    bar = progress or (lambda label: _NullBar())
    params = ModuleParameters()
    with bar("loading data") as cb:
        dataset = load_dataset(opts, params, cb)
    log(f"data: {dataset.name}, {dataset.n_places} places ({dataset.calibration_places} calibration), "
        f"{dataset.n_traverses} reference traverses {list(dataset.reference_names)}, query {dataset.query_name}")
    with bar("training" if opts.train else "loading weights") as cb:
        ensemble, info = obtain_ensemble(opts, dataset, cb)
    params = ensemble.params
    with bar("evaluating (golden model)") as cb:
        ev = evaluate(ensemble, dataset, seed=opts.seed, progress=cb)

    # throughput: golden measured, hardware predicted on a sample of queries
    resp = ev.responses
    n_stimuli = dataset.n_places * (dataset.n_traverses + 1)
    clock = default_clock_hz("icebreaker")
    images = ensemble.inference_images()
    sample = dataset.query[ev.test_places[:3]]
    hw = hardware_prediction(images[: min(4, len(images))], sample, params, clock_hz=clock)
    throughput = {
        "golden": {
            "seconds": resp.seconds, "module_images": len(images) * n_stimuli,
            "module_images_per_s": len(images) * n_stimuli / resp.seconds,
            "ensemble_queries_per_s": n_stimuli / resp.seconds,
            "module_steps_per_s": resp.module_steps / resp.seconds,
            "numba_threads": _threads(), "machine": platform.processor() or platform.machine(),
        },
        "hardware_predicted": {**hw, "board": "icebreaker (iCE40 UP5K), one module per core",
                               "ensemble_queries_per_s_one_core": hw["images_per_s_per_core"] / len(images),
                               "note": "cycles from sim/cycle_model.py at the board's default core clock; one "
                                       "core holds one module, so an ensemble of M modules needs M cores (or M "
                                       "reloads of the weight memory per query)"},
    }
    if opts.scaling:
        with bar("measuring cost vs modules") as cb:
            throughput["scaling"] = golden_scaling(images, dataset.query[ev.test_places[:8]], params,
                                                   counts=[m for m in (1, 2, 4, 8) if m <= len(images)])
            cb(1, 1)

    checks = {}
    if opts.board_cores:
        with bar(f"virtual board, {opts.board_cores} cores") as cb:
            checks["virtual_board"] = board_check(ensemble, dataset, opts.board_cores, seed=opts.seed)
            cb(1, 1)
    if opts.spinnaker:
        with bar("SpiNNaker mapping (virtual machine)") as cb:
            checks["spinnaker"] = spinnaker_check(ensemble, dataset, opts.out)
            cb(1, 1)

    if opts.bitstream:
        from spikeforge.demos.place.deploy import module_bitstream

        with bar(f"building one module's core for {opts.bitstream} (synthesis, place and route)") as cb:
            checks["bitstream"] = module_bitstream(params, opts.bitstream, opts.out / f"bitstream-{opts.bitstream}")
            cb(1, 1)

    limits = None
    if opts.limits:
        from spikeforge.demos.place.limits import LimitsOptions, analyse

        with bar("limits analysis (exact-template modules)") as cb:
            limits = analyse(ensemble, dataset, LimitsOptions(seed=opts.seed), progress=cb)

    # extra baselines for context: SAD against each reference traverse alone
    test = ev.test_places
    sad_single = {name: metrics.summary(-metrics.sad_distances(dataset.query[test], dataset.reference[t:t + 1, test])
                                        .astype(float))
                  for t, name in enumerate(dataset.reference_names)}
    m = ev.metrics
    result = {
        "recall_at_1": {k: m[k]["recall"]["1"] for k in VARIANTS},
        "recall_at_5": {k: m[k]["recall"]["5"] for k in VARIANTS},
        "recall_at_10": {k: m[k]["recall"]["10"] for k in VARIANTS},
        "pr_auc": {k: m[k]["pr_auc"] for k in VARIANTS},
        "places": int(len(test)),
        "places_total": int(dataset.n_places),
        "calibration_places": int(dataset.calibration_places),
        "modules": int(len(ensemble.specs)),
        "ensemble_members": len(ensemble.members),
        "modules_per_member": len(ensemble.specs) // len(ensemble.members),
        "regularisation_threshold": ev.thresholds,
        "calibration_recall_at_1": {k: {str(t): r for t, r in c.items()} for k, c in ev.calibration_curve.items()},
        "sad_single_reference": {name: {"recall_at_1": v["recall"]["1"], "pr_auc": v["pr_auc"]}
                                 for name, v in sad_single.items()},
        "dataset": dataset.summary(),
        "module": {"params": params.to_dict(), "core_config": params.core_config().to_dict(),
                   "weight_memory_bits": params.weight_memory_bits(), "spram_blocks": params.spram_tiles()},
        "training": {"epochs": ensemble.epochs, **info},
        "throughput": throughput,
        "checks": checks,
        "seconds": None,
    }
    if opts.sequence > 1:
        seq = {k: metrics.summary(metrics.sequence_scores(ev.scores[k], opts.sequence)) for k in VARIANTS}
        result["sequence"] = {"length": int(opts.sequence),
                              "recall_at_1": {k: v["recall"]["1"] for k, v in seq.items()},
                              "recall_at_5": {k: v["recall"]["5"] for k, v in seq.items()},
                              "pr_auc": {k: v["pr_auc"] for k, v in seq.items()}}
    if limits is not None:
        result["limits"] = limits
    files = [
        plots.pr_curves(ev.scores, opts.out / "pr_curves.png"),
        plots.distance_matrices(ev.scores, opts.out / "distance_matrices.png"),
        plots.example_matches(dataset, ev.scores["snn_ensemble"], test, opts.out / "example_matches.png"),
        plots.calibration_curve(ev.calibration_curve, ev.thresholds, opts.out / "regularisation.png"),
        plots.benchmark_examples(dataset, opts.out / "data_examples.png",
                                 places=tuple(int(p) for p in test[:4])),
    ]
    if limits is not None:
        from spikeforge.demos.place.limits import rows

        files.append(plots.limits_chart(rows(limits), limits["noise_free"]["sad"], opts.out / "limits.png"))
    result["seconds"] = time.perf_counter() - t_start
    (opts.out / "metrics.json").write_text(json.dumps(result, indent=2, default=_jsonable))
    files.append(opts.out / "metrics.json")
    return DemoResult(metrics=result, evaluation=ev, dataset=dataset, ensemble=ensemble, files=files)


def board_check(ensemble: TrainedEnsemble, dataset: PlaceDataset, cores: int, *, images: int = 2, seed: int = 7) -> dict:
    """Run the first ``cores`` modules on a ``cores``-core virtual board for a few query images and
    compare the spike counts with the golden model's (they must be equal)."""
    from spikeforge.demos.place.deploy import virtual_board
    from spikeforge.demos.place.inference import respond
    from spikeforge.demos.place.runners import BoardRunner, GoldenRunner

    if cores < 1:
        raise ValueError(f"--board-cores {cores}: expected >= 1")
    mods = ensemble.inference_images()[:cores]
    stimuli = dataset.query[dataset.split_places("test")[:images]]
    t0 = time.perf_counter()
    board = virtual_board(mods)
    try:
        on_board = respond(mods, stimuli, ensemble.params, seed, BoardRunner(board))
    finally:
        board.close()
    seconds = time.perf_counter() - t0
    golden = respond(mods, stimuli, ensemble.params, seed, GoldenRunner())
    return {"cores": len(mods), "images": int(len(stimuli)), "equal_to_golden": bool(np.array_equal(on_board, golden)),
            "spikes": int(golden.sum()), "seconds": seconds}


def spinnaker_check(ensemble: TrainedEnsemble, dataset: PlaceDataset, out: Path, modules: int | None = None) -> dict:
    """Map the ensemble (``modules`` of it) on a virtual SpiNNaker machine; the report goes to out."""
    from spikeforge.demos.place.deploy import ensemble_network, spinnaker_mapping

    mods = list(range(len(ensemble.specs) if modules is None else min(modules, len(ensemble.specs))))
    stimulus = dataset.query[dataset.split_places("test")[0]]
    net = ensemble_network(ensemble, mods, stimulus)
    report = spinnaker_mapping(net, ensemble.params.steps_per_image)
    (out / "spinnaker.json").write_text(json.dumps(report, indent=2, default=_jsonable))
    cores = {(p["x"], p["y"], p["p"]) for p in report.get("placements", [])}
    return {"modules": len(mods), "neurons": int(net.n_neurons), "application_cores": len(cores),
            "report": str(out / "spinnaker.json")}


def _threads() -> int:
    try:
        import numba

        return int(numba.get_num_threads())
    except Exception:  # pragma: no cover - numba is a dependency
        return int(os.environ.get("NUMBA_NUM_THREADS", 1))


def _jsonable(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class _NullBar:
    def __enter__(self):
        return lambda done, total: None

    def __exit__(self, *exc):
        return False
