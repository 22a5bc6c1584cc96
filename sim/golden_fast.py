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

Batch mode runs the B cores of a batch in one compiled call (or, on several CPU cores, one call per
thread over a slice of the batch; the kernel releases the GIL). The cores of a batch share nothing,
so the result does not depend on the thread count or schedule.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
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
# The state and record arrays, in the order the kernel takes them.
_STATE_ORDER = ("v", "ie", "ii", "refrac_count", "adapt", "x_trace", "y_trace", "ring")
_RECORD_ORDER = ("v", "ie", "ii", "refrac_count", "adapt", "threshold", "x_trace", "y_trace", "weights")


# ---- the arithmetic primitives (spikeforge/core/fixedpoint.py), scalar int64 -------------------
@numba.njit(inline="always", cache=True)
def _rtz(x, f):
    # x / 2**f toward zero, without a branch (so neuron loops vectorise): a negative x is first
    # raised by 2**f - 1, which turns the floor of the arithmetic shift into a ceiling.
    return (x + ((x >> 63) & ((1 << f) - 1))) >> f


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
    u = np.zeros(N, dtype=np.int64)  # this step's analog input; 0 beyond neuron K-1
    pre = np.zeros(S, dtype=np.int64)  # sources that spiked this step (row indices)
    # The neuron phases are written as straight loops with selects instead of branches, so that
    # the compiler vectorises them; each is the per-neuron rule of docs/core-spec.md, section 4.
    for t in range(steps):
        n = step0 + t
        for i in range(K):
            u[i] = currents[t, i]

        # Phase 1: membrane update, or refractory countdown (v uses last step's currents).
        for i in range(N):
            r = rc[i] > 0
            acc = par[_VDECAY, i] * (v[i] - par[_VREST, i]) + par[_CIE, i] * ie[i] + par[_CII, i] * ii[i]
            v_new = _clamp(_rtz(acc, _F) + par[_VREST, i] + par[_BIAS, i] + u[i], vlo, vhi)
            v[i] = v[i] if r else v_new  # v is held while refractory
            rc[i] = rc[i] - 1 if r else rc[i]
            refractory[i] = r

        # Phase 2: currents decay, then this step's arrivals are added; the slot is cleared.
        slot = n % D
        for i in range(N):
            ie[i] = _clamp(_rtz(par[_EDECAY, i] * ie[i], _F) + ring[slot, 0, i], ilo, ihi)
            ii[i] = _clamp(_rtz(par[_IDECAY, i] * ii[i], _F) + ring[slot, 1, i], ilo, ihi)
            ring[slot, 0, i] = 0
            ring[slot, 1, i] = 0

        # Phase 3: threshold (with adaptation), spike, reset.
        if adaptive:
            for i in range(N):
                adapt[i] = _clamp(_rtz(par[_ADECAY, i] * adapt[i], _F), 0, amax)
                threshold[i] = par[_VTHRESH, i] + adapt[i]  # exact, not saturated
        else:
            for i in range(N):
                threshold[i] = par[_VTHRESH, i]
        for i in range(N):
            theta = threshold[i]
            spike = (v[i] >= theta) & ~refractory[i]
            spikes_out[t, i] = spike
            if par[_RESET_SUB, i] == 1:
                v_reset = _clamp(v[i] - (theta - par[_VRESET, i]), vlo, vhi)
            else:
                v_reset = par[_VRESET, i]
            v[i] = v_reset if spike else v[i]
            rc[i] = par[_REFRAC, i] if spike else rc[i]
        if adaptive:
            for i in range(N):
                if spikes_out[t, i]:
                    adapt[i] = _clamp(adapt[i] + par[_AINC, i], 0, amax)

        # The sources that spiked this step: inputs (rows 0..A-1), then neurons (rows A..A+N-1).
        n_pre = 0
        for a in range(A):
            if inputs[t, a]:
                pre[n_pre] = a
                n_pre += 1
        n_in = n_pre
        for i in range(N):
            if spikes_out[t, i]:
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
                        w[p] = min(np.int64(w[p]) + _rnd(xt[src[p]], trace_frac), w_max)
                # Phase 5b: depression along the row of every source that spiked.
                for k in range(n_pre):
                    j = pre[k]
                    for q in range(prow_ptr[j], prow_ptr[j + 1]):
                        p = ppos[q]
                        w[p] = max(np.int64(w[p]) - _rnd(yt[col[p]], trace_frac), w_min)
            # Phase 6: trace increments.
            for k in range(n_pre):
                j = pre[k]
                xt[j] = _clamp(xt[j] + stdp_par[_XINC], 0, tmax)
            for k in range(n_in, n_pre):
                i = pre[k] - A
                yt[i] = _clamp(yt[i] + stdp_par[_YINC], 0, tmax)

        # Phase 7: delivery into the delay ring buffer, only the live synapses of spiking sources.
        # A weight of 0 delivers nothing; the sign picks the channel. Without delays (D = 1) every
        # spike goes to the one slot, which saves the delay lookup in the innermost loop.
        base = n % D
        for k in range(n_pre):
            j = pre[k]
            shift = row_shift[j]
            if D == 1:
                for p in range(row_ptr[j], row_ptr[j + 1]):
                    val = np.int64(w[p]) << shift
                    i = col[p]
                    if val > 0:
                        ring[0, 0, i] = min(ring[0, 0, i] + val, ihi)
                    elif val < 0:
                        ring[0, 1, i] = max(ring[0, 1, i] + val, ilo)
            else:
                for p in range(row_ptr[j], row_ptr[j + 1]):
                    val = np.int64(w[p]) << shift
                    i = col[p]
                    s = base + delay[p]  # (n + delay) mod D without a division: 1 <= delay <= D
                    if s >= D:
                        s -= D
                    if val > 0:
                        ring[s, 0, i] = min(ring[s, 0, i] + val, ihi)
                    elif val < 0:
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
# Arguments travel in tuples: sizes (ints and flags), syn (packed synapses, see _pack_synapses),
# state (per-core state arrays with a leading batch axis), io (inputs, currents, spikes out), rec
# (record arrays; a zero-length step axis means "not recorded").
@numba.njit(cache=True)
def _run_one(b, sizes, learning, par, stdp_par, row_shift, syn, state, io, rec):
    """Run core ``b`` of the batch: its slices of every array through _simulate_core."""
    A, N, K, D, v_bits, i_bits, adapt_bits, trace_bits, trace_frac, adaptive, stdp = sizes
    row_ptr, col, delay, src, w, prow_ptr, ppos, pcol_ptr, pcpos = syn
    v, ie, ii, rc, adapt, xt, yt, ring, step0 = state
    inputs, currents, spikes = io
    rec_v, rec_ie, rec_ii, rec_rc, rec_adapt, rec_thr, rec_x, rec_y, rec_w = rec
    _simulate_core(
        A, N, K, D, v_bits, i_bits, adapt_bits, trace_bits, trace_frac, adaptive, stdp, learning[b],
        par[b], stdp_par[b], row_shift[b], row_ptr[b], col, delay, src, w,
        prow_ptr[b], ppos, pcol_ptr[b], pcpos,
        v[b], ie[b], ii[b], rc[b], adapt[b], xt[b], yt[b], ring[b], step0[b],
        inputs[b], currents[b], spikes[b],
        rec_v[b], rec_ie[b], rec_ii[b], rec_rc[b], rec_adapt[b], rec_thr[b], rec_x[b], rec_y[b], rec_w[b],
    )


