"""Small networks shared by the comparison tests (golden vs float vs NEST), and the agreement checks.

Each ``Case`` is a Network built with the public API (compiler/network.py), the number of steps to run
and the inputs of the run. The networks are chosen to exercise one mechanism each, at firing rates
where a quantisation bug would show: membrane integration (offset), synaptic drive (feedforward),
recurrence (recurrent_ei), delays, STDP (stdp_pair, stdp_poisson), inhibition (inhibition_dominated),
the analog input (current_input) and threshold adaptation with subtract reset (adaptive_subtract, not
on NEST).

The agreement checks (``count_mismatch``, ``unmatched_spikes``, ...) implement docs/core-spec.md §11.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spikeforge.compiler.network import (
    STDP,
    LIFParameters,
    Network,
    PoissonSource,
    Population,
    Projection,
    SpikeSource,
    ThresholdAdaptation,
)


@dataclass
class Case:
    name: str
    network: Network
    steps: int
    currents: dict | None = None
    #: feed-forward: every neuron sees only host inputs, so spike trains re-align after a grazing
    #: event and spike-by-spike checks apply; recurrent networks diverge and are compared by rates.
    feedforward: bool = True
    #: runs on NEST (no threshold adaptation / subtract reset)
    nest: bool = True
    notes: str = ""
    extra: dict = field(default_factory=dict)


def offset() -> Case:
    """Four independent neurons driven by i_offset only: one subthreshold (v relaxes to -55 mV), three
    regular firers (~17, ~33, ~60 Hz). Hand-checkable: v(t) = v_rest + R I (1 - exp(-t/tau_m))."""
    net = Network(dt=1.0, name="offset")
    net.add(Population("lif", 4, LIFParameters(i_offset=np.array([0.5, 0.8, 1.0, 1.5]), tau_refrac=2.0)))
    return Case("offset", net, 1000)


def feedforward(n_in=100, n_out=20, steps=1000) -> Case:
    """Poisson inputs (20 Hz) -> LIF through random excitatory weights: 5-40 Hz output."""
    rng = np.random.default_rng(11)
    net = Network(dt=1.0, name="feedforward")
    net.add(PoissonSource("in", n_in, rate=20.0, seed=5))
    net.add(Population("out", n_out, LIFParameters(tau_refrac=2.0, tau_syn_E=5.0, tau_m=20.0)))
    w = rng.uniform(0.0, 0.4, (n_in, n_out)) * (rng.random((n_in, n_out)) < 0.5)
    net.add(Projection("in", "out", weights=w, delays=1.0))
    return Case("feedforward", net, steps)


def recurrent_ei(n_e=80, n_i=20, steps=1000) -> Case:
    """A sparse E/I network driven by Poisson input: recurrence makes single spike-time differences
    spread, so it is compared by rates (docs/core-spec.md §11)."""
    rng = np.random.default_rng(7)
    net = Network(dt=1.0, name="recurrent_ei")
    params = dict(tau_refrac=2.0, tau_syn_E=5.0, tau_syn_I=10.0, tau_m=20.0)
    net.add(PoissonSource("drive", 50, rate=30.0, seed=9))
    net.add(Population("E", n_e, LIFParameters(**params), v_init=rng.uniform(-65, -55, n_e)))
    net.add(Population("I", n_i, LIFParameters(**params), v_init=rng.uniform(-65, -55, n_i)))

    def sparse(shape, p, w):
        return np.where(rng.random(shape) < p, w, 0.0)

    net.add(Projection("drive", "E", weights=sparse((50, n_e), 0.2, 0.6)))
    net.add(Projection("drive", "I", weights=sparse((50, n_i), 0.2, 0.6)))
    net.add(Projection("E", "E", weights=sparse((n_e, n_e), 0.1, 0.3), delays=2.0))
    net.add(Projection("E", "I", weights=sparse((n_e, n_i), 0.1, 0.4), delays=1.0))
    net.add(Projection("I", "E", weights=sparse((n_i, n_e), 0.2, 0.8), delays=1.0, receptor="inhibitory"))
    net.add(Projection("I", "I", weights=sparse((n_i, n_i), 0.2, 0.5), delays=1.0, receptor="inhibitory"))
    return Case("recurrent_ei", net, steps, feedforward=False)


def delays() -> Case:
    """Spike volleys through synapses with delays 1..8 steps: each target fires at a time set by its
    delay (and the volley's convergence), so any delay error moves a spike."""
    net = Network(dt=1.0, name="delays")
    times = [[5.0 + 40.0 * k for k in range(12)]] * 4
    net.add(SpikeSource("volley", 4, times))
    net.add(Population("tgt", 8, LIFParameters(tau_refrac=2.0, tau_syn_E=2.0, tau_m=10.0)))
    w = np.full((4, 8), 3.5)
    d = np.tile(np.arange(1, 9, dtype=float), (4, 1))
    d[1] += 0.0
    d[2, ::2] += 1.0  # staggered arrivals for every other target
    net.add(Projection("volley", "tgt", weights=w, delays=d))
    return Case("delays", net, 500)


def stdp_pair(delay=1.0) -> Case:
    """One plastic synapse per pre neuron, post spikes forced by a strong teacher input: pre neuron 0
    fires 2 ms before every post spike (potentiation), pre neuron 1 fires 3 ms after it (depression),
    10 times each, so the learned weights follow the pair rule and no weight reaches a bound."""
    net = Network(dt=1.0, name="stdp_pair")
    post_times = [30.0 + 50.0 * k for k in range(10)]
    pre = [[t - 2.0 for t in post_times], [t + 3.0 for t in post_times]]
    net.add(SpikeSource("pre", 2, pre))
    # the teacher's spike reaches the post neuron one step before the wanted post spike (delay 1):
    # 40 nA through tau_syn_E = 1 ms moves v by ~24 mV in one step, a spike at once
    net.add(SpikeSource("teacher", 1, [[t - 2.0 for t in post_times]]))
    net.add(Population("post", 1, LIFParameters(tau_refrac=2.0, tau_syn_E=1.0, tau_m=10.0)))
    net.add(Projection("teacher", "post", weights=np.array([[40.0]]), delays=1.0))
    rule = STDP(tau_plus=20.0, tau_minus=20.0, A_plus=0.04, A_minus=0.04, w_min=0.0, w_max=1.0)
    net.add(Projection("pre", "post", weights=np.array([[0.5], [0.5]]), delays=delay, plasticity=rule,
                       label="plastic"))
    return Case("stdp_pair", net, 600, extra={"post_times": post_times, "rule": rule})


def stdp_poisson(steps=2000) -> Case:
    """Poisson inputs onto a plastic projection: weights drift under many overlapping pairs."""
    rng = np.random.default_rng(3)
    net = Network(dt=1.0, name="stdp_poisson")
    net.add(PoissonSource("in", 30, rate=15.0, seed=21))
    net.add(Population("out", 4, LIFParameters(tau_refrac=2.0, i_offset=0.4)))
    rule = STDP(tau_plus=16.8, tau_minus=33.7, A_plus=0.01, A_minus=0.006, w_min=0.0, w_max=1.5)
    net.add(Projection("in", "out", weights=rng.uniform(0.3, 1.2, (30, 4)), delays=1.0, plasticity=rule,
                       label="plastic"))
    return Case("stdp_poisson", net, steps, extra={"rule": rule})


def inhibition_dominated(steps=1000) -> Case:
    """Strong excitatory and stronger inhibitory Poisson input: the membrane sits below rest and fires
    rarely; exercises the inhibitory channel and negative excursions."""
    rng = np.random.default_rng(5)
    net = Network(dt=1.0, name="inhibition_dominated")
    net.add(PoissonSource("exc", 80, rate=25.0, seed=2))
    net.add(PoissonSource("inh", 40, rate=25.0, seed=4))
    net.add(Population("cells", 10, LIFParameters(tau_refrac=2.0, tau_syn_I=8.0, i_offset=0.6)))
    net.add(Projection("exc", "cells", weights=rng.uniform(0.2, 0.6, (80, 10))))
    net.add(Projection("inh", "cells", weights=rng.uniform(0.3, 0.75, (40, 10)), receptor="inhibitory"))
    return Case("inhibition_dominated", net, steps)


def current_input(steps=600) -> Case:
    """Three neurons fed a per-step analog current (the core's current inputs), one with i_offset."""
    rng = np.random.default_rng(8)
    net = Network(dt=1.0, name="current_input")
    net.add(Population("analog", 3, LIFParameters(tau_refrac=1.0, i_offset=np.array([0.0, 0.2, 0.0])),
                       current_input=True))
    cur = np.clip(rng.normal(0.9, 0.6, (steps, 3)), -1.0, 3.0)
    cur[:, 2] = 0.5 + 0.5 * np.sin(np.arange(steps) / 15.0)  # smooth drive
    return Case("current_input", net, steps, currents={"analog": cur})


def adaptive_subtract(steps=1000, i_offset=0.1, w_high=0.45) -> Case:
    """Threshold adaptation and subtract-threshold reset (not expressible in NEST's IF_curr_exp):
    Poisson drive onto neurons whose threshold climbs 1 mV per spike and relaxes with 100 ms."""
    rng = np.random.default_rng(12)
    net = Network(dt=1.0, name="adaptive_subtract")
    net.add(PoissonSource("in", 60, rate=25.0, seed=6))
    params = LIFParameters(tau_refrac=1.0, i_offset=i_offset, reset="subtract_threshold", v_reset=-60.0,
                           threshold_adaptation=ThresholdAdaptation(increment=1.0, tau=100.0))
    net.add(Population("adapt", 10, params))
    net.add(Projection("in", "adapt", weights=rng.uniform(0.1, w_high, (60, 10))))
    return Case("adaptive_subtract", net, steps, nest=False)


def all_cases() -> list[Case]:
    return [offset(), feedforward(), recurrent_ei(), delays(), stdp_pair(), stdp_poisson(),
            inhibition_dominated(), current_input(), adaptive_subtract()]


# ---- agreement checks (docs/core-spec.md §11) ----------------------------------------------------
def count_tolerance(counts: np.ndarray, rel: float = 0.02) -> np.ndarray:
    """Allowed per-neuron spike-count difference: max(1, ceil(rel * count))."""
    return np.maximum(1, np.ceil(rel * np.asarray(counts, dtype=float))).astype(int)


def count_mismatch(a: np.ndarray, b: np.ndarray, rel: float = 0.02) -> np.ndarray:
    """Neurons (column indices) whose spike counts differ by more than ``count_tolerance``."""
    ca, cb = a.sum(axis=0), b.sum(axis=0)
    return np.flatnonzero(np.abs(ca - cb) > count_tolerance(np.maximum(ca, cb), rel))


def unmatched_spikes(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Per neuron, the spikes of raster ``a`` with no spike of ``b`` within +-k steps (and vice
    versa), counted once each; greedy in time order, each spike matched at most once."""
    out = np.zeros(a.shape[1], dtype=int)
    for j in range(a.shape[1]):
        ta, tb = np.flatnonzero(a[:, j]), np.flatnonzero(b[:, j])
        used = np.zeros(tb.size, dtype=bool)
        missing = 0
        for t in ta:
            cand = np.flatnonzero(~used & (np.abs(tb - t) <= k))
            if cand.size:
                used[cand[np.argmin(np.abs(tb[cand] - t))]] = True
            else:
                missing += 1
        out[j] = missing + int((~used).sum())
    return out


def grazing_steps(v: np.ndarray, theta: np.ndarray, bound: float) -> np.ndarray:
    """Per neuron, the steps at which the float membrane comes within ``bound`` mV of threshold
    (from below or above): the only places where a correct quantised model may decide differently."""
    return (np.abs(np.asarray(v) - np.asarray(theta)) <= bound).sum(axis=0)


def first_grazing_step(v: np.ndarray, theta: np.ndarray, bound: float) -> np.ndarray:
    """Per neuron, the first step whose float membrane is within ``bound`` of threshold (steps if never)."""
    near = np.abs(np.asarray(v) - np.asarray(theta)) <= bound
    return np.where(near.any(axis=0), np.argmax(near, axis=0), near.shape[0])


def poisson_rate_tolerance(total_spikes: float, sigmas: float = 3.0) -> float:
    """Relative tolerance of a population's total spike count: 3 Poisson standard deviations, at
    least 2 %."""
    return max(0.02, sigmas / math.sqrt(max(total_spikes, 1.0)))


# ---- the quantisation error bound of the golden model (docs/core-spec.md §11, section 2) -------------
@dataclass
class GoldenBound:
    """Rigorous bounds on |golden - float| for one run, valid while both backends spike alike.

    All arrays are in core neuron order (``labels``/``ranges`` map populations), shape (steps, N):
    ``v`` bounds the membrane after step n (mV), ``v_pre`` the membrane before the threshold test,
    ``theta`` the threshold; ``margin`` is the float's distance to threshold minus both bounds: where
    it is > 0 the golden model must take the same spike decision. ``w`` bounds every plastic weight
    (nA, (S_net, N_net) network source rows) at the end.
    """

    v: np.ndarray
    v_pre: np.ndarray
    theta: np.ndarray
    margin: np.ndarray
    w: np.ndarray | None
    ranges: dict

    def population(self, name: str, label: str) -> np.ndarray:
        r = self.ranges[label]
        return getattr(self, name)[:, r.start:r.stop]

    def first_grazing(self, label: str) -> np.ndarray:
        """Per neuron of ``label``: the first step whose decision the bound cannot guarantee."""
        m = self.population("margin", label) <= 0
        return np.where(m.any(axis=0), np.argmax(m, axis=0), m.shape[0])

    @property
    def first_grazing_any(self) -> int:
        m = (self.margin <= 0).any(axis=1)
        return int(np.argmax(m)) if m.any() else self.margin.shape[0]


def golden_bound(compiled, steps: int, float_result, currents=None, seed=None) -> GoldenBound:
    """The error bound of docs/core-spec.md §11 for ``compiled`` (a CompiledNetwork), computed along the
    float reference's trajectory ``float_result`` (recorded with v, ie, ii, threshold; core STDP).

    Per step and neuron (u = v - v_rest; C = coefficient/2**15, G = C * v_lsb / i_lsb):

        E_I(n)   = C_I E_I(n-1) + |C_I - P11| |I_f(n-1)| + i_lsb + sum_arrivals |w_q - w|
        E_pre(n) = C_v E_v(n-1) + |C_v - P22| |u_f(n-1)| + |1 - C_v| |d_rest|
                   + sum_ch (G E_I(n-1) + |G - P21| |I_f(n-1)|) + v_lsb + |d_bias| + |d_input(n)|
        E_v(n)   = |d_reset| after a reset, E_pre + E_theta + |d_reset| after a subtract reset,
                   E_v(n-1) while refractory, else E_pre(n)
        E_a(n)   = C_a E_a(n-1) + |C_a - P_a| a_f(n-1) + v_lsb (+ |d_a_inc| after a spike)

    with d_x the representation error of parameter x. Plastic weights: every pairing event adds
    0.5 weight LSB (rnd) plus the trace error / 2**trace_frac LSB, the trace error following
    E_x(n) = C_x E_x(n-1) + |C_x - P_x| X_f(n-1) + 1 (+ |x_inc - X_inc| on a spike), in trace units.
    """
    from spikeforge.compiler.mapping import gather_synapses
    from spikeforge.compiler.propagators import decay
    from spikeforge.core import fixedpoint as fx

    net, img, s, cfg = compiled.network, compiled.image, compiled.scaling, compiled.config
    mapping, phys = compiled.mapping, compiled.physics
    n_net, a_net = net.n_neurons, net.n_source_neurons
    ranges = dict(compiled.populations())
    table = compiled.neurons
    one = float(fx.COEF_ONE)
    prof = {f: np.asarray(img.profiles[f])[np.asarray(img.neuron_profile[:n_net])] for f in img.profiles}
    Cv, Ce, Ci = prof["c_vdecay"] / one, prof["c_edecay"] / one, prof["c_idecay"] / one
    Ge, Gi = prof["c_ie"] / one * s.v_lsb / s.i_lsb, prof["c_ii"] / one * s.v_lsb / s.i_lsb
    Ca = prof["c_adecay"] / one
    v_rest = table["v_rest"]
    d_rest = np.abs(s.v_from_int(prof["v_rest"]) - v_rest)
    d_reset = np.abs(s.v_from_int(prof["v_reset"]) - table["v_reset"])
    d_thresh = np.abs(s.v_from_int(prof["v_thresh"]) - table["v_thresh"])
    d_bias = np.abs(s.dv_from_int(prof["bias"]) - phys.p20 * table["i_offset"])
    adaptive = table.adaptive
    d_ainc = np.where(adaptive, np.abs(s.dv_from_int(prof["a_inc"]) - table["adapt_inc"]), 0.0)
    Pa = np.where(adaptive, decay(compiled.dt, table["adapt_tau"]), 1.0)
    subtract = table.reset_subtract
    refrac = prof["refrac"]

    # float trajectory in core order
    def core_order(name):
        out = np.zeros((steps, n_net))
        for label, r in ranges.items():
            out[:, r.start:r.stop] = float_result.variables[label][name] if name != "spikes" \
                else float_result.spikes[label]
        return out

    v_f, ie_f, ii_f, th_f = (core_order(k) for k in ("v", "ie", "ii", "threshold"))
    spk = core_order("spikes").astype(bool)
    a_f = th_f - table["v_thresh"][None, :]
    # analog input error
    d_input = np.zeros((steps, n_net))
    if cfg.n_current_inputs:
        from spikeforge.sim.float_ref import population_currents

        cur = population_currents(net, currents, steps)
        u = compiled.core_currents(cur, steps)
        for label, arr in cur.items():
            r = ranges[label]
            d_input[:, r.start:r.stop] = np.abs(s.dv_from_int(u[:, r.start:r.stop]) - phys.p20[r][None, :] * arr)
    drive = table["i_offset"][None, :] + np.zeros((steps, n_net))
    if cfg.n_current_inputs:
        for label, arr in cur.items():
            drive[:, ranges[label].start:ranges[label].stop] += arr

    # synapses: exact weight rounding error, by channel and delay
    syn = gather_synapses(net, mapping)
    rows = mapping.network_row_to_image_row(a_net)
    w_q = s.weight_from_int(np.asarray(img.weights)[rows, :n_net], rows)
    delays = np.asarray(img.delays)[rows, :n_net]
    dw = np.where(syn.exists, np.abs(w_q - syn.weight), 0.0)
    pre = np.zeros((steps, a_net + n_net), dtype=bool)
    pre[:, :a_net] = compiled.input_raster(steps, seed)[:, :a_net]
    pre[:, a_net:] = spk

    # plastic weights: bound along the float trajectory (core convention)
    w_err = None
    if syn.plastic.any():
        rule = next(p.plasticity for p in net.projections if p.plasticity is not None)
        lsb_p, F = s.plastic_lsb, cfg.trace_frac
        st = img.stdp
        X_inc, Y_inc = rule.A_plus * rule.w_max / lsb_p * 2 ** F, rule.A_minus * rule.w_max / lsb_p * 2 ** F
        Cx, Cy = st["c_xdecay"] / one, st["c_ydecay"] / one
        Px, Py = float(decay(compiled.dt, rule.tau_plus)), float(decay(compiled.dt, rule.tau_minus))
        Ex = np.zeros(a_net + n_net)
        Ey = np.zeros(n_net)
        Xf = np.zeros(a_net + n_net)
        Yf = np.zeros(n_net)
        Ew = np.where(syn.plastic, dw / lsb_p, 0.0)  # in plastic LSB
        Ew += np.where(syn.plastic, 0.5, 0.0)  # w_min / w_max representation (clipping is 1-Lipschitz)
        tmax = fx.umax(cfg.trace_bits)
        for n in range(steps):
            Ex = Cx * Ex + abs(Cx - Px) * Xf + 1.0
            Ey = Cy * Ey + abs(Cy - Py) * Yf + 1.0
            Xf, Yf = Px * Xf, Py * Yf
            post_n, pre_n = spk[n], pre[n]
            if post_n.any():
                Ew[:, post_n] += np.where(syn.plastic[:, post_n], 0.5 + Ex[:, None] / 2 ** F, 0.0)
            if pre_n.any():
                Ew[pre_n, :] += np.where(syn.plastic[pre_n, :], 0.5 + Ey[None, :] / 2 ** F, 0.0)
            Ex = Ex + pre_n * abs(round(X_inc) - X_inc)
            Ey = Ey + post_n * abs(round(Y_inc) - Y_inc)
            Xf, Yf = Xf + pre_n * X_inc, Yf + post_n * Y_inc
            if Xf.max(initial=0) >= tmax or Yf.max(initial=0) >= tmax:
                raise AssertionError("an STDP trace saturates: the bound does not cover saturation")
        w_err = Ew * lsb_p
        dw = np.where(syn.plastic, w_err, dw)  # conservative: the final bound at every delivery

    arr_err = {0: np.zeros((steps, n_net)), 1: np.zeros((steps, n_net))}
    exc = syn.weight > 0
    for d in np.unique(delays[syn.exists]) if syn.exists.any() else []:
        shifted = np.zeros_like(pre, dtype=float)
        shifted[d:] = pre[:-d]
        for ch, mask in ((0, exc), (1, ~exc)):
            m = np.where(syn.exists & mask & (delays == d), dw, 0.0)
            if m.any():
                arr_err[ch] += shifted @ m

    Ev = np.zeros(n_net)
    Ee, Ei, Ea = np.zeros(n_net), np.zeros(n_net), np.zeros(n_net)
    out_v, out_pre, out_th, margin = (np.zeros((steps, n_net)) for _ in range(4))
    P = phys
    u_prev = table["v_init"] - v_rest
    ie_prev, ii_prev, a_prev = np.zeros(n_net), np.zeros(n_net), np.zeros(n_net)
    Ev = np.abs(s.v_from_int(s.v_to_int(table["v_init"])) - table["v_init"])
    count = np.zeros(n_net, dtype=np.int64)
    for n in range(steps):
        refractory = count > 0
        E_pre = (Cv * Ev + np.abs(Cv - P.p22) * np.abs(u_prev) + np.abs(1 - Cv) * d_rest
                 + Ge * Ee + np.abs(Ge - P.p21_e) * np.abs(ie_prev)
                 + Gi * Ei + np.abs(Gi - P.p21_i) * np.abs(ii_prev)
                 + s.v_lsb + d_bias + d_input[n])
        E_pre = np.where(refractory, Ev, E_pre)
        u_pre = np.where(refractory, u_prev,
                         P.p22 * u_prev + P.p21_e * ie_prev + P.p21_i * ii_prev + P.p20 * drive[n])
        count = np.where(refractory, count - 1, count)
        Ee = Ce * Ee + np.abs(Ce - P.p11_e) * np.abs(ie_prev) + s.i_lsb + arr_err[0][n]
        Ei = Ci * Ei + np.abs(Ci - P.p11_i) * np.abs(ii_prev) + s.i_lsb + arr_err[1][n]
        Ea = np.where(adaptive, Ca * Ea + np.abs(Ca - Pa) * a_prev + s.v_lsb, 0.0)
        E_th = d_thresh + Ea
        margin[n] = np.where(refractory, np.inf, np.abs(u_pre + v_rest - th_f[n]) - E_pre - E_th)
        fired = spk[n]
        Ev = np.where(fired, np.where(subtract, E_pre + E_th + d_reset, d_reset), E_pre)
        Ea = Ea + fired * d_ainc
        count = np.where(fired, refrac, count)
        out_v[n], out_pre[n], out_th[n] = Ev, E_pre, E_th
        u_prev, ie_prev, ii_prev, a_prev = v_f[n] - v_rest, ie_f[n], ii_f[n], a_f[n]
    return GoldenBound(v=out_v, v_pre=out_pre, theta=out_th, margin=margin, w=w_err, ranges=ranges)


#: Compile options under which STDP is quantised finely enough for the bound to resolve a 10 % error
#: of A_plus (weight LSB ~ 1/800 of w_max, trace steps of 2**-6 LSB).
FINE_STDP = dict(weight_bits=12, trace_bits=16, trace_frac=6)


#: Recurrent networks: allowed relative difference of a population's total spike count (besides 4 sigma
#: of the perturbed-reference spread): the rtz bias shifts rates systematically by up to ~1.5 %.
RECURRENT_RATE_TOL = 0.03


def plastic(case: Case) -> bool:
    return any(p.plasticity is not None for p in case.network.projections)


def _first_true(mask: np.ndarray) -> np.ndarray:
    """Per column: the first row where ``mask`` is True (rows = len if never)."""
    return np.where(mask.any(axis=0), np.argmax(mask, axis=0), mask.shape[0])


def agreement_failures(case: Case, bound: GoldenBound, ref, golden, ensemble=None, counts: bool = True) -> list[str]:
    """Every way ``golden`` departs from the reference run ``ref`` beyond docs/core-spec.md §11.

    1. membrane: |v_golden - v_ref| <= bound.v at every step before the spike trains first differ
       (per neuron in a feed-forward network, anywhere in a recurrent one);
    2. spike decisions: identical spikes before the first step the bound cannot decide (grazing);
    3. counts: feed-forward, every neuron within max(1, 2 %); recurrent, every population's total
       within max(3 %, 4 sigma) of the reference (``ensemble`` = totals of perturbed reference runs);
    4. learned weights: |w_golden - w_ref| <= bound.w for every plastic synapse.

    ``counts=False`` skips 3: when the STDP rule is quantised coarsely (A * w_max about one weight
    LSB, the default 8-bit weights) the learned weights legitimately drift apart within their bound,
    and the rates follow the weights.
    """
    fails = []
    steps = case.steps
    first_div_all = steps
    for label in ref.spikes:
        differ = ref.spikes[label] != golden.spikes[label]
        if differ.any():
            first_div_all = min(first_div_all, int(np.argmax(differ.any(axis=1))))
    for label in ref.spikes:
        a, b = ref.spikes[label], golden.spikes[label]
        differ = a != b
        first_div = _first_true(differ) if case.feedforward else np.full(a.shape[1], first_div_all)
        err = np.abs(golden.variables[label]["v"] - ref.variables[label]["v"])
        valid = np.arange(steps)[:, None] < first_div[None, :]
        over = valid & (err > bound.population("v", label) + 1e-9)
        if over.any():
            n, j = (int(x[0]) for x in np.nonzero(over))
            fails.append(f"{label}[{j}] step {n}: |v_golden - v_ref| = {err[n, j]:.4g} mV > bound "
                         f"{bound.population('v', label)[n, j]:.4g} mV")
        graze = bound.first_grazing(label) if case.feedforward else \
            np.full(a.shape[1], bound.first_grazing_any)
        early = differ & (np.arange(steps)[:, None] < graze[None, :])
        if early.any():
            n, j = (int(x[0]) for x in np.nonzero(early))
            fails.append(f"{label}[{j}] step {n}: spike decision differs where the reference is "
                         f"{bound.population('margin', label)[n, j]:.3g} mV clear of the bound")
        if not counts:
            continue
        if case.feedforward:
            bad = count_mismatch(a, b)
            if bad.size:
                j = int(bad[0])
                fails.append(f"{label}: {bad.size} neuron(s) with spike counts beyond max(1, 2 %), e.g. "
                             f"[{j}] {int(b[:, j].sum())} vs {int(a[:, j].sum())}")
        else:
            total_a, total_b = float(a.sum()), float(b.sum())
            sigma = float(np.std(ensemble[label])) if ensemble is not None else 0.0
            tol = max(RECURRENT_RATE_TOL * total_a, 4.0 * sigma)
            if abs(total_b - total_a) > tol:
                fails.append(f"{label}: {int(total_b)} spikes vs {int(total_a)}, beyond max(3 %, 4 sigma) = {tol:.1f}")
    if bound.w is not None:
        net = case.network
        for proj in net.projections:
            if proj.plasticity is None:
                continue
            rows = _source_rows(net, proj.pre)
            cols = bound.ranges[proj.post]
            bw = bound.w[rows.start:rows.stop, cols.start:cols.stop]
            err = np.abs(golden.weights[proj.name] - ref.weights[proj.name])
            if (err > bw + 1e-12).any():
                i, j = (int(x[0]) for x in np.nonzero(err > bw + 1e-12))
                fails.append(f"{proj.name}[{i}, {j}]: |w_golden - w_ref| = {err[i, j]:.4g} nA > bound {bw[i, j]:.4g} nA")
    return fails


def _source_rows(net: Network, label: str) -> range:
    """Network source rows (sources, then neurons in core order) of a source or population."""
    start = 0
    for src in net.sources:
        if src.label == label:
            return range(start, start + src.size)
        start += src.size
    from spikeforge.compiler.mapping import neuron_order

    for pop in neuron_order(net):
        if pop.label == label:
            return range(start, start + pop.size)
        start += pop.size
    raise KeyError(label)


def perturbed_totals(case: Case, spread_mv: float, runs: int = 6, seed: int = 0, backend: str = "float"):
    """Population spike totals of ``runs`` reference runs whose v_init is moved by up to +-spread_mv:
    the spread of a recurrent network's activity under a perturbation as large as the golden
    model's error bound (the 'chaos noise' the totals are compared against)."""
    import copy

    from spikeforge.sim.backends import simulate

    rng = np.random.default_rng(seed)
    totals: dict[str, list[int]] = {}
    for _ in range(runs):
        net = copy.deepcopy(case.network)
        for pop in net.populations:
            base = pop.params.per_neuron("v_rest", pop.size) if pop.v_init is None else \
                np.broadcast_to(np.asarray(pop.v_init, dtype=float), (pop.size,))
            pop.v_init = base + rng.uniform(-spread_mv, spread_mv, pop.size)
        res = simulate(net, case.steps, backend=backend, currents=case.currents)
        for label, raster in res.spikes.items():
            totals.setdefault(label, []).append(int(raster.sum()))
    return {k: np.asarray(v) for k, v in totals.items()}
