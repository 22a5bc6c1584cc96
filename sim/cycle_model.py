"""Cycle model of the RTL neuron core: clock cycles of one timestep, as CONTROL.LAST_CYCLES reports it.

The schedule (docs/core-rtl.md) is data-dependent only through counts, so the model is a closed
formula over the step's spike counts:

- NEURON   ``N + 10`` (one neuron per clock, 10-stage pipeline); with STDP ``max(N + 10, S + 4)``
           because the S pre traces decay in a concurrent one-per-clock pipeline.
- POT      (STDP, learning, >= 1 neuron spiked) ``groups * (2 + span(S)) + 4``: ``groups`` = weight-word
           columns (``lanes`` neurons each) holding a spiking neuron; every row of such a column is
           read, modified and written back through the single-port weight memory, reads and writes in
           pairs (R R W W), so S rows take ``span(S) = 2S - 2`` (S even) or ``2S - 1`` (S odd) clocks.
- DELIVER  ``rows * (W + 1) + 6`` with ``rows`` = spiking sources (inputs + neurons), W = N / lanes
           words per row, one bubble per row; with STDP and learning every word is also written back:
           ``rows * (span(W) + 2) + 5``. ``1`` when nothing spiked.
- YINC     (STDP) ``n_post + 3`` (``1`` when no neuron spiked).
- FINISH   ``1``.

Stalls on ``spike_out`` (consumer not ready) add cycles the model does not know about.
"""

from __future__ import annotations

import numpy as np

from spikeforge.core.config import CoreConfig

NEURON_OVERHEAD = 10
XDECAY_OVERHEAD = 4


def _span(items: int) -> int:
    """Clocks from the first to the last issue of ``items`` read-modify-writes (R R W W pattern)."""
    if items <= 0:
        return 0
    return 2 * items - 2 if items % 2 == 0 else 2 * items - 1


def phase_cycles(config: CoreConfig, *, n_spiking_sources: int, n_post_spikes: int,
                 n_post_groups: int | None = None, learning: bool = True) -> dict[str, int]:
    """Cycles of every phase of one step (see the module docstring)."""
    c = config
    N, S, P = c.n_neurons, c.n_sources, c.lanes
    words = N // P
    if n_post_groups is None:
        # without the spike vector, assume every spiking neuron is in its own weight-word column
        n_post_groups = min(n_post_spikes, words)
    out = {"neuron": N + NEURON_OVERHEAD}
    if c.stdp:
        out["neuron"] = max(out["neuron"], S + XDECAY_OVERHEAD)
        if learning and n_post_groups:
            out["pot"] = n_post_groups * (2 + _span(S)) + 4
    rows = n_spiking_sources
    if rows == 0:
        out["deliver"] = 1
    elif c.stdp and learning:
        out["deliver"] = rows * (_span(words) + 2) + 5
    else:
        out["deliver"] = rows * (words + 1) + 6
    if c.stdp:
        out["yinc"] = n_post_spikes + 3 if n_post_spikes else 1
    out["finish"] = 1
    return out


def predict_cycles(config: CoreConfig, *, n_spiking_sources: int, n_post_spikes: int,
                   n_pre_spikes: int | None = None, n_post_groups: int | None = None,
                   learning: bool = True) -> int:
    """Clock cycles of one step (LAST_CYCLES) from its spike counts.

    ``n_spiking_sources``: external inputs that spiked plus neurons that spiked (rows delivered);
    ``n_post_spikes``: neurons that spiked; ``n_pre_spikes``: accepted for symmetry with the STDP
    phases, equal to ``n_spiking_sources`` in this design (depression is fused with delivery);
    ``n_post_groups``: weight-word columns (groups of ``lanes`` neurons) with a spike (default: one
    per spike, an upper bound); ``learning``: CONTROL.LEARNING.
    """
    if n_pre_spikes is not None and n_pre_spikes != n_spiking_sources:
        raise ValueError(
            f"n_pre_spikes = {n_pre_spikes} must equal n_spiking_sources = {n_spiking_sources}: "
            "every spiking source is depressed while its row is delivered")
    return sum(phase_cycles(config, n_spiking_sources=n_spiking_sources, n_post_spikes=n_post_spikes,
                            n_post_groups=n_post_groups, learning=learning).values())


def predict_step_cycles(config: CoreConfig, in_spikes, out_spikes, *, learning: bool = True) -> int:
    """Cycles of a step from its actual spike vectors: ``in_spikes`` (A,) and ``out_spikes`` (N,) bool."""
    in_spikes = np.asarray(in_spikes, dtype=bool).reshape(-1)
    out_spikes = np.asarray(out_spikes, dtype=bool).reshape(-1)
    c = config
    if in_spikes.size != c.n_inputs or out_spikes.size != c.n_neurons:
        raise ValueError(f"spike vectors of sizes {in_spikes.size}, {out_spikes.size}; expected "
                         f"n_inputs = {c.n_inputs}, n_neurons = {c.n_neurons}")
    groups = int(out_spikes.reshape(-1, c.lanes).any(axis=1).sum())
    n_post = int(out_spikes.sum())
    return predict_cycles(c, n_spiking_sources=int(in_spikes.sum()) + n_post, n_post_spikes=n_post,
                          n_post_groups=groups, learning=learning)


def predict_run_cycles(image, in_spikes: np.ndarray, out_spikes: np.ndarray) -> np.ndarray:
    """Cycles of every step of a run: rasters (steps, A) and (steps, N); learning from ``image``."""
    return np.array([predict_step_cycles(image.config, i, o, learning=bool(image.learning))
                     for i, o in zip(in_spikes, out_spikes)], dtype=np.int64)


def bandwidth_bound(config: CoreConfig, synaptic_events: int, neurons_per_clock: int = 1) -> float:
    """The lower bound a time-multiplexed core can reach: every neuron updated once, every synaptic
    event read at ``lanes`` per clock: ``N / neurons_per_clock + synaptic_events / lanes``."""
    return config.n_neurons / neurons_per_clock + synaptic_events / config.lanes


def synaptic_events(config: CoreConfig, n_spiking_sources: int) -> int:
    """Synapses read in a step: every spiking source reads its whole row of N synapses."""
    return n_spiking_sources * config.n_neurons
