"""Pattern learning with pair STDP and weight bounds, as a plain PyNN script.

Fifty inputs drive four output neurons through plastic synapses (SpikePairRule +
AdditiveWeightDependence, bounded to [0, w_max]). Inputs 0-24 repeat a fixed spatio-temporal pattern
(each fires once, at its own offset, every 50 ms) on top of random background spikes; inputs 25-49
fire only at random, at the same background rate. STDP finds the pattern's beginning (after Song, Miller
& Abbott 2000; Masquelier et al. 2008): the outputs learn to fire early in each repetition, the synapses
of the pattern's early inputs go to w_max, those of its late inputs (which now fire *after* the output)
to w_min, and the background synapses drift down. The input spikes are generated here with NumPy, so
every simulator sees exactly the same input.

    python examples/pynn_stdp_pattern.py                   # spikeforge's golden core model
    python examples/pynn_stdp_pattern.py --simulator nest  # pyNN.nest (NEST), for comparison

``run_pattern(sim)`` returns the output spikes and the learned weights so tests can compare backends.
"""

from __future__ import annotations

import argparse

import numpy as np

N_INPUTS = 50
N_PATTERN = 25  # inputs 0..24 take part in the pattern
N_OUTPUTS = 4
DURATION = 4000.0  # ms
PATTERN_PERIOD = 50.0  # ms
PATTERN_SPAN = 10  # ms: each pattern input fires at its own fixed offset within this window
BACKGROUND_HZ = 5.0
W_INIT = (0.2, 0.4)  # nA, initial weights drawn uniformly from this range (the same for every simulator)
W_MAX = 0.8  # nA
STDP = dict(tau_plus=20.0, tau_minus=20.0, A_plus=0.03, A_minus=0.036)  # depression slightly stronger
# a 5 ms refractory period: one output spike per pattern repetition, not a burst
CELL = dict(tau_m=20.0, cm=1.0, v_rest=-65.0, v_reset=-65.0, v_thresh=-50.0, tau_syn_E=5.0, tau_syn_I=5.0,
            tau_refrac=5.0, i_offset=0.0)


def pattern_offsets(seed: int = 7) -> np.ndarray:
    """The offset (ms) of each pattern input within one repetition of the pattern."""
    return np.random.default_rng(seed).integers(0, PATTERN_SPAN, size=N_PATTERN)


def input_times(seed: int = 7) -> list[list[float]]:
    """Spike times (ms, on the 1 ms grid, 2 ms .. DURATION) of every input."""
    offsets = pattern_offsets(seed)
    rng = np.random.default_rng(seed + 1)
    steps = np.arange(2, int(DURATION) + 1)
    times = []
    for i in range(N_INPUTS):
        background = steps[rng.random(steps.size) < BACKGROUND_HZ / 1000.0]
        pattern = np.arange(10.0, DURATION, PATTERN_PERIOD) + offsets[i] if i < N_PATTERN else np.zeros(0)
        t = np.unique(np.concatenate([background.astype(float), pattern]))
        times.append(t[(t >= 2) & (t <= DURATION)].tolist())
    return times


def initial_weights(seed: int = 3) -> list[tuple[int, int, float, float]]:
    """(input, output, weight nA, delay ms) of every plastic synapse: explicit, so every simulator starts
    from the same weights (PyNN's random-weight connectors may draw in simulator-specific order)."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(*W_INIT, size=(N_INPUTS, N_OUTPUTS))
    return [(i, j, float(w[i, j]), 1.0) for i in range(N_INPUTS) for j in range(N_OUTPUTS)]


def run_pattern(sim, **setup_options) -> dict:
    sim.setup(timestep=1.0, min_delay=1.0, **setup_options)
    inputs = sim.Population(N_INPUTS, sim.SpikeSourceArray(spike_times=input_times()), label="inputs")
    outputs = sim.Population(N_OUTPUTS, sim.IF_curr_exp(**CELL), label="outputs")
    stdp = sim.STDPMechanism(
        timing_dependence=sim.SpikePairRule(**STDP),
        weight_dependence=sim.AdditiveWeightDependence(w_min=0.0, w_max=W_MAX))
    plastic = sim.Projection(inputs, outputs, sim.FromListConnector(initial_weights(), column_names=["weight", "delay"]),
                             stdp, receptor_type="excitatory", label="plastic")
    # lateral inhibition between the outputs
    sim.Projection(outputs, outputs, sim.AllToAllConnector(allow_self_connections=False),
                   sim.StaticSynapse(weight=-1.0, delay=1.0), receptor_type="inhibitory", label="lateral")
    outputs.record("spikes")
    sim.run(DURATION)
    weights = np.nan_to_num(plastic.get("weight", format="array"), nan=0.0)
    trains = outputs.get_data("spikes").segments[-1].spiketrains
    spikes = [np.asarray(st.magnitude, dtype=float) for st in trains]
    sim.end()
    return {"spikes": spikes, "weights": weights}


def summarise(result: dict) -> dict:
    """Mean learned weight of the pattern's early inputs (offset < 5 ms), late inputs (>= 7 ms) and the
    background inputs, and the fraction of early synapses at w_max and late ones at w_min."""
    w = result["weights"]
    offsets = pattern_offsets()
    early, late = w[:N_PATTERN][offsets < 5], w[:N_PATTERN][offsets >= 7]
    return {
        "output_spikes": [len(s) for s in result["spikes"]],
        "early_weight": float(early.mean()),
        "late_weight": float(late.mean()),
        "background_weight": float(w[N_PATTERN:].mean()),
        "early_at_max": float(np.mean(early > 0.9 * W_MAX)),
        "late_at_min": float(np.mean(late < 0.1 * W_MAX)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulator", default="spikeforge", help="spikeforge (default) or nest")
    parser.add_argument("--backend", default="golden", help="spikeforge backend: golden, float, nest, rtl, board")
    parser.add_argument("--port", help="board backend: the board's serial port (or virtual://)")
    args = parser.parse_args()
    if args.simulator == "nest":
        import pyNN.nest as sim
        result = run_pattern(sim, spike_precision="on_grid")
    else:
        import spikeforge.pynn as sim
        result = run_pattern(sim, backend=args.backend, **({"port": args.port} if args.port else {}))
    s = summarise(result)
    print(f"output spikes {s['output_spikes']}; mean learned weight (w_max {W_MAX} nA): early pattern inputs "
          f"{s['early_weight']:.3f} nA, late pattern inputs {s['late_weight']:.3f} nA, background "
          f"{s['background_weight']:.3f} nA")
    print(f"{100 * s['early_at_max']:.0f}% of early-pattern synapses at w_max, "
          f"{100 * s['late_at_min']:.0f}% of late-pattern synapses at w_min")


if __name__ == "__main__":
    main()
