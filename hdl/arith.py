"""Integer primitives of the core as Amaranth expressions: the hardware twins of core/fixedpoint.py.

Every function builds combinational logic from Amaranth values and returns a value with an exact,
documented width, so the datapath in core.py reads like the golden model.

The coefficient products are the only multiplies of the core. A coefficient is a 16-bit *unsigned*
Q1.15 number and the operand (membrane difference, current, trace) is usually *signed*; a mixed
multiply would become a 17 x 17 signed multiply, too wide for one iCE40 SB_MAC16 (16 x 16). So a
signed operand ``x`` of width w is split into its low w-1 bits (unsigned) and its sign bit:
``c * x = c * x[:w-1] - (x[w-1] ? c << (w-1) : 0)``. The first term is an unsigned 16 x (w-1)
multiply (one DSP for w <= 17), the second a shifted subtraction (see :func:`split_signed_product`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Value


def smin(bits: int) -> int:
    return -(1 << (bits - 1))


def smax(bits: int) -> int:
    return (1 << (bits - 1)) - 1


def umax(bits: int) -> int:
    return (1 << bits) - 1


def sat(x: Value, bits: int) -> Value:
    """Clamp a signed value to a signed ``bits``-wide integer; result is ``signed(bits)``.

    Overflow is read off the bits above the result (they must all equal its sign bit), which costs a
    few LUTs instead of two full-width comparators.
    """
    x = Value.cast(x)
    if not x.shape().signed:
        x = Cat(x, Const(0, 1)).as_signed()
    if x.shape().width <= bits:
        return x
    top = x[bits - 1:]
    fits = ~top.any() | top.all()
    return Mux(fits, x[:bits], Mux(x[-1], smin(bits), smax(bits)))[:bits].as_signed()


def wrap(x: Value, bits: int) -> Value:
    """Two's-complement wrap to ``bits`` (what a missing saturation does)."""
    return Value.cast(x)[:bits].as_signed()


def usat(x: Value, bits: int) -> Value:
    """Clamp a value to an unsigned ``bits``-wide integer; result is ``unsigned(bits)``."""
    x = Value.cast(x)
    signed_x = x.shape().signed
    width = x.shape().width - (1 if signed_x else 0)   # magnitude bits of a non-negative x
    if width <= bits:
        return Mux(x[-1], 0, x[:bits])[:bits] if signed_x else x
    over = x[bits:width].any()
    clamped = Mux(over, umax(bits), x[:bits])
    if signed_x:
        clamped = Mux(x[-1], 0, clamped)
    return clamped[:bits]


def rtz(x: Value, f: int) -> Value:
    """``x / 2**f`` rounded toward zero: add 2**f - 1 to negative values before the arithmetic shift."""
    x = Value.cast(x)
    if not x.shape().signed:
        return x >> f
    return (x + Mux(x[-1], (1 << f) - 1, 0)) >> f


def rnd(x: Value, f: int) -> Value:
    """Non-negative ``x / 2**f`` rounded half up."""
    x = Value.cast(x)
    if f == 0:
        return x
    return (x + (1 << (f - 1))) >> f


def split_operand(x: Value):
    """Split a signed operand for :func:`split_signed_product`: (unsigned low bits, sign bit, w)."""
    x = Value.cast(x)
    w = x.shape().width
    if not x.shape().signed:
        return x, Const(0, 1), w + 1
    return x[: w - 1], x[w - 1], w


def correction(coef: Value, sign: Value, w: int) -> Value:
    """The term subtracted from ``coef * low`` when the operand is negative: ``coef << (w-1)``."""
    return Mux(sign, Value.cast(coef) << (w - 1), 0)


def const_mul(x: Value, k: int) -> Value:
    """``x * k`` for a constant ``k`` as shifts and adds, so synthesis spends no DSP on it."""
    x = Value.cast(x)
    if k == 0:
        return Const(0, 1)
    terms = [x << b for b in range(k.bit_length()) if (k >> b) & 1]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def index_concat(high: Value, k: int, low: Value) -> Value:
    """``high * k + low`` for ``0 <= low < k``: a plain concatenation when k is a power of two
    (no adder), shifts and adds otherwise."""
    if k & (k - 1) == 0:
        bits = k.bit_length() - 1
        return Cat(Value.cast(low)[:bits], high) if bits else Value.cast(high)
    return const_mul(high, k) + low
