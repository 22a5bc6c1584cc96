"""The golden model: docs/core-spec.md as executable NumPy. It *defines* the neuron core.

Readable first: one function per phase of the timestep, in the order the spec gives, over whole
arrays (no Python loop over neurons or synapses). Batch mode runs B images of one CoreConfig with B
input sets in one call, and is exactly B separate runs. The accelerated kernel in
``golden_fast.py`` must agree with this file bit for bit (tests/test_golden_fast.py).

Array shapes inside: a leading batch axis B on everything; S = A + N sources; N neurons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from spikeforge.core import fixedpoint as fx
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage, PROFILE_FIELDS

#: Variables that can be recorded per step, besides spikes.
RECORDABLE = ("v", "ie", "ii", "refrac_count", "adapt", "threshold", "x_trace", "y_trace", "weights")


class GoldenInputError(ValueError):
    """Inputs of the wrong shape or type for the core being run."""


@dataclass
class CoreRecord:
    """What one run recorded. Arrays have shape (steps, ...) for a single run, (B, steps, ...) in batch."""

    spikes: np.ndarray
    variables: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, name):
        return self.spikes if name == "spikes" else self.variables[name]


class GoldenCore:
    """A core (or a batch of B cores sharing one CoreConfig) holding its image as batched arrays."""

    def __init__(self, images: CoreImage | Sequence[CoreImage]):
        self.batched = not isinstance(images, CoreImage)
        images = list(images) if self.batched else [images]
        if not images:
            raise GoldenInputError("batch mode needs at least one CoreImage")
        config = images[0].config
        for k, img in enumerate(images):
            if img.config != config:
                raise GoldenInputError(
                    f"batch image {k} has a different CoreConfig; a batch shares one config"
                )
            img.validate()
        self.config: CoreConfig = config
        self.B = len(images)
        st = lambda name: np.stack([np.asarray(getattr(i, name), dtype=np.int64) for i in images])
        # parameters, expanded per neuron: (B, N)
        self.neuron_profile = st("neuron_profile")
        self.profiles = {f: np.stack([i.profiles[f] for i in images]).astype(np.int64) for f in PROFILE_FIELDS}
        self.stdp = {k: np.array([i.stdp[k] for i in images], dtype=np.int64) for k in images[0].stdp}
        self.row_shift = st("row_shift")
        self.delays = st("delays")
        self.plastic = np.stack([np.asarray(i.plastic, dtype=bool) for i in images])
        # state
        self.weights = st("weights")
        self.v, self.ie, self.ii = st("v"), st("ie"), st("ii")
        self.refrac_count, self.adapt = st("refrac_count"), st("adapt")
        self.x_trace, self.y_trace = st("x_trace"), st("y_trace")
        self.ring = st("ring")
        self.step_count = np.array([int(i.step) for i in images], dtype=np.int64)
        self.learning = np.array([bool(i.learning) for i in images])
        self._expand_profiles()

    def _expand_profiles(self):
        idx = self.neuron_profile
        self.p = {f: np.take_along_axis(self.profiles[f], idx, axis=1) for f in PROFILE_FIELDS}

    # ---- the timestep (docs/core-spec.md, section 4) ----------------------------------------
    def step(self, in_spikes: np.ndarray, currents: np.ndarray | None = None) -> np.ndarray:
        """Advance every core of the batch by one timestep; return the spikes (B, N) of this step.

        ``in_spikes``: (B, A) bool, the external input spikes of this step.
        ``currents``: (B, K) int, the per-step voltage increments of neurons 0..K-1 (or None = 0).
        """
        c = self.config
        p = self.p
        B, N = self.B, c.n_neurons
        u = np.zeros((B, N), dtype=np.int64)
        if c.n_current_inputs and currents is not None:
            u[:, : c.n_current_inputs] = currents

        # Phase 1: membrane update, or refractory countdown.
        refractory = self.refrac_count > 0
        acc = p["c_vdecay"] * (self.v - p["v_rest"]) + p["c_ie"] * self.ie + p["c_ii"] * self.ii
        v_new = fx.sat(fx.rtz(acc, fx.COEF_FRAC) + p["v_rest"] + p["bias"] + u, c.v_bits)
        self.v = np.where(refractory, self.v, v_new)
        self.refrac_count = np.where(refractory, self.refrac_count - 1, self.refrac_count)

        # Phase 2: synaptic currents decay, then this step's arrivals are added; the slot is cleared.
        slot = self.step_count % c.max_delay
        b = np.arange(B)
        arrivals = self.ring[b, slot]  # (B, 2, N)
        self.ie = fx.sat(fx.rtz(p["c_edecay"] * self.ie, fx.COEF_FRAC) + arrivals[:, 0], c.i_bits)
        self.ii = fx.sat(fx.rtz(p["c_idecay"] * self.ii, fx.COEF_FRAC) + arrivals[:, 1], c.i_bits)
        self.ring[b, slot] = 0

        # Phase 3: threshold (with adaptation), spike, reset.
        if c.adaptive_threshold:
            # c_adecay may exceed 1.0 (Q1.15 goes up to 1.99997): saturate so adapt keeps its width
            self.adapt = fx.usat(fx.rtz(p["c_adecay"] * self.adapt, fx.COEF_FRAC), c.adapt_bits)
            threshold = p["v_thresh"] + self.adapt
        else:
            threshold = p["v_thresh"]
        spikes = ~refractory & (self.v >= threshold)
        subtract = p["reset_subtract"] == 1
        v_reset = np.where(subtract, fx.sat(self.v - (threshold - p["v_reset"]), c.v_bits), p["v_reset"])
        self.v = np.where(spikes, v_reset, self.v)
        self.refrac_count = np.where(spikes, p["refrac"], self.refrac_count)
        if c.adaptive_threshold:
            self.adapt = np.where(spikes, fx.usat(self.adapt + p["a_inc"], c.adapt_bits), self.adapt)
        self._threshold = threshold

        pre = np.concatenate([np.asarray(in_spikes, dtype=bool).reshape(B, c.n_inputs), spikes], axis=1)

        # Phases 4-6: trace decay, STDP weight updates, trace increments.
        if c.stdp:
            self._stdp(pre, spikes)

        # Phase 7: delivery of this step's spikes into the delay ring buffer.
        self._deliver(pre)
        self.step_count += 1
        return spikes

    def _stdp(self, pre: np.ndarray, post: np.ndarray):
        c, s = self.config, self.stdp
        # decay coefficients may exceed 1.0: saturate so the traces keep their width
        self.x_trace = fx.usat(fx.rtz(s["c_xdecay"][:, None] * self.x_trace, fx.COEF_FRAC), c.trace_bits)
        self.y_trace = fx.usat(fx.rtz(s["c_ydecay"][:, None] * self.y_trace, fx.COEF_FRAC), c.trace_bits)
        learn = self.learning[:, None, None] & self.plastic
        # potentiation down the column of every neuron that spiked: w += rnd(x_pre), up to w_max
        potentiate = learn & post[:, None, :]
        dx = fx.rnd(self.x_trace, c.trace_frac)[:, :, None]
        self.weights = np.where(
            potentiate, np.minimum(self.weights + dx, s["w_max"][:, None, None]), self.weights
        )
        # depression along the row of every source that spiked: w -= rnd(y_post), down to w_min
        depress = learn & pre[:, :, None]
        dy = fx.rnd(self.y_trace, c.trace_frac)[:, None, :]
        self.weights = np.where(
            depress, np.maximum(self.weights - dy, s["w_min"][:, None, None]), self.weights
        )
        self.x_trace = np.where(pre, fx.usat(self.x_trace + s["x_inc"][:, None], c.trace_bits), self.x_trace)
        self.y_trace = np.where(post, fx.usat(self.y_trace + s["y_inc"][:, None], c.trace_bits), self.y_trace)

    def _deliver(self, pre: np.ndarray):
        c = self.config
        imin, imax = fx.smin(c.i_bits), fx.smax(c.i_bits)
        value = self.weights << self.row_shift[:, :, None]  # (B, S, N) current increments
        active = pre[:, :, None]
        b = np.arange(self.B)
        for d in range(1, c.max_delay + 1):
            routed = active & (self.delays == d)
            exc = np.where(routed & (value > 0), value, 0).sum(axis=1)
            inh = np.where(routed & (value < 0), value, 0).sum(axis=1)
            slot = (self.step_count + d) % c.max_delay
            self.ring[b, slot, 0] = np.minimum(self.ring[b, slot, 0] + exc, imax)
            self.ring[b, slot, 1] = np.maximum(self.ring[b, slot, 1] + inh, imin)

    # ---- running ----------------------------------------------------------------------------
    def run(
        self,
        inputs: np.ndarray | None = None,
        steps: int | None = None,
        currents: np.ndarray | None = None,
        record: Iterable[str] = (),
    ) -> CoreRecord:
        """Run ``steps`` timesteps. Shapes: inputs (steps, A) or (B, steps, A) bool; currents
        (steps, K) or (B, steps, K) int. Returns a CoreRecord with arrays (steps, ...) or (B, steps, ...).
        """
        c = self.config
        record, inputs, currents = self.check_run_arguments(inputs, steps, currents, record)
        steps = inputs.shape[1]
        spikes = np.zeros((self.B, steps, c.n_neurons), dtype=bool)
        variables = {name: np.zeros((self.B, steps, *self.record_shape(name)), dtype=np.int64)
                     for name in record}
        for t in range(steps):
            spikes[:, t] = self.step(inputs[:, t], None if currents is None else currents[:, t])
            for name in record:
                variables[name][:, t] = self._threshold if name == "threshold" else getattr(self, name)
        return self.unbatch(CoreRecord(spikes=spikes, variables=variables))

    def record_shape(self, name: str) -> tuple[int, ...]:
        """Shape of one step of a recorded variable (without the batch and step axes)."""
        c = self.config
        if name == "weights":
            return (c.n_sources, c.n_neurons)
        if name == "x_trace":
            return (c.n_sources,)
        return (c.n_neurons,)

    def unbatch(self, rec: CoreRecord) -> CoreRecord:
        """Drop the batch axis of a record when this core runs a single image."""
        if self.batched:
            return rec
        return CoreRecord(spikes=rec.spikes[0], variables={k: v[0] for k, v in rec.variables.items()})

    def check_run_arguments(self, inputs, steps, currents, record):
        """Check and normalise the arguments of ``run``; shared with the fast kernel (golden_fast.py).

        Returns ``(record, inputs, currents)``: the names to record as a tuple, inputs as a
        (B, steps, A) bool array, currents as a (B, steps, K) int64 array or None when K = 0.
        """
        c = self.config
        record = (record,) if isinstance(record, str) else tuple(record)
        for name in record:
            if name not in RECORDABLE:
                raise GoldenInputError(f"cannot record {name!r}; recordable: {', '.join(RECORDABLE)}")
        if len(set(record)) != len(record):
            raise GoldenInputError(f"record names a variable twice: {record}")
        if steps is not None:
            if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
                raise GoldenInputError(f"steps = {steps!r}: expected an integer >= 0")
            steps = int(steps)
        if inputs is None and steps is None and currents is not None and np.ndim(currents) >= 2:
            steps = np.shape(currents)[-2]  # a core driven by analog inputs only: they set the length
        inputs = self._batch_input(inputs, steps, c.n_inputs, "inputs", bool)
        steps = inputs.shape[1]
        if not c.n_current_inputs:
            if currents is not None and np.asarray(currents).size:
                raise GoldenInputError(
                    "currents given, but the CoreConfig has n_current_inputs = 0; give currents=None "
                    "or build the core with n_current_inputs > 0"
                )
            return record, inputs, None
        currents = self._batch_input(currents, steps, c.n_current_inputs, "currents", np.int64)
        lo, hi = fx.smin(c.v_bits), fx.smax(c.v_bits)
        if currents.size and (currents.min() < lo or currents.max() > hi):
            bad = currents.min() if currents.min() < lo else currents.max()
            raise GoldenInputError(
                f"currents: value {int(bad)} outside {lo} .. {hi} (signed v_bits = {c.v_bits}); "
                "a current input is a per-step voltage increment and must fit the membrane width"
            )
        return record, inputs, currents

    def _batch_input(self, data, steps, width, what, dtype):
        if data is None:
            if steps is None:
                raise GoldenInputError(f"give {what} or the number of steps")
            return np.zeros((self.B, steps, width), dtype=dtype)
        data = np.asarray(data)
        given = data.shape
        if not self.batched:
            data = data[None]
        if data.ndim != 3 or data.shape[0] != self.B or data.shape[2] != width:
            expected = f"(steps, {width})" if not self.batched else f"({self.B}, steps, {width})"
            raise GoldenInputError(f"{what} has shape {given}, expected {expected}")
        if steps is not None and data.shape[1] != steps:
            raise GoldenInputError(f"{what} covers {data.shape[1]} steps, but steps = {steps}")
        if dtype is bool and data.dtype != bool:
            if not np.isin(data, (0, 1)).all():
                raise GoldenInputError(f"{what} must hold spikes as 0/1 or booleans")
        if dtype is not bool and data.dtype.kind not in "iub":
            if data.dtype.kind != "f" or not np.array_equal(data, np.round(data)):
                raise GoldenInputError(
                    f"{what} must hold integers (fixed-point values), got dtype {data.dtype}; "
                    "quantise them first (the compiler converts nA to core units)"
                )
        return data.astype(dtype)

    # ---- results ----------------------------------------------------------------------------
    def images(self, copy: bool = True) -> list[CoreImage] | CoreImage:
        """The current image of every core (state after the steps run so far).

        ``copy=False`` hands out the core's own arrays instead of copies: for a core that is thrown
        away afterwards (as ``run`` and ``run_batch`` do), it saves copying S x N matrices."""
        take = np.copy if copy else (lambda a: a)
        out = []
        arrays = ("neuron_profile", "plastic", "delays", "row_shift", "weights",
                  "v", "ie", "ii", "refrac_count", "adapt", "x_trace", "y_trace", "ring")
        for k in range(self.B):
            # built field by field (not from CoreImage.blank, whose S x N arrays would be thrown away)
            out.append(CoreImage(
                config=self.config,
                profiles={f: take(self.profiles[f][k]) for f in PROFILE_FIELDS},
                stdp={name: int(val[k]) for name, val in self.stdp.items()},
                step=int(self.step_count[k]),
                learning=bool(self.learning[k]),
                **{name: take(getattr(self, name)[k]) for name in arrays},
            ))
        return out if self.batched else out[0]


def run(image: CoreImage, inputs=None, steps=None, currents=None, record=()):
    """Run one image; return (final image, CoreRecord). The input image is not modified."""
    if not isinstance(image, CoreImage):
        raise GoldenInputError(
            f"run takes one CoreImage, got {type(image).__name__}; use run_batch for a list of images"
        )
    core = GoldenCore(image)
    rec = core.run(inputs, steps=steps, currents=currents, record=record)
    return core.images(copy=False), rec


def run_batch(images: Sequence[CoreImage], inputs=None, steps=None, currents=None, record=()):
    """Run B images of one CoreConfig in one call; return (final images, CoreRecord with (B, steps, ...))."""
    if isinstance(images, CoreImage):
        raise GoldenInputError("run_batch takes a list of CoreImages; use run for a single image")
    core = GoldenCore(list(images))
    rec = core.run(inputs, steps=steps, currents=currents, record=record)
    return core.images(copy=False), rec
