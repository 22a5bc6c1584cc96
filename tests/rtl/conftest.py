"""pytest options and the end-of-run summary of the RTL verification suite.

Options (or environment variables):
  --rtl-cases N       SPIKEFORGE_RTL_CASES   cases of the CI sweep (default 48)
  --rtl-long-cases N  SPIKEFORGE_RTL_LONG_CASES  cases of the slow long sweep (default 1000, `make test-long`)
  --rtl-simulator S   SPIKEFORGE_RTL_SIM     icarus (default) or verilator
  --rtl-seed S        SPIKEFORGE_RTL_SEED    sweep seed (default 0)

Each test function records its case results as user properties; the summary at the end (also with
pytest-xdist, whose workers ship user properties back to the controller) says how many sweep
cases passed and what they covered.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from spikeforge.sim.cocotb_tb import runner


def pytest_addoption(parser):
    group = parser.getgroup("spikeforge RTL")
    group.addoption("--rtl-cases", type=int, default=None, help="random RTL sweep cases (default 48)")
    group.addoption("--rtl-long-cases", type=int, default=None, help="cases of the slow long sweep (default 1000)")
    group.addoption("--rtl-simulator", default=None, choices=runner.SIMULATORS, help="HDL simulator")
    group.addoption("--rtl-seed", type=int, default=None, help="seed of the random RTL sweep")


def _opt(config, name, env, default, cast):
    value = config.getoption(name)
    if value is None:
        value = os.environ.get(env)
    return cast(value) if value not in (None, "") else default


@pytest.fixture(scope="session")
def rtl_simulator(pytestconfig) -> str:
    sim = _opt(pytestconfig, "--rtl-simulator", "SPIKEFORGE_RTL_SIM", "icarus", str)
    reason = runner.simulator_available(sim)
    if reason:
        pytest.skip(f"RTL simulator {sim} unavailable: {reason}")
    return sim


@pytest.fixture(scope="session")
def rtl_long_simulator(pytestconfig) -> str:
    """The long sweep's simulator: Verilator when it can run here (its one-minute C++ build per
    config is amortised over 16 cases, and it simulates 10-50x faster than Icarus), else Icarus.
    --rtl-simulator / SPIKEFORGE_RTL_SIM choose explicitly."""
    sim = _opt(pytestconfig, "--rtl-simulator", "SPIKEFORGE_RTL_SIM", "", str)
    if not sim:
        sim = "verilator" if runner.simulator_available("verilator") is None else "icarus"
    reason = runner.simulator_available(sim)
    if reason:
        pytest.skip(f"RTL simulator {sim} unavailable: {reason}")
    return sim


# ---- summary -------------------------------------------------------------------------------------
_totals = {"cases": 0, "passed": 0, "failed": [], "coverage": Counter(), "mutations": []}


def pytest_runtest_logreport(report):
    if report.when != "call":
        return
    props = dict(report.user_properties)
    if "rtl_mutation" in props:
        _totals["mutations"].append(props["rtl_mutation"])
    if "rtl_cases" in props:
        _totals["cases"] += props["rtl_cases"]
        _totals["passed"] += props["rtl_passed"]
        _totals["failed"] += props.get("rtl_failed", [])
        _totals["coverage"].update(props.get("rtl_coverage", {}))


def pytest_terminal_summary(terminalreporter):
    tr = terminalreporter
    if _totals["mutations"]:
        tr.section("spikeforge RTL mutation check")
        for line in sorted(_totals["mutations"]):
            tr.write_line(line)
    if not _totals["cases"]:
        return
    tr.section("spikeforge RTL sweep")
    tr.write_line(f"RTL sweep: {_totals['passed']} of {_totals['cases']} cases passed")
    for name in _totals["failed"][:20]:
        tr.write_line(f"  failed: {name}")
    cov = _totals["coverage"]
    if cov:
        tr.write_line("coverage (events over all cases, from the golden model):")
        for key in sorted(cov):
            tr.write_line(f"  {key:45s} {cov[key]}")
