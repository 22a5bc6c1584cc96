"""cocotb test module: the generated core's Verilog stepped one timestep at a time by a host process.

A closed loop needs each step's inputs to depend on the previous step's spikes (the plant moves in
between), so the RTL backend's batch job (all inputs known up front) cannot run it. This module runs
inside the simulator, on the same build as the RTL backend (``sim/cocotb_tb/runner.build``: the core's
generated Verilog + the burst-player top), and serves steps over a Unix socket to
``runners.RtlRunner`` in the host process, which any ``CoreRunner`` user (the closed loop) drives.

At start it loads the image through the core's bus (the burst player), checks MAGIC and CONFIG_HASH,
and (unless ``+spikeforge_step_verify=0``) reads the whole image back and compares it word for word
(a load the host can trust, as the board driver's ``load(verify=True)``). Then, messages on the socket:

    host -> sim   b"S" + K x i32 analog inputs + A bytes (input spikes 0/1)   run one step
                  b"Q"                                                        end the simulation
    sim -> host   b"L"                                       the image is loaded and verified
                  b"P" + u32 cycles + u32 n + n x u32        the step's spikes (neuron indices)
                  b"E" + u32 length + utf-8 text             the RTL failed (hang, mismatch, X)

The per-step inputs go in as the RTL backend's testbench puts them (hdl/INTERFACE.md): the non-zero
CURRENT_IN words over the bus, the input spikes on ``spike_in``, a ``start`` pulse; the monitor
collects ``spike_out`` until ``done``.
"""

import socket
import struct
import time
import traceback
from pathlib import Path

import cocotb
import numpy as np

from spikeforge.core.image import CoreImage
from spikeforge.core.memory_map import (
    MAGIC, ControlReg, Region, config_hash_word, image_from_words, image_reads, image_writes,
)
from spikeforge.sim.cocotb_tb import readback
from spikeforge.sim.cocotb_tb.driver import BurstPlayer, CoreDriver
from spikeforge.sim.cocotb_tb.monitor import SpikeMonitor
from spikeforge.sim.cocotb_tb.ports import CorePorts
from spikeforge.sim.cocotb_tb.scoreboard import Scoreboard
from spikeforge.sim.cocotb_tb.testbench import step_cycle_limit

PERIOD_NS = 10


def _recv_exact(sock, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the host closed the step socket")
        data += chunk
    return bytes(data)


async def _load_and_verify(driver: CoreDriver, image: CoreImage, verify: bool = True) -> list[str]:
    """Write ``image`` into the freshly reset core and (``verify``) read it all back: the mismatches
    (none = ok)."""
    config = image.config
    sb = Scoreboard(max_report=8)
    magic = await driver.read_control(ControlReg.MAGIC)
    if magic != MAGIC:
        return [f"CONTROL.MAGIC reads {magic:#x}, expected {MAGIC:#x}: not a spikeforge core"]
    got = await driver.read_control(ControlReg.CONFIG_HASH)
    if got != config_hash_word(config):
        return [f"CONTROL.CONFIG_HASH reads {got:#x}, expected {config_hash_word(config):#x}: the Verilog "
                "was generated for another CoreConfig"]
    # a fresh core's SYNAPSE and RING memories power up at zero (as FPGA block RAM); the read-back
    # below compares every word, so this shortcut cannot hide a wrong load
    t0 = time.perf_counter()
    writes = [(r, a, w) for r, a, w in image_writes(image) if w != 0 or r not in (Region.SYNAPSE, Region.RING)]
    await driver.load_words(writes)
    t1 = time.perf_counter()
    if not verify:
        driver.p.dut._log.info(f"loaded {len(writes)} words in {t1 - t0:.1f} s (not read back)")
        return []
    addresses = image_reads(config)
    words = await driver.bus.read_words(addresses)
    driver.p.dut._log.info(f"loaded {len(writes)} words in {t1 - t0:.1f} s, read {len(addresses)} back in "
                           f"{time.perf_counter() - t1:.1f} s")
    loaded = image_from_words(config, {(Region(r), a): w for (r, a), w in zip(addresses, words)})
    sb.compare_images(readback.hardware_view(image), loaded)
    return [str(m) for m in sb.mismatches]


@cocotb.test()
async def step_session(dut):
    args = cocotb.plusargs
    image = CoreImage.load(args["spikeforge_step_image"])
    config = image.config
    work = Path(args["spikeforge_step_work"])
    K, A = config.n_current_inputs, config.n_inputs
    ports = CorePorts(dut, has_spike_in=A > 0)
    player = BurstPlayer(dut, ports.clk, str(work / "burst_in.hex"), str(work / "burst_out.hex"), PERIOD_NS)
    driver = CoreDriver(ports, period_ns=PERIOD_NS, player=player)
    monitor = SpikeMonitor(ports, PERIOD_NS)
    limit = step_cycle_limit(config)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(args["spikeforge_step_socket"])

    def fail(text: str):
        data = text.encode()
        sock.sendall(b"E" + struct.pack("<I", len(data)) + data)

    try:
        await driver.start_clock_and_reset()
        problems = await _load_and_verify(driver, image, args.get("spikeforge_step_verify", "1") != "0")
        if problems:
            fail("the image did not load into the RTL core: " + "; ".join(problems))
            return
        sock.sendall(b"L")
        while True:
            kind = _recv_exact(sock, 1)
            if kind == b"Q":
                break
            if kind != b"S":
                fail(f"unknown message {kind!r} on the step socket")
                break
            currents = np.frombuffer(_recv_exact(sock, 4 * K), dtype="<i4") if K else np.zeros(0, np.int32)
            spikes_in = np.frombuffer(_recv_exact(sock, A), dtype=np.uint8).astype(bool) if A else np.zeros(0, bool)
            writes = [(Region.CURRENT_IN, k, int(u)) for k, u in enumerate(currents) if int(u) != 0]
            await driver.bus.write_words(writes)
            await driver.set_inputs(spikes_in, None)
            await driver.pulse_start()
            out = await monitor.collect_step(limit)
            if out.protocol_errors:
                fail("the core broke the step protocol (hdl/INTERFACE.md): " + "; ".join(out.protocol_errors))
                break
            bad = [i for i in out.spikes if not 0 <= i < config.n_neurons]
            if bad:
                fail(f"spike_out sent neuron indices {bad} outside 0..{config.n_neurons - 1}")
                break
            sock.sendall(b"P" + struct.pack(f"<II{len(out.spikes)}I", out.cycles, len(out.spikes), *out.spikes))
    except ConnectionError:
        pass  # the host went away; nothing to report to
    except Exception as exc:  # a hang, X on an output, ...: the host raises it with this text
        try:
            fail(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}")
        except OSError:
            pass
    finally:
        sock.close()
