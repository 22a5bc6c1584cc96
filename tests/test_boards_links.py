# amaranth: UnusedElaboratable=no
"""The board-level RTL around the core, simulated in Amaranth: the UART the board tops share with the
protocol link (hdl/uart.py), the interim host bridge that iCE40 UP5K runtime bitstreams use (the
protocol link does not fit there next to a core), and the clock/reset top on a board platform."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from spikeforge.boards import interim_link as il
from spikeforge.hdl.uart import UartRx, UartTx, baud_error, uart_divisor
from spikeforge.core import memory_map as mm
from spikeforge.core.config import CoreConfig

DIV = 4  # clocks per bit in these simulations (4 MHz clock, 1 Mbaud)


def test_divisor_and_error_messages():
    assert uart_divisor(24e6, 1_000_000) == 24
    assert abs(baud_error(24e6, 115200)) < 0.01
    with pytest.raises(ValueError, match="at least 4 clocks"):
        uart_divisor(2e6, 1_000_000)
    with pytest.raises(ValueError, match="off by"):
        uart_divisor(10e6, 2_200_000)


async def send_byte(ctx, line, byte):
    """Drive an 8N1 frame on ``line`` (DIV clocks per bit)."""
    for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
        ctx.set(line, bit)
        await ctx.tick().repeat(DIV)


async def receive_bytes(ctx, line, count, timeout=200_000):
    out = []
    waited = 0
    while len(out) < count and waited < timeout:
        await ctx.tick()
        waited += 1
        if ctx.get(line) == 0:
            await ctx.tick().repeat(DIV // 2)
            byte = 0
            for i in range(8):
                await ctx.tick().repeat(DIV)
                byte |= ctx.get(line) << i
            await ctx.tick().repeat(DIV)
            out.append(byte)
    return out


def test_uart_loopback():
    m = Module()
    m.submodules.tx = tx = UartTx(DIV)
    m.submodules.rx = rx = UartRx(DIV)
    m.d.comb += rx.rx.eq(tx.tx)
    sent = [0x00, 0xFF, 0xA5, 0x5A, 0x81, 0x7E]
    got = []

    async def feeder(ctx):
        for b in sent:
            ctx.set(tx.data.payload, b)
            ctx.set(tx.data.valid, 1)
            await ctx.tick().until(tx.data.ready)
            ctx.set(tx.data.valid, 0)

    async def sink(ctx):
        ctx.set(rx.data.ready, 1)
        while len(got) < len(sent):
            await ctx.tick()
            if ctx.get(rx.data.valid):
                got.append(ctx.get(rx.data.payload))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(feeder)
    sim.add_testbench(sink)
    sim.run_until(2e-3)
    assert got == sent


def _bus_bytes(write, region, addr, data=0):
    word = int(write) | (int(region) << 1) | (addr << 5) | (data << 29)
    return [il.CMD_BUS] + list(word.to_bytes(8, "little"))


def test_interim_bridge_reads_writes_and_steps():
    config = CoreConfig(n_neurons=4, n_inputs=2)
    link = il.InterimUartLink([config], clk_freq=4e6, baud=1_000_000)
    result = {}

    async def host(ctx):
        ctx.set(link.uart_rx, 1)
        await ctx.tick().repeat(20)
        transcript = []
        # MAGIC and CONFIG_HASH
        for addr in (mm.ControlReg.MAGIC, mm.ControlReg.CONFIG_HASH):
            for b in _bus_bytes(False, mm.Region.CONTROL, addr):
                await send_byte(ctx, link.uart_rx, b)
            transcript.append(await receive_bytes(ctx, link.uart_tx, 5))
        # write and read back a synapse (row 2 = neuron 0, column 1): weight -5
        for b in _bus_bytes(True, mm.Region.SYNAPSE, 2 * 4 + 1, mm.pack_synapse(-5, False, 1)):
            await send_byte(ctx, link.uart_rx, b)
        transcript.append(await receive_bytes(ctx, link.uart_tx, 5))
        for b in _bus_bytes(False, mm.Region.SYNAPSE, 2 * 4 + 1):
            await send_byte(ctx, link.uart_rx, b)
        transcript.append(await receive_bytes(ctx, link.uart_tx, 5))
        # one input spike, then a step. Nothing was loaded: every parameter is 0, so v = 0 >= v_thresh = 0
        # and all four neurons spike, in index order, before "done"
        for b in (il.CMD_SPIKE, 1, 0, il.CMD_RUN):
            await send_byte(ctx, link.uart_rx, b)
        transcript.append(await receive_bytes(ctx, link.uart_tx, 4 * 3 + 1))
        # the step counter advanced
        for b in _bus_bytes(False, mm.Region.CONTROL, mm.ControlReg.STEP):
            await send_byte(ctx, link.uart_rx, b)
        transcript.append(await receive_bytes(ctx, link.uart_tx, 5))
        result["t"] = transcript

    sim = Simulator(link)
    sim.add_clock(250e-9)
    sim.add_testbench(host)
    sim.run()
    t = result["t"]
    word = lambda reply: int.from_bytes(bytes(reply[1:5]), "little")
    assert t[0][0] == il.REPLY_BUS and word(t[0]) == mm.MAGIC
    assert word(t[1]) == mm.config_hash_word(config)
    assert t[2] == [il.REPLY_BUS, 0, 0, 0, 0]
    assert mm.unpack_synapse(word(t[3]))[0] == -5
    assert t[4] == [il.REPLY_SPIKE, 0, 0, il.REPLY_SPIKE, 1, 0, il.REPLY_SPIKE, 2, 0, il.REPLY_SPIKE, 3, 0,
                    il.REPLY_DONE]
    assert word(t[5]) == 1


def test_interim_bridge_drives_one_core_only():
    c = CoreConfig(n_neurons=4, n_inputs=2)
    with pytest.raises(ValueError, match="exactly one core"):
        il.InterimUartLink([c, c], clk_freq=24e6)


def test_board_top_needs_uart_pins():
    from spikeforge.boards.catalog import get_board
    from spikeforge.boards.pll import solve_ice40
    from spikeforge.boards.top import BoardTop

    design = Module()
    design._MustUse__silence = True
    with pytest.raises(TypeError, match="uart_rx"):
        BoardTop(get_board("icebreaker"), solve_ice40(12e6, 24e6), design)


def test_board_top_elaborates_for_every_board():
    from amaranth.back import rtlil

    from spikeforge.boards.catalog import BOARDS
    from spikeforge.boards.pll import solve
    from spikeforge.boards.top import BoardTop

    config = CoreConfig(n_neurons=4, n_inputs=2)
    for board in BOARDS.values():
        pll = solve(board.family, board.clock_hz, board.default_clock_hz)
        top = BoardTop(board, pll, il.InterimUartLink([config], pll.achieved_hz))
        plan = board.platform(**({"toolchain": "Vivado"} if board.family == "xc7" else {})).prepare(top, name="top")
        text = "".join(v if isinstance(v, str) else "" for v in plan.files.values())
        assert pll.primitive in text, board.name
