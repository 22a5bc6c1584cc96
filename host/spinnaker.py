"""Run a spikeforge Network on SpiNNaker through PyNN and sPyNNaker (``pyNN.spiNNaker``).

The Network is rebuilt in sPyNNaker's PyNN: populations -> IF_curr_exp (same parameters, v_init),
sources -> SpikeSourceArray with the spikes spikeforge draws on the host (Poisson sources too, so
every backend sees the same input), projections -> FromListConnector with the same weights and
delays, STDP -> STDPMechanism(SpikePairRule, AdditiveWeightDependence).

Two conventions differ between sPyNNaker 7 and PyNN/NEST/spikeforge, and are converted here:

- STDP amplitudes: spikeforge (like NEST) changes a weight by A_plus * w_max per pair; sPyNNaker 7
  writes A_plus as a weight (nA) -- its code comment says "pre-multiply A+ and A- by Wmax", its code
  does not -- so spikeforge passes A_plus * w_max and A_minus * w_max.
- spike times: sPyNNaker stamps a spike of timestep n (0-based) with n * dt, NEST and spikeforge with
  (n + 1) * dt; spikes read back are placed in raster row round(t / dt).

``run_on_spinnaker`` returns a SpiNNakerRun: the SimResult plus what the mapping did -- placements
(chip x, y, core p, vertex label), routing keys and masks, routing-table sizes per chip -- and the
weights as sPyNNaker quantised them next to spikeforge's own quantisation. On a virtual board the
whole mapping runs but nothing executes: the spikes are empty (sPyNNaker has no emulator).
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spikeforge.compiler.network import Network
from spikeforge.compiler.sources import network_input_rasters, step_to_time
from spikeforge.host.spinnaker_config import SpiNNakerTarget, spinnaker_session
from spikeforge.sim.result import SimResult

#: The loggers of sPyNNaker and its stack: quieted to WARNING on the console, INFO goes to the run log.
SPINNAKER_LOGGERS = ("spynnaker", "spinn_front_end_common", "spinn_utilities", "spinn_machine", "spinnman",
                     "pacman", "spalloc", "spalloc_client", "spinnaker_graph_front_end")
VIRTUAL_NOTE = (
    "virtual SpiNNaker board: the network was partitioned, placed and routed, and its data generated, but "
    "nothing ran -- a virtual board is not an emulator, so there are no spikes (all rasters are empty). "
    "Spikes come back only from a real machine (--spinnaker-host or --spalloc)."
)


class SpiNNakerUnsupported(ValueError):
    """The Network uses a feature sPyNNaker's IF_curr_exp cannot express."""


#: sPyNNaker writes every IF_curr_exp parameter as S1615: a signed 32-bit integer scaled by 2^15.
S1615_MAX = (2**31 - 1) / 2**15
S1615_MIN = -(2**31) / 2**15
IF_CURR_EXP_PARAMETERS = ("tau_m", "cm", "v_rest", "v_reset", "v_thresh", "tau_syn_E", "tau_syn_I",
                          "tau_refrac", "i_offset")
#: Time constants, where "longer than S1615 holds" has one meaning: (almost) no decay.
TIME_CONSTANTS = ("tau_m", "tau_syn_E", "tau_syn_I")


