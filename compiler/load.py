"""Synaptic load: how much current a neuron can plausibly receive, to size the current range.

No compiler can know the spike statistics of a network before running it, so the current range is
sized for *plausible* input and the extremes are reported. Per neuron and receptor (E, I):

- repeated input: the strongest single synapse delivers at PLAUSIBLE_MAX_RATE_HZ (or every step, if
  dt is longer); the current grows to w / (1 - exp(-T/tau_syn)) (geometric series of the decay);
- shot noise: every source fires independently at its rate (a Poisson source at its rate, a spike
  source at its mean rate over its spike times -- at least one second --, a neuron at NEURON_RATE_HZ);
  Campbell's theorem gives the current's mean sum(w r tau) and variance sum(w^2 r tau / 2); the
  plausible peak is mean + 5 sd;
- a small synchronous volley: the SYNC_SYNAPSES strongest synapses deliver in the same step;
- a full synchronous volley: every synapse delivers in the same step (sum of weights) -- reported only;
- the worst case: every synapse delivers every step, sum / (1 - P11) -- reported only.

The plausible peak is the largest of the first three. Plastic synapses count at w_max (they may grow there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeforge.compiler import propagators as prop
from spikeforge.compiler.mapping import SynapseTable
from spikeforge.compiler.network import STDP, Network, PoissonSource

#: The fastest a single source plausibly fires for long (Hz): sizes the "repeated input" current.
PLAUSIBLE_MAX_RATE_HZ = 200.0
#: The rate assumed for a neuron of the network as a source (Hz): it is not known before running.
NEURON_RATE_HZ = 100.0
#: Standard deviations above the mean of the shot-noise current that count as plausible.
SHOT_NOISE_SIGMAS = 5.0
#: How many synapses onto one neuron plausibly deliver in the same step.
SYNC_SYNAPSES = 8


def source_rates_hz(network: Network) -> np.ndarray:
    """Plausible firing rate (Hz) of every network source row: spike sources, then neurons."""
    rates = []
    for src in network.sources:
        if isinstance(src, PoissonSource):
            rates.append(np.broadcast_to(np.asarray(src.rate, dtype=float), (src.size,)))
        else:
            r = np.zeros(src.size)
            for k, times in enumerate(src.spike_times[: src.size]):
                if len(times):  # mean rate over the spikes' span, at least one second
                    r[k] = len(times) / max(float(np.max(times)), 1000.0) * 1000.0
            rates.append(r)
    rates.append(np.full(network.n_neurons, NEURON_RATE_HZ))
    return np.concatenate(rates) if rates else np.zeros(0)


@dataclass
class SynapticLoad:
    exc_volley: np.ndarray  # (N_net,) nA
    inh_volley: np.ndarray  # (N_net,) nA, magnitude
    exc_repeat: np.ndarray
    inh_repeat: np.ndarray
    exc_shot: np.ndarray  # mean + SHOT_NOISE_SIGMAS sd of the shot-noise current, nA
    inh_shot: np.ndarray
    exc_sync: np.ndarray  # the SYNC_SYNAPSES strongest synapses in one step, nA
    inh_sync: np.ndarray
    exc_worst: np.ndarray
    inh_worst: np.ndarray
    row_max: np.ndarray  # (S_net,) largest weight magnitude of each source row, nA

    @property
    def plausible_exc(self) -> np.ndarray:
        """Plausible peak excitatory current of every neuron (nA)."""
        return np.maximum(np.maximum(self.exc_repeat, self.exc_shot), self.exc_sync)

    @property
    def plausible_inh(self) -> np.ndarray:
        return np.maximum(np.maximum(self.inh_repeat, self.inh_shot), self.inh_sync)

    @property
    def plausible_peak(self) -> float:
        """Largest plausible synaptic current of any neuron (nA)."""
        return float(max(self.plausible_exc.max(initial=0.0), self.plausible_inh.max(initial=0.0)))

    @property
    def volley(self) -> float:
        return float(max(self.exc_volley.max(initial=0.0), self.inh_volley.max(initial=0.0)))

    @property
    def worst_case(self) -> float:
        return float(max(self.exc_worst.max(initial=0.0), self.inh_worst.max(initial=0.0)))

    @classmethod
    def of(cls, syn: SynapseTable, stdp: STDP | None, dt: float, tau_syn_e: np.ndarray,
           tau_syn_i: np.ndarray, rates_hz: np.ndarray) -> "SynapticLoad":
        w = np.where(syn.exists, syn.weight, 0.0)
        if stdp is not None:
            w = np.where(syn.plastic, np.maximum(w, stdp.w_max), w)
        exc = np.where(w > 0, w, 0.0)
        inh = np.where(w < 0, -w, 0.0)
        period = max(dt, 1000.0 / PLAUSIBLE_MAX_RATE_HZ)
        with np.errstate(divide="ignore"):
            grow_e = 1.0 / (1.0 - prop.decay(period, tau_syn_e))
            grow_i = 1.0 / (1.0 - prop.decay(period, tau_syn_i))
            every_e = 1.0 / (1.0 - prop.decay(dt, tau_syn_e))
            every_i = 1.0 / (1.0 - prop.decay(dt, tau_syn_i))
        grown = lambda x, g: np.where(x > 0, x * g, 0.0)  # noqa: E731  (0 * inf: no current)
        r = np.asarray(rates_hz, dtype=float)[:, None] / 1000.0  # spikes per ms

        def shot(m, tau):
            mean = (m * r).sum(axis=0) * tau
            sd = np.sqrt((m * m * r).sum(axis=0) * tau / 2.0)
            with np.errstate(invalid="ignore"):
                return np.where(mean > 0, mean + SHOT_NOISE_SIGMAS * sd, 0.0)

        def sync(m):
            if m.shape[0] <= SYNC_SYNAPSES:
                return m.sum(axis=0)
            return np.partition(m, -SYNC_SYNAPSES, axis=0)[-SYNC_SYNAPSES:].sum(axis=0)

        exc_sum, inh_sum = exc.sum(axis=0), inh.sum(axis=0)
        return cls(
            exc_volley=exc_sum, inh_volley=inh_sum,
            exc_repeat=grown(exc.max(axis=0, initial=0.0), grow_e),
            inh_repeat=grown(inh.max(axis=0, initial=0.0), grow_i),
            exc_shot=shot(exc, np.asarray(tau_syn_e, dtype=float)),
            inh_shot=shot(inh, np.asarray(tau_syn_i, dtype=float)),
            exc_sync=sync(exc), inh_sync=sync(inh),
            exc_worst=grown(exc_sum, every_e), inh_worst=grown(inh_sum, every_i),
            row_max=np.abs(w).max(axis=1, initial=0.0),
        )

    def inhibitory_dip(self, tau_m, tau_syn_i, cm) -> float:
        """Deep hyperpolarisation (mV) the plausible inhibitory current causes in any neuron: its peak
        arriving at once (the response to a current jump, propagators.psp_peak)."""
        if not self.inh_volley.size:
            return 0.0
        current = np.minimum(self.plausible_inh, self.inh_volley)
        return float((current * prop.psp_peak(tau_m, tau_syn_i, cm)).max(initial=0.0))
