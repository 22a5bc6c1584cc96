"""Scaling: the map between physical units (mV, nA) and the core's integers, and how it is chosen.

    V  [mV] = v_offset + v_lsb * v_int         (membrane, thresholds, resets, rest)
    dV [mV] = v_lsb * int                      (bias per step, threshold adaptation, analog input)
    I  [nA] = i_lsb * i_int                    (synaptic currents ie, ii and the ring buffer)
    w  [nA] = i_lsb * 2**row_shift[j] * w_int  (weight of a synapse in row j)

``v_lsb`` and ``i_lsb`` are powers of two (of 1 mV, 1 nA): then parameters that are binary fractions
(-65.0, -52.5 mV, 0.25 nA) are represented exactly, and nothing is lost but at most a factor 2 of range.
docs/quantisation.md explains every choice and its error bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spikeforge.core import fixedpoint as fx

#: Firing rate (Hz) used to size the room for threshold adaptation: a neuron firing this fast for long.
ADAPT_SIZING_RATE_HZ = 100.0
#: Smallest current-to-voltage gain the current scale accepts (as a fraction of the largest gain):
#: 1/64 keeps every gain coefficient >= 1024/32768, i.e. its rounding error below 0.05 %.
MIN_GAIN_FRACTION = 1.0 / 64.0


@dataclass(frozen=True)
class VoltageChoice:
    """How the voltage window was chosen (kept for the report)."""

    lowest: float  # lowest parameter voltage (rest, reset, threshold, v_init), mV
    highest: float  # highest parameter voltage, mV
    span: float
    below: float  # room kept below ``lowest`` for inhibition, mV
    adapt_headroom: float  # room kept above the highest threshold for adaptation, mV
    inhibitory_dip: float  # estimated deepest hyperpolarisation by one inhibitory volley, mV
    window: tuple[float, float]  # the requested window, mV
    user_range: bool


@dataclass(frozen=True)
class CurrentChoice:
    """How the current scale was chosen (kept for the report)."""

    i_lsb_gain_max: float  # largest i_lsb whose gains P21 * i_lsb / v_lsb fit Q1.15
    i_lsb_range_min: float  # smallest i_lsb whose range holds the plausible peak current
    i_lsb_weight_max: float  # largest i_lsb that gives every weight row full precision (inf: no weights)
    plausible_current: float  # nA
    limited_by: str


def pow2_ceil(x: float) -> float:
    return 2.0 ** math.ceil(math.log2(x))


def pow2_floor(x: float) -> float:
    return 2.0 ** math.floor(math.log2(x))


def choose_voltage_scale(
    lowest: float, highest: float, highest_threshold: float, adapt_headroom: float,
    inhibitory_dip: float, v_bits: int, voltage_range: tuple[float, float] | None = None,
) -> tuple[float, float, VoltageChoice]:
    """Return (v_lsb, v_offset, choice).

    The window holds every parameter voltage with room: ``span`` = highest - lowest (>= 1 mV);
    below the lowest voltage, room for inhibition = the estimated dip of one inhibitory volley, at least
    one span and at most four; above, one span (overshoot of a subtract-reset neuron, excitation) or the
    threshold plus the adaptation headroom, whichever is higher. v_lsb is the power of two that makes
    the window fit 2**v_bits - 2 steps; v_offset (a multiple of v_lsb) centres it."""
    span = max(highest - lowest, 1.0)
    below = float(np.clip(inhibitory_dip, span, 4.0 * span))
    if voltage_range is not None:
        lo, hi = (float(x) for x in voltage_range)
        user = True
    else:
        lo = lowest - below
        hi = max(highest + span, highest_threshold + adapt_headroom)
        user = False
    steps = 2 ** v_bits - 2
    v_lsb = pow2_ceil((hi - lo) / steps)
    v_offset = round((lo + hi) / 2.0 / v_lsb) * v_lsb
    choice = VoltageChoice(
        lowest=lowest, highest=highest, span=span, below=below, adapt_headroom=adapt_headroom,
        inhibitory_dip=inhibitory_dip, window=(lo, hi), user_range=user,
    )
    return v_lsb, v_offset, choice


def choose_current_scale(
    v_lsb: float, p21_max: float, plausible_current: float, row_max_weights: np.ndarray,
    i_bits: int, weight_bits: int,
) -> tuple[float, CurrentChoice]:
    """Return (i_lsb, choice): a power of two (nA).

    Hard limit: the gains c = P21 * i_lsb / v_lsb must fit Q1.15 (<= COEF_MAX / 2**15).
    Wanted, in order: the plausible peak current fits i_bits (no saturation); every weight row uses the
    full weight_bits (i_lsb <= smallest row maximum / smax(weight_bits)); gains keep >= 1/64 of their
    maximum (coefficient precision); within those, the largest i_lsb (widest current range)."""
    i_gain_max = (fx.COEF_MAX - 0.5) / fx.COEF_ONE * v_lsb / p21_max
    i_range_min = plausible_current / fx.smax(i_bits) if plausible_current > 0 else 0.0
    rows = np.asarray(row_max_weights, dtype=float)
    rows = rows[rows > 0]
    i_weight_max = float(rows.min()) / fx.smax(weight_bits) if rows.size else math.inf
    target, limited_by = i_gain_max, "current-to-voltage gain (Q1.15 coefficient range)"
    if i_weight_max < target:
        target, limited_by = i_weight_max, "weight precision of the row with the smallest weights"
    floor = i_gain_max * MIN_GAIN_FRACTION
    if target < floor:
        target, limited_by = floor, "gain coefficient precision (weights below voltage resolution)"
    if target < i_range_min:
        target, limited_by = min(i_range_min, i_gain_max), "current range (plausible peak current)"
    i_lsb = pow2_floor(target)
    if i_lsb < i_range_min and 2 * i_lsb <= i_gain_max:
        i_lsb *= 2
    choice = CurrentChoice(
        i_lsb_gain_max=i_gain_max, i_lsb_range_min=i_range_min, i_lsb_weight_max=i_weight_max,
        plausible_current=plausible_current, limited_by=limited_by,
    )
    return i_lsb, choice


@dataclass
class Scaling:
    """Physical units <-> core integers for one compiled network (see the module docstring)."""

    dt: float
    v_lsb: float
    v_offset: float
    i_lsb: float
    v_bits: int
    i_bits: int
    weight_bits: int
    trace_frac: int
    row_shift: np.ndarray  # (A + N,) of the CoreImage
    plastic_shift: int | None = None  # the row shift every plastic row shares (None: no STDP)
    voltage: VoltageChoice | None = field(default=None, repr=False)
    current: CurrentChoice | None = field(default=None, repr=False)

    # ---- voltages ---------------------------------------------------------------------------
    def v_to_int(self, mv):
        return np.rint((np.asarray(mv, dtype=float) - self.v_offset) / self.v_lsb).astype(np.int64)

    def v_from_int(self, v_int):
        return self.v_offset + self.v_lsb * np.asarray(v_int, dtype=float)

    def dv_to_int(self, mv):
        """A voltage *difference* (bias step, adaptation, analog input) in v_lsb units."""
        return np.rint(np.asarray(mv, dtype=float) / self.v_lsb).astype(np.int64)

    def dv_from_int(self, v_int):
        return self.v_lsb * np.asarray(v_int, dtype=float)

    @property
    def voltage_window(self) -> tuple[float, float]:
        """The representable membrane range (mV)."""
        return float(self.v_from_int(fx.smin(self.v_bits))), float(self.v_from_int(fx.smax(self.v_bits)))

    # ---- currents and weights ---------------------------------------------------------------
    def i_to_int(self, na):
        return np.rint(np.asarray(na, dtype=float) / self.i_lsb).astype(np.int64)

    def i_from_int(self, i_int):
        return self.i_lsb * np.asarray(i_int, dtype=float)

    @property
    def current_range(self) -> float:
        """Largest representable synaptic current (nA)."""
        return self.i_lsb * fx.smax(self.i_bits)

    def weight_lsb(self, rows=None) -> np.ndarray:
        """nA per weight unit of every (or the given) weight-memory row(s)."""
        shift = self.row_shift if rows is None else self.row_shift[np.asarray(rows)]
        return self.i_lsb * np.exp2(shift.astype(float))

    def weight_from_int(self, w_int, rows) -> np.ndarray:
        """Weights (nA, signed) of the matrix ``w_int`` whose first axis are the weight-memory ``rows``."""
        return np.asarray(w_int, dtype=float) * self.weight_lsb(rows)[:, None]

    @property
    def plastic_lsb(self) -> float | None:
        """nA per weight unit of the plastic rows."""
        return None if self.plastic_shift is None else self.i_lsb * 2.0 ** self.plastic_shift

    @property
    def trace_lsb(self) -> float | None:
        """Weight change (nA) one trace unit causes: plastic_lsb / 2**trace_frac."""
        return None if self.plastic_shift is None else self.plastic_lsb / 2.0 ** self.trace_frac

    def to_dict(self) -> dict:
        lo, hi = self.voltage_window
        out = {
            "dt_ms": self.dt, "v_lsb_mV": self.v_lsb, "v_offset_mV": self.v_offset,
            "voltage_window_mV": [lo, hi], "i_lsb_nA": self.i_lsb, "current_range_nA": self.current_range,
            "row_shift_histogram": {int(s): int(c) for s, c in zip(*np.unique(self.row_shift, return_counts=True))},
            "plastic_shift": self.plastic_shift, "plastic_lsb_nA": self.plastic_lsb, "trace_lsb_nA": self.trace_lsb,
        }
        if self.current is not None:
            out["current_scale_limited_by"] = self.current.limited_by
            out["plausible_peak_current_nA"] = self.current.plausible_current
        return out
