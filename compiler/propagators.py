"""NEST's exact-integration propagators of the current-based LIF neuron (iaf_psc_exp).

Over one step h with the synaptic current I decaying exponentially (tau_syn) and the membrane
relaxing to rest (tau_m, capacitance cm), the exact solution is linear in the state:

    V(t+h) - v_rest = P22 (V - v_rest) + P21 I + P20 i_offset
    I(t+h)          = P11 I

    P22 = exp(-h/tau_m)                 P11 = exp(-h/tau_syn)
    P20 = tau_m/cm (1 - exp(-h/tau_m))  [mV/nA]
    P21 = tau_s tau_m / (cm (tau_m - tau_s)) (exp(-h/tau_m) - exp(-h/tau_s))  [mV/nA]

P21 is written as (1/cm) exp(-h/tau_m) (1 - exp(-a h)) / a with a = 1/tau_s - 1/tau_m, evaluated with
expm1: that form is exact for every a, including tau_s == tau_m (limit h/cm exp(-h/tau)) and taus so
close that the textbook form cancels catastrophically. ``math.inf`` time constants are allowed
(tau_m = inf: perfect integrator; tau_syn = inf: current never decays).

All functions take floats or NumPy arrays (one value per neuron) and return arrays.

``propagators`` returns all six coefficients at once (NEST's names); ``refractory_steps`` and
``delay_steps`` are NEST's rules for turning milliseconds into whole steps. The compiler (quantisation)
and the float reference (sim/float_ref.py) both use this module, so the fixed-point core and the float
model can only differ by rounding, never by formula.
"""

from __future__ import annotations

import numpy as np


def decay(dt: float, tau) -> np.ndarray:
    """exp(-dt/tau): the per-step decay factor (1.0 for tau = inf)."""
    return np.exp(-dt / np.asarray(tau, dtype=float))


def _one_minus_exp_over_rate(rate, t) -> np.ndarray:
    """(1 - exp(-rate t)) / rate, exact for every rate including 0 (limit t)."""
    rate = np.asarray(rate, dtype=float)
    t = np.asarray(t, dtype=float)
    x = rate * t
    safe = np.where(x == 0.0, 1.0, x)
    return np.where(x == 0.0, t, -np.expm1(-safe) / safe * t)


def p20(dt: float, tau_m, cm) -> np.ndarray:
    """Membrane response (mV) after one step to a constant current of 1 nA from rest."""
    return _one_minus_exp_over_rate(1.0 / np.asarray(tau_m, dtype=float), dt) / np.asarray(cm, dtype=float)


def p21(dt: float, tau_m, tau_syn, cm) -> np.ndarray:
    """Membrane response (mV) after time ``dt`` to an exponentially decaying current starting at 1 nA."""
    tau_m = np.asarray(tau_m, dtype=float)
    tau_syn = np.asarray(tau_syn, dtype=float)
    a = 1.0 / tau_syn - 1.0 / tau_m
    return np.exp(-dt / tau_m) * _one_minus_exp_over_rate(a, dt) / np.asarray(cm, dtype=float)


def psp_peak(tau_m, tau_syn, cm) -> np.ndarray:
    """Peak (mV) of the membrane response to a current jump of 1 nA decaying with tau_syn.

    The peak time is ln(tau_m/tau_s) / (1/tau_s - 1/tau_m) (tau for equal taus); for tau_m = inf the
    response grows to tau_syn/cm."""
    tau_m = np.broadcast_to(np.asarray(tau_m, dtype=float), np.shape(tau_syn) or np.shape(tau_m))
    tau_syn = np.broadcast_to(np.asarray(tau_syn, dtype=float), tau_m.shape)
    cm = np.broadcast_to(np.asarray(cm, dtype=float), tau_m.shape)
    a = 1.0 / tau_syn - 1.0 / tau_m
    with np.errstate(divide="ignore", invalid="ignore"):
        t_peak = np.where(np.abs(a) * tau_syn < 1e-12, tau_syn, np.log(tau_m / tau_syn) / a)
    finite = np.isfinite(tau_m)
    peak = p21(np.where(finite, t_peak, 0.0), np.where(finite, tau_m, 1.0), tau_syn, cm)
    return np.where(finite, peak, tau_syn / cm)


def propagators(tau_m, cm, tau_syn_E, tau_syn_I, dt: float) -> dict[str, np.ndarray]:
    """The six one-step coefficients of IF_curr_exp (NEST's names), vectorised over neurons.

    With u = v - v_rest, one step is ``u <- P22 u + P21ex Ie + P21in Ii + P20 (i_offset + I_ext)``,
    ``Ie <- P11ex Ie``, ``Ii <- P11in Ii``. P22, P11 are dimensionless, P21 and P20 in mV per nA.
    """
    dt = float(dt)
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt = {dt!r}: expected a finite time step > 0 ms")
    return {
        "P22": decay(dt, tau_m),
        "P11ex": decay(dt, tau_syn_E),
        "P11in": decay(dt, tau_syn_I),
        "P21ex": p21(dt, tau_m, tau_syn_E, cm),
        "P21in": p21(dt, tau_m, tau_syn_I, cm),
        "P20": p20(dt, tau_m, cm),
    }


#: NEST counts time in tics of 1 us; a time in ms is rounded to tics before it becomes steps.
TICS_PER_MS = 1000.0


def _tics(ms) -> np.ndarray:
    return np.floor(np.asarray(ms, dtype=float) * TICS_PER_MS + 0.5)


def refractory_steps(tau_refrac, dt: float) -> np.ndarray:
    """Steps a neuron is held after a spike: NEST's rule, tau_refrac / dt rounded UP (on the 1 us tic
    grid, so 2.0 ms / 1.0 ms is exactly 2).

    NEST's iaf_psc_exp computes ``Time(Time::ms(t_ref)).get_steps()``, which rounds up: at dt = 1 ms,
    t_ref 0.1 -> 1 step, 1.0 -> 1, 1.4 -> 2, 2.5 -> 3 (measured on NEST 3.10 in
    tests/test_golden_vs_nest.py). sPyNNaker rounds up too. Rounding to nearest would turn PyNN's
    default tau_refrac = 0.1 ms into no refractory period at all at dt = 1 ms.
    """
    tau_refrac = np.asarray(tau_refrac, dtype=float)
    if np.any(~(tau_refrac >= 0)):
        raise ValueError(f"tau_refrac {tau_refrac!r}: expected >= 0 ms")
    return (-(-_tics(tau_refrac) // _tics(dt))).astype(np.int64)


def delay_steps(delay_ms, dt: float) -> np.ndarray:
    """Whole steps of a synaptic delay, rounded to nearest as NEST does; at least 1 step (a spike
    reaches its target at the earliest in the next step), else ValueError."""
    delay_ms = np.asarray(delay_ms, dtype=float)
    steps = np.floor(_tics(delay_ms) / _tics(dt) + 0.5).astype(np.int64)
    if steps.size and steps.min() < 1:
        bad = float(delay_ms.flat[int(np.argmin(steps))])
        raise ValueError(f"delay {bad} ms is shorter than one step (dt = {dt} ms); delays must be >= dt")
    return steps
