"""SimResult: what every backend returns (golden, float, NEST, RTL, board, SpiNNaker).

Spikes are boolean rasters (steps, size) per population, row n = time (n+1)*dt (NEST's convention).
Recorded variables are in physical units (mV, nA) per population; learned weights in nA per projection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class SimResult:
    backend: str
    dt: float
    steps: int
    spikes: dict[str, np.ndarray]
    variables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def spike_counts(self, label: str) -> np.ndarray:
        return self.spikes[label].sum(axis=0)

    def rates_hz(self, label: str) -> np.ndarray:
        """Mean firing rate of each neuron (Hz)."""
        return self.spike_counts(label) / (self.steps * self.dt / 1000.0)

    def summary_rows(self) -> list[tuple[str, int, int, float]]:
        """(population, size, spikes, mean rate Hz) per population."""
        rows = []
        for label, raster in self.spikes.items():
            rate = float(self.rates_hz(label).mean()) if raster.shape[1] else 0.0
            rows.append((label, raster.shape[1], int(raster.sum()), rate))
        return rows

    def save(self, path) -> None:
        """Write one boolean spike raster per population, named by its label, to an .npz file.

        Recorded variables go in as ``<label>.<var>``, learned weights as ``weights.<projection>``."""
        arrays = {label: raster.astype(bool) for label, raster in self.spikes.items()}
        for label, vars_ in self.variables.items():
            for var, arr in vars_.items():
                arrays[f"{label}.{var}"] = arr
        for name, w in self.weights.items():
            arrays[f"weights.{name}"] = w
        arrays["_dt"] = np.asarray(self.dt)
        arrays["_backend"] = np.asarray(self.backend)
        np.savez_compressed(Path(path), **arrays)

    @classmethod
    def load(cls, path) -> "SimResult":
        with np.load(path) as data:
            spikes, variables, weights = {}, {}, {}
            for key in data.files:
                if key.startswith("_"):
                    continue
                if key.startswith("weights."):
                    weights[key[len("weights."):]] = data[key]
                elif "." in key:
                    label, var = key.rsplit(".", 1)
                    variables.setdefault(label, {})[var] = data[key]
                else:
                    spikes[key] = data[key]
            dt = float(data["_dt"])
            backend = str(data["_backend"])
        steps = next(iter(spikes.values())).shape[0] if spikes else 0
        return cls(backend=backend, dt=dt, steps=steps, spikes=spikes, variables=variables, weights=weights)
