"""compile(network) -> CompiledNetwork: the Network as a CoreImage, with its mapping, scaling and report.

The steps, each in its own module:

1. validate the description (compiler/validate.py, when present) and gather it: per-neuron parameters
   (parameters.py), placement (mapping.py), all synapses in one table (mapping.gather_synapses);
2. fit: what the network needs, the smallest CoreConfig or the checks against a given one (fit.py);
3. scale: the voltage window and the current scale (scaling.py), sized by the synaptic load (load.py);
4. quantise neurons, weights, delays, STDP (quantise.py) and group neurons into profiles (profiles.py);
5. assemble and validate the CoreImage; report what quantisation changed (report.py).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from spikeforge.compiler.errors import CompileError, QuantisationWarning
from spikeforge.compiler.fit import check_fits, check_profiles, network_needs, smallest_config
from spikeforge.compiler.load import SynapticLoad, source_rates_hz
from spikeforge.compiler.mapping import Mapping, SynapseTable, gather_synapses, map_network
from spikeforge.compiler.network import Network
from spikeforge.compiler.parameters import NeuronTable, neuron_table
from spikeforge.compiler.profiles import ProfileTable, group_profiles
from spikeforge.compiler.quantise import (
    NeuronPhysics, QuantisedWeights, quantise_delays, quantise_neurons, quantise_stdp, quantise_weights,
)
from spikeforge.compiler.report import QuantisationReport, build_report
from spikeforge.compiler.scaling import (
    ADAPT_SIZING_RATE_HZ, Scaling, choose_current_scale, choose_voltage_scale, min_v_lsb_for_current,
    voltage_rooms,
)
from spikeforge.compiler.sources import network_input_rasters
from spikeforge.core import fixedpoint as fx
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import PROFILE_FIELDS, CoreImage


@dataclass
class CompiledNetwork:
    """A Network compiled for one core: the image and everything needed to talk to it in physical units."""

    network: Network
    image: CoreImage
    config: CoreConfig
    mapping: Mapping
    scaling: Scaling
    report: QuantisationReport
    neurons: NeuronTable = field(repr=False)
    physics: NeuronPhysics = field(repr=False)

    @property
    def dt(self) -> float:
        return self.network.dt

    # ---- inputs -----------------------------------------------------------------------------
    def input_raster(self, steps: int, seed: int | None = None) -> np.ndarray:
        """The (steps, A) boolean input raster of the core: every source's spikes on its inputs."""
        raster = np.zeros((steps, self.config.n_inputs), dtype=bool)
        for label, spikes in network_input_rasters(self.network, steps, seed).items():
            r = self.mapping.inputs[label]
            raster[:, r.start:r.stop] = spikes
        return raster

    def core_currents(self, currents: dict[str, np.ndarray] | None, steps: int) -> np.ndarray | None:
        """Per-step input currents (nA, label -> (steps, size)) of current-input populations -> the
        (steps, K) voltage increments of the core: u = round(P20 * I / v_lsb) per neuron.

        The current of step n acts during step n exactly like i_offset (docs/quantisation.md)."""
        k = self.config.n_current_inputs
        currents = dict(currents or {})
        for label in currents:
            if label not in self.mapping.neurons:
                raise CompileError(f"currents given for {label!r}, which is not a population of the network")
            if not self.network.population(label).current_input:
                raise CompileError(
                    f"currents given for population {label!r}, which does not take input currents; "
                    "create it with Population(..., current_input=True)"
                )
        if not k:
            return None
        out = np.zeros((steps, k), dtype=np.int64)
        lo, hi = fx.smin(self.config.v_bits), fx.smax(self.config.v_bits)
        for label, value in currents.items():
            r = self.mapping.neurons[label]
            arr = np.asarray(value, dtype=float)
            if arr.ndim == 1 and len(r) == 1 and arr.shape[0] == steps:
                arr = arr[:, None]
            if arr.shape != (steps, len(r)):
                raise CompileError(
                    f"currents[{label!r}] has shape {arr.shape}, expected (steps, size) = ({steps}, {len(r)})"
                )
            if not np.all(np.isfinite(arr)):
                raise CompileError(f"currents[{label!r}] holds a non-finite value")
            u = self.scaling.dv_to_int(arr * self.physics.p20[r.start:r.stop][None, :])
            if u.size and (u.min() < lo or u.max() > hi):
                t, j = (int(x[0]) for x in np.nonzero((u < lo) | (u > hi)))
                raise CompileError(
                    f"currents[{label!r}][{t}, {j}] = {arr[t, j]:.6g} nA moves the membrane "
                    f"{self.scaling.dv_from_int(u[t, j]):.6g} mV in one step, beyond the analog input range "
                    f"(signed v_bits = {self.config.v_bits}); use a smaller current or more v_bits"
                )
            out[:, r.start:r.stop] = u
        return out

    # ---- outputs ----------------------------------------------------------------------------
    def population_spikes(self, spikes: np.ndarray) -> dict[str, np.ndarray]:
        """Core spike raster (steps, N) -> population label -> (steps, size), in network order."""
        return {label: np.asarray(spikes[:, r.start:r.stop], dtype=bool) for label, r in self.populations()}

    def populations(self) -> list[tuple[str, range]]:
        """(label, neuron indices) of every population, in network order."""
        return [(p.label, self.mapping.neurons[p.label]) for p in self.network.populations]

    def projection_weights(self, image: CoreImage, plastic_only: bool = True) -> dict[str, np.ndarray]:
        """Weights (nA magnitudes, (pre.size, post.size), 0 where no synapse) of every (plastic) projection."""
        out = {}
        for name, place in self.mapping.projections.items():
            if plastic_only and not place.plastic:
                continue
            rows = np.arange(place.rows.start, place.rows.stop)
            w = self.scaling.weight_from_int(image.weights[rows, place.cols.start:place.cols.stop], rows)
            out[name] = np.where(place.exists, np.abs(w), 0.0)
        return out


