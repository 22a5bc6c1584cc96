"""Random, valid CoreImages and inputs for verification (golden vs fast kernel, golden vs RTL).

Random but *alive*: parameters are drawn so neurons spike, currents rise and fall, traces move and
weights learn, otherwise a comparison proves nothing. ``extreme=True`` pushes every field to the edges
of its width (saturation at both ends, longest refractory periods, strongest weights).
"""

from __future__ import annotations

import numpy as np

from spikeforge.core import fixedpoint as fx
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage


def random_image(config: CoreConfig, rng: np.random.Generator | int = 0, *, extreme: bool = False,
                 density: float = 0.3, random_state: bool = True) -> CoreImage:
    """A random CoreImage for ``config`` that satisfies CoreImage.validate()."""
    rng = np.random.default_rng(rng)
    c = config
    img = CoreImage.blank(c)
    P, N, S = c.n_profiles, c.n_neurons, c.n_sources
    vmin, vmax = fx.smin(c.v_bits), fx.smax(c.v_bits)
    span = vmax - vmin
    wmin, wmax = fx.smin(c.weight_bits), fx.smax(c.weight_bits)

    def coefs(lo, hi, size):
        return rng.integers(lo, hi + 1, size=size)

    pr = img.profiles
    pr["c_vdecay"][:] = coefs(int(0.80 * fx.COEF_ONE), fx.COEF_ONE - 1, P)
    pr["c_ie"][:] = coefs(int(0.05 * fx.COEF_ONE), int(1.2 * fx.COEF_ONE), P)
    pr["c_ii"][:] = coefs(int(0.05 * fx.COEF_ONE), int(1.2 * fx.COEF_ONE), P)
    pr["c_edecay"][:] = coefs(int(0.5 * fx.COEF_ONE), fx.COEF_ONE - 1, P)
    pr["c_idecay"][:] = coefs(int(0.5 * fx.COEF_ONE), fx.COEF_ONE - 1, P)
    pr["c_adecay"][:] = coefs(int(0.8 * fx.COEF_ONE), fx.COEF_ONE, P)
    rest = rng.integers(vmin + span // 4, vmin + span // 2, P)
    pr["v_rest"][:] = rest
    pr["v_reset"][:] = rest - rng.integers(0, span // 32 + 1, P)
    pr["v_thresh"][:] = rest + rng.integers(span // 64 + 1, span // 8, P)
    pr["bias"][:] = rng.integers(-span // 256, span // 64, P)
    pr["refrac"][:] = rng.integers(0, min(6, fx.umax(c.refrac_bits)) + 1, P)
    amax = fx.umax(c.adapt_bits)
    pr["a_inc"][:] = rng.integers(0, min(max(1, span // 64), amax + 1), P) if c.adaptive_threshold else 0
    if extreme:
        # Each field of each profile goes to an edge of its range with probability 0.3, so that
        # saturation, full-scale coefficients and the longest refractory periods all occur while
        # most neurons still spike.
        edges = {
            "c_vdecay": (0, fx.COEF_MAX), "c_ie": (0, fx.COEF_MAX), "c_ii": (0, fx.COEF_MAX),
            "c_edecay": (0, fx.COEF_MAX), "c_idecay": (0, fx.COEF_MAX), "c_adecay": (0, fx.COEF_MAX),
            "v_rest": (vmin, vmax), "bias": (vmin, vmax), "v_reset": (vmin, vmax), "v_thresh": (vmin, vmax),
            "refrac": (0, fx.umax(c.refrac_bits)),
            "a_inc": (0, fx.umax(c.adapt_bits) if c.adaptive_threshold else 0),
        }
        for name, (lo, hi) in edges.items():
            hit = rng.random(P) < 0.3
            pr[name][:] = np.where(hit, rng.choice([lo, hi, rng.integers(lo, hi + 1)], P), pr[name])
    if not c.adaptive_threshold:
        # Without adaptation the core stores neither field (memory_map.ADAPTIVE_PROFILE_FIELDS): keep the
        # canonical values a compiled or blank image has.
        pr["a_inc"][:] = 0
        pr["c_adecay"][:] = fx.COEF_ONE
    pr["reset_subtract"][:] = rng.integers(0, 2, P)
    img.neuron_profile[:] = rng.integers(0, P, N)

    exists = rng.random((S, N)) < density
    if extreme:
        w = rng.choice([wmin, wmax, 0], size=(S, N)) * exists
        w = np.where(rng.random((S, N)) < 0.3, rng.integers(wmin, wmax + 1, (S, N)), w) * exists
    else:
        w = rng.integers(wmin // 2, wmax + 1, (S, N)) * exists
    img.weights[:] = w
    img.row_shift[:] = rng.integers(0, fx.ROW_SHIFT_MAX + 1 if extreme else 6, S)
    if c.max_delay > 1:
        img.delays[:] = rng.integers(1, c.max_delay + 1, (S, N))
    if c.stdp:
        img.plastic[:] = exists & (rng.random((S, N)) < 0.7)
        tmax = fx.umax(c.trace_bits)
        img.stdp.update(
            c_xdecay=int(rng.integers(int(0.7 * fx.COEF_ONE), fx.COEF_MAX + 1 if extreme else fx.COEF_ONE)),
            c_ydecay=int(rng.integers(int(0.7 * fx.COEF_ONE), fx.COEF_MAX + 1 if extreme else fx.COEF_ONE)),
            x_inc=int(rng.integers(0, tmax + 1 if extreme else max(2, tmax // 8))),
            y_inc=int(rng.integers(0, tmax + 1 if extreme else max(2, tmax // 8))),
        )
        lo, hi = sorted(rng.integers(wmin, wmax + 1, 2)) if extreme else (int(rng.integers(wmin, 1)), int(rng.integers(1, wmax + 1)))
        img.stdp.update(w_min=int(lo), w_max=int(hi))
    if random_state:
        imin, imax = fx.smin(c.i_bits), fx.smax(c.i_bits)
        img.v[:] = rng.integers(vmin, vmax + 1, N) if extreme else \
            img.profiles["v_rest"][img.neuron_profile] + rng.integers(-span // 64, span // 32, N)
        img.v[:] = np.clip(img.v, vmin, vmax)
        img.ie[:] = rng.integers(0, imax + 1, N) if extreme else rng.integers(0, imax // 8, N)
        img.ii[:] = rng.integers(imin, 1, N) if extreme else rng.integers(imin // 8, 1, N)
        img.refrac_count[:] = rng.integers(0, fx.umax(c.refrac_bits) + 1 if extreme else min(3, fx.umax(c.refrac_bits) + 1), N)
        if c.adaptive_threshold:
            img.adapt[:] = rng.integers(0, amax + 1 if extreme else min(max(1, span // 64), amax + 1), N)
        if c.stdp:
            img.x_trace[:] = rng.integers(0, fx.umax(c.trace_bits) + 1, S)
            img.y_trace[:] = rng.integers(0, fx.umax(c.trace_bits) + 1, N)
        img.ring[:, 0] = rng.integers(0, imax + 1 if extreme else imax // 16, (c.max_delay, N))
        img.ring[:, 1] = rng.integers(imin if extreme else imin // 16, 1, (c.max_delay, N))
        img.step = int(rng.integers(0, 1000))
    img.learning = bool(rng.random() < 0.9)
    return img.validate()


def random_inputs(config: CoreConfig, steps: int, rng: np.random.Generator | int = 0,
                  rate: float = 0.15) -> tuple[np.ndarray, np.ndarray | None]:
    """Random input spikes (steps, A) and analog inputs (steps, K) (None when K = 0)."""
    rng = np.random.default_rng(rng)
    spikes = rng.random((steps, config.n_inputs)) < rate
    currents = None
    if config.n_current_inputs:
        span = 1 << (config.v_bits - 1)
        currents = rng.integers(-span // 64, span // 32, (steps, config.n_current_inputs))
    return spikes, currents


def random_config(rng: np.random.Generator | int = 0, **overrides) -> CoreConfig:
    """A random small CoreConfig across the feature space (for sweeps)."""
    rng = np.random.default_rng(rng)
    lanes = int(rng.choice([1, 2, 4]))
    n = int(rng.choice([4, 16, 64])) if "n_neurons" not in overrides else overrides["n_neurons"]
    params = dict(
        n_neurons=n,
        n_inputs=int(rng.choice([0, 8, 64])),
        weight_bits=int(rng.choice([4, 8, 12])),
        lanes=lanes if n % lanes == 0 else 1,
        max_delay=int(rng.choice([1, 1, 4, 8])),
        stdp=bool(rng.random() < 0.5),
        adaptive_threshold=bool(rng.random() < 0.5),
        n_current_inputs=int(rng.integers(0, min(n, 4) + 1)),
        n_profiles=int(rng.choice([1, 4, 16])),
    )
    params.update(overrides)
    return CoreConfig(**params)