def spinnaker_parameters(pop, dt: float) -> tuple[dict, list[str]]:
    """``pop``'s IF_curr_exp parameters as sPyNNaker can hold them, and a note for each one changed.

    A time constant longer than S1615's largest value (spikeforge and its NIR reader write "no leak"
    as 1e9 ms) becomes that value, about 65,536 ms: the decay per step is then exp(-dt/65,536 ms)
    instead of about 1, a relative change of dt/65,536 per step (1.5e-5 at 1 ms), or v and the currents
    decay to 1/e in 65.5 s instead of never. Any other parameter outside S1615's range has no such
    reading and raises SpiNNakerUnsupported naming it."""
    p = pop.params
    params, notes = {}, []
    for name in IF_CURR_EXP_PARAMETERS:
        value = np.asarray(getattr(p, name), dtype=float)
        if np.any(value > S1615_MAX) or np.any(value < S1615_MIN):
            if name not in TIME_CONSTANTS or np.any(value < 0):
                raise SpiNNakerUnsupported(
                    f"population {pop.label!r}: {name} = {float(np.max(np.abs(value))):g} is outside the range "
                    f"sPyNNaker stores its parameters in (S1615: {S1615_MIN:g} .. {S1615_MAX:.5g}). "
                    "Fix: rescale the population's units, or run this network on spikeforge's backends")
            clipped = int(np.sum(value > S1615_MAX)) if value.ndim else pop.size
            value = np.minimum(value, S1615_MAX)
            notes.append(f"population {pop.label!r}: {name} longer than sPyNNaker holds on {clipped} of "
                         f"{pop.size} neuron(s) -> {S1615_MAX:.0f} ms (decay per step exp(-{dt:g}/{S1615_MAX:.0f}) "
                         f"= {np.exp(-dt / S1615_MAX):.7f} instead of ~1)")
        params[name] = value.tolist() if value.ndim else float(value)
    return params, notes


@dataclass
class Placement:
    x: int
    y: int
    p: int
    label: str


@dataclass
class RoutingKey:
    label: str
    key: int
    mask: int


@dataclass
class WeightComparison:
    """One projection's weights: requested, as sPyNNaker quantised them, as spikeforge quantised them."""

    projection: str
    n_synapses: int
    requested: np.ndarray  # per synapse (nA), in sPyNNaker's list order
    spinnaker: np.ndarray
    golden: np.ndarray | None  # None when spikeforge could not compile the network

    @staticmethod
    def _err(values, requested):
        if values is None or not len(requested):
            return None
        return float(np.max(np.abs(values - requested)))

    @property
    def spinnaker_max_error(self) -> float | None:
        return self._err(self.spinnaker, self.requested)

    @property
    def golden_max_error(self) -> float | None:
        return self._err(self.golden, self.requested)

    @property
    def spinnaker_zeroed(self) -> int:
        """Synapses with a non-zero requested weight that sPyNNaker rounded to 0."""
        return int(np.sum((self.requested != 0) & (self.spinnaker == 0)))

    def as_row(self) -> dict:
        span = lambda a: None if a is None or not len(a) else [float(np.min(a)), float(np.max(a))]
        return {"projection": self.projection, "synapses": self.n_synapses,
                "requested_nA": span(self.requested), "spinnaker_nA": span(self.spinnaker),
                "golden_nA": span(self.golden), "spinnaker_max_abs_error_nA": self.spinnaker_max_error,
                "golden_max_abs_error_nA": self.golden_max_error, "spinnaker_rounded_to_zero": self.spinnaker_zeroed}


