"""A content-addressable memory with STDP, CA3-style, as a plain PyNN script.

A recurrent excitatory population with plastic (pair STDP, additive, bounded) all-to-all synapses
stores two patterns (disjoint groups of neurons made to fire together by a teacher input), then
recalls one of them from a fragment: half of pattern 0 is cued, and the learned recurrent weights make
the other half fire too, while pattern 1 stays silent. An inhibitory population keeps activity in check.
This is the structure of the STDP associative-memory models run on SpiNNaker with sPyNNaker.

Run it on any PyNN backend -- only the import line changes:

    python examples/pynn_cam.py                      # spikeforge's golden core model
    python examples/pynn_cam.py --backend float      # spikeforge's float reference
    python examples/pynn_cam.py --backend rtl        # the generated Verilog (slow)
    python examples/pynn_cam.py --backend board --port /dev/ttyUSB1   # an FPGA board (a core with STDP)
    python examples/pynn_cam.py --simulator nest     # pyNN.nest (NEST), for comparison
    python examples/pynn_cam.py --spinnaker virtual  # and map the same network onto SpiNNaker
    spikeforge compile examples/pynn_cam.py          # capture the network and compile it

``run_cam(sim)`` returns the spikes and learned weights so tests can compare backends.
"""

from __future__ import annotations

import argparse

import numpy as np

N_EXC = 40
N_INH = 8
N_PATTERNS = 2
PATTERN_SIZE = 10
PRESENTATIONS = 10  # per pattern
PERIOD = 100.0  # ms between presentations
BURST = (0.0, 12.0, 24.0)  # teacher spikes of one presentation, relative to its start (ms)
TRAIN_MS = 40.0 + PRESENTATIONS * N_PATTERNS * PERIOD
RECALL_MS = 120.0
W_TEACH = 6.0  # nA: one teacher spike makes its neuron fire
W_INIT = 0.05  # nA, recurrent synapses before learning
W_MAX = 1.0  # nA
W_EI = 0.3  # nA, excitatory -> inhibitory
W_IE = 0.3  # nA, inhibitory -> excitatory (PyNN: negative weight on the inhibitory receptor)
STDP = dict(tau_plus=20.0, tau_minus=20.0, A_plus=0.06, A_minus=0.04)
# slow inhibition (tau_syn_I = 20 ms) ends a recalled pattern's reverberation before the next presentation
CELL = dict(tau_m=20.0, cm=1.0, v_rest=-65.0, v_reset=-65.0, v_thresh=-50.0, tau_syn_E=5.0, tau_syn_I=20.0,
            tau_refrac=2.0, i_offset=0.0)


def pattern(k: int) -> np.ndarray:
    return np.arange(k * PATTERN_SIZE, (k + 1) * PATTERN_SIZE)


def training_times(seed: int = 1) -> list[list[float]]:
    """Teacher spike times (ms, on the 1 ms grid, >= 2 ms): presentations alternate between the patterns;
    within one, the pattern's neurons start their bursts in a random order, 1 ms apart, so STDP sees
    both orders of every pair and no two neurons of a pattern fire in the same step."""
    rng = np.random.default_rng(seed)
    times = [[] for _ in range(N_EXC)]
    for r in range(PRESENTATIONS * N_PATTERNS):
        start = 20.0 + r * PERIOD
        members = pattern(r % N_PATTERNS)
        for i, offset in zip(members, rng.permutation(len(members))):
            times[i] += [start + float(offset) + b for b in BURST]
    return times


