"""cocotb test module: the standalone blimp controller's Verilog flying the simulated blimp.

Runs inside the simulator (started by ``standalone.simulate_board_verilog``). The job (plusarg
``+blimp_job=<json>``) holds one run of a scenario and the UART divisor; the closed loop runs here:
each tick the LiDAR error goes into ``uart_rx`` bit by bit as an ``A5 e_lo e_hi`` frame, the
``5A c_lo c_hi`` reply is sampled from ``uart_tx`` and moves the blimp (demos/blimp/plant.py). Only
the UART bits cost Python wake-ups, so the boot (hundreds of thousands of cycles) runs at the
simulator's own speed. Results go to the job's ``output`` (npz).
"""

import json
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer, FallingEdge

from spikeforge.demos.blimp.fixed_point import CMD_FRAC, FixedPointIO
from spikeforge.demos.blimp.plant import Blimp
from spikeforge.demos.blimp.standalone_top import FRAME_IN, FRAME_OUT

PERIOD_NS = 10


@cocotb.test()
async def fly(dut):
    job = json.loads(open(cocotb.plusargs["blimp_job"]).read())
    d = int(job["divisor"])
    setpoint = np.asarray(job["setpoint"], dtype=float)
    T = setpoint.size
    rngs = [np.random.default_rng([job["seed"], 0x5B1A, int(job["run_id"])])]
    blimp = Blimp(np.array([job["h0"]]), np.array([job["buoyancy"]]), noise=True, rngs=rngs)
    altitude, command, e_words, c_words, tick_cycles = [], [], [], [], []
    error, boot_cycles = None, None
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.uart_rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0

    def now() -> int:
        return int(cocotb.utils.get_sim_time("ns")) // PERIOD_NS

    start = now()
    wall0 = time.perf_counter()
    limit = Timer(job["boot_cycles_max"] * PERIOD_NS, unit="ns")
    if not int(dut.booted.value):
        fired = await First(RisingEdge(dut.booted), limit)
        if fired is limit:
            error = f"the board did not boot within {job['boot_cycles_max']} cycles (error = {dut.error.value})"
    boot_cycles = now() - start
    boot_wall = time.perf_counter() - wall0
    await RisingEdge(dut.clk)
    for t in range(T if error is None else 0):
        altitude.append(float(blimp.altitude[0]))
        meas = blimp.measure()
        e = int(FixedPointIO.error_word(setpoint[t] - meas)[0])
        e_words.append(e)
        t0 = now()
        for byte in (FRAME_IN, e & 0xFF, (e >> 8) & 0xFF):
            for level in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                dut.uart_rx.value = level
                await ClockCycles(dut.clk, d)
        got = []
        while len(got) < 3 and error is None:
            if int(dut.uart_tx.value):
                timeout = Timer(job["tick_cycles_max"] * PERIOD_NS, unit="ns")
                if await First(FallingEdge(dut.uart_tx), timeout) is timeout:
                    error = f"no command frame within {job['tick_cycles_max']} cycles at tick {t}"
                    break
            await ClockCycles(dut.clk, d + d // 2)
            byte = 0
            for i in range(8):
                byte |= int(dut.uart_tx.value) << i
                await ClockCycles(dut.clk, d)
            got.append(byte)
            await ClockCycles(dut.clk, d // 2)  # into the stop bit
        if error is not None:
            break
        if got[0] != FRAME_OUT:
            error = f"tick {t}: the reply starts with {got[0]:#04x}, not {FRAME_OUT:#04x}"
            break
        word = got[1] | (got[2] << 8)
        word -= (word & 0x8000) << 1
        c_words.append(word)
        u = word / float(1 << CMD_FRAC)
        command.append(u)
        tick_cycles.append(now() - t0)
        blimp.step(np.array([u]))
    np.savez(job["output"], altitude=np.asarray(altitude), command=np.asarray(command),
             error_words=np.asarray(e_words, dtype=np.int64), command_words=np.asarray(c_words, dtype=np.int64),
             tick_cycles=np.asarray(tick_cycles, dtype=np.int64), boot_cycles=np.asarray(boot_cycles),
             error=np.asarray("" if error is None else error),
             wall=np.asarray([boot_wall, time.perf_counter() - wall0 - boot_wall]))
