"""The ``spinnaker`` backend: a spikeforge Network on SpiNNaker through PyNN and sPyNNaker.

    simulate(network, steps, virtual=True)                     # map onto a virtual board, report
    simulate(network, steps, spinnaker_host="192.168.240.1")   # a SpiNN-5 board on the network
    simulate(network, steps, spalloc="https://...")            # a machine from a spalloc server

spikeforge writes the sPyNNaker config for the chosen target into its own run folder
(``.cache/spinnaker/run-*/``; host/spinnaker_config.py), so no ~/.spynnaker.cfg is needed or created.
The translation and the mapping report live in host/spinnaker.py.

A virtual board runs the whole mapping (partitioning, placement, routing, data generation) and
nothing else: the SimResult has empty spike rasters and ``meta["virtual"] = True``; the mapping --
placements, routing keys, routing-table sizes and the weights as sPyNNaker quantised them next to
spikeforge's golden quantisation -- is in ``meta["spinnaker"]`` and printed (``report=True``).
"""

from __future__ import annotations

import numpy as np

from spikeforge.compiler.network import Network
from spikeforge.host.spinnaker import SpiNNakerRun, run_on_spinnaker
from spikeforge.host.spinnaker_config import resolve_target
from spikeforge.sim.result import SimResult

RECORDABLE = ("v",)


def simulate(
    network: Network,
    steps: int,
    *,
    seed: int | None = None,
    record=(),
    currents=None,
    virtual: bool = False,
    spinnaker_host: str | None = None,
    spinnaker_version: int | None = None,
    spalloc: str | None = None,
    spalloc_user: str | None = None,
    config_file=None,
    run_root=None,
    report: bool = True,
    console=None,
) -> SimResult:
    """Run ``network`` for ``steps`` steps of ``network.dt`` on SpiNNaker; return a SimResult.

    Choose the machine with exactly one of ``virtual``, ``spinnaker_host`` (+ ``spinnaker_version``),
    ``spalloc`` (+ ``spalloc_user``) or ``config_file``; with none, a configured ~/.spynnaker.cfg is
    used if there is one, else SpiNNakerConfigError lists the options. ``seed`` is the run seed of
    the Poisson sources (drawn on the host). ``record``: ``("v",)`` or nothing. ``report`` prints the
    mapping report (always, and the virtual-board note, on a virtual board).
    """
    if currents is not None:
        raise ValueError("the SpiNNaker backend takes no per-step input currents; use i_offset or spike sources")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps = {steps!r}: expected a whole number of steps >= 0")
    steps = int(steps)
    target = resolve_target(virtual=virtual, host=spinnaker_host, version=spinnaker_version, spalloc=spalloc,
                            spalloc_user=spalloc_user, config_file=config_file)
    run: SpiNNakerRun = run_on_spinnaker(network, steps, target, seed=seed, record=record, run_root=run_root)
    result = run.result
    result.meta["spinnaker"] = run.to_dict()
    result.meta["spinnaker_run"] = run
    if report or run.virtual:
        run.print_report(console)
    return result
