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
