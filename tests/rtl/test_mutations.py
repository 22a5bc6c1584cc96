"""Mutation check: every deliberate bug of the design (spikeforge.hdl.MUTATIONS) is caught by the
sweep's small cases, and the correct design passes them (sim/cocotb_tb/mutation_check.py).

As a script it prints which case catches which mutation:

    .venv/bin/python tests/rtl/test_mutations.py [--simulator verilator] [--cases 48]
"""

from __future__ import annotations

import argparse
import sys

import pytest

from spikeforge.hdl import MUTATIONS
from spikeforge.sim.cocotb_tb.mutation_check import check_mutation, small_groups


@pytest.mark.rtl
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_mutation_is_caught(mutation, rtl_simulator, record_property):
    outcome = check_mutation(mutation, small_groups(), simulator=rtl_simulator)
    record_property("rtl_mutation", outcome.line())
    assert outcome.caught, outcome.line()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", default="icarus", choices=("icarus", "verilator"))
    parser.add_argument("--cases", type=int, default=48, help="size of the sweep whose small groups are used")
    parser.add_argument("--skip-correct", action="store_true", help="do not run the correct design")
    args = parser.parse_args(argv)
    groups = small_groups(args.cases)
    print(f"{len(groups)} small sweep groups, {sum(len(g.slots) for g in groups)} cases, {args.simulator}")
    ok = True
    for mutation in MUTATIONS:
        outcome = check_mutation(mutation, groups, simulator=args.simulator)
        print(outcome.line(), flush=True)
        ok &= outcome.caught
    if not args.skip_correct:
        outcome = check_mutation(None, groups, simulator=args.simulator, stop_at_first=False)
        print(outcome.line(), flush=True)
        ok &= not outcome.caught
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
