"""What one RTL verification run does, written down so both sides of the simulator boundary agree.

pytest (or ``sim/rtl_backend.py``) and the cocotb test inside the simulator are two processes. The
Python side writes an :class:`RtlJob` -- one CoreConfig (one Verilog build) and a list of
:class:`RtlCase` -- to a JSON file and hands its path to cocotb in the environment variable
``SPIKEFORGE_RTL_JOB``. A case is either *generated* (image and inputs drawn from seeds with
``random_image`` / ``random_inputs``, so the JSON stays small and both sides rebuild exactly the same
arrays) or *given* (an image ``.npz`` and an inputs ``.npz`` on disk, used by the RTL backend).
The cocotb side writes one result per case to ``job.results_path``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage
from spikeforge.core.random_image import random_image, random_inputs

#: Environment variable naming the job file inside the simulator process.
JOB_ENV = "SPIKEFORGE_RTL_JOB"

#: How much state the scoreboard reads back after every step (the full image is always compared
#: at the end of a case): ``full`` every state field including the ring buffer and, with STDP, the
#: weights; ``neuron`` the per-neuron and per-source state; ``spikes`` only spikes and cycles.
COMPARE_LEVELS = ("full", "neuron", "spikes")


class RtlCaseError(ValueError):
    """A case or job description is inconsistent; the message names the field."""


@dataclass
class RtlCase:
    """One run of the core: load an image, step it ``steps`` times, compare.

    Generated cases: ``image_seed`` (with ``extreme``, ``density``) and ``input_seed`` (with
    ``rate``). Given cases: ``image_path`` and ``inputs_path`` (npz with ``spikes`` (steps, A) and
    optionally ``currents`` (steps, K)).

    ``compare``: one of COMPARE_LEVELS or ``auto`` (the most detailed level whose per-step readback
    stays under ``read_budget`` bus words). ``check=False`` runs the RTL without the reference model
    (the RTL backend). ``record`` names variables to read back every step and store, with the spikes,
    in ``output_path`` (npz). ``backpressure`` inserts random gaps in the driven streams and random
    stalls on the core's output streams (so it also disables the cycle-model check: stalls cost cycles).
    ``learning`` overrides the image's learning switch. ``final_readback=False`` skips reading the
    whole image back at the end (benchmarks that only want cycles; not allowed with ``check``).
    """

    name: str
    steps: int = 8
    image_seed: int | None = None
    extreme: bool = False
    density: float = 0.3
    input_seed: int = 0
    rate: float = 0.15
    image_path: str | None = None
    inputs_path: str | None = None
    compare: str = "auto"
    read_budget: int = 1500
    check: bool = True
    check_cycles: bool = True
    backpressure: bool = False
    learning: bool | None = None
    record: tuple[str, ...] = ()
    output_path: str | None = None
    final_readback: bool = True

    def __post_init__(self):
        if self.compare not in (*COMPARE_LEVELS, "auto"):
            raise RtlCaseError(
                f"case {self.name!r}: compare = {self.compare!r}; choose auto or one of {COMPARE_LEVELS}"
            )
        if (self.image_seed is None) == (self.image_path is None):
            raise RtlCaseError(
                f"case {self.name!r}: give exactly one of image_seed (generated) or image_path (given)"
            )
        if self.check and not self.final_readback:
            raise RtlCaseError(f"case {self.name!r}: a checked case reads the final image back")
        if self.steps < 0:
            raise RtlCaseError(f"case {self.name!r}: steps = {self.steps}, expected >= 0")
        self.record = tuple(self.record)

    # ---- the arrays both sides rebuild -------------------------------------------------------
    def image(self, config: CoreConfig) -> CoreImage:
        if self.image_path is not None:
            img = CoreImage.load(self.image_path)
            if img.config != config:
                raise RtlCaseError(
                    f"case {self.name!r}: the image in {self.image_path} has a different CoreConfig "
                    "than the job; build the job for the image's config"
                )
        else:
            img = random_image(config, self.image_seed, extreme=self.extreme, density=self.density)
        if self.learning is not None:
            img.learning = bool(self.learning)
        return img

    def inputs(self, config: CoreConfig) -> tuple[np.ndarray, np.ndarray | None]:
        """(spikes (steps, A) bool, currents (steps, K) int or None)."""
        if self.inputs_path is None:
            return random_inputs(config, self.steps, self.input_seed, rate=self.rate)
        with np.load(self.inputs_path) as data:
            spikes = np.asarray(data["spikes"], dtype=bool)
            currents = np.asarray(data["currents"], dtype=np.int64) if "currents" in data.files else None
        if spikes.shape != (self.steps, config.n_inputs):
            raise RtlCaseError(
                f"case {self.name!r}: inputs 'spikes' in {self.inputs_path} has shape {spikes.shape}, "
                f"expected ({self.steps}, {config.n_inputs})"
            )
        if config.n_current_inputs and currents is not None and \
                currents.shape != (self.steps, config.n_current_inputs):
            raise RtlCaseError(
                f"case {self.name!r}: inputs 'currents' in {self.inputs_path} has shape {currents.shape}, "
                f"expected ({self.steps}, {config.n_current_inputs})"
            )
        return spikes, currents if config.n_current_inputs else None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["record"] = list(self.record)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "RtlCase":
        return cls(**data)


@dataclass
class RtlJob:
    """One simulator run: the CoreConfig the Verilog was built for and the cases to run on it."""

    config: CoreConfig
    cases: list[RtlCase]
    results_path: str
    ports: dict[str, str] = field(default_factory=dict)
    clock_period_ns: int = 10
    cycle_tolerance: float = 0.05
    max_report: int = 8
    work_dir: str = ""  # scratch files of the run (burst player hex files)
    stop_after_failure: bool = False  # skip the remaining cases once one fails (mutation check)

    def save(self, path) -> Path:
        path = Path(path)
        data = {
            "config": self.config.to_dict(),
            "cases": [c.to_dict() for c in self.cases],
            "results_path": str(self.results_path),
            "ports": dict(self.ports),
            "clock_period_ns": self.clock_period_ns,
            "cycle_tolerance": self.cycle_tolerance,
            "max_report": self.max_report,
            "work_dir": self.work_dir,
            "stop_after_failure": self.stop_after_failure,
        }
        path.write_text(json.dumps(data, indent=1))
        return path

    @classmethod
    def load(cls, path) -> "RtlJob":
        data = json.loads(Path(path).read_text())
        return cls(
            config=CoreConfig.from_dict(data["config"]),
            cases=[RtlCase.from_dict(c) for c in data["cases"]],
            results_path=data["results_path"],
            ports=data.get("ports", {}),
            clock_period_ns=data.get("clock_period_ns", 10),
            cycle_tolerance=data.get("cycle_tolerance", 0.05),
            max_report=data.get("max_report", 8),
            work_dir=data.get("work_dir", ""),
            stop_after_failure=data.get("stop_after_failure", False),
        )


@dataclass
class CaseResult:
    """What the cocotb side reports for one case."""

    name: str
    passed: bool
    steps_run: int = 0
    compare: str = ""
    mismatches: list[str] = field(default_factory=list)  # functional: the first failing step
    cycle_deviations: list[str] = field(default_factory=list)
    error: str | None = None
    cycles: list[int] = field(default_factory=list)  # LAST_CYCLES of every step
    predicted_cycles: list[int] = field(default_factory=list)
    spikes_total: int = 0
    wall_seconds: float = 0.0
    words_loaded: int = 0  # bus writes of the load (skipping words the core already held)
    sim_cycles_in_steps: int = 0  # clock cycles spent inside timesteps (start .. done)
    phase_seconds: dict[str, float] = field(default_factory=dict)  # where the wall time went

    def summary(self) -> str:
        if self.passed:
            return f"{self.name}: passed ({self.steps_run} steps, {self.compare}, {self.spikes_total} spikes)"
        why = self.error or "; ".join((self.mismatches + self.cycle_deviations)[:4])
        return f"{self.name}: FAILED: {why}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CaseResult":
        return cls(**data)
