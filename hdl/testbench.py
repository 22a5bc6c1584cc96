"""Drive a NeuronCore in the Amaranth simulator: load an image over the bus, run steps, read it back.

Used by tests/test_hdl_*.py (fast checks without a Verilog step). The same protocol is what the
cocotb testbench and the UART link speak (hdl/INTERFACE.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.sim import Simulator

from spikeforge.core import memory_map as mm
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage
from spikeforge.hdl.core import NeuronCore


@dataclass
class StepResult:
    spikes: list[int]            # spike_out indices in the order they came out
    cycles: int                  # LAST_CYCLES read back after the step
    busy_cycles: int             # cycles the testbench saw busy high


@dataclass
class CoreDriver:
    """Async helpers around one simulated core; every method takes the testbench context."""

    core: NeuronCore
    spike_out_ready: bool | callable = True
    log: list = field(default_factory=list)

    async def bus(self, ctx, write: bool, region: int, addr: int, data: int = 0) -> int:
        req, resp = self.core.bus_req, self.core.bus_resp
        word = int(write) | (int(region) << 1) | (int(addr) << 5) | ((int(data) & 0xFFFF_FFFF) << 29)
        ctx.set(req.payload.as_value(), word)
        ctx.set(req.valid, 1)
        while not ctx.get(req.ready):
            await ctx.tick()
        await ctx.tick()
        ctx.set(req.valid, 0)
        ctx.set(resp.ready, 1)
        while not ctx.get(resp.valid):
            await ctx.tick()
        value = ctx.get(resp.payload.data)
        await ctx.tick()
        ctx.set(resp.ready, 0)
        return value

    async def write(self, ctx, region, addr, data):
        return await self.bus(ctx, True, region, addr, data)

    async def read(self, ctx, region, addr):
        return await self.bus(ctx, False, region, addr)

    async def load(self, ctx, image: CoreImage, state: bool = True):
        for region, addr, word in mm.image_writes(image, state=state):
            await self.write(ctx, region, addr, word)

    async def read_image(self, ctx, config: CoreConfig) -> CoreImage:
        words = {}
        for region, addr in mm.image_reads(config):
            words[(region, addr)] = await self.read(ctx, region, addr)
        return mm.image_from_words(config, words)

    async def step(self, ctx, in_spikes=(), currents=None) -> StepResult:
        c = self.core.config
        if currents is not None:
            for k, u in enumerate(currents):
                await self.write(ctx, mm.Region.CURRENT_IN, k, int(u))
        for i in in_spikes:
            si = self.core.spike_in
            ctx.set(si.payload, int(i))
            ctx.set(si.valid, 1)
            while not ctx.get(si.ready):
                await ctx.tick()
            await ctx.tick()
            ctx.set(si.valid, 0)
        ctx.set(self.core.start, 1)
        await ctx.tick()
        ctx.set(self.core.start, 0)
        spikes, busy, n = [], 0, 0
        so = self.core.spike_out
        while True:
            ready = self.spike_out_ready(n) if callable(self.spike_out_ready) else self.spike_out_ready
            ctx.set(so.ready, int(bool(ready)))
            if ctx.get(self.core.busy):
                busy += 1
            if ctx.get(so.valid) and ready:
                spikes.append(ctx.get(so.payload))
            finished = ctx.get(self.core.done)
            n += 1
            await ctx.tick()
            if finished:
                break
            if n > 10_000_000:
                raise RuntimeError("core did not finish a step in 10M cycles")
        ctx.set(so.ready, 0)
        cycles = await self.read(ctx, mm.Region.CONTROL, mm.ControlReg.LAST_CYCLES)
        return StepResult(spikes=spikes, cycles=cycles, busy_cycles=busy)


def simulate(config: CoreConfig, testbench, *, mutation=None, vcd=None):
    """Run ``await testbench(ctx, driver)`` on a fresh core; return what it returns."""
    core = NeuronCore(config, mutation=mutation)
    driver = CoreDriver(core)
    out = {}

    async def bench(ctx):
        out["value"] = await testbench(ctx, driver)

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return out.get("value")


def run_against_golden(image: CoreImage, inputs: np.ndarray, currents: np.ndarray | None = None,
                       *, mutation=None, check_every_step: bool = True):
    """Load ``image``, run len(inputs) steps in the simulator and in the golden model.

    Returns a list of per-step dicts: spikes (RTL and golden), cycles, and the differing image fields
    (empty when the RTL read-back equals the golden image).
    """
    from spikeforge.sim.golden import GoldenCore

    c = image.config
    golden = GoldenCore(image.copy())
    report = []

    async def bench(ctx, drv: CoreDriver):
        await drv.load(ctx, image)
        for t in range(len(inputs)):
            in_idx = np.flatnonzero(inputs[t])
            cur = None if currents is None else currents[t]
            res = await drv.step(ctx, in_idx, cur)
            g_spikes = golden.step(inputs[t][None], None if cur is None else np.asarray(cur)[None])[0]
            entry = {"rtl_spikes": res.spikes, "golden_spikes": list(np.flatnonzero(g_spikes)),
                     "cycles": res.cycles, "busy_cycles": res.busy_cycles, "diff": None,
                     "n_in": len(in_idx), "n_post": int(g_spikes.sum())}
            if check_every_step or t == len(inputs) - 1:
                rtl = await drv.read_image(ctx, c)
                entry["diff"] = comparable(rtl).differences(comparable(golden.images()))
            report.append(entry)
        return report

    return simulate(c, bench, mutation=mutation)


def comparable(image: CoreImage) -> CoreImage:
    """The image with the fields a core does not store (features that are off) set to blank values."""
    img = image.copy()
    blank = CoreImage.blank(img.config)
    if not img.config.adaptive_threshold:
        img.profiles["c_adecay"] = blank.profiles["c_adecay"].copy()
        img.profiles["a_inc"] = blank.profiles["a_inc"].copy()
    return img
