"""The golden model, compiled: a numba kernel bit-exact with ``golden.py`` and much faster.

``golden.py`` is the specification (docs/core-spec.md, section 4) written over whole arrays; it
touches every one of the S x N synapses in every step. This module runs the same seven phases
per neuron and per *event*: spike delivery and STDP walk only the synapses of the sources and
neurons that spiked. Every value is the same int64 integer the reference computes, with the same
``rtz`` / ``sat`` / ``usat`` / ``rnd`` primitives, so the two agree bit for bit on every field of
the final image and every recorded variable (tests/test_golden_fast.py).

API: ``run`` and ``run_batch`` take and return exactly what ``golden.run`` / ``golden.run_batch``
do. Argument checking is golden.py's own (``GoldenCore.check_run_arguments``), not a copy.

Why it is exact while skipping synapses: a synapse with weight 0 that is not plastic delivers
nothing and never changes, so the set of *live* synapses (weight != 0 or plastic) is fixed for a
run and is packed once into compressed rows. Saturating delivery per channel only ever adds values
of one sign, so adding them one at a time with saturation equals the reference's
``min(start + sum, max)`` (docs/core-spec.md, section 4, "Delivery saturates per channel").

Batch mode runs the B cores of a batch in one compiled call, spread over the CPU cores with
``numba.prange``. The cores of a batch share nothing, so the result does not depend on the thread
count or schedule.
"""

from __future__ import annotations

from typing import Sequence

import numba
import numpy as np

from spikeforge.core import fixedpoint as fx
from spikeforge.core.image import CoreImage, PROFILE_FIELDS
from spikeforge.sim.golden import CoreRecord, GoldenCore, GoldenInputError

__all__ = ["run", "run_batch", "run_core"]

# Rows of the packed per-neuron parameter array (B, len(PROFILE_FIELDS), N).
_VDECAY, _CIE, _CII, _EDECAY, _IDECAY, _VREST, _BIAS, _VRESET, _VTHRESH, _REFRAC, _RESET_SUB, \
    _AINC, _ADECAY = (PROFILE_FIELDS.index(f) for f in (
        "c_vdecay", "c_ie", "c_ii", "c_edecay", "c_idecay", "v_rest", "bias", "v_reset", "v_thresh",
        "refrac", "reset_subtract", "a_inc", "c_adecay"))
# Entries of the packed STDP constants (B, 6).
_XDECAY, _YDECAY, _XINC, _YINC, _WMIN, _WMAX = range(6)
_STDP_ORDER = ("c_xdecay", "c_ydecay", "x_inc", "y_inc", "w_min", "w_max")
_F = fx.COEF_FRAC


# ---- the arithmetic primitives (spikeforge/core/fixedpoint.py), scalar int64 -------------------
@numba.njit(inline="always", cache=True)
def _rtz(x, f):
    return -((-x) >> f) if x < 0 else x >> f


@numba.njit(inline="always", cache=True)
def _clamp(x, lo, hi):
    return lo if x < lo else (hi if x > hi else x)


@numba.njit(inline="always", cache=True)
def _rnd(x, f):
    return x if f == 0 else (x + (1 << (f - 1))) >> f


