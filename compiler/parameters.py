"""Per-neuron physical parameters of a Network, in core neuron order (see mapping.neuron_order).

Populations give parameters as scalars or per-neuron arrays; the compiler works on flat arrays with one
value per neuron of the core (network part only), so that quantisation and profile grouping are plain
vectorised NumPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikeforge.compiler.errors import CompileError
from spikeforge.compiler.mapping import neuron_order
from spikeforge.compiler.network import LIF_DEFAULTS, Network

#: The LIF parameters every neuron has (PyNN IF_curr_exp names).
LIF_NAMES = tuple(LIF_DEFAULTS)


@dataclass
class NeuronTable:
    """Physical parameters (PyNN units) of every network neuron, in core order: name -> (N_net,)."""

    values: dict[str, np.ndarray]  # LIF_NAMES + v_init, adapt_inc (mV), adapt_tau (ms)
    reset_subtract: np.ndarray  # (N_net,) bool
    adaptive: np.ndarray  # (N_net,) bool: the neuron's population has threshold adaptation
    current_input: np.ndarray  # (N_net,) bool: the neuron takes analog input
    population: np.ndarray  # (N_net,) index into neuron_order(network)
    labels: list[str]  # population labels in core order

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]

    @property
    def size(self) -> int:
        return self.reset_subtract.size


def _per_neuron(value, size: int, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(size, float(arr))
    if arr.shape != (size,):
        raise CompileError(f"{what}: {arr.shape[0] if arr.ndim == 1 else arr.shape} values for {size} neurons; "
                           "give a scalar or one value per neuron")
    return arr.astype(float)


def neuron_table(network: Network) -> NeuronTable:
    """Gather every neuron's parameters (core order) into a NeuronTable, checking they are usable."""
    pops = neuron_order(network)
    cols: dict[str, list[np.ndarray]] = {n: [] for n in (*LIF_NAMES, "v_init", "adapt_inc", "adapt_tau")}
    subtract, adaptive, population, analog = [], [], [], []
    for k, pop in enumerate(pops):
        n = pop.size
        for name in LIF_NAMES:
            cols[name].append(_per_neuron(getattr(pop.params, name), n, f"population {pop.label!r} {name}"))
        v_init = pop.params.v_rest if pop.v_init is None else pop.v_init
        cols["v_init"].append(_per_neuron(v_init, n, f"population {pop.label!r} v_init"))
        ad = pop.params.threshold_adaptation
        cols["adapt_inc"].append(_per_neuron(0.0 if ad is None else ad.increment, n,
                                             f"population {pop.label!r} threshold_adaptation.increment"))
        cols["adapt_tau"].append(_per_neuron(math.inf if ad is None else ad.tau, n,
                                             f"population {pop.label!r} threshold_adaptation.tau"))
        if pop.params.reset not in ("to_v_reset", "subtract_threshold"):
            raise CompileError(
                f"population {pop.label!r}: reset = {pop.params.reset!r}; use 'to_v_reset' or 'subtract_threshold'"
            )
        subtract.append(np.full(n, pop.params.reset == "subtract_threshold"))
        adaptive.append(np.full(n, ad is not None))
        population.append(np.full(n, k))
        analog.append(np.full(n, bool(pop.current_input)))
    def cat(parts, dtype=float):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    values = {name: cat(parts) for name, parts in cols.items()}
    table = NeuronTable(
        values=values, reset_subtract=cat(subtract, bool), adaptive=cat(adaptive, bool),
        current_input=cat(analog, bool),
        population=cat(population, np.int64), labels=[p.label for p in pops],
    )
    _check(table)
    return table


def _check(table: NeuronTable) -> None:
    """Parameter values the core's arithmetic cannot represent (hardware-specific checks)."""
    def where(mask) -> str:
        i = int(np.flatnonzero(mask)[0])
        pop = table.labels[table.population[i]]
        first = int(np.flatnonzero(table.population == table.population[i])[0])
        return f"population {pop!r} neuron {i - first}"

    for name in ("tau_m", "tau_syn_E", "tau_syn_I", "cm", "adapt_tau"):
        bad = ~(table[name] > 0) | np.isnan(table[name])
        if bad.any():
            raise CompileError(f"{where(bad)}: {name} = {table[name][bad][0]}; it must be > 0")
    bad = ~np.isfinite(table["cm"])
    if bad.any():
        raise CompileError(f"{where(bad)}: cm must be finite")
    for name in ("v_rest", "v_reset", "v_thresh", "i_offset", "v_init", "tau_refrac", "adapt_inc"):
        bad = ~np.isfinite(table[name])
        if bad.any():
            raise CompileError(f"{where(bad)}: {name} = {table[name][bad][0]}; it must be a finite number")
    for name in ("tau_refrac", "adapt_inc"):
        bad = table[name] < 0
        if bad.any():
            raise CompileError(f"{where(bad)}: {name} = {table[name][bad][0]}; it must be >= 0")
    bad = table["v_reset"] >= table["v_thresh"]
    if bad.any():
        raise CompileError(
            f"{where(bad)}: v_reset = {table['v_reset'][bad][0]} mV is not below v_thresh = "
            f"{table['v_thresh'][bad][0]} mV; the neuron would fire every step -- lower v_reset"
        )
