"""How long a timestep takes on the board: the network's own activity (simulated on the golden model)
fed to the core's cycle model (``spikeforge.sim.cycle_model``), at the built clock.

The core's step time depends on what happens in the step -- input spikes, neurons that spike, the rows
they deliver, STDP updates -- so the latency in the report is computed for *this* network: its
sources drive the golden model for ``steps`` steps, and every step's cycles are predicted from its
input and output spikes (``predict_run_cycles``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikeforge.compiler.compile import CompiledNetwork
from spikeforge.core.config import CoreConfig


def cycle_model():
    """The core's cycle model module, or None while it is not written (the report then says so)."""
    try:
        from spikeforge.sim import cycle_model as module
    except ImportError:
        return None
    return module if hasattr(module, "predict_run_cycles") else None


@dataclass
class Activity:
    steps: int
    input_spikes_per_step: float
    neuron_spikes_per_step: float
    input_activity: float      # fraction of inputs spiking per step
    neuron_activity: float     # fraction of neurons spiking per step
    cycles: list[int] = field(default_factory=list)   # predicted cycles per step (empty: no model)
    model_available: bool = False

    def latency_us(self, clock_hz: float) -> dict | None:
        """Mean / median / worst step time in microseconds at ``clock_hz`` (None without the model)."""
        if not self.cycles:
            return None
        c = np.asarray(self.cycles, dtype=float)
        return {"mean": float(c.mean() / clock_hz * 1e6), "median": float(np.median(c) / clock_hz * 1e6),
                "max": float(c.max() / clock_hz * 1e6), "mean_cycles": float(c.mean()),
                "max_cycles": int(c.max())}

    def to_dict(self, clock_hz: float | None = None) -> dict:
        out = {"steps": self.steps, "input_spikes_per_step": self.input_spikes_per_step,
               "neuron_spikes_per_step": self.neuron_spikes_per_step, "input_activity": self.input_activity,
               "neuron_activity": self.neuron_activity, "cycle_model": self.model_available}
        if clock_hz:
            out["latency_us"] = self.latency_us(clock_hz)
        return out


def simulate_activity(compiled: CompiledNetwork, steps: int = 200, seed: int | None = 0) -> Activity:
    """Run the compiled network on the golden model and predict every step's cycles."""
    from spikeforge.sim.golden_backend import _runner

    config = compiled.config
    inputs = compiled.input_raster(steps, seed)
    run, _ = _runner(None)
    _, record = run(compiled.image, inputs, steps=steps)
    spikes = np.asarray(record.spikes, dtype=bool)
    model = cycle_model()
    cycles = model.predict_run_cycles(compiled.image, inputs, spikes).tolist() if model is not None else []
    n_in = inputs.sum(axis=1) if config.n_inputs else np.zeros(steps)
    out_counts = spikes.sum(axis=1)
    n_net = max(1, compiled.network.n_neurons)
    return Activity(
        steps=steps,
        input_spikes_per_step=float(np.mean(n_in)) if steps else 0.0,
        neuron_spikes_per_step=float(np.mean(out_counts)) if steps else 0.0,
        input_activity=float(np.mean(n_in) / config.n_inputs) if config.n_inputs and steps else 0.0,
        neuron_activity=float(np.mean(out_counts) / n_net) if steps else 0.0,
        cycles=[int(c) for c in cycles], model_available=model is not None,
    )


def cycles_at_activity(config: CoreConfig, activity: float, *, learning: bool = True, seed: int = 0) -> int | None:
    """Predicted cycles of one step in which ``activity`` of the inputs and of the neurons spike (the
    benchmark's "latency at 5 % activity"); None without the cycle model."""
    model = cycle_model()
    if model is None:
        return None
    rng = np.random.default_rng(seed)
    a, n = config.n_inputs, config.n_neurons
    ins = np.zeros(a, dtype=bool)
    outs = np.zeros(n, dtype=bool)
    if a:
        ins[rng.choice(a, size=max(0, round(activity * a)), replace=False)] = True
    outs[rng.choice(n, size=max(0, round(activity * n)), replace=False)] = True
    return int(model.predict_step_cycles(config, ins, outs, learning=learning))
