"""The random verification sweep: which CoreConfigs and cases the RTL is checked on.

Cases with the same CoreConfig share one Verilog build and one simulator process (a *group*), so the
sweep is generated as groups. Group g's config takes every dimension of the feature space from a
rotation with a different stride per dimension, so any 12 consecutive groups cover every value of
every dimension (N in 4/16/64/256, A in 0/8/64, weight bits 4/8/12, lanes 1/2/4, delays off/on,
STDP off/on, adaptive threshold off/on, analog inputs off/on, 1/4/16 profiles) in varied
combinations; a seeded generator fills in the rest. Cases alternate between normal and extreme
images (``random_image(extreme=True)``: saturation, full-scale coefficients, longest refractory
periods) and some run with random backpressure on every stream.

Each case's seeds are chosen so the golden model actually spikes (a silent run proves little), and
:func:`case_coverage` counts what a case exercises (spikes under each reset mode, refractory
neuron-steps, saturated v / currents / adaptation / traces, weights moved by STDP and clamped at
their bounds, delayed deliveries) so the sweep can report its functional coverage.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from spikeforge.core import fixedpoint as fx
from spikeforge.core.config import CoreConfig
from spikeforge.sim.cocotb_tb.case import RtlCase
from spikeforge.sim.golden import GoldenCore

N_VALUES = (4, 16, 64, 16, 4, 64, 16, 256, 4, 64, 16, 64)  # 256 is by far the slowest to simulate
A_VALUES = (0, 8, 64)
W_VALUES = (4, 8, 12)
P_VALUES = (1, 2, 4)
D_VALUES = (1, 4, 1, 8)
PROFILE_VALUES = (1, 4, 16)
#: (v_bits, i_bits, refrac_bits, adapt_bits, trace_bits, trace_frac): the default widths, narrow
#: ones (a 3-bit refractory counter makes the longest refractory period common) and wide ones.
WIDTH_VALUES = ((16, 16, 8, 16, 12, 4), (12, 10, 3, 8, 8, 2), (16, 16, 8, 16, 12, 4), (24, 20, 4, 20, 16, 6))


@dataclass
class SweepGroup:
    """Cases sharing one CoreConfig. Made cheaply (``slots``: name, seed, extreme, backpressure);
    :meth:`resolve` picks the live seeds, which runs the golden model -- done where the group runs,
    not when pytest collects the sweep."""

    index: int
    config: CoreConfig
    slots: list[tuple[str, int, bool, bool]] = field(default_factory=list)

    @property
    def name(self) -> str:
        c = self.config
        flags = "".join(f for f, on in (("s", c.stdp), ("a", c.adaptive_threshold)) if on)
        return (f"N{c.n_neurons}-A{c.n_inputs}-W{c.weight_bits}-P{c.lanes}-D{c.max_delay}-K"
                f"{c.n_current_inputs}{'-' + flags if flags else ''}")

    def resolve(self) -> list[RtlCase]:
        return [_alive_case(self.config, name, base_seed=seed, extreme=extreme, backpressure=bp,
                            steps=steps_for(self.config)) for name, seed, extreme, bp in self.slots]


def group_config(g: int, seed: int = 0) -> CoreConfig:
    """The CoreConfig of sweep group ``g`` (deterministic)."""
    rng = np.random.default_rng([seed, g, 1])
    n = N_VALUES[g % len(N_VALUES)]
    a = A_VALUES[(g // 2) % 3] if n < 256 else (0, 8)[(g // 12) % 2]  # keep N = 256 loads small
    lanes = P_VALUES[(g + g // 3) % 3]
    if n % lanes:
        lanes = 1
    k_max = min(n, 4)
    v_bits, i_bits, refrac_bits, adapt_bits, trace_bits, trace_frac = WIDTH_VALUES[(g + g // 4) % 4]
    return CoreConfig(
        n_neurons=n,
        n_inputs=a,
        weight_bits=W_VALUES[(g + 1) % 3],
        lanes=lanes,
        max_delay=D_VALUES[(g // 3) % 4],
        stdp=bool((g // 2) % 2) if n < 256 else bool(g // 12 % 2),
        adaptive_threshold=bool(((g + 1) // 2) % 2),
        n_current_inputs=int(rng.integers(1, k_max + 1)) if g % 3 else 0,
        n_profiles=PROFILE_VALUES[(g // 4) % 3] if n >= 4 else 1,
        v_bits=v_bits, i_bits=i_bits, refrac_bits=refrac_bits, adapt_bits=adapt_bits,
        trace_bits=trace_bits, trace_frac=trace_frac,
    )


def steps_for(config: CoreConfig) -> int:
    """Steps per case: long enough for refractory periods, delays and STDP to play out; shorter
    for the big cores (each step reads the state back)."""
    return {4: 24, 16: 16, 64: 10}.get(config.n_neurons, 6)


def _alive_case(config: CoreConfig, name: str, base_seed: int, *, extreme: bool, backpressure: bool,
                steps: int, tries: int = 8) -> RtlCase:
    """The first seed (of ``tries``) whose golden run spikes; the last one tried otherwise."""
    density = 0.3 if config.n_neurons < 256 else 0.1
    case = None
    for t in range(tries):
        case = RtlCase(name=name, steps=steps, image_seed=base_seed + 7919 * t, input_seed=base_seed + t,
                       extreme=extreme, density=density, backpressure=backpressure)
        img = case.image(config)
        spikes, currents = case.inputs(config)
        core = GoldenCore(img)
        if core.run(spikes, currents=currents).spikes.any():
            return case
    return case


def sweep(n_cases: int, seed: int = 0, cases_per_group: int = 4, *, resolve: bool = True) -> list[SweepGroup]:
    """``n_cases`` cases in groups of ``cases_per_group`` (the last group may be smaller).

    With ``resolve`` each group's cases are resolved at once (``group.cases``)."""
    groups: list[SweepGroup] = []
    g = 0
    made = 0
    while made < n_cases:
        config = group_config(g, seed)
        grp = SweepGroup(g, config)
        per_group = cases_per_group if config.n_neurons < 256 else max(1, cases_per_group // 2)
        for k in range(min(per_group, n_cases - made)):
            extreme = k % 2 == 1
            backpressure = k % 4 == 2 and config.n_neurons <= 64
            name = f"g{g}c{k}{'-extreme' if extreme else ''}{'-backpressure' if backpressure else ''}"
            grp.slots.append((name, seed * 1_000_003 + g * 1009 + k * 101, extreme, backpressure))
            made += 1
        if resolve:
            grp.cases = grp.resolve()
        groups.append(grp)
        g += 1
    return groups


def estimated_cycles(group: SweepGroup) -> int:
    """Rough clock cycles the group's simulation takes (loads, steps, readbacks): for scheduling the
    expensive groups first and running the cheap ones first in the mutation check."""
    from spikeforge.sim.cocotb_tb.readback import choose_level, readback_count

    c = group.config
    per_word = 6 if c.n_neurons & (c.n_neurons - 1) == 0 else 35  # the bus divides by N otherwise
    image_words = c.n_sources * c.n_neurons + c.n_sources + 8 * c.n_neurons + 2 * c.max_delay * c.n_neurons
    steps = steps_for(c)
    step_cycles = c.n_neurons + 0.2 * c.n_sources * (c.n_neurons // c.lanes + 1)
    readback = readback_count(c, choose_level(c, 1500))
    return int(len(group.slots) * (2 * image_words * per_word + steps * (step_cycles + readback * per_word)))


def case_coverage(config: CoreConfig, case: RtlCase) -> Counter:
    """What the golden model does in ``case``: event counts for the sweep's coverage report."""
    c = config
    img = case.image(c)
    spikes_in, currents = case.inputs(c)
    core = GoldenCore(img)
    rec = core.run(spikes_in, currents=currents, record=("v", "ie", "ii", "refrac_count", "adapt",
                                                        "x_trace", "y_trace", "weights"))
    prof = img.neuron_profile
    subtract = img.profiles["reset_subtract"][prof] == 1
    spk = rec.spikes
    cov = Counter()
    cov["cases"] = 1
    cov["steps"] = case.steps
    cov["spikes"] = int(spk.sum())
    cov["input spikes"] = int(np.asarray(spikes_in).sum())
    cov["spikes, reset by subtraction"] = int(spk[:, subtract].sum())
    cov["spikes, reset to v_reset"] = int(spk[:, ~subtract].sum())
    longest = img.profiles["refrac"][prof] == fx.umax(c.refrac_bits)
    cov["spikes with the longest refractory period"] = int(spk[:, longest].sum())
    cov["refractory neuron-steps"] = int((rec["refrac_count"] > 0).sum())
    v = rec["v"]
    cov["v saturated"] = int(((v == fx.smin(c.v_bits)) | (v == fx.smax(c.v_bits))).sum())
    for name in ("ie", "ii"):
        x = rec[name]
        cov["currents saturated"] += int(((x == fx.smin(c.i_bits)) | (x == fx.smax(c.i_bits))).sum())
    if c.n_current_inputs and currents is not None:
        cov["analog input steps"] = int((np.asarray(currents) != 0).sum())
    if c.max_delay > 1:
        delayed = (img.delays > 1) & (img.weights != 0)
        pre = np.concatenate([np.asarray(spikes_in, bool), spk], axis=1)
        cov["delayed deliveries"] = int((pre.astype(np.int64) @ delayed.astype(np.int64)).sum())
    if c.adaptive_threshold:
        cov["adaptation saturated"] = int((rec["adapt"] == fx.umax(c.adapt_bits)).sum())
        cov["adaptive neuron-steps"] = int((rec["adapt"] > 0).sum())
    if c.stdp:
        w = rec["weights"]
        before = np.concatenate([img.weights[None], w[:-1]], axis=0)
        moved = w != before
        cov["weight updates"] = int(moved.sum())
        cov["weight updates ending at w_max"] = int((moved & (w == img.stdp["w_max"])).sum())
        cov["weight updates ending at w_min"] = int((moved & (w == img.stdp["w_min"])).sum())
        cov["traces saturated"] = int((rec["x_trace"] == fx.umax(c.trace_bits)).sum()
                                      + (rec["y_trace"] == fx.umax(c.trace_bits)).sum())
    if case.extreme:
        cov["extreme cases"] = 1
    if case.backpressure:
        cov["backpressure cases"] = 1
    return cov
