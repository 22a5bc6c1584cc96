"""Whole RTL core in the Amaranth simulator against the golden model, bit for bit.

Every test loads a random image through the bus, runs steps (spike_in, CURRENT_IN, start), and after
every step reads the whole image back through the bus and compares it with sim/golden.py, along with
the spikes on spike_out and LAST_CYCLES against sim/cycle_model.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge.core.config import CoreConfig
from spikeforge.core.random_image import random_image, random_inputs
from spikeforge.hdl import MUTATIONS
from spikeforge.hdl.testbench import comparable, run_against_golden, simulate
from spikeforge.sim.cycle_model import predict_step_cycles
from spikeforge.sim.golden import GoldenCore

CONFIGS = {
    "plain_p2": dict(n_neurons=8, n_inputs=4, lanes=2, n_profiles=2),
    "delays_p1_adaptive": dict(n_neurons=7, n_inputs=5, lanes=1, max_delay=3, n_profiles=2,
                               adaptive_threshold=True),
    "current_p4_w12": dict(n_neurons=8, n_inputs=4, lanes=4, n_profiles=4, n_current_inputs=3,
                           weight_bits=12),
    "stdp_p2_w4": dict(n_neurons=8, n_inputs=4, lanes=2, max_delay=2, n_profiles=2, stdp=True,
                       weight_bits=4),
    "everything_p4": dict(n_neurons=8, n_inputs=3, lanes=4, max_delay=5, n_profiles=3, stdp=True,
                          adaptive_threshold=True, n_current_inputs=2, weight_bits=8),
    "stdp_p1_odd": dict(n_neurons=5, n_inputs=3, lanes=1, max_delay=4, n_profiles=1, stdp=True,
                        weight_bits=12),
    "no_inputs": dict(n_neurons=6, n_inputs=0, lanes=2, n_profiles=1, max_delay=2),
}


def _lively(config, seed, extreme, steps=3):
    """The first random image (from ``seed`` on) whose run has neuron spikes: a quiet run proves little."""
    for s in range(seed, seed + 50):
        image = random_image(config, s, extreme=extreme)
        inputs, currents = random_inputs(config, steps, s + 1000, rate=0.4)
        # extreme images (long refractory counts, saturated fields) may stay silent: they test widths
        if extreme or GoldenCore(image.copy()).run(inputs, currents=currents).spikes.any():
            return image, inputs, currents
    raise AssertionError(f"no random image of {config} spikes")


def _check(report, image, inputs, currents):
    golden = GoldenCore(image.copy())
    outs = golden.run(inputs, currents=currents).spikes
    for t, entry in enumerate(report):
        assert entry["rtl_spikes"] == [int(i) for i in entry["golden_spikes"]], f"step {t}: spikes differ"
        assert entry["diff"] == [], f"step {t}: fields differ from the golden model: {entry['diff']}"
        expect = predict_step_cycles(image.config, inputs[t], outs[t], learning=image.learning)
        assert entry["cycles"] == entry["busy_cycles"] == expect, f"step {t}: cycle model"


@pytest.mark.parametrize("extreme", [False, True], ids=["typical", "extreme"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_core_matches_golden(name, extreme):
    config = CoreConfig(**CONFIGS[name])
    image, inputs, currents = _lively(config, sorted(CONFIGS).index(name) * 50, extreme)
    report = run_against_golden(image, inputs, currents)
    _check(report, image, inputs, currents)


@pytest.mark.parametrize("learning", [True, False])
def test_stdp_learning_switch(learning):
    config = CoreConfig(n_neurons=8, n_inputs=4, lanes=2, n_profiles=2, stdp=True)
    image = random_image(config, 5)
    image.learning = learning
    inputs, _ = random_inputs(config, 3, 6, rate=0.5)
    report = run_against_golden(image, inputs)
    _check(report, image, inputs, None)
    golden = GoldenCore(image.copy())
    golden.run(inputs)
    changed = not np.array_equal(golden.images().weights, image.weights)
    assert changed == learning, "the test must exercise weight changes exactly when learning is on"


@pytest.mark.parametrize("stdp", [False, True])
def test_ring_hazard_one_word_rows(stdp):
    """lanes == n_neurons: every row is one weight word, all rows hit the same ring entries back to back."""
    config = CoreConfig(n_neurons=4, n_inputs=8, lanes=4, max_delay=2, n_profiles=1, stdp=stdp)
    image = random_image(config, 9, density=1.0)
    inputs = np.ones((3, 8), dtype=bool)
    report = run_against_golden(image, inputs)
    _check(report, image, inputs, None)


def test_spike_out_backpressure_and_duplicate_inputs():
    """A slow spike_out consumer stalls the core without changing results; an input index sent twice
    counts once."""
    config = CoreConfig(n_neurons=8, n_inputs=4, lanes=2, n_profiles=2)
    image = random_image(config, 3)
    image.profiles["v_thresh"][:] = -(1 << (config.v_bits - 1))  # every non-refractory neuron spikes
    image.refrac_count[:] = 0
    inputs = np.array([[1, 0, 1, 1]], dtype=bool)
    golden = GoldenCore(image.copy())
    g_spikes = golden.step(inputs)[0]

    async def bench(ctx, drv):
        await drv.load(ctx, image)
        drv.spike_out_ready = lambda n: n % 13 == 12
        res = await drv.step(ctx, [3, 0, 2, 0, 3])
        return res, await drv.read_image(ctx, config)

    res, rtl = simulate(config, bench)
    assert res.spikes == list(np.flatnonzero(g_spikes))
    assert len(res.spikes) == config.n_neurons
    assert comparable(rtl).differences(comparable(golden.images())) == []
    model = predict_step_cycles(config, inputs[0], g_spikes, learning=image.learning)
    assert res.cycles > model, "stalls on spike_out must cost cycles"


def test_mutations_are_caught():
    """Every mutation changes some run of this small core (the verification suite relies on it)."""
    config = CoreConfig(n_neurons=8, n_inputs=4, lanes=2, max_delay=3, n_profiles=2, stdp=True,
                        adaptive_threshold=True)
    for mutation in MUTATIONS:
        caught = False
        for seed, extreme in ((1, False), (2, True), (3, True)):
            image = random_image(config, seed, extreme=extreme)
            image.learning = True
            inputs, _ = random_inputs(config, 3, seed, rate=0.5)
            report = run_against_golden(image, inputs, mutation=mutation, check_every_step=False)
            if any(e["diff"] or e["rtl_spikes"] != [int(i) for i in e["golden_spikes"]] for e in report):
                caught = True
                break
        assert caught, f"mutation {mutation} went unnoticed"


@pytest.mark.parametrize("stdp", [False, True])
def test_reference_size_cycles(stdp):
    """N = 256, A = 256 (A = 64 with STDP), P = 8 at 5 % activity: LAST_CYCLES equals the cycle model
    and stays within 1.25x of the bandwidth bound (without STDP).

    The core starts from reset (all memories zero); only the words that set the activity are written:
    profile 1 always spikes, 13 neurons use it, 13 (or 3) inputs spike.
    """
    from spikeforge.core import memory_map as mm
    from spikeforge.sim.cycle_model import bandwidth_bound, predict_cycles, synaptic_events

    config = CoreConfig(n_neurons=256, n_inputs=64 if stdp else 256, lanes=8, n_profiles=2, stdp=stdp,
                        weight_bits=7 if stdp else 8)
    spiking = list(range(3, 256, 20))[:13]
    inputs = list(range(1, config.n_inputs, 20))[: round(0.05 * config.n_inputs)]

    async def bench(ctx, drv):
        await drv.write(ctx, mm.Region.PROFILE, 0 * 16 + 8, 0x7FFF)          # profile 0: never spikes
        await drv.write(ctx, mm.Region.PROFILE, 1 * 16 + 8, mm.to_word(-32768))  # profile 1: always
        for n in spiking:
            await drv.write(ctx, mm.Region.NEURON_PROFILE, n, 1)
        return await drv.step(ctx, inputs)

    res = simulate(config, bench)
    assert res.spikes == spiking
    groups = len({n // config.lanes for n in spiking})
    model = predict_cycles(config, n_spiking_sources=len(inputs) + len(spiking), n_post_spikes=len(spiking),
                           n_post_groups=groups)
    assert res.cycles == model
    bound = bandwidth_bound(config, synaptic_events(config, len(inputs) + len(spiking)))
    if not stdp:
        assert res.cycles <= 1.25 * bound
