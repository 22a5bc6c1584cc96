# amaranth: UnusedElaboratable=no
"""hdl/uart.py in the Amaranth simulator: 8N1 round trips at short bit times, framing errors."""

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from spikeforge.hdl.uart import UartRx, UartTx, uart_divisor


def _loop(divisor, data, rx_divisor=None):
    """Send ``data`` through UartTx into UartRx (optionally at another bit time); return what arrived."""
    m = Module()
    m.submodules.tx = tx = UartTx(divisor)
    m.submodules.rx = rx = UartRx(rx_divisor or divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    got = []

    async def bench(ctx):
        ctx.set(rx.data.ready, 1)
        for byte in data:
            ctx.set(tx.data.valid, 1)
            ctx.set(tx.data.payload, byte)
            await ctx.tick().until(tx.data.ready)
            ctx.set(tx.data.valid, 0)
        for _ in range(20 * divisor):
            await ctx.tick()

    async def monitor(ctx):
        async for _, _, valid, payload in ctx.tick().sample(rx.data.valid, rx.data.payload):
            if valid:
                got.append(payload)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_testbench(monitor, background=True)
    sim.run()
    return got


@pytest.mark.parametrize("divisor", [4, 5, 8])
def test_round_trip_every_byte_value(divisor):
    data = list(range(256))
    assert _loop(divisor, data) == data


def test_tolerates_a_few_percent_baud_mismatch():
    data = [0x00, 0xFF, 0x55, 0xAA, 0xA5, 0x5A, 0x01, 0x80]
    assert _loop(32, data, rx_divisor=31) == data
    assert _loop(32, data, rx_divisor=33) == data


def test_back_to_back_bytes_use_the_full_line_rate():
    """10 bits per byte, no idle cycle between bytes: the 64th byte is taken 63 x 40 cycles after the first."""
    m = Module()
    m.submodules.tx = tx = UartTx(4)
    cycles = []

    async def bench(ctx):
        ctx.set(tx.data.valid, 1)
        for n in range(64):
            ctx.set(tx.data.payload, n)
            await ctx.tick().until(tx.data.ready)
            cycles.append(n)
        ctx.set(tx.data.valid, 0)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    now_cycles = sim._engine.now // 1_000_000_000  # femtoseconds -> 1 us cycles
    assert now_cycles <= 63 * 40 + 2


def test_framing_error_drops_the_byte_and_recovers():
    """A low stop bit (a break) pulses ``error``; the next good byte still arrives."""
    d = 4
    m = Module()
    m.submodules.rx = rx = UartRx(d)
    got, errors = [], []
    line = [1] * 8 + [0] * (d * 10) + [0] * (d * 5) + [1] * (d * 4)  # byte 0x00 with a low stop bit
    for byte in (0x3C,):
        line += [0] * d + [b for i in range(8) for b in [(byte >> i) & 1] * d] + [1] * d
    line += [1] * (4 * d)

    async def bench(ctx):
        ctx.set(rx.data.ready, 1)
        for level in line:
            ctx.set(rx.rx, level)
            await ctx.tick()
            if ctx.get(rx.data.valid):
                got.append(ctx.get(rx.data.payload))
            if ctx.get(rx.error):
                errors.append(1)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert errors and got[:1] == [0x3C] and set(got) == {0x3C}


def test_uart_divisor_rules():
    assert uart_divisor(12e6, 1_000_000) == 12
    assert uart_divisor(48e6, 3_000_000) == 16
    with pytest.raises(ValueError, match="at least 4 clocks per bit"):
        uart_divisor(12e6, 6_000_000)
    with pytest.raises(ValueError, match="off by"):
        uart_divisor(5e6, 900_000)
    with pytest.raises(ValueError, match="divisor"):
        UartTx(3)
