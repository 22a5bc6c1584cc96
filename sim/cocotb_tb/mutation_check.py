"""The mutation check: does the verification suite catch deliberate bugs in the design?

``spikeforge.hdl.MUTATIONS`` names single-point bugs the design can be generated with
(``generate_verilog(config, mutation=...)``, hdl/INTERFACE.md). For each one, the suite's own small
sweep cases (the default sweep's groups with N <= 64, cheapest first) run on the mutated Verilog
until a case fails; the mutation is *caught* by that case, and the first mismatch says how. A
mutation that no case catches is a hole in the suite (or a mutation that changes nothing the core
promises). The correct design runs the same cases and must pass them all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from spikeforge.sim.cocotb_tb.case import CaseResult
from spikeforge.sim.cocotb_tb.runner import build, run_job
from spikeforge.sim.cocotb_tb.sweep import SweepGroup, estimated_cycles, sweep


@dataclass
class MutationOutcome:
    mutation: str | None
    caught: bool
    group: str = ""
    case: str = ""
    first_mismatch: str = ""
    groups_tried: int = 0
    cases_run: int = 0
    seconds: float = 0.0
    results: list[CaseResult] = field(default_factory=list, repr=False)

    def line(self) -> str:
        if self.mutation is None:
            return (f"correct design: {'FAILED ' + self.case if self.caught else 'passed'} "
                    f"({self.cases_run} cases, {self.seconds:.0f} s)")
        if not self.caught:
            return f"{self.mutation}: NOT CAUGHT by {self.cases_run} cases ({self.seconds:.0f} s)"
        return (f"{self.mutation}: caught by {self.group}/{self.case} "
                f"(after {self.cases_run} cases, {self.seconds:.0f} s): {self.first_mismatch}")


def small_groups(n_cases: int = 48, seed: int = 0, max_neurons: int = 64) -> list[SweepGroup]:
    """The sweep's groups with at most ``max_neurons`` neurons, cheapest to simulate first."""
    groups = [g for g in sweep(n_cases, seed, resolve=False) if g.config.n_neurons <= max_neurons]
    return sorted(groups, key=lambda g: (estimated_cycles(g), g.index))


def check_mutation(mutation: str | None, groups: list[SweepGroup], *, simulator: str = "icarus",
                   stop_at_first: bool = True) -> MutationOutcome:
    """Run ``groups`` on the design with ``mutation`` (None = the correct design)."""
    t0 = time.perf_counter()
    out = MutationOutcome(mutation, caught=False)
    for grp in groups:
        cases = grp.resolve()
        b = build(grp.config, mutation=mutation, simulator=simulator)
        results = run_job(b, cases, stop_after_failure=stop_at_first)
        out.groups_tried += 1
        out.cases_run += len(results)
        out.results += results
        failed = [r for r in results if not r.passed]
        if failed:
            r = failed[0]
            out.caught = True
            out.group, out.case = grp.name, r.name
            first = (r.mismatches + r.cycle_deviations) or [r.error or "?"]
            out.first_mismatch = first[0].splitlines()[0] if r.error is None else r.error
            if stop_at_first:
                break
    out.seconds = time.perf_counter() - t0
    return out
