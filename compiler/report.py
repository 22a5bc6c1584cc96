"""The quantisation report: what compiling to integers changed, and where the core may saturate.

For every neuron profile and parameter: the requested value(s), the value the core really uses (back in
physical units) and the error. For every projection: synapses that rounded to zero (they vanish!), the
largest relative weight error, the delay rounding. Then the risks -- current and voltage saturation,
trace saturation, STDP steps that round to nothing -- and the memory the image occupies.

``to_dict()`` is JSON-able (SimResult.meta, ``spikeforge inspect --json``); ``to_text()`` is plain
text; ``rich_tables()`` gives rich Tables for the terminal. All three render the same ``sections()``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from spikeforge.compiler.quantise import stdp_pair_reach_ms, trace_saturation_rate_hz
from spikeforge.core import fixedpoint as fx


@dataclass
class ParameterRow:
    profile: int
    parameter: str
    unit: str
    requested_min: float
    requested_max: float
    quantised: float
    abs_error: float  # largest |quantised - requested| over the profile's neurons
    rel_error: float | None  # abs_error / |requested| (None when the requested value is 0)
    neurons: int


@dataclass
class ProjectionRow:
    name: str
    synapses: int
    rounded_to_zero: int  # synapses with a non-zero requested weight whose integer weight is 0
    max_rel_error: float  # over synapses with a non-zero requested weight
    mean_rel_error: float
    max_abs_error: float  # nA
    weight_lsb_min: float  # nA per weight unit (smallest / largest over the projection's rows)
    weight_lsb_max: float
    max_delay_error: float  # ms
    plastic: bool


@dataclass
class Risk:
    kind: str  # current | voltage | adaptation | trace | stdp | weights | parameters
    severity: str  # "warning": behaviour will differ; "info": may differ under some inputs
    message: str


@dataclass
class QuantisationReport:
    scaling: dict
    config: dict
    profiles: int
    parameters: list[ParameterRow] = field(default_factory=list)
    projections: list[ProjectionRow] = field(default_factory=list)
    stdp: dict | None = None
    risks: list[Risk] = field(default_factory=list)
    memory_bits: dict[str, int] = field(default_factory=dict)

    @property
    def zero_weight_count(self) -> int:
        return sum(p.rounded_to_zero for p in self.projections)

    @property
    def warnings(self) -> list[Risk]:
        return [r for r in self.risks if r.severity == "warning"]

    def parameter(self, name: str, profile: int = 0) -> ParameterRow:
        for row in self.parameters:
            if row.parameter == name and row.profile == profile:
                return row
        raise KeyError(f"no parameter {name!r} for profile {profile}")

    def projection(self, name: str) -> ProjectionRow:
        for row in self.projections:
            if row.name == name:
                return row
        raise KeyError(f"no projection {name!r}")

    # ---- rendering --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        def clean(x):
            if isinstance(x, dict):
                return {str(k): clean(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [clean(v) for v in x]
            if isinstance(x, (np.integer,)):
                return int(x)
            if isinstance(x, (float, np.floating)):
                x = float(x)
                return x if math.isfinite(x) else ("inf" if x > 0 else "-inf" if x < 0 else "nan")
            return x
        return clean({
            "config": self.config, "profiles": self.profiles, "scaling": self.scaling,
            "parameters": [asdict(r) for r in self.parameters],
            "projections": [asdict(r) for r in self.projections],
            "stdp": self.stdp, "risks": [asdict(r) for r in self.risks],
            "memory_bits": self.memory_bits, "memory_bits_total": sum(self.memory_bits.values()),
            "zero_weights": self.zero_weight_count,
        })

    def sections(self) -> list[tuple[str, list[str], list[list[str]]]]:
        """(title, column headers, rows of strings) for every part of the report."""
        s = self.scaling
        out = [("Scaling", ["quantity", "value"], [
            ["membrane LSB", f"{_g(s['v_lsb_mV'] * 1000)} uV"],
            ["voltage window", f"{_g(s['voltage_window_mV'][0])} .. {_g(s['voltage_window_mV'][1])} mV"],
            ["current LSB", f"{_g(s['i_lsb_nA'] * 1000)} pA"],
            ["current range", f"+-{_g(s['current_range_nA'])} nA"],
            ["current scale limited by", str(s.get("current_scale_limited_by", "-"))],
            ["row shifts (shift: rows)", ", ".join(f"{k}: {v}" for k, v in s["row_shift_histogram"].items())],
            *([["plastic weight LSB", f"{_g(s['plastic_lsb_nA'])} nA (shift {s['plastic_shift']})"]]
              if s.get("plastic_lsb_nA") else []),
        ])]
        merged: dict[tuple, list[int]] = {}  # identical lines of several profiles are shown once
        for r in self.parameters:
            line = (r.parameter, _range(r.requested_min, r.requested_max, r.unit), f"{_g(r.quantised)} {r.unit}",
                    _g(r.abs_error), _percent(r.rel_error))
            merged.setdefault(line, []).append(r.profile)
        out.append(("Neuron parameters (per profile)",
                    ["profiles", "parameter", "requested", "quantised", "error", "rel. error"],
                    [[_numbers(profiles), *line] for line, profiles in merged.items()]))
        if self.projections:
            out.append(("Projections", ["projection", "synapses", "rounded to 0", "max rel. error",
                                        "mean rel. error", "weight LSB nA", "max delay error ms"],
                        [[p.name + (" (STDP)" if p.plastic else ""), str(p.synapses), str(p.rounded_to_zero),
                          f"{p.max_rel_error:.2%}", f"{p.mean_rel_error:.2%}",
                          _range(p.weight_lsb_min, p.weight_lsb_max, ""), _g(p.max_delay_error)]
                         for p in self.projections]))
        if self.stdp:
            out.append(("STDP", ["quantity", "requested", "core"],
                        [[k, _g(v["requested"]), _g(v["quantised"])] for k, v in self.stdp["parameters"].items()]))
        out.append(("Risks", ["severity", "kind", "message"],
                    [[r.severity, r.kind, r.message] for r in self.risks] or [["-", "-", "none found"]]))
        total = sum(self.memory_bits.values())
        out.append(("Memory", ["memory", "bits", "KiB"],
                    [[k, str(v), f"{v / 8192:.2f}"] for k, v in self.memory_bits.items()]
                    + [["total", str(total), f"{total / 8192:.2f}"]]))
        return out

    def to_text(self) -> str:
        lines = []
        for title, headers, rows in self.sections():
            lines += [title, "-" * len(title)]
            widths = [max(len(h), *(len(r[k]) for r in rows)) if rows else len(h) for k, h in enumerate(headers)]
            widths[-1] = len(headers[-1]) if title == "Risks" else widths[-1]
            lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
            for r in rows:
                lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            lines.append("")
        return "\n".join(lines)

    def rich_tables(self) -> list:
        """One rich.table.Table per section (for ``spikeforge inspect``)."""
        from rich.table import Table

        tables = []
        for title, headers, rows in self.sections():
            t = Table(title=title, title_justify="left")
            for h in headers:
                t.add_column(h, overflow="fold")
            for r in rows:
                style = "yellow" if title == "Risks" and r[0] == "warning" else None
                t.add_row(*r, style=style)
            tables.append(t)
        return tables


def _g(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.6g}"


def _percent(x) -> str:
    if x is None:
        return "-"
    return "inf" if math.isinf(x) else f"{x:.2%}"


def _numbers(values: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    parts, start = [], None
    for k, v in enumerate(values):
        if start is None:
            start = v
        if k + 1 == len(values) or values[k + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ", ".join(parts)


def _range(lo, hi, unit) -> str:
    unit = f" {unit}" if unit else ""
    return f"{_g(lo)}{unit}" if lo == hi else f"{_g(lo)} .. {_g(hi)}{unit}"


# ---- building -----------------------------------------------------------------------------------
def _tau_of(c, dt: float) -> float:
    """The time constant (ms) a decay coefficient stands for."""
    value = fx.coef_value(int(c))
    if value >= 1.0:
        return math.inf
    if value <= 0.0:
        return 0.0
    return -dt / math.log(value)


def _rel(a, b):
    return None if b == 0 else abs(a - b) / abs(b)


def build_report(*, network, config, mapping, table, physics, load, neuron_fields, profiles, scaling, syn,
                 weights, delays, stdp_rule, stdp, needs) -> "QuantisationReport":
    dt = network.dt
    report = QuantisationReport(scaling=scaling.to_dict(), config=config.to_dict(), profiles=profiles.count,
                                memory_bits=config.memory_bits())
    _parameter_rows(report, table, physics, profiles, scaling, dt)
    _projection_rows(report, network, syn, weights, delays, scaling, dt, mapping)
    _risks(report, table, physics, load, neuron_fields, scaling, config, dt)
    if stdp_rule is not None:
        _stdp_section(report, stdp_rule, stdp, scaling, config, dt)
    return report


def _parameter_rows(report, table, physics, profiles, scaling, dt):
    s = scaling
    f = profiles.fields
    n_used = profiles.count - (1 if profiles.silent_is_extra else 0)
    for p in range(n_used):
        members = profiles.neuron_profile == p
        def row(name, unit, requested, quantised):
            req = np.asarray(requested, dtype=float)[members]
            with np.errstate(invalid="ignore"):
                err = np.where(np.isinf(req) & np.isinf(quantised) & (np.sign(req) == np.sign(quantised)),
                               0.0, np.abs(quantised - req))
            worst = int(np.argmax(err))
            report.parameters.append(ParameterRow(
                profile=p, parameter=name, unit=unit, requested_min=float(req.min()),
                requested_max=float(req.max()), quantised=float(quantised), abs_error=float(err[worst]),
                rel_error=_rel(float(quantised), float(req[worst])) if err[worst] else
                (None if req[worst] == 0 else 0.0), neurons=int(members.sum()),
            ))
        row("tau_m", "ms", table["tau_m"], _tau_of(f["c_vdecay"][p], dt))
        row("tau_syn_E", "ms", table["tau_syn_E"], _tau_of(f["c_edecay"][p], dt))
        row("tau_syn_I", "ms", table["tau_syn_I"], _tau_of(f["c_idecay"][p], dt))
        row("P21ex (PSC gain)", "mV/nA", physics.p21_e, fx.coef_value(int(f["c_ie"][p])) * s.v_lsb / s.i_lsb)
        row("P21in (PSC gain)", "mV/nA", physics.p21_i, fx.coef_value(int(f["c_ii"][p])) * s.v_lsb / s.i_lsb)
        row("v_rest", "mV", table["v_rest"], float(s.v_from_int(f["v_rest"][p])))
        row("v_reset", "mV", table["v_reset"], float(s.v_from_int(f["v_reset"][p])))
        row("v_thresh", "mV", table["v_thresh"], float(s.v_from_int(f["v_thresh"][p])))
        p20 = physics.p20[members][0]
        row("i_offset", "nA", table["i_offset"], float(s.dv_from_int(f["bias"][p])) / p20)
        row("tau_refrac", "ms", table["tau_refrac"], float(f["refrac"][p]) * dt)
        if table.adaptive[members].any():
            row("adaptation increment", "mV", table["adapt_inc"], float(s.dv_from_int(f["a_inc"][p])))
            row("adaptation tau", "ms", table["adapt_tau"], _tau_of(f["c_adecay"][p], dt))


def _projection_rows(report, network, syn, weights, delays, scaling, dt, mapping):
    w_req = np.where(syn.exists, syn.weight, 0.0)
    lsb_net = scaling.i_lsb * np.exp2(weights.row_shift.astype(float))
    w_q = weights.weights * lsb_net[:, None]
    d_err = np.abs(delays * dt - syn.delay)
    for k, proj in enumerate(network.projections):
        mine = syn.owner == k
        nonzero = mine & (w_req != 0)
        rel = np.abs(w_q[nonzero] - w_req[nonzero]) / np.abs(w_req[nonzero])
        rows = np.flatnonzero(mine.any(axis=1))
        report.projections.append(ProjectionRow(
            name=proj.name, synapses=int(mine.sum()),
            rounded_to_zero=int((nonzero & (weights.weights == 0)).sum()),
            max_rel_error=float(rel.max(initial=0.0)), mean_rel_error=float(rel.mean()) if rel.size else 0.0,
            max_abs_error=float(np.abs(w_q[mine] - w_req[mine]).max(initial=0.0)),
            weight_lsb_min=float(lsb_net[rows].min(initial=np.inf)) if rows.size else 0.0,
            weight_lsb_max=float(lsb_net[rows].max(initial=0.0)) if rows.size else 0.0,
            max_delay_error=float(d_err[mine].max(initial=0.0)),
            plastic=proj.plasticity is not None,
        ))
        zero = report.projections[-1].rounded_to_zero
        if zero:
            report.risks.append(Risk("weights", "warning",
                f"projection {proj.name!r}: {zero} of {int(nonzero.sum())} synapses round to weight 0 and vanish "
                f"(row weight LSB down to {_g(report.projections[-1].weight_lsb_min)} nA); more weight_bits "
                "or weights of similar size per source keep them"))


def _risks(report, table, physics, load, neuron_fields, scaling, config, dt):
    s, risks = scaling, report.risks
    # currents
    rng = s.current_range
    peak = load.plausible_peak
    if peak > rng:
        risks.append(Risk("current", "warning",
            f"plausible peak synaptic current {_g(peak)} nA (the strongest synapse at 200 Hz, or every source "
            f"at its rate: mean + 5 sd) exceeds the current range +-{_g(rng)} nA: currents will saturate; "
            "use more i_bits or current_range=..."))
    volley = load.volley
    if volley > rng:
        risks.append(Risk("current", "info",
            f"a synchronous volley of every synapse onto one neuron ({_g(volley)} nA) exceeds the current range "
            f"+-{_g(rng)} nA; such a volley saturates the current (current_range=... widens the range)"))
    worst = load.worst_case
    if worst > rng:
        risks.append(Risk("current", "info",
            f"worst-case synaptic current {_g(worst)} nA (every synapse every step) exceeds the range "
            f"+-{_g(rng)} nA; currents saturate only under such sustained input"))
    # voltages
    lo, hi = s.voltage_window
    if s.voltage is not None and s.voltage.widened_for_current:
        risks.append(Risk("voltage", "info",
            f"the voltage window was widened to {_g(lo)} .. {_g(hi)} mV (membrane step {_g(s.v_lsb * 1000)} uV) "
            f"so that the current range holds the plausible peak current {_g(load.plausible_peak)} nA; "
            "more i_bits keep the membrane finer"))
    dip = load.inhibitory_dip(table["tau_m"], table["tau_syn_I"], table["cm"])
    lowest = float(min(table["v_rest"].min(), table["v_reset"].min()))
    if dip > lowest - lo:
        risks.append(Risk("voltage", "info",
            f"plausible inhibition can push a membrane {_g(dip)} mV down, below the window bottom "
            f"{_g(lo)} mV, where it clamps; give voltage_range=(low, high) to widen it"))
    if table.adaptive.any():
        room = hi - table["v_thresh"][table.adaptive].max()
        inc = table["adapt_inc"][table.adaptive].max()
        spikes = room / inc if inc > 0 else math.inf
        risks.append(Risk("adaptation", "info",
            f"an adapted threshold above {_g(hi)} mV (adaptation > {_g(room)} mV, about {_g(spikes)} spikes "
            "without decay) is unreachable: the neuron stays silent until the adaptation decays; "
            "voltage_range=(low, high) widens the window"))
    # parameters that round to nothing
    bias_zero = (table["i_offset"] != 0) & (neuron_fields["bias"] == 0)
    if bias_zero.any():
        risks.append(Risk("parameters", "warning",
            f"{int(bias_zero.sum())} neuron(s) have an i_offset that rounds to no drive at all "
            f"(|P20 * i_offset| < {_g(s.v_lsb / 2)} mV per step)"))
    refrac_err = np.abs(neuron_fields["refrac"] * dt - table["tau_refrac"])
    if (refrac_err > 1e-9).any():
        i = int(np.argmax(refrac_err))
        risks.append(Risk("parameters", "info",
            f"tau_refrac = {_g(table['tau_refrac'][i])} ms runs as {int(neuron_fields['refrac'][i])} whole steps "
            f"of dt = {dt} ms (rounded up, as NEST does)"))
    for name, field_ in (("tau_m", "c_vdecay"), ("tau_syn_E", "c_edecay"), ("tau_syn_I", "c_idecay")):
        c = neuron_fields[field_]
        finite = np.isfinite(table[name])
        if (finite & (c == fx.COEF_ONE)).any():
            risks.append(Risk("parameters", "warning",
                f"{name} up to {_g(table[name][finite & (c == fx.COEF_ONE)].max())} ms is so long that its decay "
                f"per step rounds to exactly 1 (no decay at all); use a larger dt or accept no decay"))
        if (c == 0).any():
            risks.append(Risk("parameters", "info",
                f"{name} down to {_g(table[name][c == 0].min())} ms decays to 0 within one step of dt = {dt} ms"))
    gain_zero = ((neuron_fields["c_ie"] == 0) | (neuron_fields["c_ii"] == 0))
    if gain_zero.any():
        risks.append(Risk("parameters", "warning",
            f"{int(gain_zero.sum())} neuron(s) have a synaptic current gain that rounds to 0: synaptic input "
            "cannot move their membrane; the ratio of their P21 to the largest P21 is too small"))


def _stdp_section(report, rule, stdp, scaling, config, dt):
    lsb = scaling.plastic_lsb
    f = config.trace_frac
    scale = rule.w_max / lsb * 2.0 ** f
    params = {
        "tau_plus (ms)": {"requested": rule.tau_plus, "quantised": _tau_of(stdp["c_xdecay"], dt)},
        "tau_minus (ms)": {"requested": rule.tau_minus, "quantised": _tau_of(stdp["c_ydecay"], dt)},
        "A_plus": {"requested": rule.A_plus, "quantised": stdp["x_inc"] / scale},
        "A_minus": {"requested": rule.A_minus, "quantised": stdp["y_inc"] / scale},
        "w_min (nA)": {"requested": rule.w_min, "quantised": stdp["w_min"] * lsb},
        "w_max (nA)": {"requested": rule.w_max, "quantised": stdp["w_max"] * lsb},
    }
    reach_plus = stdp_pair_reach_ms(stdp["x_inc"], rule.tau_plus, f)
    reach_minus = stdp_pair_reach_ms(stdp["y_inc"], rule.tau_minus, f)
    sat_x = trace_saturation_rate_hz(stdp["x_inc"], rule.tau_plus, dt, config.trace_bits)
    sat_y = trace_saturation_rate_hz(stdp["y_inc"], rule.tau_minus, dt, config.trace_bits)
    report.stdp = {
        "parameters": params, "integers": dict(stdp),
        "pair_reach_ms": {"potentiation": reach_plus, "depression": reach_minus},
        "trace_saturation_rate_hz": {"pre": sat_x, "post": sat_y},
        "weight_step_nA": {"potentiation": stdp["x_inc"] / 2.0 ** f * lsb,
                           "depression": stdp["y_inc"] / 2.0 ** f * lsb},
    }
    for what, inc, reach, tau, a in (("potentiation", stdp["x_inc"], reach_plus, rule.tau_plus, "A_plus"),
                                     ("depression", stdp["y_inc"], reach_minus, rule.tau_minus, "A_minus")):
        if getattr(rule, a) > 0 and reach < dt:
            report.risks.append(Risk("stdp", "warning",
                f"STDP {what} steps round to 0: {a} * w_max = {_g(getattr(rule, a) * rule.w_max)} nA decays "
                f"below half a plastic weight unit ({_g(lsb / 2)} nA) before a pair one step apart uses it, so "
                f"no spike pair changes a weight; use more weight_bits or a larger {a}"))
        elif getattr(rule, a) > 0 and reach < tau:
            report.risks.append(Risk("stdp", "info",
                f"STDP {what}: pairs further apart than {_g(reach)} ms (tau = {_g(tau)} ms) round to no weight "
                "change; more weight_bits or trace_frac extend the reach"))
    for which, rate in (("pre", sat_x), ("post", sat_y)):
        if rate < 200.0:
            report.risks.append(Risk("trace", "warning" if rate < 50.0 else "info",
                f"the {which}-synaptic STDP trace saturates (trace_bits = {config.trace_bits}) for firing "
                f"above {_g(rate)} Hz; weight steps are then smaller than NEST's"))