def _validate_description(network: Network) -> None:
    """Run compiler/validate.validate when it exists (the file-format helper owns those checks)."""
    try:
        from spikeforge.compiler.validate import validate
    except ImportError:
        return
    validate(network)


def compile(
    network: Network,
    config: CoreConfig | None = None,
    *,
    weight_bits: int | None = None,
    voltage_range: tuple[float, float] | None = None,
    current_range: float | None = None,
    warn: bool = True,
    **widths,
) -> CompiledNetwork:
    """Compile ``network`` for one neuron core.

    ``config=None``: the smallest CoreConfig that holds the network (``weight_bits`` and the other width
    fields of CoreConfig -- lanes, v_bits, i_bits, refrac_bits, adapt_bits, trace_bits, trace_frac -- may
    be given). With a ``config``: check that the network fits it (FitError names the limit and the fix).
    ``voltage_range=(lo, hi)`` mV overrides the automatic voltage window, ``current_range`` (nA) the
    estimated peak synaptic current the current scale is sized for. ``warn``: emit a
    QuantisationWarning when synapses round to zero (the report always lists them).
    """
    if not isinstance(network, Network):
        raise CompileError(f"compile takes a Network, got {type(network).__name__}")
    _validate_description(network)
    dt = network.dt
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise CompileError(f"network dt = {dt!r}: the time step must be a positive number of ms")
    if network.n_neurons == 0:
        raise CompileError("the network has no neuron populations; add a Population to compile it")
    if voltage_range is not None:
        lo, hi = voltage_range
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise CompileError(f"voltage_range = {voltage_range!r}: expected (low, high) mV with low < high")
    if current_range is not None and not (math.isfinite(current_range) and current_range > 0):
        raise CompileError(f"current_range = {current_range!r}: expected the peak synaptic current in nA, > 0")

    placement = map_network(network)
    table = neuron_table(network)
    syn = gather_synapses(network, placement)
    needs = network_needs(network, table, syn, dt)
    auto = config is None
    if auto:
        config = smallest_config(needs, weight_bits=weight_bits, **widths)
    else:
        if not isinstance(config, CoreConfig):
            raise CompileError(f"config must be a CoreConfig, got {type(config).__name__}")
        if widths:
            raise CompileError(
                f"width option(s) {sorted(widths)} given together with a CoreConfig; set them in the CoreConfig"
            )
        if weight_bits is not None and weight_bits != config.weight_bits:
            raise CompileError(
                f"weight_bits = {weight_bits} differs from config.weight_bits = {config.weight_bits}; "
                "give one or the other"
            )
        check_fits(needs, config)
    mapping = map_network(network, config.n_inputs)
    names = [p.name for p in network.projections]

    physics = NeuronPhysics.of(table, dt)
    load = SynapticLoad.of(syn, needs.stdp, dt, table["tau_syn_E"], table["tau_syn_I"], source_rates_hz(network))
    scaling = _choose_scaling(table, physics, load, config, dt, voltage_range, current_range)
    wq = quantise_weights(syn, scaling.i_lsb, config, needs.stdp, names)
    delays = quantise_delays(syn, dt, config, names)
    rows = mapping.network_row_to_image_row(network.n_source_neurons)
    scaling.row_shift[rows] = wq.row_shift
    scaling.plastic_shift = wq.plastic_shift

    neuron_fields = quantise_neurons(table, physics, scaling, config)
    v_init = scaling.v_to_int(table["v_init"])
    _check_v_init(table, v_init, scaling, config)
    profiles = group_profiles(neuron_fields, config.n_neurons - network.n_neurons, config)
    check_profiles(profiles.count, profiles.silent_is_extra, config)  # auto: n_profiles = 64 so far
    if auto:
        config = config.replace(n_profiles=max(1, profiles.count))
    stdp = quantise_stdp(needs.stdp, scaling.plastic_lsb, dt, config) if needs.stdp is not None else None

    image = _build_image(config, network, rows, profiles, v_init, wq, syn, delays, stdp).validate()
    report = build_report(
        network=network, config=config, mapping=mapping, table=table, physics=physics, load=load,
        neuron_fields=neuron_fields, profiles=profiles, scaling=scaling, syn=syn, weights=wq,
        delays=delays, stdp_rule=needs.stdp, stdp=stdp, needs=needs,
    )
    if warn and report.zero_weight_count:
        warnings.warn(
            f"{report.zero_weight_count} synapse(s) round to weight 0 and vanish "
            f"({', '.join(f'{p.name!r}: {p.rounded_to_zero}' for p in report.projections if p.rounded_to_zero)}); "
            "see the quantisation report (spikeforge inspect) -- more weight_bits keep them",
            QuantisationWarning, stacklevel=2,
        )
    return CompiledNetwork(network=network, image=image, config=config, mapping=mapping, scaling=scaling,
                           report=report, neurons=table, physics=physics)


