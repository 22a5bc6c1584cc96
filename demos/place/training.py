"""Training the modules with the core's own STDP, as a sequence of (image, inputs, steps).

A module is trained on the reference images of its places: every epoch shows all of them (every
reference traverse) in a seeded random order, each for ``present_steps`` steps of Poisson input
followed by ``train_rest_steps`` silent steps, with learning on. The core's state (weights,
adaptive thresholds, traces) carries from one image to the next and from one epoch to the next.

The one thing the host adds is Diehl & Cook's **weight normalisation**, which the core does not
have: before every run of ``norm_every`` images it scales each neuron's plastic input weights to a
fixed sum (``normalise_weights``, integer arithmetic). So training is

    for each epoch e, for each chunk c of norm_every images:  image = run(normalise(image), inputs(e, c))

and any runner (the golden model in batch, the virtual board, an FPGA, which loads the image, runs
it and reads it back) learns the same weights bit for bit. With ``weight_norm = 0`` an epoch is one
run and nothing happens between runs.

Seeds: the member seed of an ensemble and the module's first place give the module's seed
(``ModuleSpec.module_seed``); it draws the initial weights, the presentation order and the Poisson
spikes, so a module is reproducible on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from spikeforge.core.image import CoreImage
from spikeforge.demos.place.dataset import PlaceDataset
from spikeforge.demos.place.module import ModuleParameters, compile_module, encode, presentation_counts
from spikeforge.demos.place.runners import CoreRunner, GoldenRunner

Progress = Callable[[int, int], None]  # (done, total) epochs x modules


@dataclass(frozen=True)
class ModuleSpec:
    """One module: the places it learns and the ensemble member (seed) it belongs to."""

    places: tuple[int, ...]
    member_seed: int

    @property
    def module_seed(self) -> int:
        """The seed of this module's random draws (distinct per member and per region)."""
        return int(self.member_seed) * 100_003 + int(self.places[0])

    def to_dict(self) -> dict:
        return {"places": [int(p) for p in self.places], "member_seed": int(self.member_seed)}

    @classmethod
    def from_dict(cls, data: dict) -> "ModuleSpec":
        return cls(places=tuple(int(p) for p in data["places"]), member_seed=int(data["member_seed"]))


def module_specs(dataset: PlaceDataset, member_seeds: Sequence[int], split: str = "all") -> list[ModuleSpec]:
    """Every module of ``split`` for every ensemble member: calibration modules, then test modules."""
    splits = ("calibration", "test") if split == "all" else (split,)
    return [ModuleSpec(tuple(int(p) for p in places), int(seed))
            for seed in member_seeds for s in splits for places in dataset.module_places(s)]


def initial_image(spec: ModuleSpec, params: ModuleParameters) -> CoreImage:
    """The compiled, untrained module (random initial weights from the module seed)."""
    return compile_module(params, spec.module_seed).image


def training_images(spec: ModuleSpec, dataset: PlaceDataset) -> np.ndarray:
    """The (R * places, H, W) reference images a module learns, traverse by traverse."""
    return dataset.reference[:, list(spec.places)].reshape(-1, *dataset.image_shape)


def epoch_inputs(spec: ModuleSpec, dataset: PlaceDataset, params: ModuleParameters, epoch: int) -> np.ndarray:
    """The input raster of one training epoch of one module (steps, A)."""
    images = training_images(spec, dataset)
    order = np.random.default_rng([spec.module_seed, int(epoch), 1]).permutation(len(images))
    return encode(images[order], params, [spec.module_seed, int(epoch), 2], training=True)


