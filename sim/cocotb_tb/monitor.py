"""The monitor: everything the core puts *out* during a step (hdl/INTERFACE.md, "spike_out", "done").

After ``start`` the core sends the index of every neuron that spiked, in increasing order, then
pulses ``done``. The monitor records the indices in the order they came and the number of cycles
between the start pulse and ``done`` (a cross-check of LAST_CYCLES, which the scoreboard reads over
the bus). In the normal mode ``spike_out__ready`` stays high and the monitor sleeps until
``spike_out__valid`` or ``done`` rises; with ``stress=True`` it drops ready at random cycles (the core
must stall and lose nothing) and so samples every cycle.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from cocotb.triggers import First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from spikeforge.sim.cocotb_tb.driver import as_int
from spikeforge.sim.cocotb_tb.ports import CorePorts


class StepTimeout(RuntimeError):
    """The core did not finish a step within the cycle limit."""


@dataclass
class StepOutput:
    spikes: list[int] = field(default_factory=list)
    cycles: int = 0  # rising edges from the start pulse to the done pulse (inclusive)
    protocol_errors: list[str] = field(default_factory=list)


class SpikeMonitor:
    def __init__(self, ports: CorePorts, period_ns: int, *, stress: bool = False, seed: int = 0):
        self.p = ports
        self.period_ns = period_ns
        self.stress = stress
        self.rng = random.Random(seed + 1)

    def _now_cycles(self) -> int:
        return int(get_sim_time("ns")) // self.period_ns

    async def collect_step(self, max_cycles: int) -> StepOutput:
        """Called right after the edge that took the ``start`` pulse; returns right after the edge
        that ends the cycle after ``done`` (the core is idle again)."""
        p = self.p
        out = StepOutput()
        t0 = self._now_cycles()
        first = True
        while True:
            if self.stress:
                p.spike_out.ready.value = int(self.rng.random() < 0.6)
            await ReadOnly()
            elapsed = self._now_cycles() - t0
            if elapsed > max_cycles:
                raise StepTimeout(
                    f"no done pulse {max_cycles} cycles after start (busy = {p.busy.value}, "
                    f"spike_out valid = {p.spike_out.valid.value}, {len(out.spikes)} spikes so far)"
                )
            busy = int(p.busy.value)
            if first and not busy:
                out.protocol_errors.append("busy is low in the cycle after start")
            first = False
            valid = int(p.spike_out.valid.value)
            done = int(p.done.value)
            if valid and int(p.spike_out.ready.value):
                out.spikes.append(as_int(p.spike_out.payload, "spike_out__payload (valid high)"))
            if done:
                if not busy:
                    out.protocol_errors.append("done pulsed while busy was low")
                await RisingEdge(p.clk)
                out.cycles = self._now_cycles() - t0
                break
            if self.stress or valid:
                await RisingEdge(p.clk)
            else:
                # sleep until something happens (or the cycle limit passes)
                limit = Timer((max_cycles - elapsed + 1) * self.period_ns, unit="ns")
                await First(RisingEdge(p.spike_out.valid), RisingEdge(p.done), limit)
        p.spike_out.ready.value = 1
        await ReadOnly()
        if int(p.busy.value):
            out.protocol_errors.append("busy still high in the cycle after done")
        await RisingEdge(p.clk)
        return out