def _choose_scaling(table, physics, load, config, dt, voltage_range, current_range) -> Scaling:
    """The voltage window and current scale for this network (scaling.py explains the choices)."""
    volts = np.concatenate([table["v_rest"], table["v_reset"], table["v_thresh"], table["v_init"]])
    lowest, highest = float(volts.min()), float(volts.max())
    span = max(highest - lowest, 1.0)
    adaptive = table.adaptive
    adapt_eq = 0.0
    if adaptive.any():
        period = 1000.0 / ADAPT_SIZING_RATE_HZ
        with np.errstate(divide="ignore"):
            eq = table["adapt_inc"][adaptive] / -np.expm1(-period / table["adapt_tau"][adaptive])
        adapt_eq = float(eq.max())
    # equilibrium depth of a negative i_offset: P20 I / (1 - P22) (inf for a perfect integrator)
    with np.errstate(divide="ignore", invalid="ignore"):
        neg = np.where(table["i_offset"] < 0, -physics.p20 * table["i_offset"] / (1.0 - physics.p22), 0.0)
    analog = bool(table.current_input.any())
    sub = table.reset_subtract
    overshoot = 0.0
    if sub.any():
        rise = physics.p21_e * load.plausible_exc + physics.p20 * np.maximum(table["i_offset"], 0)
        rise = np.where(table.current_input, np.inf, rise)
        overshoot = float(rise[sub].max())
    below, above = voltage_rooms(
        span, load.inhibitory_dip(table["tau_m"], table["tau_syn_I"], table["cm"]),
        float(np.nan_to_num(neg, posinf=np.inf).max(initial=0.0)), analog, adapt_eq, overshoot,
    )
    p21_max = float(max(physics.p21_e.max(), physics.p21_i.max()))
    peak = load.plausible_peak if current_range is None else current_range
    v_lsb, v_offset, vchoice = choose_voltage_scale(
        lowest, highest, float(table["v_thresh"].max()), below=below, above=above, v_bits=config.v_bits,
        voltage_range=voltage_range,
        min_v_lsb=min_v_lsb_for_current(peak, p21_max, config.i_bits, float(load.row_max.max(initial=0.0)),
                                        config.weight_bits),
        peak_current=peak, i_bits=config.i_bits,
    )
    i_lsb, ichoice = choose_current_scale(
        v_lsb, p21_max, load.plausible_peak, load.row_max, config.i_bits, config.weight_bits, current_range
    )
    return Scaling(
        dt=dt, v_lsb=v_lsb, v_offset=v_offset, i_lsb=i_lsb, v_bits=config.v_bits, i_bits=config.i_bits,
        weight_bits=config.weight_bits, trace_frac=config.trace_frac,
        row_shift=np.zeros(config.n_sources, dtype=np.int64), voltage=vchoice, current=ichoice,
    )


def _check_v_init(table: NeuronTable, v_init: np.ndarray, scaling: Scaling, config: CoreConfig) -> None:
    bad = (v_init < fx.smin(config.v_bits)) | (v_init > fx.smax(config.v_bits))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        lo, hi = scaling.voltage_window
        raise CompileError(
            f"population {table.labels[table.population[i]]!r}: v_init = {table['v_init'][i]} mV is outside "
            f"the voltage window {lo:.6g} .. {hi:.6g} mV; give a voltage_range that contains it"
        )


def _build_image(config, network, rows, profiles: ProfileTable, v_init, wq: QuantisedWeights,
                 syn: SynapseTable, delays, stdp) -> CoreImage:
    img = CoreImage.blank(config)
    n_net = network.n_neurons
    count = profiles.count
    for f in PROFILE_FIELDS:
        img.profiles[f][:count] = profiles.fields[f]
    img.neuron_profile[:n_net] = profiles.neuron_profile
    img.v[:n_net] = v_init
    if profiles.silent is not None:
        img.neuron_profile[n_net:] = profiles.silent
        img.v[n_net:] = profiles.fields["v_rest"][profiles.silent]
    img.weights[rows, :n_net] = wq.weights
    img.plastic[rows, :n_net] = syn.plastic
    img.delays[rows, :n_net] = delays
    img.row_shift[rows] = wq.row_shift
    if stdp is not None:
        img.stdp = dict(stdp)
    img.step = 0
    img.learning = True
    return img
