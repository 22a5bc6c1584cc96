"""Scaling: the map between physical units (mV, nA) and the core's integers, and how it is chosen.

    V  [mV] = v_offset + v_lsb * v_int         (membrane, thresholds, resets, rest)
    dV [mV] = v_lsb * int                      (bias per step, threshold adaptation, analog input)
    I  [nA] = i_lsb * i_int                    (synaptic currents ie, ii and the ring buffer)
    w  [nA] = i_lsb * 2**row_shift[j] * w_int  (weight of a synapse in row j)

``v_lsb`` spreads the voltage window over the whole membrane width (every bit of resolution counts: the
membrane update truncates toward rest by up to one v_lsb per step). ``i_lsb`` is a power of two of 1 nA
when the gain limit allows (weights that are binary fractions, 0.5 or 0.25 nA, are then exact), else
the largest value the gain limit allows.

The two scales are linked: a gain c = P21 i_lsb / v_lsb is at most COEF_MAX / 2**15 (~2), so the
current range i_lsb * smax(i_bits) is at most ~2 smax(i_bits) v_lsb / P21 -- about the voltage window
divided by P21 when i_bits == v_bits. A network whose plausible peak current exceeds that widens the
voltage window (``min_v_lsb_for_current``): a current that moves the membrane by more than the window in
one step could not be represented otherwise.
docs/quantisation.md explains every choice and its error bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spikeforge.compiler.errors import FitError
from spikeforge.core import fixedpoint as fx

#: Firing rate (Hz) used to size the room for threshold adaptation: a neuron firing this fast for long.
ADAPT_SIZING_RATE_HZ = 100.0
#: Irregular firing pushes the adaptation above its regular-train peak; size the room this much larger.
ADAPT_FLUCTUATION = 1.5
#: Least room (in spans of the parameter voltages) kept below the lowest and above the highest threshold.
MIN_ROOM_SPANS = 0.25
#: Fewest membrane steps between the lowest and highest parameter voltage before compiling fails.
MIN_LEVELS_PER_SPAN = 256
#: Smallest current-to-voltage gain the current scale accepts (as a fraction of the largest gain):
#: 1/64 keeps every gain coefficient >= 1024/32768, i.e. its rounding error below 0.05 %.
MIN_GAIN_FRACTION = 1.0 / 64.0
#: The current range is sized to this multiple of the plausible peak current (then no wider: a finer
#: current resolution means less truncation in the decay of the synaptic currents).
CURRENT_HEADROOM = 2.0


@dataclass(frozen=True)
class VoltageChoice:
    """How the voltage window was chosen (kept for the report)."""

    lowest: float  # lowest parameter voltage (rest, reset, threshold, v_init), mV
    highest: float  # highest parameter voltage, mV
    span: float
    below: float  # room kept below ``lowest`` (inhibition, negative drive), mV
    above: float  # room kept above the highest threshold (adaptation, subtract-reset overshoot), mV
    window: tuple[float, float]  # the requested window, mV
    user_range: bool
    widened_for_current: bool = False  # v_lsb was raised so the current range holds the peak current


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


def choose_voltage_scale(
    lowest: float, highest: float, highest_threshold: float, *, below: float, above: float,
    v_bits: int, voltage_range: tuple[float, float] | None = None, min_v_lsb: float = 0.0,
    peak_current: float = 0.0, i_bits: int = 16,
) -> tuple[float, float, VoltageChoice]:
    """Return (v_lsb, v_offset, choice).

    The window is [lowest - room below, max(highest, highest threshold + room above)], each room at
    least MIN_ROOM_SPANS spans (span = highest - lowest, >= 1 mV); the caller sizes the rooms from the
    mechanisms that can take the membrane there (voltage_rooms). v_lsb spreads the window over
    2**v_bits - 2 steps and v_offset centres it: every step of the membrane is worth as little as the
    window allows, because the membrane update truncates up to one v_lsb per step toward rest.
    ``min_v_lsb`` (min_v_lsb_for_current) widens the window when the current range needs it."""
    span = max(highest - lowest, 1.0)
    below = max(below, MIN_ROOM_SPANS * span)
    above = max(above, MIN_ROOM_SPANS * span)
    if voltage_range is not None:
        lo, hi = (float(x) for x in voltage_range)
        user = True
    else:
        lo = lowest - below
        hi = max(highest, highest_threshold + above)
        user = False
    v_lsb = (hi - lo) / (2 ** v_bits - 2)
    v_offset = (lo + hi) / 2.0
    widened = min_v_lsb > v_lsb and not user
    if widened:  # the current range needs a coarser membrane: widen the window around its centre
        v_lsb = min_v_lsb
        if v_lsb > span / MIN_LEVELS_PER_SPAN:
            raise FitError(
                f"the synaptic currents (plausible peak {peak_current:.6g} nA) need a current range that, "
                f"with v_bits = {v_bits} and i_bits = {i_bits}, leaves a membrane step of {v_lsb:.4g} mV -- "
                f"fewer than {MIN_LEVELS_PER_SPAN} steps between rest and threshold ({span:.4g} mV); "
                "use smaller weights, more v_bits or more i_bits"
            )
    choice = VoltageChoice(lowest=lowest, highest=highest, span=span, below=below, above=above,
                           window=(lo, hi), user_range=user, widened_for_current=widened)
    return v_lsb, v_offset, choice


def min_v_lsb_for_current(plausible_current: float, p21_max: float, i_bits: int, max_weight: float = 0.0,
                          weight_bits: int = 8) -> float:
    """The smallest v_lsb whose largest allowed gain (i_lsb <= (COEF_MAX - 0.5)/2**15 * v_lsb / P21)
    still allows an i_lsb with a range holding ``plausible_current`` (i_lsb * smax(i_bits) >= I) and
    with the largest weight reachable by the largest row shift (i_lsb >= w / (smax(weight_bits) 2**15))."""
    need_i = 0.0
    if plausible_current > 0 and np.isfinite(plausible_current):
        need_i = plausible_current / fx.smax(i_bits)
    if max_weight > 0:
        need_i = max(need_i, max_weight / (fx.smax(weight_bits) * 2.0 ** fx.ROW_SHIFT_MAX))
    return need_i * p21_max / ((fx.COEF_MAX - 0.5) / fx.COEF_ONE)


def voltage_rooms(span: float, inhibitory_dip: float, negative_drive_dip: float, analog_input: bool,
                  adapt_equilibrium: float, subtract_overshoot: float) -> tuple[float, float]:
    """(room below the lowest parameter voltage, room above the highest threshold), mV.

    Below: the dip of one volley of all inhibitory synapses (at most 4 spans), the equilibrium of a
    negative i_offset, and one span when analog input (which may be negative) exists. Above: the
    threshold adaptation of a neuron firing at ADAPT_SIZING_RATE_HZ for long (its peak after a spike in a
    regular train, times ADAPT_FLUCTUATION for irregular firing; at most 2 spans) plus, for
    subtract-reset neurons, the largest one-step rise (at most 1 span) -- its excess over the (adapted)
    threshold is carried over the reset. A reset-to-v_reset neuron needs no room above threshold: it spikes
    wherever the membrane clamps."""
    below = max(min(inhibitory_dip, 4.0 * span), min(negative_drive_dip, 4.0 * span),
                span if analog_input else 0.0)
    above = min(ADAPT_FLUCTUATION * adapt_equilibrium, 2.0 * span) + min(subtract_overshoot, span)
    return below, above


def choose_current_scale(
    v_lsb: float, p21_max: float, plausible_current: float, row_max_weights: np.ndarray,
    i_bits: int, weight_bits: int, current_range: float | None = None,
) -> tuple[float, CurrentChoice]:
    """Return (i_lsb, choice).

    Hard limit: the gains c = P21 * i_lsb / v_lsb must fit Q1.15 (<= COEF_MAX / 2**15).
    Then: the range i_lsb * smax(i_bits) is CURRENT_HEADROOM times the plausible peak current -- enough
    not to saturate, and no more, because the synaptic currents decay with truncation (up to one i_lsb
    per step toward zero), so a finer current resolution is a more accurate current; but i_lsb stays
    >= 1/64 of the hard limit (every gain coefficient >= 1024, error < 0.05 %) and large enough that the
    largest weight fits with a row shift of at most 15 (wide i_bits would otherwise make i_lsb tiny).
    Rounded up to a power of two unless that would break the hard limit. A weight row whose largest weight is below
    127 (smax(weight_bits)) current units uses fewer than all its bits; the report shows its error.
    ``current_range`` (nA) replaces the plausible peak when the user knows better."""
    i_gain_max = (fx.COEF_MAX - 0.5) / fx.COEF_ONE * v_lsb / p21_max
    peak = plausible_current if current_range is None else float(current_range)
    i_range_min = peak / fx.smax(i_bits) if peak > 0 else 0.0
    rows = np.asarray(row_max_weights, dtype=float)
    rows = rows[rows > 0]
    i_weight_max = float(rows.min()) / fx.smax(weight_bits) if rows.size else math.inf
    gain_floor = i_gain_max * MIN_GAIN_FRACTION
    if current_range is not None:
        target, limited_by = i_range_min, "current range given by the user"
    else:
        target, limited_by = CURRENT_HEADROOM * i_range_min, "current range (plausible peak current x headroom)"
    if target < gain_floor:
        target, limited_by = gain_floor, "gain coefficient precision"
    # the largest weight must be reachable with the largest row shift: w <= smax(weight_bits) 2**15 i_lsb
    i_shift_min = float(rows.max()) / (fx.smax(weight_bits) * 2.0 ** fx.ROW_SHIFT_MAX) if rows.size else 0.0
    if target < i_shift_min:
        target, limited_by = i_shift_min, "largest weight (row shift at most 15)"
    if target > i_gain_max:
        target, limited_by = i_gain_max, "current-to-voltage gain (Q1.15 coefficient range)"
    i_lsb = pow2_ceil(target)  # up, so the headroom stays at least CURRENT_HEADROOM
    if i_lsb > i_gain_max:
        i_lsb = target  # a power of two would break the gain limit: keep the exact value
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
        if self.voltage is not None:
            out["voltage_room_below_mV"] = self.voltage.below
            out["voltage_room_above_mV"] = self.voltage.above
            out["voltage_window_widened_for_current"] = self.voltage.widened_for_current
        if self.current is not None:
            out["current_scale_limited_by"] = self.current.limited_by
            out["plausible_peak_current_nA"] = self.current.plausible_current
        return out
