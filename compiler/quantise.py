"""Quantisation: physical parameters -> the core's integers, given a Scaling (docs/quantisation.md).

Every function here is a direct transcription of one formula of docs/quantisation.md; each raises a
FitError naming the object, the width it overflows and the fix, instead of clipping silently.

Rounding: coefficients use ``fixedpoint.coef`` (nearest, ties to even, clamped to Q1.15); step counts
follow NEST (propagators.refractory_steps rounds refractory periods up, propagators.delay_steps rounds
delays to nearest); every other value rounds to nearest (ties to even).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikeforge.compiler import propagators as prop
from spikeforge.compiler.errors import FitError
from spikeforge.compiler.network import STDP
from spikeforge.compiler.parameters import NeuronTable
from spikeforge.core import fixedpoint as fx
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import PROFILE_FIELDS


def coef(values) -> np.ndarray:
    """``fixedpoint.coef`` over an array: the nearest Q1.15 coefficient, clamped to 0 .. COEF_MAX."""
    return np.clip(np.rint(np.asarray(values, dtype=float) * fx.COEF_ONE), 0, fx.COEF_MAX).astype(np.int64)


def delay_steps_checked(syn, dt: float, names: list[str]) -> np.ndarray:
    """Delays of every existing synapse in steps (NEST's rounding, propagators.delay_steps); 1 elsewhere.
    A delay shorter than one step is a FitError naming its projection."""
    d = np.where(syn.exists, syn.delay, dt)
    try:
        return np.where(syn.exists, prop.delay_steps(d, dt), 1).astype(np.int64)
    except ValueError:
        r, j = (int(x[0]) for x in np.nonzero(syn.exists & (d < dt)))
        raise FitError(
            f"projection {names[syn.owner[r, j]]!r}: delay {syn.delay[r, j]} ms is shorter than one step "
            f"(dt = {dt} ms); a spike reaches its target at the earliest in the next step -- use delays >= {dt} ms"
        ) from None


@dataclass
class NeuronPhysics:
    """The propagators of every neuron (exact integration over one step dt)."""

    p22: np.ndarray
    p11_e: np.ndarray
    p11_i: np.ndarray
    p21_e: np.ndarray
    p21_i: np.ndarray
    p20: np.ndarray

    @classmethod
    def of(cls, table: NeuronTable, dt: float) -> "NeuronPhysics":
        t = table
        p = prop.propagators(t["tau_m"], t["cm"], t["tau_syn_E"], t["tau_syn_I"], dt)
        return cls(p22=p["P22"], p11_e=p["P11ex"], p11_i=p["P11in"], p21_e=p["P21ex"], p21_i=p["P21in"],
                   p20=p["P20"])


def quantise_neurons(table: NeuronTable, physics: NeuronPhysics, scaling, config: CoreConfig) -> dict[str, np.ndarray]:
    """The profile fields (PROFILE_FIELDS) of every network neuron, as (N_net,) int64 arrays."""
    s, dt = scaling, scaling.dt
    adaptive = table.adaptive
    q = {
        "c_vdecay": coef(physics.p22),
        "c_ie": coef(physics.p21_e * s.i_lsb / s.v_lsb),
        "c_ii": coef(physics.p21_i * s.i_lsb / s.v_lsb),
        "c_edecay": coef(physics.p11_e),
        "c_idecay": coef(physics.p11_i),
        "v_rest": s.v_to_int(table["v_rest"]),
        "bias": s.dv_to_int(physics.p20 * table["i_offset"]),
        "v_reset": s.v_to_int(table["v_reset"]),
        "v_thresh": s.v_to_int(table["v_thresh"]),
        "refrac": prop.refractory_steps(table["tau_refrac"], dt),
        "reset_subtract": table.reset_subtract.astype(np.int64),
        "a_inc": np.where(adaptive, s.dv_to_int(table["adapt_inc"]), 0),
        "c_adecay": np.where(adaptive, coef(prop.decay(dt, table["adapt_tau"])), fx.COEF_ONE),
    }
    assert set(q) == set(PROFILE_FIELDS)
    _check_range(table, q["refrac"], 0, fx.umax(config.refrac_bits), "tau_refrac",
                 lambda v: f"{v} steps", f"refrac_bits = {config.refrac_bits}",
                 "a wider refractory counter (CoreConfig(refrac_bits=...)) or a shorter tau_refrac")
    vlo, vhi = fx.smin(config.v_bits), fx.smax(config.v_bits)
    for name in ("v_rest", "v_reset", "v_thresh"):
        _check_range(table, q[name], vlo, vhi, name, lambda v: f"{s.v_from_int(v):.6g} mV",
                     f"the voltage window {s.voltage_window[0]:.6g} .. {s.voltage_window[1]:.6g} mV",
                     "a voltage_range that contains it, or more v_bits")
    _check_range(table, q["bias"], vlo, vhi, "i_offset", lambda v: f"a step of {s.dv_from_int(v):.6g} mV",
                 f"signed v_bits = {config.v_bits}", "a smaller i_offset, or more v_bits")
    _check_range(table, q["a_inc"], 0, fx.umax(config.adapt_bits), "threshold_adaptation.increment",
                 lambda v: f"{s.dv_from_int(v):.6g} mV", f"adapt_bits = {config.adapt_bits}",
                 "a smaller increment or more adapt_bits")
    return q


def _check_range(table: NeuronTable, values, lo, hi, name, show, limit, fix):
    bad = (values < lo) | (values > hi)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        pop = table.labels[table.population[i]]
        first = int(np.flatnonzero(table.population == table.population[i])[0])
        raise FitError(
            f"population {pop!r} neuron {i - first}: {name} needs {show(int(values[i]))}, outside {limit}; "
            f"use {fix}"
        )


# ---- weights --------------------------------------------------------------------------------------
def _shift_needed(max_exc, max_inh, i_lsb: float, weight_bits: int) -> np.ndarray:
    """Smallest shift 0..15 per row so that the largest weights of the row fit weight_bits
    (excitatory <= smax, inhibitory >= smin); 16 where none does."""
    shifts = np.arange(fx.ROW_SHIFT_MAX + 1, dtype=float)
    lsb = i_lsb * np.exp2(shifts)[None, :]
    fits = (np.rint(np.asarray(max_exc)[:, None] / lsb) <= fx.smax(weight_bits)) & (
        np.rint(np.asarray(max_inh)[:, None] / lsb) <= -fx.smin(weight_bits)
    )
    return np.where(fits.any(axis=1), np.argmax(fits, axis=1), fx.ROW_SHIFT_MAX + 1)


@dataclass
class QuantisedWeights:
    weights: np.ndarray  # (S_net, N_net) signed ints
    row_shift: np.ndarray  # (S_net,)
    plastic_shift: int | None


def quantise_weights(syn, i_lsb: float, config: CoreConfig, stdp: STDP | None, names: list[str]) -> QuantisedWeights:
    """Per-row shifts and integer weights (docs/quantisation.md, "Weights").

    ``syn`` is the SynapseTable; ``names`` the projection names by owner index (for messages)."""
    wb = config.weight_bits
    w = np.where(syn.exists, syn.weight, 0.0)
    max_exc = np.where(w > 0, w, 0.0).max(axis=1, initial=0.0)
    max_inh = np.where(w < 0, -w, 0.0).max(axis=1, initial=0.0)
    shift = _shift_needed(max_exc, max_inh, i_lsb, wb)
    plastic_rows = syn.plastic.any(axis=1)
    plastic_shift = None
    if plastic_rows.any():
        need_wmax = int(_shift_needed(np.array([stdp.w_max]), np.array([0.0]), i_lsb, wb)[0])
        plastic_shift = max(need_wmax, int(shift[plastic_rows].max()))
        shift = np.where(plastic_rows, plastic_shift, shift)
        if plastic_shift > fx.ROW_SHIFT_MAX:
            raise FitError(
                f"STDP w_max = {stdp.w_max} nA (or a weight on a plastic row) needs a weight scale above "
                f"2**{fx.ROW_SHIFT_MAX} current units (i_lsb = {i_lsb:.4g} nA, weight_bits = {wb}); use "
                "more weight_bits, a smaller w_max, or more i_bits"
            )
    too_big = shift > fx.ROW_SHIFT_MAX
    if too_big.any():
        r = int(np.flatnonzero(too_big)[0])
        j = int(np.argmax(np.abs(w[r])))
        raise FitError(
            f"projection {names[syn.owner[r, j]]!r}: weight {abs(w[r, j]):.6g} nA needs more than "
            f"{fx.smax(wb)} x 2**{fx.ROW_SHIFT_MAX} current units of {i_lsb:.4g} nA (weight_bits = {wb}); "
            "use more weight_bits, more i_bits, or smaller weights"
        )
    lsb = i_lsb * np.exp2(shift.astype(float))
    w_int = np.rint(w / lsb[:, None]).astype(np.int64)
    delivered = np.abs(w_int) << shift[:, None]
    over = delivered > fx.smax(config.i_bits)
    if over.any():
        r, j = (int(x[0]) for x in np.nonzero(over))
        raise FitError(
            f"projection {names[syn.owner[r, j]]!r}: weight {abs(w[r, j]):.6g} nA exceeds the synaptic "
            f"current range {i_lsb * fx.smax(config.i_bits):.6g} nA (i_bits = {config.i_bits}); use more "
            "i_bits or smaller weights"
        )
    return QuantisedWeights(weights=w_int, row_shift=shift.astype(np.int64), plastic_shift=plastic_shift)


def quantise_delays(syn, dt: float, config: CoreConfig, names: list[str]) -> np.ndarray:
    """Delays in steps (>= 1 and <= max_delay) for every existing synapse; 1 elsewhere."""
    steps = delay_steps_checked(syn, dt, names)
    long = syn.exists & (steps > config.max_delay)
    if long.any():
        r, j = (int(x[0]) for x in np.nonzero(long))
        raise FitError(
            f"projection {names[syn.owner[r, j]]!r}: delay {syn.delay[r, j]} ms = {int(steps[r, j])} steps; "
            f"the core holds delays up to {config.max_delay} steps (max_delay). Use a bigger core "
            f"(CoreConfig(max_delay={int(steps[long].max())}), at most 64 steps) or shorter delays"
        )
    return steps.astype(np.int64)


# ---- STDP -----------------------------------------------------------------------------------------
def quantise_stdp(rule: STDP, plastic_lsb: float, dt: float, config: CoreConfig) -> dict[str, int]:
    """The STDP constants of the core (one rule per core), docs/quantisation.md "STDP".

    NEST/PyNN additive rule: a pair changes w by A * w_max * exp(-|dt|/tau). The pre trace counts
    x_inc per spike in units of 2**-trace_frac plastic weight units, so that rnd(x >> trace_frac) is
    the potentiation step: x_inc = round(A_plus * w_max / plastic_lsb * 2**trace_frac)."""
    scale = rule.w_max / plastic_lsb * 2.0 ** config.trace_frac
    out = {
        "c_xdecay": int(coef(prop.decay(dt, rule.tau_plus))),
        "c_ydecay": int(coef(prop.decay(dt, rule.tau_minus))),
        "x_inc": int(np.rint(rule.A_plus * scale)),
        "y_inc": int(np.rint(rule.A_minus * scale)),
        "w_min": int(np.rint(rule.w_min / plastic_lsb)),
        "w_max": int(np.rint(rule.w_max / plastic_lsb)),
    }
    tmax = fx.umax(config.trace_bits)
    for name, a in (("x_inc", "A_plus"), ("y_inc", "A_minus")):
        if out[name] > tmax:
            raise FitError(
                f"STDP {a} * w_max = {getattr(rule, a) * rule.w_max:.6g} nA is {out[name]} trace units, "
                f"above the trace maximum {tmax} (trace_bits = {config.trace_bits}, trace_frac = "
                f"{config.trace_frac}); use more trace_bits, a smaller trace_frac or a smaller {a}"
            )
    if out["w_min"] < fx.smin(config.weight_bits):
        raise FitError(f"STDP w_min = {rule.w_min} nA is below the weight range; use w_min >= 0")
    return out


def stdp_pair_reach_ms(inc: int, tau: float, trace_frac: int) -> float:
    """Largest spike-pair distance (ms) that still changes a weight: rnd(inc * exp(-d/tau) >> f) >= 1.

    0.0 when even a pair one step apart rounds to no change; math.inf when tau is infinite."""
    half = 2.0 ** (trace_frac - 1) if trace_frac > 0 else 0.5
    if inc < half:
        return 0.0
    return math.inf if math.isinf(tau) else tau * math.log(inc / half)


def trace_saturation_rate_hz(inc: int, tau: float, dt: float, trace_bits: int) -> float:
    """Steady firing rate (Hz) above which a trace incremented by ``inc`` per spike saturates.

    A regular train with period T has the peak trace inc / (1 - exp(-T/tau)); the trace saturates when
    that exceeds umax(trace_bits)."""
    tmax = fx.umax(trace_bits)
    if inc <= 0:
        return math.inf
    if inc > tmax:
        return 0.0
    if math.isinf(tau):
        return 0.0  # never decays: any long enough train saturates
    t = -tau * math.log1p(-inc / tmax) if inc < tmax else math.inf
    t = max(t, dt)
    return 1000.0 / t if math.isfinite(t) else 0.0
