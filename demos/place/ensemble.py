"""TrainedEnsemble: the learned state of every module of an ensemble, and its weights file.

What training changes in a module's core is its plastic weights (inputs -> neurons) and its adaptive
thresholds; everything else (neuron parameters, lateral inhibition, the initial state) is what
``compile_module`` produces from the module parameters and seed. The weights file therefore stores
only those two arrays per module, plus what is needed to rebuild and to check the rest:

- ``meta`` (JSON): module parameters, module specs (places, member seed), epochs, and the
  *fingerprint* of the data the modules were trained on (a hash of the preprocessed reference
  images) -- loading the file for other data is refused with a message that says to retrain;
- ``w<k>`` (uint16): module k's plastic weight block (A x N); ``theta<k>`` (int64): its adaptation.

``np.savez_compressed`` keeps the shipped file small (the weights are near-binary after learning).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spikeforge.core.image import CoreImage
from spikeforge.demos.place.dataset import PlaceDataset
from spikeforge.demos.place.inference import inference_image
from spikeforge.demos.place.module import ModuleParameters
from spikeforge.demos.place.training import ModuleSpec, initial_image

FORMAT = "spikeforge-place-ensemble/1"


class WeightsFileError(ValueError):
    """A weights file is missing, damaged, or for other data; the message says what to do."""


def fingerprint(dataset: PlaceDataset) -> str:
    """Hash of the preprocessed reference images (what training saw) and their layout."""
    h = hashlib.sha256()
    h.update(json.dumps({"shape": list(dataset.reference.shape)}).encode())
    h.update(np.ascontiguousarray(dataset.reference, dtype=np.uint8).tobytes())
    return h.hexdigest()[:16]


@dataclass
class TrainedEnsemble:
    params: ModuleParameters
    specs: list[ModuleSpec]
    weights: list[np.ndarray]          # (A, N) plastic block per module
    adapt: list[np.ndarray]            # (N,) learned threshold adaptation per module
    epochs: int
    data_fingerprint: str
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_images(cls, params: ModuleParameters, specs, images, epochs: int, dataset: PlaceDataset,
                    **meta) -> "TrainedEnsemble":
        a, n = params.n_inputs, params.n_neurons
        return cls(params=params, specs=list(specs),
                   weights=[np.array(img.weights[:a, :n], dtype=np.int64) for img in images],
                   adapt=[np.array(img.adapt[:n], dtype=np.int64) for img in images],
                   epochs=int(epochs), data_fingerprint=fingerprint(dataset), meta=dict(meta))

    @property
    def members(self) -> list[int]:
        """The ensemble members' seeds, in order of first appearance."""
        return list(dict.fromkeys(s.member_seed for s in self.specs))

    def trained_image(self, k: int) -> CoreImage:
        """Module k's core image as training left its weights and thresholds (initial dynamic state)."""
        img = initial_image(self.specs[k], self.params)
        a, n = self.params.n_inputs, self.params.n_neurons
        img.weights[:a, :n] = self.weights[k]
        img.adapt[:n] = self.adapt[k]
        return img.validate()

    def inference_images(self) -> list[CoreImage]:
        """Frozen images of every module (learning and adaptation off)."""
        out = []
        for k, spec in enumerate(self.specs):
            out.append(inference_image(initial_image(spec, self.params), self.trained_image(k), self.params))
        return out

    def check_dataset(self, dataset: PlaceDataset) -> None:
        got = fingerprint(dataset)
        if got != self.data_fingerprint:
            raise WeightsFileError(
                f"these weights were trained on other data (fingerprint {self.data_fingerprint}, this data "
                f"{got}): the images, their preprocessing or the benchmark's parameters differ. Retrain "
                "with `spikeforge demo place --train` (and --weights-out to keep the result)"
            )

    # ---- files ---------------------------------------------------------------------------------
    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "params": self.params.to_dict(), "specs": [s.to_dict() for s in self.specs],
                "epochs": self.epochs, "data_fingerprint": self.data_fingerprint, "meta": self.meta}
        arrays = {"meta_json": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
        for k, (w, th) in enumerate(zip(self.weights, self.adapt)):
            if w.min(initial=0) < 0 or w.max(initial=0) > 0xFFFF:
                raise WeightsFileError(f"module {k}: plastic weights outside 0 .. 65535 cannot be stored")
            arrays[f"w{k}"] = w.astype(np.uint16)
            arrays[f"theta{k}"] = th.astype(np.int64)
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path) -> "TrainedEnsemble":
        path = Path(path)
        if not path.exists():
            raise WeightsFileError(f"{path}: no such weights file; train with `spikeforge demo place --train`")
        try:
            with np.load(path) as data:
                meta = json.loads(bytes(data["meta_json"]).decode())
                if meta.get("format") != FORMAT:
                    raise WeightsFileError(f"{path}: not a place-recognition weights file ({meta.get('format')!r})")
                params = ModuleParameters.from_dict(meta["params"])
                specs = [ModuleSpec.from_dict(s) for s in meta["specs"]]
                weights = [data[f"w{k}"].astype(np.int64) for k in range(len(specs))]
                adapt = [data[f"theta{k}"].astype(np.int64) for k in range(len(specs))]
        except (KeyError, ValueError, OSError) as exc:
            if isinstance(exc, WeightsFileError):
                raise
            raise WeightsFileError(f"{path}: damaged weights file ({exc}); retrain or restore it") from None
        a, n = params.n_inputs, params.n_neurons
        for k, (w, th) in enumerate(zip(weights, adapt)):
            if w.shape != (a, n) or th.shape != (n,):
                raise WeightsFileError(f"{path}: module {k} has arrays of shapes {w.shape}, {th.shape}; "
                                       f"expected ({a}, {n}) and ({n},)")
        return cls(params=params, specs=specs, weights=weights, adapt=adapt, epochs=int(meta["epochs"]),
                   data_fingerprint=meta["data_fingerprint"], meta=meta.get("meta", {}))