# ---- one core, all steps ----------------------------------------------------------------------
@numba.njit(cache=True)
def _simulate_core(
    # sizes and widths
    A, N, K, D, v_bits, i_bits, adapt_bits, trace_bits, trace_frac, adaptive, stdp, learning,
    # parameters of this core
    par, stdp_par, row_shift,
    # live synapses in compressed rows: row_ptr (S+1,), col/delay/src/w (nnz,) -- w is state
    row_ptr, col, delay, src, w,
    # plastic synapses: positions into the live arrays, by row (prow_ptr, ppos) and by column
    prow_ptr, ppos, pcol_ptr, pcpos,
    # state, updated in place
    v, ie, ii, rc, adapt, xt, yt, ring, step0,
    # per-step inputs and outputs
    inputs, currents, spikes_out,
    rec_v, rec_ie, rec_ii, rec_rc, rec_adapt, rec_thr, rec_x, rec_y, rec_w,
):
    S = A + N
    steps = inputs.shape[0]
    vlo, vhi = -(1 << (v_bits - 1)), (1 << (v_bits - 1)) - 1
    ilo, ihi = -(1 << (i_bits - 1)), (1 << (i_bits - 1)) - 1
    amax = (1 << adapt_bits) - 1
    tmax = (1 << trace_bits) - 1
    refractory = np.zeros(N, dtype=np.bool_)
    threshold = np.zeros(N, dtype=np.int64)
    pre = np.zeros(S, dtype=np.int64)  # sources that spiked this step (row indices)
    for t in range(steps):
        n = step0 + t

        # Phase 1: membrane update, or refractory countdown (v uses last step's currents).
        for i in range(N):
            if rc[i] > 0:
                refractory[i] = True
                rc[i] -= 1
            else:
                refractory[i] = False
                acc = par[_VDECAY, i] * (v[i] - par[_VREST, i]) + par[_CIE, i] * ie[i] + par[_CII, i] * ii[i]
                x = _rtz(acc, _F) + par[_VREST, i] + par[_BIAS, i]
                if i < K:
                    x += currents[t, i]
                v[i] = _clamp(x, vlo, vhi)

        # Phase 2: currents decay, then this step's arrivals are added; the slot is cleared.
        slot = n % D
        for i in range(N):
            ie[i] = _clamp(_rtz(par[_EDECAY, i] * ie[i], _F) + ring[slot, 0, i], ilo, ihi)
            ii[i] = _clamp(_rtz(par[_IDECAY, i] * ii[i], _F) + ring[slot, 1, i], ilo, ihi)
            ring[slot, 0, i] = 0
            ring[slot, 1, i] = 0

        # Phase 3: threshold (with adaptation), spike, reset. Sources list: inputs, then neurons.
        n_pre = 0
        for a in range(A):
            if inputs[t, a]:
                pre[n_pre] = a
                n_pre += 1
        n_in = n_pre
        for i in range(N):
            if adaptive:
                adapt[i] = _clamp(_rtz(par[_ADECAY, i] * adapt[i], _F), 0, amax)
                theta = par[_VTHRESH, i] + adapt[i]  # exact, not saturated
            else:
                theta = par[_VTHRESH, i]
            threshold[i] = theta
            spike = (not refractory[i]) and v[i] >= theta
            spikes_out[t, i] = spike
            if spike:
                if par[_RESET_SUB, i] == 1:
                    v[i] = _clamp(v[i] - (theta - par[_VRESET, i]), vlo, vhi)
                else:
                    v[i] = par[_VRESET, i]
                rc[i] = par[_REFRAC, i]
                if adaptive:
                    adapt[i] = _clamp(adapt[i] + par[_AINC, i], 0, amax)
                pre[n_pre] = A + i
                n_pre += 1

        if stdp:
            # Phase 4: trace decay (all sources, all neurons).
            for j in range(S):
                xt[j] = _clamp(_rtz(stdp_par[_XDECAY] * xt[j], _F), 0, tmax)
            for i in range(N):
                yt[i] = _clamp(_rtz(stdp_par[_YDECAY] * yt[i], _F), 0, tmax)
            if learning:
                w_min, w_max = stdp_par[_WMIN], stdp_par[_WMAX]
                # Phase 5a: potentiation down the column of every neuron that spiked.
                for k in range(n_in, n_pre):
                    i = pre[k] - A
                    for q in range(pcol_ptr[i], pcol_ptr[i + 1]):
                        p = pcpos[q]
                        w[p] = min(w[p] + _rnd(xt[src[p]], trace_frac), w_max)
                # Phase 5b: depression along the row of every source that spiked.
                for k in range(n_pre):
                    j = pre[k]
                    for q in range(prow_ptr[j], prow_ptr[j + 1]):
                        p = ppos[q]
                        w[p] = max(w[p] - _rnd(yt[col[p]], trace_frac), w_min)
            # Phase 6: trace increments.
            for k in range(n_pre):
                j = pre[k]
                xt[j] = _clamp(xt[j] + stdp_par[_XINC], 0, tmax)
            for k in range(n_in, n_pre):
                i = pre[k] - A
                yt[i] = _clamp(yt[i] + stdp_par[_YINC], 0, tmax)

        # Phase 7: delivery into the delay ring buffer, only the live synapses of spiking sources.
        for k in range(n_pre):
            j = pre[k]
            shift = row_shift[j]
            for p in range(row_ptr[j], row_ptr[j + 1]):
                wp = w[p]
                if wp == 0:
                    continue
                val = wp << shift
                s = (n + delay[p]) % D
                i = col[p]
                if val > 0:
                    ring[s, 0, i] = min(ring[s, 0, i] + val, ihi)
                else:
                    ring[s, 1, i] = max(ring[s, 1, i] + val, ilo)

        # Records (after the whole step, as golden.py records them).
        if rec_v.shape[0]:
            rec_v[t] = v
        if rec_ie.shape[0]:
            rec_ie[t] = ie
        if rec_ii.shape[0]:
            rec_ii[t] = ii
        if rec_rc.shape[0]:
            rec_rc[t] = rc
        if rec_adapt.shape[0]:
            rec_adapt[t] = adapt
        if rec_thr.shape[0]:
            rec_thr[t] = threshold
        if rec_x.shape[0]:
            rec_x[t] = xt
        if rec_y.shape[0]:
            rec_y[t] = yt
        if rec_w.shape[0]:
            for j in range(S):
                for p in range(row_ptr[j], row_ptr[j + 1]):
                    rec_w[t, j, col[p]] = w[p]


