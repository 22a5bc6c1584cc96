"""Fixed-point formats and the three arithmetic primitives of the core (docs/core-spec.md, section 2).

Every integer operation of the core is one of:

- ``rtz(x, f)``   multiply result scaled down by 2**f, rounded toward zero (sign-magnitude truncation);
- ``sat(x, bits)`` clamp to the range of a signed ``bits``-wide integer;
- ``usat(x, bits)`` clamp to the range of an unsigned ``bits``-wide integer;
- ``rnd(x, f)``   non-negative value scaled down by 2**f, rounded half up (trace -> weight step).

They work on Python ints and on NumPy int64 arrays alike.
"""

from __future__ import annotations

import numpy as np

#: Width of every coefficient (decays and current-to-voltage gains): unsigned, Q1.15.
COEF_BITS = 16
#: Fraction bits of every coefficient: real value = integer / 2**COEF_FRAC.
COEF_FRAC = 15
#: Largest coefficient: 65535 / 32768 = 1.99997.
COEF_MAX = (1 << COEF_BITS) - 1
#: The coefficient that means "multiply by exactly 1" (no decay).
COEF_ONE = 1 << COEF_FRAC
#: Width of the per-row weight shift (weight scale 2**shift, shift 0..15).
ROW_SHIFT_BITS = 4
ROW_SHIFT_MAX = (1 << ROW_SHIFT_BITS) - 1


def smin(bits: int) -> int:
    """Smallest value of a signed ``bits``-wide integer."""
    return -(1 << (bits - 1))


def smax(bits: int) -> int:
    """Largest value of a signed ``bits``-wide integer."""
    return (1 << (bits - 1)) - 1


def umax(bits: int) -> int:
    """Largest value of an unsigned ``bits``-wide integer."""
    return (1 << bits) - 1


def sat(x, bits: int):
    """Saturate to a signed ``bits``-wide integer."""
    if isinstance(x, np.ndarray):
        return np.clip(x, smin(bits), smax(bits))
    return min(max(int(x), smin(bits)), smax(bits))


def usat(x, bits: int):
    """Saturate to an unsigned ``bits``-wide integer."""
    if isinstance(x, np.ndarray):
        return np.clip(x, 0, umax(bits))
    return min(max(int(x), 0), umax(bits))


def rtz(x, f: int):
    """``x / 2**f`` rounded toward zero (arithmetic shift of the magnitude)."""
    if isinstance(x, np.ndarray):
        return np.where(x < 0, -((-x) >> f), x >> f)
    x = int(x)
    return -((-x) >> f) if x < 0 else x >> f


def rnd(x, f: int):
    """Non-negative ``x / 2**f`` rounded to nearest, halves up."""
    if f == 0:
        return x
    return (x + (1 << (f - 1))) >> f


def coef(value: float) -> int:
    """The Q1.15 coefficient nearest to ``value`` (clamped to 0 .. COEF_MAX)."""
    return int(min(max(round(float(value) * COEF_ONE), 0), COEF_MAX))


def coef_value(c: int) -> float:
    """The real value a Q1.15 coefficient stands for."""
    return c / COEF_ONE
