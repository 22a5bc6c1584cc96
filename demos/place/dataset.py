"""PlaceDataset: reference and query traverses of one route, preprocessed, with their splits.

Every loader (the synthetic benchmark, Nordland, Oxford RobotCar) returns one. Place k is the same
physical place in every traverse (the data sets are frame-aligned, as VPRSNN uses them), so the
ground truth of query k is place k. The first ``calibration_places`` places form the calibration
split (it chooses the hyperactive-neuron threshold); the rest are the test split. Modules cover
``places_per_module`` consecutive places each, calibration and test modules separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class DatasetError(ValueError):
    """A data set is missing, too small, or inconsistent; the message names the file and the fix."""


@dataclass
class PlaceDataset:
    """Preprocessed images of one route.

    ``reference``: (R, P, H, W) uint8, R reference traverses of P places (the training data).
    ``query``: (P, H, W) uint8, the query traverse (one image per place, query k shows place k).
    """

    name: str
    reference: np.ndarray
    query: np.ndarray
    calibration_places: int
    places_per_module: int
    reference_names: tuple[str, ...] = ()
    query_name: str = "query"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        ref, q = np.asarray(self.reference), np.asarray(self.query)
        if ref.ndim != 4:
            raise DatasetError(f"{self.name}: reference has shape {ref.shape}, expected (traverses, places, H, W)")
        if q.shape != ref.shape[1:]:
            raise DatasetError(
                f"{self.name}: query has shape {q.shape}, expected (places, H, W) = {ref.shape[1:]} like the reference"
            )
        m = self.places_per_module
        if m < 1:
            raise DatasetError(f"{self.name}: places_per_module = {m}: expected >= 1")
        c, p = self.calibration_places, ref.shape[1]
        if c % m or (p - c) % m or c < 0 or p - c < m:
            raise DatasetError(
                f"{self.name}: {p} places with {c} calibration places do not split into modules of {m} "
                f"places with at least one test module; use a multiple of {m} for both splits"
            )
        self.reference = ref.astype(np.uint8)
        self.query = q.astype(np.uint8)

    # ---- sizes -----------------------------------------------------------------------------------
    @property
    def n_places(self) -> int:
        return int(self.reference.shape[1])

    @property
    def n_traverses(self) -> int:
        return int(self.reference.shape[0])

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(int(v) for v in self.reference.shape[2:])

    @property
    def n_pixels(self) -> int:
        h, w = self.image_shape
        return h * w

    # ---- splits and modules ----------------------------------------------------------------------
    def split_places(self, split: str) -> np.ndarray:
        """Place indices of ``split``: "calibration", "test" or "all"."""
        c, p = self.calibration_places, self.n_places
        if split == "calibration":
            return np.arange(0, c)
        if split == "test":
            return np.arange(c, p)
        if split == "all":
            return np.arange(p)
        raise DatasetError(f"split = {split!r}: expected calibration, test or all")

    def module_places(self, split: str) -> list[np.ndarray]:
        """The places of every module of ``split``, in order (consecutive blocks of places_per_module)."""
        places = self.split_places(split)
        m = self.places_per_module
        return [places[k:k + m] for k in range(0, len(places), m)]

    def summary(self) -> dict:
        return {
            "name": self.name, "places": self.n_places, "calibration_places": self.calibration_places,
            "test_places": self.n_places - self.calibration_places, "places_per_module": self.places_per_module,
            "reference_traverses": list(self.reference_names), "query_traverse": self.query_name,
            "image_shape": list(self.image_shape), **self.meta,
        }
