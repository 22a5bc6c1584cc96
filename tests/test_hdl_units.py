"""Sub-blocks of the RTL core in the Amaranth simulator: arithmetic primitives, divider, bus decode."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from spikeforge.core import fixedpoint as fx
from spikeforge.core import memory_map as mm
from spikeforge.core.config import CoreConfig
from spikeforge.hdl import arith
from spikeforge.hdl.divider import ConstDivider
from spikeforge.hdl.testbench import simulate


def _eval(expr_builder, in_shapes: dict, cases):
    m = Module()
    ins = {name: Signal(shape, name=name) for name, shape in in_shapes.items()}
    expr = expr_builder(**ins)
    out = Signal(expr.shape(), name="out")
    m.d.comb += out.eq(expr)
    got = []

    async def bench(ctx):
        for case in cases:
            for name, value in case.items():
                ctx.set(ins[name], value)
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return got


RNG = np.random.default_rng(7)


def test_rtz_matches_fixedpoint():
    xs = [int(x) for x in RNG.integers(-(1 << 33), 1 << 33, 200)] + [0, -1, 1, -(1 << 15), (1 << 15) - 1, -32769]
    for f in (0, 1, 14, 15):
        got = _eval(lambda x: arith.rtz(x, f), {"x": signed(35)}, [{"x": x} for x in xs])
        assert got == [fx.rtz(x, f) for x in xs]


def test_sat_and_usat_match_fixedpoint():
    xs = [int(x) for x in RNG.integers(-(1 << 20), 1 << 20, 200)] + [32767, 32768, -32768, -32769, 0]
    got = _eval(lambda x: arith.sat(x, 16), {"x": signed(22)}, [{"x": x} for x in xs])
    assert got == [fx.sat(x, 16) for x in xs]
    got = _eval(lambda x: arith.usat(x, 12), {"x": signed(22)}, [{"x": x} for x in xs])
    assert got == [fx.usat(x, 12) for x in xs]
    ux = [abs(x) for x in xs]
    got = _eval(lambda x: arith.usat(x, 12), {"x": unsigned(22)}, [{"x": x} for x in ux])
    assert got == [fx.usat(x, 12) for x in ux]


def test_rnd_matches_fixedpoint():
    xs = list(range(0, 300)) + [4095]
    for f in (0, 1, 4):
        got = _eval(lambda x: arith.rnd(x, f), {"x": unsigned(12)}, [{"x": x} for x in xs])
        assert got == [fx.rnd(x, f) for x in xs]


@pytest.mark.parametrize("width", [12, 16, 17, 24])
def test_split_product_is_the_signed_product(width):
    """c * x computed as an unsigned (16 x width-1) multiply minus the sign correction."""
    lo, hi = arith.smin(width), arith.smax(width)
    xs = [int(x) for x in RNG.integers(lo, hi + 1, 150)] + [lo, hi, 0, -1]
    cs = [int(c) for c in RNG.integers(0, fx.COEF_MAX + 1, len(xs))]
    cs[:4] = [fx.COEF_MAX, 0, fx.COEF_ONE, fx.COEF_MAX]

    def build(c, x):
        low, sign, w = arith.split_operand(x)
        from spikeforge.hdl.core import _signed
        return _signed(c * low) - arith.correction(c, sign, w)

    got = _eval(build, {"c": unsigned(16), "x": signed(width)},
                [{"c": c, "x": x} for c, x in zip(cs, xs)])
    assert got == [c * x for c, x in zip(cs, xs)]


@pytest.mark.parametrize("divisor", [1, 3, 7, 12, 100, 255])
def test_const_divider(divisor):
    dut = ConstDivider(32, (divisor, 5))
    dividends = [0, 1, divisor - 1, divisor, 12345, (1 << 24) - 1, (1 << 32) - 1]
    got = []

    async def bench(ctx):
        for sel, d in [(0, x) for x in dividends] + [(1, 1003)]:
            ctx.set(dut.dividend, d)
            ctx.set(dut.sel, sel)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            while not ctx.get(dut.done):
                await ctx.tick()
            got.append((ctx.get(dut.quotient), ctx.get(dut.remainder)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    expect = [divmod(x, divisor) for x in dividends] + [divmod(1003, 5)]
    assert got == expect


@pytest.mark.parametrize("n_neurons,lanes,max_delay", [(6, 2, 3), (8, 4, 1), (5, 1, 5)])
def test_bus_writes_read_back_every_region(n_neurons, lanes, max_delay):
    """Write a distinct value to every mapped address, read all back; unmapped addresses read 0."""
    c = CoreConfig(n_neurons=n_neurons, n_inputs=3, lanes=lanes, max_delay=max_delay, stdp=True,
                   adaptive_threshold=True, n_current_inputs=2, n_profiles=3, weight_bits=6)
    from spikeforge.core.random_image import random_image
    img = random_image(c, 11, extreme=True)
    writes = list(mm.image_writes(img))
    writes += [(mm.Region.CURRENT_IN, k, mm.to_word(1000 * k - 7)) for k in range(c.n_current_inputs)]

    async def bench(ctx, drv):
        answers = [await drv.write(ctx, r, a, w) for r, a, w in writes]
        back = {(r, a): await drv.read(ctx, r, a) for r, a, _ in writes}
        extra = {
            "magic": await drv.read(ctx, mm.Region.CONTROL, mm.ControlReg.MAGIC),
            "hash": await drv.read(ctx, mm.Region.CONTROL, mm.ControlReg.CONFIG_HASH),
            "beyond_neurons": await drv.read(ctx, mm.Region.NEURON_STATE, n_neurons * 8),
            "beyond_synapses": await drv.read(ctx, mm.Region.SYNAPSE, c.n_sources * n_neurons),
            "beyond_ring": await drv.read(ctx, mm.Region.RING, 2 * max_delay * n_neurons),
            "bad_region": await drv.read(ctx, 15, 0),
            "bad_profile_field": await drv.read(ctx, mm.Region.PROFILE, 14),
        }
        return answers, back, extra

    answers, back, extra = simulate(c, bench)
    assert answers == [0] * len(writes)
    for r, a, w in writes:
        assert back[(r, a)] == w, (mm.Region(r).name, a, hex(w), hex(back[(r, a)]))
    assert extra["magic"] == mm.MAGIC
    assert extra["hash"] == mm.config_hash_word(c)
    assert all(extra[k] == 0 for k in ("beyond_neurons", "beyond_synapses", "beyond_ring",
                                       "bad_region", "bad_profile_field"))


def test_features_off_regions_read_zero():
    """Without STDP / adaptation the STDP, X_TRACE, Y_TRACE, ADAPT words are not stored: they read 0."""
    c = CoreConfig(n_neurons=4, n_inputs=2, lanes=2, n_profiles=1)

    async def bench(ctx, drv):
        await drv.write(ctx, mm.Region.STDP, 0, 123)
        await drv.write(ctx, mm.Region.X_TRACE, 0, 5)
        await drv.write(ctx, mm.Region.NEURON_STATE, mm.NeuronStateField.ADAPT, 9)
        return [await drv.read(ctx, mm.Region.STDP, 0), await drv.read(ctx, mm.Region.X_TRACE, 0),
                await drv.read(ctx, mm.Region.NEURON_STATE, mm.NeuronStateField.ADAPT),
                await drv.read(ctx, mm.Region.NEURON_STATE, mm.NeuronStateField.Y_TRACE)]

    assert simulate(c, bench) == [0, 0, 0, 0]