# ---- the batch: one compiled call ----------------------------------------------------------------
# The two drivers are the same loop over the cores of a batch; one runs it on one thread (a single
# image, or a caller that wants one thread), the other spreads it with prange. Each core writes only
# its own slices, so both give identical results.
def _batch_loop(
    A, N, K, D, v_bits, i_bits, adapt_bits, trace_bits, trace_frac, adaptive, stdp, learning,
    par, stdp_par, row_shift, row_ptr, col, delay, src, w, prow_ptr, ppos, pcol_ptr, pcpos,
    v, ie, ii, rc, adapt, xt, yt, ring, step0, inputs, currents, spikes,
    rec_v, rec_ie, rec_ii, rec_rc, rec_adapt, rec_thr, rec_x, rec_y, rec_w,
):
    for b in numba.prange(v.shape[0]):
        _simulate_core(
            A, N, K, D, v_bits, i_bits, adapt_bits, trace_bits, trace_frac, adaptive, stdp, learning[b],
            par[b], stdp_par[b], row_shift[b], row_ptr[b], col, delay, src, w,
            prow_ptr[b], ppos, pcol_ptr[b], pcpos,
            v[b], ie[b], ii[b], rc[b], adapt[b], xt[b], yt[b], ring[b], step0[b],
            inputs[b], currents[b], spikes[b],
            rec_v[b], rec_ie[b], rec_ii[b], rec_rc[b], rec_adapt[b], rec_thr[b], rec_x[b], rec_y[b],
            rec_w[b],
        )


_run_serial = numba.njit(cache=True)(_batch_loop)
_run_parallel = numba.njit(cache=True, parallel=True)(_batch_loop)


# ---- packing: GoldenCore's batched arrays -> kernel arrays -----------------------------------
def _pack_synapses(core: GoldenCore):
    """Compressed rows of the live synapses (weight != 0 or plastic) of every core of the batch.

    Positions index one flat array over the whole batch (core b's rows point into its own range),
    so the kernel needs no per-core offsets. Returns the arrays and the mask they came from.
    """
    B, S, N = core.weights.shape
    live = (core.weights != 0) | core.plastic
    b_idx, j_idx, i_idx = np.nonzero(live)  # row-major: sorted by (b, row, column)
    counts = np.zeros(B * S + 1, dtype=np.int64)
    np.add.at(counts, 1 + b_idx * S + j_idx, 1)
    flat_ptr = np.cumsum(counts)
    row_ptr = np.empty((B, S + 1), dtype=np.int64)
    row_ptr[:, :S] = flat_ptr[:-1].reshape(B, S)
    row_ptr[:, S] = flat_ptr[S::S]
    col = np.ascontiguousarray(i_idx, dtype=np.int64)
    src = np.ascontiguousarray(j_idx, dtype=np.int64)
    delay = np.ascontiguousarray(core.delays[live], dtype=np.int64)
    w = np.ascontiguousarray(core.weights[live], dtype=np.int64)

    plastic = core.plastic[live]
    pos = np.flatnonzero(plastic).astype(np.int64)  # plastic positions, by (b, row, column)
    pb, pj, pi = b_idx[pos], j_idx[pos], i_idx[pos]
    counts = np.zeros(B * S + 1, dtype=np.int64)
    np.add.at(counts, 1 + pb * S + pj, 1)
    flat = np.cumsum(counts)
    prow_ptr = np.empty((B, S + 1), dtype=np.int64)
    prow_ptr[:, :S] = flat[:-1].reshape(B, S)
    prow_ptr[:, S] = flat[S::S]
    order = np.lexsort((pj, pi, pb))  # by (b, column, row)
    pcpos = np.ascontiguousarray(pos[order])
    counts = np.zeros(B * N + 1, dtype=np.int64)
    np.add.at(counts, 1 + pb * N + pi, 1)
    flat = np.cumsum(counts)
    pcol_ptr = np.empty((B, N + 1), dtype=np.int64)
    pcol_ptr[:, :N] = flat[:-1].reshape(B, N)
    pcol_ptr[:, N] = flat[N::N]
    return live, (row_ptr, col, delay, src, w, prow_ptr, pos, pcol_ptr, pcpos)


