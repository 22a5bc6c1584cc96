# amaranth: UnusedElaboratable=no
"""Standalone mode without a board: the boot ROM format round-trips every CoreImage, and the
standalone top (boot loader + core + stimulus player + UART spike stream), simulated in Amaranth,
produces exactly the golden model's spikes."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikeforge.boards import boot_rom as br
from spikeforge.boards.standalone import END_OF_STEP, StandaloneTop, decode_spike_stream
from spikeforge.core import memory_map as mm
from spikeforge.core.config import CoreConfig
from spikeforge.core.random_image import random_image
from spikeforge.sim.golden import run as golden_run

CONFIGS = [
    CoreConfig(n_neurons=16, n_inputs=8),
    CoreConfig(n_neurons=24, n_inputs=0, weight_bits=6),
    CoreConfig(n_neurons=32, n_inputs=16, stdp=True, max_delay=4, adaptive_threshold=True, lanes=2),
    CoreConfig(n_neurons=12, n_inputs=4, weight_bits=16, stdp=True, max_delay=8),
]


def replay(writes):
    """The words a core holds after a sequence of writes (later writes win)."""
    held = {}
    for region, addr, word in writes:
        held[(int(region), int(addr))] = int(word) & 0xFFFF_FFFF
    return held


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"N{c.n_neurons}A{c.n_inputs}w{c.weight_bits}")
@pytest.mark.parametrize("extreme", [False, True])
def test_rom_loads_every_word_of_the_image(config, extreme):
    image = random_image(config, 7, extreme=extreme, density=0.3)
    stim = np.random.default_rng(2).random((5, config.n_inputs)) < 0.25
    rom = br.encode(image, stim, step_cycles=24_000, blink_steps=250)
    assert all(0 <= w < 1 << 16 for w in rom)
    decoded = br.decode(config, rom)
    held = replay(decoded.writes)
    for region, addr, word in mm.image_writes(image):
        assert held.get((int(region), addr)) == word & 0xFFFF_FFFF, (region, addr)
    expected = {(int(r), a) for r, a, _ in mm.image_writes(image)}
    # writes outside the image's words only go to unmapped fields, and only zeros
    assert all(v == 0 for k, v in held.items() if k not in expected)
    assert decoded.stimulus == [list(np.flatnonzero(row)) for row in stim]
    assert (decoded.step_cycles, decoded.blink_steps) == (24_000, 250)
    # CONTROL comes last: STEP sets the ring pointer only after the ring is loaded
    assert decoded.writes[-1][0] == mm.Region.CONTROL


def test_rom_is_compact_for_sparse_networks():
    config = CoreConfig(n_neurons=64, n_inputs=64)
    image = random_image(config, 1, density=0.05)
    rom = br.encode(image, np.zeros((1, 64), dtype=bool))
    synapses = config.n_sources * config.n_neurons
    # 8-bit synapses pack two per word: far below one word per synapse
    assert len(rom) < synapses / 4


def test_rom_rejects_current_inputs_and_bad_stimulus():
    config = CoreConfig(n_neurons=8, n_inputs=2, n_current_inputs=2)
    with pytest.raises(br.BootRomError, match="current_input"):
        br.encode(random_image(config, 0), np.zeros((3, 2), dtype=bool))
    config = CoreConfig(n_neurons=8, n_inputs=2)
    with pytest.raises(br.BootRomError, match="expected"):
        br.encode(random_image(config, 0), np.zeros((3, 5), dtype=bool))
    with pytest.raises(br.BootRomError, match="magic"):
        br.decode(config, [0x1234, 0, 0, 1, 0])


def test_rom_depth_buckets():
    assert br.rom_depth(1) == 256
    assert br.rom_depth(256) == 256
    assert br.rom_depth(257) == 512
    assert br.rom_depth(5000) == 8192


def test_decode_spike_stream_resynchronises():
    data = bytes([0x05, 0x81, 0x02]) + bytes([END_OF_STEP]) + bytes([0x80, 0x03, 0x9F, 0x7F, END_OF_STEP, END_OF_STEP])
    # the partial first step is dropped; 0x9F 0x7F = neuron 31 * 128 + 127 = 4095
    assert decode_spike_stream(data) == [[3, 4095], []]


def _uart_bytes(ctx, top, divisor, want_steps, max_cycles):
    """Receive UART bytes from ``top.uart_tx`` until ``want_steps`` end-of-step markers arrived."""
    async def receive():
        got = bytearray()
        cycles = 0
        while got.count(END_OF_STEP) < want_steps and cycles < max_cycles:
            await ctx.tick()
            cycles += 1
            if ctx.get(top.uart_tx) == 0:  # start bit: sample mid-bit
                await ctx.tick().repeat(divisor // 2)
                byte = 0
                for i in range(8):
                    await ctx.tick().repeat(divisor)
                    byte |= ctx.get(top.uart_tx) << i
                await ctx.tick().repeat(divisor)
                assert ctx.get(top.uart_tx) == 1, "missing stop bit"
                got.append(byte)
                cycles += 10 * divisor
        return bytes(got), cycles
    return receive()


@pytest.mark.parametrize("config,seed", [
    (CoreConfig(n_neurons=16, n_inputs=8), 5),
    (CoreConfig(n_neurons=8, n_inputs=4, stdp=True, max_delay=3, lanes=2), 11),
], ids=["plain", "stdp-delays"])
def test_standalone_top_runs_the_network_like_the_golden_model(config, seed):
    image = random_image(config, seed, density=0.4)
    steps = 5
    stim = np.random.default_rng(seed).random((steps, config.n_inputs)) < 0.3
    rom = br.encode(image, stim, step_cycles=0)
    top = StandaloneTop(config, rom, br.rom_depth(len(rom)), clk_freq=4e6, baud=1_000_000)
    rounds = 2  # the stimulus loops; the network state carries on
    _, rec = golden_run(image, np.concatenate([stim] * rounds), steps=steps * rounds)
    expected = [[int(i) for i in np.flatnonzero(row)] for row in rec.spikes]
    assert sum(map(len, expected)) > 0, "the test network should spike"

    result = {}

    async def bench(ctx):
        data, cycles = await _uart_bytes(ctx, top, 4, steps * rounds, 300_000)
        result.update(data=data, booted=ctx.get(top.booted), error=ctx.get(top.error), steps=ctx.get(top.steps))

    sim = Simulator(top)
    sim.add_clock(250e-9)
    sim.add_testbench(bench)
    sim.run()
    assert result["error"] == 0 and result["booted"] == 1
    got = decode_spike_stream(bytes([END_OF_STEP]) + result["data"])
    assert got[:steps * rounds] == expected


def test_standalone_top_flags_a_rom_without_magic():
    config = CoreConfig(n_neurons=4, n_inputs=2)
    top = StandaloneTop(config, br.random_words(256, 3), 256, clk_freq=4e6)
    seen = {}

    async def bench(ctx):
        await ctx.tick().repeat(20)
        seen.update(error=ctx.get(top.error), leds=ctx.get(top.leds), booted=ctx.get(top.booted))

    sim = Simulator(top)
    sim.add_clock(250e-9)
    sim.add_testbench(bench)
    sim.run()
    assert seen == {"error": 1, "leds": 0b11, "booted": 0}


def test_standalone_top_refuses_an_oversized_rom():
    with pytest.raises(ValueError, match="holds 256"):
        StandaloneTop(CoreConfig(n_neurons=4, n_inputs=2), [0] * 300, 256, clk_freq=4e6)


def test_boot_loader_serves_the_words_after_end_with_mark_and_rewind():
    """boards/boot_loader.py on its own: the header's values come out, the image is written to the
    bus, and after END the rest of the ROM streams word by word; ``take`` + ``mark`` sets the loop
    point, ``rewind`` goes back to it."""
    from spikeforge.boards.boot_loader import BootLoader

    config = CoreConfig(n_neurons=4, n_inputs=2)
    image = random_image(config, 3, density=0.5)
    tail = [0x1111, 0x2222, 0x3333, 0x4444]
    rom = br.encode_header(123_456, 7) + br.encode_image(image) + tail
    dut = BootLoader(config, rom, br.rom_depth(len(rom)))
    seen = {"writes": [], "stream": []}

    async def bench(ctx):
        ctx.set(dut.req_ready, 1)
        answer = False
        for _ in range(20_000):
            ctx.set(dut.resp_valid, answer)
            answer = bool(ctx.get(dut.req_valid))   # the "core" takes a write and answers next cycle
            if answer:
                req = ctx.get(dut.req)
                seen["writes"].append(((req >> 1) & 0xF, (req >> 5) & 0xFF_FFFF, (req >> 29) & 0xFFFF_FFFF))
            await ctx.tick()
            if ctx.get(dut.booted):
                break
        seen.update(cycles=ctx.get(dut.step_cycles), blink=ctx.get(dut.blink_steps))
        # read 0x1111 (mark: the loop starts after it), 0x2222, 0x3333, then rewind -> 0x2222 again
        for take, mark, rewind in [(1, 1, 0), (1, 0, 0), (1, 0, 0), (0, 0, 1), (1, 0, 0), (1, 0, 0)]:
            while not ctx.get(dut.word_valid) and not rewind:
                await ctx.tick()
            if take:
                seen["stream"].append(ctx.get(dut.word))
            ctx.set(dut.take, take)
            ctx.set(dut.mark, mark)
            ctx.set(dut.rewind, rewind)
            await ctx.tick()
            ctx.set(dut.take, 0)
            ctx.set(dut.mark, 0)
            ctx.set(dut.rewind, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen["cycles"] == 123_456 and seen["blink"] == 7
    # exactly the writes the ROM's records describe, in order
    described = br.decode(config, br.encode(image, np.zeros((1, config.n_inputs), dtype=bool))).writes
    assert seen["writes"] == [(int(r), int(a), int(w) & 0xFFFF_FFFF) for r, a, w in described]
    assert seen["stream"] == [0x1111, 0x2222, 0x3333, 0x2222, 0x3333]
