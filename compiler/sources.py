"""Spike sources -> spike rasters, generated on the host so every backend sees the same spikes.

Time convention (docs/core-spec.md, section 4): step n of a run covers (n*dt, (n+1)*dt] and its
spikes carry the time (n+1)*dt, as in NEST. A source spike at time t ms is therefore an input of step
round(t/dt) - 1; times must be >= dt.
"""

from __future__ import annotations

import numpy as np

from spikeforge.compiler.network import Network, NetworkError, PoissonSource, SpikeSource


def spike_time_to_step(t: float, dt: float) -> int:
    return int(round(t / dt)) - 1


def step_to_time(n, dt: float):
    """The time (ms) of step n's spikes."""
    return (np.asarray(n) + 1) * dt


def source_raster(
    source: SpikeSource | PoissonSource, dt: float, steps: int, run_seed: int | None = None
) -> np.ndarray:
    """Boolean raster (steps, size) of one source.

    A Poisson source draws from ``source.seed``; a ``run_seed`` (``spikeforge sim --seed``) is mixed in,
    so one run seed changes every Poisson source at once and reproducibly."""
    raster = np.zeros((steps, source.size), dtype=bool)
    if isinstance(source, SpikeSource):
        for k, times in enumerate(source.spike_times):
            for t in times:
                n = spike_time_to_step(float(t), dt)
                if n < 0:
                    raise NetworkError(
                        f"source {source.label!r}: spike time {t} ms of neuron {k} is before the first "
                        f"step's time dt = {dt} ms; shift the spike times so they are >= dt"
                    )
                if n < steps:
                    raster[n, k] = True
        return raster
    rate = np.broadcast_to(np.asarray(source.rate, dtype=float), (source.size,))
    seed = source.seed if run_seed is None else np.random.SeedSequence([int(run_seed), int(source.seed)])
    rng = np.random.default_rng(seed)
    draws = rng.random((steps, source.size))
    times = step_to_time(np.arange(steps), dt)
    stop = np.inf if source.stop is None else source.stop
    active = ((times > source.start) & (times <= stop))[:, None]
    p = np.clip(rate * dt / 1000.0, 0.0, 1.0)[None, :]
    return active & (draws < p)


def network_input_rasters(network: Network, steps: int, run_seed: int | None = None) -> dict[str, np.ndarray]:
    """The raster of every source of the network, by label."""
    return {s.label: source_raster(s, network.dt, steps, run_seed) for s in network.sources}
