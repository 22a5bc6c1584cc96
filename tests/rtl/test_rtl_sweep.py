"""The random RTL sweep: generated Verilog against the golden model, every field, every step.

One test per sweep group (one CoreConfig = one build = one simulator process running its cases).
The default 48 cases cover every value of every sweep dimension (sim/cocotb_tb/sweep.py); the
slow-marked long sweep (``make test-long``) runs 1,000 more (``SPIKEFORGE_RTL_LONG_CASES``).
The summary at the end of the run says how many cases passed and what they covered.
"""

from __future__ import annotations

import os

import pytest

from spikeforge.sim.cocotb_tb.runner import run_cases
from spikeforge.sim.cocotb_tb.sweep import case_coverage, estimated_cycles, sweep



def _option(config, name: str, env: str, default: int) -> int:
    value = config.getoption(name)
    if value is None:
        value = os.environ.get(env) or default
    return int(value)


def pytest_generate_tests(metafunc):
    if "group" not in metafunc.fixturenames:
        return
    if metafunc.function.__name__ == "test_long_sweep_group":
        n = _option(metafunc.config, "--rtl-long-cases", "SPIKEFORGE_RTL_LONG_CASES", 1000)
        seed = _option(metafunc.config, "--rtl-seed", "SPIKEFORGE_RTL_SEED", 0) + 1
        groups = sweep(n, seed, cases_per_group=16, resolve=False)
    else:
        n = _option(metafunc.config, "--rtl-cases", "SPIKEFORGE_RTL_CASES", 48)
        seed = _option(metafunc.config, "--rtl-seed", "SPIKEFORGE_RTL_SEED", 0)
        groups = sweep(n, seed, resolve=False)
    groups = sorted(groups, key=estimated_cycles, reverse=True)  # longest first: best with xdist
    metafunc.parametrize("group", groups, ids=[f"g{g.index}-{g.name}" for g in groups])


@pytest.mark.rtl
def test_sweep_group(group, rtl_simulator, record_property):
    """The CI sweep (48 cases by default)."""
    run_group(group, rtl_simulator, record_property)


@pytest.mark.rtl
@pytest.mark.slow
def test_long_sweep_group(group, rtl_long_simulator, record_property):
    """The long sweep (`make test-long`): 1,000 further cases (another seed), 16 per build, on
    Verilator when available (conftest.rtl_long_simulator)."""
    run_group(group, rtl_long_simulator, record_property)


def run_group(group, rtl_simulator, record_property):
    cases = group.resolve()
    results = run_cases(group.config, cases, simulator=rtl_simulator)
    coverage = {}
    for case in cases:
        for key, value in case_coverage(group.config, case).items():
            coverage[key] = coverage.get(key, 0) + value
    failed = [r for r in results if not r.passed]
    record_property("rtl_cases", len(results))
    record_property("rtl_passed", len(results) - len(failed))
    record_property("rtl_failed", [f"{group.name}/{r.name}" for r in failed])
    record_property("rtl_coverage", coverage)
    assert len(results) == len(cases)
    assert not failed, f"{group.name}: {len(failed)} of {len(results)} cases failed\n" + "\n\n".join(
        r.summary() + "\n    " + "\n    ".join(r.mismatches[:12] + r.cycle_deviations[:4]) for r in failed)
    # every case must really have checked something: steps ran and the comparison level is known
    assert all(r.steps_run == c.steps for r, c in zip(results, cases))
