"""Inference with trained modules: responses, neuron assignments, hyperactive neurons, place scores.

After training, a module's image is *frozen* (learning off, threshold adaptation off, lateral
inhibition at its inference strength; weights and learned thresholds kept, dynamic state back to
the compiled initial state) and shown images in the inference schedule (``infer_present_steps`` of
Poisson input at ``infer_gain`` times the training rates, then ``rest_steps`` of silence). A
response is the spike count of every neuron per image.

- **Assignment** (Diehl & Cook, VPRSNN "standard" assignment): each neuron belongs to the place of
  its module whose reference images (mean over the reference traverses) make it fire most; a neuron
  silent for all of them is unassigned.
- **Hyperactive-neuron regularisation** (VPRSNN): count, for each neuron, the places of the whole
  route whose reference images make it fire at all. Neurons with a count at or above a threshold
  respond to too many places to be evidence for any one of them: they are ignored. The threshold is
  chosen on the calibration split from {0, 5, ..., 200} (0 = no regularisation).
- **Scores**: the score of query q for place p is the mean spike count of the (kept) neurons
  assigned to p. A module scores its own places; the modules of a split together score all its
  places; an ensemble sums the score matrices of its members.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from spikeforge.core.image import CoreImage
from spikeforge.demos.place.module import ModuleParameters, encode, frozen, presentation_counts
from spikeforge.demos.place.runners import CoreRunner, GoldenRunner

#: Thresholds tried on the calibration split (VPRSNN's list is 0, 5, 10, 20, ..., 200); 0 = off.
REGULARISATION_THRESHOLDS = tuple(range(0, 201, 5))


def inference_image(initial: CoreImage, trained: CoreImage, params: ModuleParameters) -> CoreImage:
    """The frozen module: learned weights and thresholds of ``trained`` on the dynamic state of the
    compiled ``initial`` image (so every evaluation starts from the same state, whatever the last
    training step left behind), with learning and threshold adaptation off and the lateral
    inhibition at its inference strength (module.frozen)."""
    if initial.config != trained.config:
        raise ValueError("the trained image has a different CoreConfig than the module's compiled image")
    img = initial.copy()
    img.weights = np.array(trained.weights, dtype=np.int64)
    img.adapt = np.array(trained.adapt, dtype=np.int64)
    return frozen(img, params)


def respond(
    images: Sequence[CoreImage],
    stimuli: np.ndarray,
    params: ModuleParameters,
    seed,
    runner: CoreRunner | None = None,
    *,
    chunk: int = 50,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Spike counts (B, M, N) of the B frozen modules ``images`` for the M ``stimuli`` (M, H, W).

    Every module sees the same Poisson spikes, as cores fed by one broadcast input would; the
    spikes of stimulus m are drawn from (``seed``, m). The stimuli are presented in one continuous
    run (split into chunks of ``chunk`` images for memory; the state carries over, so the chunking
    changes nothing)."""
    runner = runner or GoldenRunner()
    current = list(images)
    stimuli = np.asarray(stimuli)
    m = stimuli.shape[0]
    counts = np.zeros((len(current), m, params.n_neurons), dtype=np.int64)
    for start in range(0, m, chunk):
        part = stimuli[start:start + chunk]
        raster = np.concatenate([encode(part[i:i + 1], params, [*np.atleast_1d(seed).tolist(), start + i])
                                 for i in range(len(part))])
        current, spikes = runner.run(current, [raster] * len(current))
        for b, s in enumerate(spikes):
            counts[b, start:start + len(part)] = presentation_counts(s[:, :params.n_neurons], params, len(part))
        if progress:
            progress(min(start + chunk, m), m)
    return counts


@dataclass
class ModuleReadout:
    """What the host keeps of one module after showing it the reference images."""

    places: np.ndarray        # (P_m,) global place indices of the module
    assignment: np.ndarray    # (N,) index into ``places``; -1 = unassigned
    place_count: np.ndarray   # (N,) places of the route (all of them) the neuron fires for

    def kept(self, threshold: int) -> np.ndarray:
        """Neurons used for scoring at regularisation ``threshold`` (0 = keep all assigned)."""
        keep = self.assignment >= 0
        if threshold > 0:
            keep &= self.place_count < threshold
        return keep


def readout(places: Sequence[int], reference_counts: np.ndarray) -> ModuleReadout:
    """Assignments and place counts from a module's responses to the reference images of ALL places.

    ``reference_counts``: (R, P_all, N) spike counts for every reference traverse and place."""
    places = np.asarray(places, dtype=np.int64)
    ref = np.asarray(reference_counts)
    own = ref[:, places].mean(axis=0)                     # (P_m, N)
    assignment = np.where(own.max(axis=0) > 0, own.argmax(axis=0), -1)
    place_count = (ref.sum(axis=0) > 0).sum(axis=0)       # places with >= 1 spike in any traverse
    return ModuleReadout(places=places, assignment=assignment.astype(np.int64), place_count=place_count)


def module_scores(query_counts: np.ndarray, module: ModuleReadout, threshold: int) -> np.ndarray:
    """(Q, P_m) scores: mean count of the kept neurons assigned to each place (0 if none)."""
    q = np.asarray(query_counts, dtype=np.float64)
    keep = module.kept(threshold)
    scores = np.zeros((q.shape[0], len(module.places)))
    for k in range(len(module.places)):
        sel = keep & (module.assignment == k)
        if sel.any():
            scores[:, k] = q[:, sel].mean(axis=1)
    return scores


def split_scores(query_counts: Sequence[np.ndarray], modules: Sequence[ModuleReadout],
                 places: np.ndarray, threshold: int) -> np.ndarray:
    """(Q, P_split) score matrix of the modules of one split (their places must tile ``places``)."""
    places = np.asarray(places)
    column = {int(p): k for k, p in enumerate(places)}
    q = query_counts[0].shape[0]
    out = np.zeros((q, len(places)))
    for counts, mod in zip(query_counts, modules):
        cols = [column[int(p)] for p in mod.places]
        out[:, cols] = module_scores(counts, mod, threshold)
    return out