@dataclass
class SpiNNakerRun:
    """What a sPyNNaker run produced and how it mapped the network."""

    result: SimResult
    target: str
    virtual: bool
    machine: str
    run_dir: Path
    report_dir: Path | None
    placements: list[Placement] = field(default_factory=list)
    routing_keys: list[RoutingKey] = field(default_factory=list)
    routing_table_sizes: dict[tuple[int, int], int] = field(default_factory=dict)
    weights: list[WeightComparison] = field(default_factory=list)
    golden_note: str | None = None
    parameter_notes: list[str] = field(default_factory=list)   # parameters changed to fit sPyNNaker's S1615

    def to_dict(self) -> dict:
        return {
            "target": self.target, "virtual": self.virtual, "machine": self.machine,
            "run_dir": str(self.run_dir), "report_dir": str(self.report_dir) if self.report_dir else None,
            "placements": [p.__dict__ for p in self.placements],
            "routing_keys": [{"label": r.label, "key": f"0x{r.key:08x}", "mask": f"0x{r.mask:08x}"}
                             for r in self.routing_keys],
            "routing_table_entries": {f"{x},{y}": n for (x, y), n in sorted(self.routing_table_sizes.items())},
            "weights": [w.as_row() for w in self.weights],
            "golden_note": self.golden_note,
            "parameter_notes": list(self.parameter_notes),
        }

    def print_report(self, console=None) -> None:
        """Placements, routing and the weight quantisation table, on a rich console."""
        from rich.console import Console
        from rich.table import Table

        console = console or Console()
        console.print(f"[bold]{self.target}[/] ({self.machine}); sPyNNaker run folder {self.run_dir}")
        table = Table(title="placements (application cores)")
        for col in ("chip x", "chip y", "core p", "vertex"):
            table.add_column(col)
        for pl in self.placements:
            table.add_row(str(pl.x), str(pl.y), str(pl.p), pl.label)
        console.print(table)
        table = Table(title="routing keys")
        for col in ("vertex", "key", "mask"):
            table.add_column(col)
        for r in self.routing_keys:
            table.add_row(r.label, f"0x{r.key:08x}", f"0x{r.mask:08x}")
        console.print(table)
        sizes = ", ".join(f"({x},{y}): {n}" for (x, y), n in sorted(self.routing_table_sizes.items()))
        console.print(f"routing-table entries per chip: {sizes or 'none'}")
        table = Table(title="weights (nA): requested, as sPyNNaker quantised them, as spikeforge's golden core does")
        for col in ("projection", "n", "requested", "sPyNNaker", "golden", "|err| sPyNNaker", "|err| golden",
                    "zeroed"):
            table.add_column(col, justify="left" if col == "projection" else "right")
        fmt_span = lambda a: "-" if a is None or not len(a) else (
            f"{np.min(a):.5g}" if np.min(a) == np.max(a) else f"{np.min(a):.4g}..{np.max(a):.4g}")
        fmt = lambda x: "-" if x is None else f"{x:.2g}"
        for w in self.weights:
            table.add_row(w.projection, str(w.n_synapses), fmt_span(w.requested), fmt_span(w.spinnaker),
                          fmt_span(w.golden), fmt(w.spinnaker_max_error), fmt(w.golden_max_error),
                          str(w.spinnaker_zeroed))
        console.print(table)
        console.print("|err|: the largest |quantised - requested| over the projection's synapses; zeroed: "
                      "non-zero weights sPyNNaker rounded to 0")
        if self.golden_note:
            console.print(f"spikeforge golden column: {self.golden_note}")
        for note in self.parameter_notes:
            console.print(f"[bold yellow]parameter:[/] {note}")
        if self.virtual:
            console.print(f"[bold yellow]note:[/] {VIRTUAL_NOTE}")


# ---- translation ------------------------------------------------------------------------------------
def _check_supported(network: Network) -> None:
    for pop in network.populations:
        p = pop.params
        if p.reset != "to_v_reset":
            raise SpiNNakerUnsupported(
                f"population {pop.label!r}: reset = {p.reset!r}; sPyNNaker's IF_curr_exp resets to v_reset. "
                "Fix: use reset: to_v_reset, or run this network on spikeforge's backends")
        if p.threshold_adaptation is not None:
            raise SpiNNakerUnsupported(
                f"population {pop.label!r}: threshold adaptation has no sPyNNaker IF_curr_exp equivalent. "
                "Fix: remove threshold_adaptation, or run this network on spikeforge's backends")
        if pop.current_input:
            raise SpiNNakerUnsupported(
                f"population {pop.label!r}: current_input (per-step host currents) cannot be sent to SpiNNaker. "
                "Fix: use i_offset or spike sources")


def _synapse_rows(proj, pre_size: int, post_size: int) -> np.ndarray:
    """(pre, post, weight nA, delay ms) rows of a Network projection."""
    w, d, exists = proj.dense(pre_size, post_size)
    i, j = np.nonzero(exists)
    return np.column_stack([i, j, w[i, j], d[i, j]]).astype(float).reshape(-1, 4)