def recall_times(t0: float) -> list[list[float]]:
    """The cue: the first half of pattern 0, one burst starting 10 ms into the recall phase."""
    times = [[] for _ in range(N_EXC)]
    for i in pattern(0)[: PATTERN_SIZE // 2]:
        times[i] = [t0 + 10.0 + b for b in BURST]
    return times


def run_cam(sim, **setup_options) -> dict:
    """Build the CAM on the PyNN module ``sim``, train, recall; return spikes and weights."""
    sim.setup(timestep=1.0, min_delay=1.0, **setup_options)
    if hasattr(sim, "set_number_of_neurons_per_core"):  # sPyNNaker style; spikeforge accepts it as a no-op
        sim.set_number_of_neurons_per_core(sim.IF_curr_exp, 64)
    teacher = sim.Population(N_EXC, sim.SpikeSourceArray(spike_times=training_times()), label="teacher")
    exc = sim.Population(N_EXC, sim.IF_curr_exp(**CELL), label="ca3_exc")
    inh = sim.Population(N_INH, sim.IF_curr_exp(**CELL), label="ca3_inh")
    sim.Projection(teacher, exc, sim.OneToOneConnector(), sim.StaticSynapse(weight=W_TEACH, delay=1.0),
                   receptor_type="excitatory", label="teach")
    stdp = sim.STDPMechanism(
        timing_dependence=sim.SpikePairRule(**STDP),
        weight_dependence=sim.AdditiveWeightDependence(w_min=0.0, w_max=W_MAX),
        weight=W_INIT, delay=1.0)
    recurrent = sim.Projection(exc, exc, sim.AllToAllConnector(allow_self_connections=False), stdp,
                               receptor_type="excitatory", label="recurrent")
    sim.Projection(exc, inh, sim.AllToAllConnector(), sim.StaticSynapse(weight=W_EI, delay=1.0),
                   receptor_type="excitatory", label="exc_inh")
    sim.Projection(inh, exc, sim.AllToAllConnector(), sim.StaticSynapse(weight=-W_IE, delay=1.0),
                   receptor_type="inhibitory", label="inh_exc")
    exc.record("spikes")

    sim.run(TRAIN_MS)  # store
    learned = np.nan_to_num(recurrent.get("weight", format="array"), nan=0.0)
    teacher.set(spike_times=recall_times(TRAIN_MS))
    sim.run(RECALL_MS)  # recall from a fragment

    trains = exc.get_data("spikes").segments[-1].spiketrains
    spikes = [np.asarray(st.magnitude, dtype=float) for st in trains]
    sim.end()
    return {"spikes": spikes, "weights": learned, "train_ms": TRAIN_MS, "recall_ms": RECALL_MS}


def summarise(result: dict) -> dict:
    """Recall quality: how many of the uncued pattern-0 neurons fire, and how many of pattern 1 do."""
    t0 = result["train_ms"]
    fired = np.array([np.any(s > t0) for s in result["spikes"]])
    w = result["weights"]
    p0, p1 = pattern(0), pattern(1)
    within = np.mean([w[i, j] for i in p0 for j in p0 if i != j] + [w[i, j] for i in p1 for j in p1 if i != j])
    across = np.mean([w[i, j] for i in p0 for j in p1] + [w[i, j] for i in p1 for j in p0])
    return {
        "completed": int(fired[p0[PATTERN_SIZE // 2:]].sum()),
        "cued_fired": int(fired[p0[: PATTERN_SIZE // 2]].sum()),
        "pattern1_fired": int(fired[p1].sum()),
        "mean_weight_within": float(within),
        "mean_weight_across": float(across),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulator", default="spikeforge", help="spikeforge (default) or nest")
    parser.add_argument("--backend", default="golden", help="spikeforge backend: golden, float, nest, rtl, board")
    parser.add_argument("--port", help="board backend: the board's serial port (or virtual://)")
    parser.add_argument("--spinnaker", metavar="TARGET",
                        help="also run the same network on SpiNNaker: 'virtual' (mapping only) or a board's IP")
    args = parser.parse_args()
    if args.simulator == "nest":
        import pyNN.nest as sim
        result = run_cam(sim, spike_precision="on_grid")
    else:
        import spikeforge.pynn as sim
        result = run_cam(sim, backend=args.backend, **({"port": args.port} if args.port else {}))
    s = summarise(result)
    print(f"recall from {PATTERN_SIZE // 2} cued neurons of pattern 0: {s['completed']}/{PATTERN_SIZE - PATTERN_SIZE // 2} "
          f"uncued pattern-0 neurons completed, {s['pattern1_fired']}/{PATTERN_SIZE} pattern-1 neurons fired")
    print(f"mean learned weight within patterns {s['mean_weight_within']:.3f} nA, across {s['mean_weight_across']:.3f} nA")
    if args.spinnaker and args.simulator != "nest":
        # the whole experiment (training and recall) as one Network: the teacher's two epochs are one source
        from spikeforge.sim.backends import simulate

        network = sim.last_network()
        where = {"virtual": True} if args.spinnaker == "virtual" else {"spinnaker_host": args.spinnaker}
        simulate(network, network.steps_for(TRAIN_MS + RECALL_MS), backend="spinnaker", **where)


if __name__ == "__main__":
    main()