# The driver: a loop over the cores of a batch (or of a slice of it). It releases the GIL, so run_core
# runs slices of a large batch on several Python threads at once; each core writes only its own
# slices of the arrays, so the result does not depend on the threads. (Threads calling this one
# compiled function rather than numba.prange: prange would compile a second, parallel kernel, which
# costs as long again on the first call.)
@numba.njit(cache=True, nogil=True)
def _run_serial(sizes, learning, par, stdp_par, row_shift, syn, state, io, rec):
    for b in range(learning.shape[0]):
        _run_one(b, sizes, learning, par, stdp_par, row_shift, syn, state, io, rec)


def _run_threaded(threads, sizes, learning, par, stdp_par, row_shift, syn, state, io, rec):
    """Run the batch in chunks of cores on ``threads`` threads (about four chunks per thread, so that
    busy and quiet cores even out)."""
    B = learning.shape[0]
    chunk = max(1, -(-B // (4 * threads)))

    def part(lo):
        hi = min(B, lo + chunk)
        cut = lambda arrays: tuple(a[lo:hi] for a in arrays)
        row_ptr, col, delay, src, w, prow_ptr, ppos, pcol_ptr, pcpos = syn
        # the flat synapse arrays are shared: the row pointers of cores lo..hi-1 point into them
        syn_part = (row_ptr[lo:hi], col, delay, src, w, prow_ptr[lo:hi], ppos, pcol_ptr[lo:hi], pcpos)
        _run_serial(sizes, learning[lo:hi], par[lo:hi], stdp_par[lo:hi], row_shift[lo:hi], syn_part,
                    cut(state), cut(io), cut(rec))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for done in [pool.submit(part, lo) for lo in range(0, B, chunk)]:
            done.result()  # re-raises an error of any chunk


# ---- packing: GoldenCore's batched arrays -> kernel arrays -----------------------------------
@numba.njit(cache=True)
def _pack_synapses(weights, plastic, delays):
    """Compressed rows of the live synapses (weight != 0 or plastic) of every core of a batch.

    Two passes over the dense (B, S, N) matrices: count, then fill. Positions index flat arrays over
    the whole batch (core b's row pointers point into its own range), so the kernel needs no per-core
    offsets. Plastic synapses are listed again by row (``prow_ptr``, ``ppos``) and by column
    (``pcol_ptr``, ``pcpos``) as positions into the live arrays: depression walks rows, potentiation
    columns.
    """
    B, S, N = weights.shape
    row_ptr = np.zeros((B, S + 1), dtype=np.int64)
    prow_ptr = np.zeros((B, S + 1), dtype=np.int64)
    pcol_ptr = np.zeros((B, N + 1), dtype=np.int64)
    col_count = np.zeros((B, N), dtype=np.int64)
    nnz = 0
    n_plastic = 0
    for b in range(B):
        for j in range(S):
            row_ptr[b, j] = nnz
            prow_ptr[b, j] = n_plastic
            for i in range(N):
                if plastic[b, j, i]:
                    n_plastic += 1
                    nnz += 1
                    col_count[b, i] += 1
                elif weights[b, j, i] != 0:
                    nnz += 1
        row_ptr[b, S] = nnz
        prow_ptr[b, S] = n_plastic
    # Addresses as unsigned 32-bit (unsigned indices spare numba's negative-index check), weights
    # stored as int32 (a weight has at most 16 bits; STDP clamps it to w_min..w_max) and widened to
    # int64 for every computation.
    col = np.empty(nnz, dtype=np.uint32)
    src = np.empty(nnz, dtype=np.uint32)
    delay = np.empty(nnz, dtype=np.uint32)
    w = np.empty(nnz, dtype=np.int32)
    ppos = np.empty(n_plastic, dtype=np.int64)
    pcpos = np.empty(n_plastic, dtype=np.int64)
    base = 0
    for b in range(B):
        for i in range(N):
            pcol_ptr[b, i] = base
            base += col_count[b, i]
        pcol_ptr[b, N] = base
    p = 0
    q = 0
    for b in range(B):
        cursor = pcol_ptr[b, :N].copy()
        for j in range(S):
            for i in range(N):
                if plastic[b, j, i] or weights[b, j, i] != 0:
                    col[p] = i
                    src[p] = j
                    delay[p] = delays[b, j, i]
                    w[p] = weights[b, j, i]
                    if plastic[b, j, i]:
                        ppos[q] = p
                        q += 1
                        pcpos[cursor[i]] = p
                        cursor[i] += 1
                    p += 1
    return row_ptr, col, delay, src, w, prow_ptr, ppos, pcol_ptr, pcpos


@numba.njit(cache=True)
def _unpack_weights(weights, row_ptr, col, w):
    """Write the live synapses' weights back into the dense (B, S, N) matrix (the others stay 0)."""
    B, S, _ = weights.shape
    for b in range(B):
        for j in range(S):
            for p in range(row_ptr[b, j], row_ptr[b, j + 1]):
                weights[b, j, col[p]] = w[p]


def run_core(core: GoldenCore, inputs=None, steps=None, currents=None, record=(),
             parallel: bool | None = None) -> CoreRecord:
    """Advance a GoldenCore with the compiled kernel: the same effect as ``core.run(...)``.

    ``parallel`` spreads the cores of a batch over one thread per CPU core (default: when the batch
    has more than one image). The result never depends on it.
    """
    c = core.config
    record, inputs, currents = core.check_run_arguments(inputs, steps, currents, record)
    B, steps = inputs.shape[0], inputs.shape[1]
    N = c.n_neurons
    if currents is None:
        currents = np.zeros((B, steps, 0), dtype=np.int64)
    syn = _pack_synapses(np.ascontiguousarray(core.weights, dtype=np.int64),
                         np.ascontiguousarray(core.plastic, dtype=np.bool_),
                         np.ascontiguousarray(core.delays, dtype=np.int64))
    par = np.ascontiguousarray(np.stack([core.p[f] for f in PROFILE_FIELDS], axis=1), dtype=np.int64)
    stdp_par = np.ascontiguousarray(np.stack([core.stdp[k] for k in _STDP_ORDER], axis=1), dtype=np.int64)

    def rec(name):
        shape = core.record_shape(name)
        return np.zeros((B, steps if name in record else 0, *shape), dtype=np.int64)

    variables = {name: rec(name) for name in _RECORD_ORDER}
    spikes = np.zeros((B, steps, N), dtype=np.bool_)
    # The kernel updates the state in place; the core's own arrays are used (no copy when they are
    # already contiguous int64) and written back, so core.images() and further runs see the result.
    state = {name: np.ascontiguousarray(getattr(core, name), dtype=np.int64) for name in _STATE_ORDER}
    threads = min(B, os.cpu_count() or 1) if (B > 1 if parallel is None else parallel) else 1
    sizes = (c.n_inputs, N, c.n_current_inputs, c.max_delay, c.v_bits, c.i_bits, c.adapt_bits, c.trace_bits,
             c.trace_frac, c.adaptive_threshold, c.stdp)
    args = (
        sizes, np.ascontiguousarray(core.learning, dtype=np.bool_), par, stdp_par,
        np.ascontiguousarray(core.row_shift, dtype=np.int64), syn,
        tuple(state[name] for name in _STATE_ORDER) + (core.step_count.astype(np.int64),),
        (np.ascontiguousarray(inputs, dtype=np.bool_), np.ascontiguousarray(currents, dtype=np.int64), spikes),
        tuple(variables[k] for k in _RECORD_ORDER),
    )
    if threads > 1:
        _run_threaded(threads, *args)
    else:
        _run_serial(*args)
    for name, value in state.items():
        setattr(core, name, value)
    if c.stdp and core.learning.any() and syn[6].size:  # only plastic synapses ever change
        core.weights = np.ascontiguousarray(core.weights, dtype=np.int64)
        _unpack_weights(core.weights, syn[0], syn[1], syn[4])
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
    return core.images(copy=False), rec


def run_batch(images: Sequence[CoreImage], inputs=None, steps=None, currents=None, record=(),
              parallel: bool | None = None):
    """Run B images of one CoreConfig in one compiled call; return (final images, CoreRecord with
    (B, steps, ...)), exactly as ``golden.run_batch``. ``parallel=False`` keeps it on one thread."""
    if isinstance(images, CoreImage):
        raise GoldenInputError("run_batch takes a list of CoreImages; use run for a single image")
    core = GoldenCore(list(images))
    rec = run_core(core, inputs, steps=steps, currents=currents, record=record, parallel=parallel)
    return core.images(copy=False), rec