def _build(sim, network: Network, steps: int, seed, record, parameters: dict | None = None):
    """Create the sPyNNaker populations and projections; return (populations, projections, rows).
    ``parameters``: each population's IF_curr_exp parameters (``spinnaker_parameters``; by default
    computed here)."""
    if parameters is None:
        parameters = {pop.label: spinnaker_parameters(pop, network.dt)[0] for pop in network.populations}
    rasters = network_input_rasters(network, steps, seed)
    pops = {}
    for pop in network.populations:
        p = pop.params
        v_init = pop.v_init if pop.v_init is not None else p.v_rest
        cells = sim.Population(pop.size, sim.IF_curr_exp(**parameters[pop.label]), label=pop.label)
        cells.initialize(v=np.asarray(v_init, dtype=float).tolist() if np.ndim(v_init) else float(v_init))
        cells.record(["spikes", *record])
        pops[pop.label] = cells
    for src in network.sources:
        raster = rasters[src.label]
        times = [step_to_time(np.flatnonzero(raster[:, k]), network.dt).tolist() for k in range(src.size)]
        pops[src.label] = sim.Population(src.size, sim.SpikeSourceArray(spike_times=times), label=src.label)
    sizes = {o.label: o.size for o in [*network.populations, *network.sources]}
    projs, rows = {}, {}
    for proj in network.projections:
        conn = _synapse_rows(proj, sizes[proj.pre], sizes[proj.post])
        rows[proj.name] = conn
        if proj.plasticity is None:
            synapse = sim.StaticSynapse()
        else:
            s = proj.plasticity
            synapse = sim.STDPMechanism(
                timing_dependence=sim.SpikePairRule(tau_plus=s.tau_plus, tau_minus=s.tau_minus,
                                                    A_plus=s.A_plus * s.w_max, A_minus=s.A_minus * s.w_max),
                weight_dependence=sim.AdditiveWeightDependence(w_min=s.w_min, w_max=s.w_max))
        connector = sim.FromListConnector([(int(i), int(j), float(w), float(d)) for i, j, w, d in conn],
                                          column_names=["weight", "delay"])
        projs[proj.name] = sim.Projection(pops[proj.pre], pops[proj.post], connector, synapse,
                                          receptor_type=proj.receptor, label=proj.name)
    return pops, projs, rows


def _golden_weights(network: Network):
    """spikeforge's quantised weights per projection (dense nA magnitudes), or (None, why not)."""
    try:
        from spikeforge.compiler import compile as compile_network

        compiled = compile_network(network)
        return compiled.projection_weights(compiled.image, plastic_only=False), None
    except Exception as exc:  # the SpiNNaker run stands on its own; say why the column is empty
        return None, f"not available: spikeforge could not compile this network ({exc})"


def _mapping_report(view):
    placements, keys, sizes = [], [], {}
    for pl in view.iterate_placemements():  # (sic) sPyNNaker's spelling
        label = str(pl.vertex.label)
        if label.startswith("SYSTEM"):
            continue
        placements.append(Placement(int(pl.x), int(pl.y), int(pl.p), label))
        try:
            info = view.get_routing_infos().get_info_from(pl.vertex, "SPIKE")
        except KeyError:  # a vertex that sends no spikes has no SPIKE partition
            info = None
        if info is not None:
            keys.append(RoutingKey(label, int(info.key), int(info.mask)))
    placements.sort(key=lambda p: (p.x, p.y, p.p))
    tables = view.get_uncompressed()
    for table in tables.routing_tables:
        sizes[(int(table.x), int(table.y))] = int(table.number_of_entries)
    return placements, keys, sizes


def _weights_back(proj, pre_size, post_size) -> np.ndarray:
    """The projection's weights as sPyNNaker holds them, dense (pre, post) magnitudes."""
    dense = np.zeros((pre_size, post_size))
    for i, j, w in proj.get(["weight"], "list"):
        dense[int(i), int(j)] = abs(float(w))
    return dense