def normalise_weights(image: CoreImage, params: ModuleParameters) -> CoreImage:
    """Diehl & Cook's weight normalisation on the host: every neuron's plastic input weights (its
    column of the inputs -> neurons block) are scaled to sum to T = rnd(weight_norm * w_max * A)
    weight units: w' = floor(w T / s + 1/2) with s the column's sum, clamped to [0, w_max]; a column
    that sums to 0 stays 0. Integers only, so every runner's host step is the same.

    Why: additive STDP with A+ > A- potentiates every input that is active when the neuron fires, so
    without it a neuron's weights drift up to w_max together and its template fades, and the random
    initial weights stay in the template as noise (docs/place-recognition.md, section 3)."""
    if params.weight_norm <= 0:
        return image
    a, n = params.n_inputs, params.n_neurons
    w_max = int(image.stdp["w_max"])
    target = int(round(params.weight_norm * w_max * a))
    out = image.copy()
    w = np.asarray(out.weights[:a, :n], dtype=np.int64)
    total = w.sum(axis=0)
    scale = np.maximum(total, 1)
    out.weights[:a, :n] = np.where(total > 0, np.clip((2 * w * target + scale) // (2 * scale), 0, w_max), 0)
    return out.validate()


def epoch_steps(spec: ModuleSpec, dataset: PlaceDataset, params: ModuleParameters) -> int:
    return len(spec.places) * dataset.n_traverses * params.train_steps_per_image


@dataclass
class TrainingLog:
    """Per epoch and module: spikes per presented image and neurons that fired (a health check)."""

    spikes_per_image: list[list[float]]
    active_neurons: list[list[int]]


def train(
    specs: Sequence[ModuleSpec],
    dataset: PlaceDataset,
    params: ModuleParameters,
    epochs: int,
    runner: CoreRunner | None = None,
    *,
    images: Sequence[CoreImage] | None = None,
    progress: Progress | None = None,
) -> tuple[list[CoreImage], TrainingLog]:
    """Train every module of ``specs`` for ``epochs`` epochs; return the final images and a log.

    All modules advance together, one chunk of ``norm_every`` images per runner call (the golden
    runner batches them), the host normalising the weights before each chunk (``normalise_weights``);
    with ``weight_norm = 0`` one call runs a whole epoch. ``images`` continues from given images
    instead of the compiled initial ones."""
    if epochs < 0:
        raise ValueError(f"epochs = {epochs}: expected >= 0")
    specs = list(specs)
    runner = runner or GoldenRunner()
    current = list(images) if images is not None else [initial_image(s, params) for s in specs]
    if len(current) != len(specs):
        raise ValueError(f"{len(current)} images for {len(specs)} modules")
    for s in specs:
        if len(s.places) * dataset.n_traverses == 0:
            raise ValueError(f"module of places {s.places} has no training images")
    log = TrainingLog([], [])
    # modules with equal epoch lengths run together (a batch runs one length)
    groups: dict[int, list[int]] = {}
    for k, s in enumerate(specs):
        groups.setdefault(epoch_steps(s, dataset, params), []).append(k)
    total = epochs * len(specs)
    done = 0
    for epoch in range(epochs):
        spikes_row = [0.0] * len(specs)
        active_row = [0] * len(specs)
        for length, members in groups.items():
            inputs = [epoch_inputs(specs[k], dataset, params, epoch) for k in members]
            n_img = length // params.train_steps_per_image
            chunk = int(params.norm_every) if params.weight_norm > 0 else n_img
            per = chunk * params.train_steps_per_image
            rasters = [[] for _ in members]
            for start in range(0, length, per):
                finals, spikes = runner.run([normalise_weights(current[k], params) for k in members],
                                            [x[start:start + per] for x in inputs])
                for j, (k, img, raster) in enumerate(zip(members, finals, spikes)):
                    current[k] = img
                    rasters[j].append(raster)
            for j, k in enumerate(members):
                counts = presentation_counts(np.concatenate(rasters[j]), params, n_img, training=True)
                spikes_row[k] = float(counts.sum(axis=1).mean())
                active_row[k] = int((counts.sum(axis=0) > 0).sum())
            done += len(members)
            if progress:
                progress(done, total)
        log.spikes_per_image.append(spikes_row)
        log.active_neurons.append(active_row)
    return current, log
