"""The scoreboard: RTL against the reference model, exact, at every timestep.

Every comparison is exact (the core is bit-exact by definition, docs/core-spec.md). A mismatch is
recorded with the step, the field, the index, the expected and the actual value, so a failing run
says *where* the RTL went wrong without opening a waveform. After a failing step the states have
diverged, so the testbench stops the case there (every field of that step is still compared, which
often tells which phase broke: a wrong ``ie`` alone points at phase 2, ``ie`` and ``v`` at phase 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Mismatch:
    step: int | None  # None: the final image comparison
    field: str
    index: tuple | None
    expected: object
    got: object

    def __str__(self) -> str:
        where = "final image" if self.step is None else f"step {self.step}"
        idx = "" if self.index is None else f"[{', '.join(str(int(i)) for i in self.index)}]"
        return f"{where}: {self.field}{idx} expected {self.expected}, got {self.got}"


class Scoreboard:
    def __init__(self, max_report: int = 8, cycle_tolerance: float = 0.05):
        self.max_report = max_report
        self.cycle_tolerance = cycle_tolerance
        self.mismatches: list[Mismatch] = []
        self.cycle_deviations: list[str] = []
        self.compared_steps = 0

    @property
    def passed(self) -> bool:
        return not self.mismatches and not self.cycle_deviations

    @property
    def functional_ok(self) -> bool:
        return not self.mismatches

    # ---- spikes --------------------------------------------------------------------------------
    def compare_spikes(self, step: int, expected: np.ndarray, got: list[int]) -> bool:
        """``expected``: (N,) bool; ``got``: neuron indices in the order the core emitted them.

        The core must emit each spiking neuron once, in increasing index order."""
        n = expected.shape[0]
        ok = True
        bad = [i for i in got if not 0 <= int(i) < n]
        if bad:
            self.add(Mismatch(step, "spike_out index", None, f"0..{n - 1}", bad[: self.max_report]))
            return False
        if any(b <= a for a, b in zip(got, got[1:])):
            self.add(Mismatch(step, "spike_out order", None, "strictly increasing", list(got[: 2 * self.max_report])))
            ok = False
        got_mask = np.zeros(n, dtype=bool)
        got_mask[np.asarray(got, dtype=np.int64)] = True
        ok &= self.compare_array(step, "spikes", expected.astype(bool), got_mask)
        return ok

    # ---- arrays --------------------------------------------------------------------------------
    def compare_array(self, step: int | None, name: str, expected, got) -> bool:
        expected = np.asarray(expected)
        got = np.asarray(got)
        if expected.shape != got.shape:
            self.add(Mismatch(step, f"{name} shape", None, expected.shape, got.shape))
            return False
        if np.array_equal(expected, got):
            return True
        diff = np.argwhere(expected != got)
        for idx in diff[: self.max_report]:
            idx = tuple(int(i) for i in idx)
            self.add(Mismatch(step, name, idx or None, _py(expected[idx]), _py(got[idx])))
        if len(diff) > self.max_report:
            self.add(Mismatch(step, name, None, "...", f"{len(diff)} elements differ in all"))
        return False

    def compare_fields(self, step: int | None, expected: dict, got: dict) -> bool:
        ok = True
        for name in got:
            ok &= self.compare_array(step, name, expected[name], got[name])
        return ok

    def compare_images(self, expected, got) -> bool:
        """Final comparison of two CoreImages, every field (parameters included)."""
        a, b = expected.state_arrays(), got.state_arrays()
        ok = True
        for name in a:
            ok &= self.compare_array(None, name, a[name], b[name])
        return ok

    # ---- timing --------------------------------------------------------------------------------
    def compare_cycles(self, step: int, got: int, predicted: int) -> bool:
        """LAST_CYCLES against the cycle model, within the relative tolerance."""
        limit = self.cycle_tolerance * max(predicted, 1)
        if abs(got - predicted) > limit:
            if len(self.cycle_deviations) < self.max_report:
                self.cycle_deviations.append(
                    f"step {step}: LAST_CYCLES = {got}, cycle model predicts {predicted} "
                    f"(off by {100.0 * (got - predicted) / max(predicted, 1):+.1f} %, "
                    f"tolerance {100 * self.cycle_tolerance:.0f} %)")
            return False
        return True

    def add(self, m: Mismatch):
        self.mismatches.append(m)

    def report(self) -> list[str]:
        return [str(m) for m in self.mismatches]


def _py(value):
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else value.tolist()