@contextlib.contextmanager
def _quiet(log_path: Path):
    """Send sPyNNaker's progress bars, prints and INFO logs to the run's log file; keep its warnings
    on the console. (Our spynnaker.cfg turns off sPyNNaker's own logging set-up.)"""
    console = sys.stderr
    to_file = logging.FileHandler(log_path)
    to_file.setLevel(logging.INFO)
    to_console = logging.StreamHandler(console)
    to_console.setLevel(logging.WARNING)
    to_console.setFormatter(logging.Formatter("sPyNNaker %(levelname)s: %(message)s"))
    saved = {}
    for name in SPINNAKER_LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (logger.level, logger.propagate)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(to_file)
        logger.addHandler(to_console)
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield
    finally:
        with open(log_path, "a") as f:
            f.write(buffer.getvalue())
        for name, (level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.propagate = propagate
            logger.removeHandler(to_file)
            logger.removeHandler(to_console)
        to_file.close()


def run_on_spinnaker(network: Network, steps: int, target: SpiNNakerTarget, *, seed=None, record=(),
                     run_root=None) -> SpiNNakerRun:
    """Run ``network`` for ``steps`` steps on ``target`` through sPyNNaker; see the module docstring."""
    from spikeforge.compiler.validate import validate

    validate(network)
    _check_supported(network)
    record = tuple(record)
    for name in record:
        if name != "v":
            raise ValueError(f"the SpiNNaker backend records spikes and v; cannot record {name!r}")
    try:
        import pyNN.spiNNaker as sim
        from spynnaker.pyNN.data import SpynnakerDataView
    except ImportError as exc:
        raise RuntimeError(
            f"the SpiNNaker backend needs sPyNNaker ({exc}); install it with "
            "pip install 'spikeforge[spinnaker]' (pynn 0.13 and spynnaker 1!7.4.1)") from exc
    parameters, parameter_notes = {}, []
    for pop in network.populations:
        parameters[pop.label], notes = spinnaker_parameters(pop, network.dt)
        parameter_notes += notes
    golden, golden_note = _golden_weights(network)
    sizes = {o.label: o.size for o in [*network.populations, *network.sources]}
    with spinnaker_session(target, run_root) as folder, _quiet(folder / "spinnaker.log"):
        sim.setup(timestep=network.dt)
        try:
            pops, projs, rows = _build(sim, network, steps, seed, record, parameters)
            sim.run(steps * network.dt)
            placements, keys, table_sizes = _mapping_report(SpynnakerDataView)
            machine = str(SpynnakerDataView.get_machine_version().name)
            report_dir = Path(SpynnakerDataView.get_run_dir_path())
            weights, learned = [], {}
            for proj in network.projections:
                dense = _weights_back(projs[proj.name], sizes[proj.pre], sizes[proj.post])
                conn = rows[proj.name]
                i, j = conn[:, 0].astype(int), conn[:, 1].astype(int)
                gw = golden.get(proj.name) if golden is not None else None
                weights.append(WeightComparison(
                    projection=proj.name, n_synapses=len(conn), requested=conn[:, 2],
                    spinnaker=dense[i, j], golden=None if gw is None else gw[i, j]))
                if proj.plasticity is not None:
                    learned[proj.name] = dense
            spikes, variables = {}, {}
            for pop in network.populations:
                raster = np.zeros((steps, pop.size), dtype=bool)
                v = np.zeros((steps, pop.size)) if "v" in record else None
                if not target.virtual:
                    block = pops[pop.label].get_data(["spikes", *record])
                    segment = block.segments[-1]
                    for train in segment.spiketrains:
                        k = int(train.annotations["source_index"])
                        n = np.rint(np.asarray(train.rescale("ms").magnitude) / network.dt).astype(int)
                        n = n[(n >= 0) & (n < steps)]
                        raster[n, k] = True
                    for signal in segment.analogsignals:
                        if signal.name == "v":
                            arr = np.asarray(signal.magnitude, dtype=float)
                            v[: min(steps, arr.shape[0])] = arr[:steps]
                spikes[pop.label] = raster
                if v is not None:
                    variables[pop.label] = {"v": v}
        finally:
            sim.end()
    result = SimResult(backend="spinnaker", dt=network.dt, steps=steps, spikes=spikes, variables=variables,
                       weights=learned if not target.virtual else {},
                       meta={"virtual": target.virtual, "seed": seed, "target": target.description})
    return SpiNNakerRun(result=result, target=target.description, virtual=target.virtual, machine=machine,
                        run_dir=folder, report_dir=report_dir, placements=placements, routing_keys=keys,
                        routing_table_sizes=table_sizes, weights=weights, golden_note=golden_note,
                        parameter_notes=parameter_notes)