def run_core(core: GoldenCore, inputs=None, steps=None, currents=None, record=(),
             parallel: bool | None = None) -> CoreRecord:
    """Advance a GoldenCore with the compiled kernel: the same effect as ``core.run(...)``.

    ``parallel`` spreads the cores of a batch over CPU threads (default: when the batch has more than
    one core). The result never depends on it.
    """
    c = core.config
    record, inputs, currents = core.check_run_arguments(inputs, steps, currents, record)
    B, steps = inputs.shape[0], inputs.shape[1]
    N, S = c.n_neurons, c.n_sources
    if currents is None:
        currents = np.zeros((B, steps, 0), dtype=np.int64)
    live, syn = _pack_synapses(core)
    par = np.ascontiguousarray(np.stack([core.p[f] for f in PROFILE_FIELDS], axis=1), dtype=np.int64)
    stdp_par = np.ascontiguousarray(np.stack([core.stdp[k] for k in _STDP_ORDER], axis=1), dtype=np.int64)

    def rec(name):
        shape = core.record_shape(name)
        return np.zeros((B, steps if name in record else 0, *shape), dtype=np.int64)

    variables = {name: rec(name) for name in
                 ("v", "ie", "ii", "refrac_count", "adapt", "threshold", "x_trace", "y_trace", "weights")}
    spikes = np.zeros((B, steps, N), dtype=np.bool_)
    state = {name: np.ascontiguousarray(getattr(core, name), dtype=np.int64)
             for name in ("v", "ie", "ii", "refrac_count", "adapt", "x_trace", "y_trace", "ring")}
    kernel = _run_parallel if (B > 1 if parallel is None else parallel) else _run_serial
    kernel(
        c.n_inputs, N, c.n_current_inputs, c.max_delay, c.v_bits, c.i_bits, c.adapt_bits, c.trace_bits,
        c.trace_frac, c.adaptive_threshold, c.stdp, np.ascontiguousarray(core.learning, dtype=np.bool_),
        par, stdp_par, np.ascontiguousarray(core.row_shift, dtype=np.int64), *syn,
        state["v"], state["ie"], state["ii"], state["refrac_count"], state["adapt"],
        state["x_trace"], state["y_trace"], state["ring"], core.step_count.astype(np.int64),
        np.ascontiguousarray(inputs, dtype=np.bool_), np.ascontiguousarray(currents, dtype=np.int64),
        spikes, *(variables[k] for k in
                  ("v", "ie", "ii", "refrac_count", "adapt", "threshold", "x_trace", "y_trace", "weights")),
    )
    # Write the state back into the core, so core.images() (and further runs) see it.
    for name, value in state.items():
        setattr(core, name, value)
    weights = core.weights.copy()
    weights[live] = syn[4]
    core.weights = weights
    core.step_count = core.step_count + steps
    return core.unbatch(CoreRecord(spikes=spikes, variables={k: variables[k] for k in record}))


def run(image: CoreImage, inputs=None, steps=None, currents=None, record=()):
    """Run one image; return (final image, CoreRecord), exactly as ``golden.run``."""
    if not isinstance(image, CoreImage):
        raise GoldenInputError(
            f"run takes one CoreImage, got {type(image).__name__}; use run_batch for a list of images"
        )
    core = GoldenCore(image)
    rec = run_core(core, inputs, steps=steps, currents=currents, record=record, parallel=False)
    return core.images(), rec


def run_batch(images: Sequence[CoreImage], inputs=None, steps=None, currents=None, record=(),
              parallel: bool | None = None):
    """Run B images of one CoreConfig in one compiled call; return (final images, CoreRecord with
    (B, steps, ...)), exactly as ``golden.run_batch``. ``parallel=False`` keeps it on one thread."""
    if isinstance(images, CoreImage):
        raise GoldenInputError("run_batch takes a list of CoreImages; use run for a single image")
    core = GoldenCore(list(images))
    rec = run_core(core, inputs, steps=steps, currents=currents, record=record, parallel=parallel)
    return core.images(), rec
