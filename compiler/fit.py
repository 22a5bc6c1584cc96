"""Fitting: what a network needs from a core, the smallest CoreConfig that has it, and the checks that
a given CoreConfig has it (with errors that name the limit and the fix)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spikeforge.compiler.errors import FitError
from spikeforge.compiler.mapping import SynapseTable, neuron_order
from spikeforge.compiler.network import STDP, Network
from spikeforge.compiler.parameters import NeuronTable
from spikeforge.compiler.propagators import refractory_steps
from spikeforge.compiler.quantise import delay_steps_checked
from spikeforge.core.config import CoreConfig, CoreConfigError

#: CoreConfig fields a caller may set when the compiler chooses the config (sizes come from the network).
WIDTH_FIELDS = ("weight_bits", "lanes", "v_bits", "i_bits", "refrac_bits", "adapt_bits", "trace_bits", "trace_frac")

#: Most parameter profiles any CoreConfig allows.
MAX_PROFILES = 64
_BIGGER = "Use a bigger core (CoreConfig({field}={value}))"


@dataclass
class Needs:
    """What the network needs from a core, independent of the widths."""

    n_neurons: int
    n_inputs: int
    n_current_inputs: int
    population_sizes: dict[str, int]
    source_sizes: dict[str, int]
    stdp: STDP | None  # the one STDP rule, if any projection is plastic
    plastic_projections: list[str] = field(default_factory=list)
    adaptive_populations: list[str] = field(default_factory=list)
    max_delay: int = 1  # steps
    max_delay_projection: str | None = None
    max_refrac: int = 0  # steps

    @property
    def adaptive(self) -> bool:
        return bool(self.adaptive_populations)


def network_needs(network: Network, table: NeuronTable, syn: SynapseTable, dt: float) -> Needs:
    """Collect the Needs; fails on what no core can do (two STDP rules, inhibitory STDP)."""
    names = [p.name for p in network.projections]
    rule, plastic = None, []
    for proj in network.projections:
        if proj.plasticity is None:
            continue
        if proj.receptor == "inhibitory":
            raise FitError(
                f"projection {proj.name!r} is inhibitory and plastic; the core's STDP potentiates "
                "excitatory weights only -- make it static or excitatory"
            )
        if rule is not None and proj.plasticity != rule:
            raise FitError(
                f"projections {plastic[0]!r} and {proj.name!r} use different STDP rules ({rule} vs "
                f"{proj.plasticity}); a core has one STDP rule -- give every plastic projection the same "
                "STDP parameters, or split the network over two cores"
            )
        rule = proj.plasticity
        plastic.append(proj.name)
    if rule is not None:
        if not (rule.w_min >= 0 and rule.w_max > 0 and rule.w_min <= rule.w_max):
            raise FitError(
                f"STDP of {plastic[0]!r}: needs 0 <= w_min <= w_max and w_max > 0 (nA), got "
                f"w_min = {rule.w_min}, w_max = {rule.w_max}"
            )
        for name in ("tau_plus", "tau_minus"):
            if not getattr(rule, name) > 0:
                raise FitError(f"STDP of {plastic[0]!r}: {name} = {getattr(rule, name)} must be > 0 ms")
        for name in ("A_plus", "A_minus"):
            if not (getattr(rule, name) >= 0 and math.isfinite(getattr(rule, name))):
                raise FitError(f"STDP of {plastic[0]!r}: {name} = {getattr(rule, name)} must be >= 0")
    delay_steps = delay_steps_checked(syn, dt, names)
    max_delay, max_proj = 1, None
    if syn.exists.any():
        flat = int(np.argmax(delay_steps))
        max_delay = max(1, int(delay_steps.flat[flat]))
        if max_delay > 1:
            max_proj = names[int(syn.owner.flat[flat])]
    pops = neuron_order(network)
    return Needs(
        n_neurons=network.n_neurons,
        n_inputs=network.n_source_neurons,
        n_current_inputs=sum(p.size for p in pops if p.current_input),
        population_sizes={p.label: p.size for p in pops},
        source_sizes={s.label: s.size for s in network.sources},
        stdp=rule, plastic_projections=plastic,
        adaptive_populations=[p.label for p in pops if p.params.threshold_adaptation is not None],
        max_delay=max_delay, max_delay_projection=max_proj,
        max_refrac=int(refractory_steps(table["tau_refrac"], dt).max(initial=0)),
    )


def smallest_config(needs: Needs, n_profiles: int = 64, **widths) -> CoreConfig:
    """The smallest CoreConfig holding ``needs``: N rounded up to a multiple of ``lanes``, features only
    when used; widths are CoreConfig's defaults unless given (refrac_bits grows if a refractory period
    needs it)."""
    unknown = sorted(set(widths) - set(WIDTH_FIELDS))
    if unknown:
        raise FitError(
            f"unknown or size option(s) {unknown} for an automatic core; give widths only "
            f"({', '.join(WIDTH_FIELDS)}) or pass a full CoreConfig"
        )
    widths = {k: v for k, v in widths.items() if v is not None}
    lanes = widths.get("lanes", 1)
    n = max(1, needs.n_neurons)
    n = -(-n // lanes) * lanes if isinstance(lanes, int) and lanes > 0 else n
    default_refrac = CoreConfig.__dataclass_fields__["refrac_bits"].default
    if "refrac_bits" not in widths:
        widths["refrac_bits"] = max(default_refrac, needs.max_refrac.bit_length())
    if needs.max_delay > 64:
        raise FitError(
            f"projection {needs.max_delay_projection!r} has a delay of {needs.max_delay} steps; a core holds "
            "delays up to 64 steps (max_delay) -- use shorter delays or a larger dt"
        )
    fields = dict(
        n_neurons=n, n_inputs=needs.n_inputs, max_delay=needs.max_delay, stdp=needs.stdp is not None,
        adaptive_threshold=needs.adaptive, n_current_inputs=needs.n_current_inputs, n_profiles=n_profiles,
    )
    try:
        return CoreConfig(**fields, **widths)
    except CoreConfigError as exc:
        raise FitError(f"the network needs a core no CoreConfig allows: {exc}") from exc


def check_fits(needs: Needs, config: CoreConfig) -> None:
    """Raise FitError, naming the limit and the fix, if the network does not fit ``config``."""
    alt = "or --backend spinnaker"
    if needs.n_neurons > config.n_neurons:
        big = [(label, n) for label, n in needs.population_sizes.items() if n > config.n_neurons]
        who = (f"population {big[0][0]!r} needs {big[0][1]} neurons" if big else
               f"the network needs {needs.n_neurons} neurons ("
               + ", ".join(f"{label!r} {n}" for label, n in needs.population_sizes.items()) + ")")
        bigger = _BIGGER.format(field="n_neurons", value=-(-needs.n_neurons // config.lanes) * config.lanes)
        raise FitError(f"{who}; the core has {config.n_neurons} (n_neurons). {bigger}, fewer neurons, {alt}")
    if needs.n_inputs > config.n_inputs:
        big = [(label, n) for label, n in needs.source_sizes.items() if n > config.n_inputs]
        who = (f"source {big[0][0]!r} needs {big[0][1]} inputs" if big else
               f"the network's sources need {needs.n_inputs} inputs ("
               + ", ".join(f"{label!r} {n}" for label, n in needs.source_sizes.items()) + ")")
        bigger = _BIGGER.format(field="n_inputs", value=needs.n_inputs)
        raise FitError(f"{who}; the core has {config.n_inputs} (n_inputs). {bigger}, fewer source neurons, {alt}")
    if needs.n_current_inputs > config.n_current_inputs:
        bigger = _BIGGER.format(field="n_current_inputs", value=needs.n_current_inputs)
        raise FitError(
            f"the current-input populations need {needs.n_current_inputs} analog inputs; the core has "
            f"{config.n_current_inputs} (n_current_inputs). {bigger} or drive fewer populations with "
            "current_input=True"
        )
    if needs.stdp is not None and not config.stdp:
        raise FitError(
            f"projection {needs.plastic_projections[0]!r} is plastic (STDP) but the core has no STDP; "
            "use CoreConfig(stdp=True) or make the projection static"
        )
    if needs.adaptive and not config.adaptive_threshold:
        raise FitError(
            f"population {needs.adaptive_populations[0]!r} has threshold adaptation but the core has none; "
            "use CoreConfig(adaptive_threshold=True) or drop threshold_adaptation"
        )
    if needs.max_delay > config.max_delay:
        raise FitError(
            f"projection {needs.max_delay_projection!r} has a delay of {needs.max_delay} steps; the core "
            f"holds delays up to {config.max_delay} steps (max_delay). "
            f"{_BIGGER.format(field='max_delay', value=needs.max_delay)} or shorter delays"
        )


def check_profiles(count: int, extra_silent: bool, config: CoreConfig) -> None:
    """Raise FitError when ``count`` profiles exceed the config's (or any core's: 64)."""
    silent = " (one of them keeps the core's unused neurons silent)" if extra_silent else ""
    share = "make neurons share parameters (fewer distinct values in per-neuron parameter arrays)"
    if count > MAX_PROFILES:
        raise FitError(
            f"{count} distinct neuron parameter sets{silent}; a core holds at most {MAX_PROFILES} profiles "
            f"(n_profiles) -- {share}, or split the network over several cores"
        )
    if count > config.n_profiles:
        raise FitError(
            f"{count} distinct neuron parameter sets{silent}; the core has {config.n_profiles} profiles "
            f"(n_profiles). {_BIGGER.format(field='n_profiles', value=count)} or {share}"
        )
