"""A small sequential divider by a constant, for bus address decoding.

The memory map addresses synapses as ``row * N + column`` and ring entries as ``(slot*2 + ch) * N + n``;
when N is not a power of two, splitting the address needs a division. The bus is slow (one request
at a time, from a UART or a testbench), so a restoring divider that takes one clock per quotient bit
costs a few dozen LCs instead of a combinational divider's thousands.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class ConstDivider(wiring.Component):
    """``quotient, remainder = dividend // divisors[sel], dividend % divisors[sel]``.

    Pulse ``start`` with ``dividend`` and ``sel`` valid; ``done`` pulses ``width`` cycles later with the
    results (held until the next start).
    """

    def __init__(self, width: int, divisors: tuple[int, ...]):
        if not divisors or min(divisors) < 1:
            raise ValueError(f"ConstDivider: divisors must be >= 1, got {divisors}")
        self.width = width
        self.divisors = tuple(divisors)
        dbits = max(d.bit_length() for d in divisors)
        super().__init__({
            "start": In(1),
            "sel": In(range(max(2, len(divisors)))),
            "dividend": In(width),
            "quotient": Out(width),
            "remainder": Out(dbits),
            "busy": Out(1),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        dbits = self.remainder.shape().width
        divisor = Signal(dbits)
        table = Array(Const(d, dbits) for d in self.divisors)
        shift = Signal(self.width)          # dividend bits still to bring down (MSB first)
        count = Signal(range(self.width + 1))
        rem = Signal(dbits)
        trial = Signal(dbits + 1)
        m.d.comb += trial.eq(Cat(shift[-1], rem))  # (rem << 1) | next dividend bit
        m.d.sync += self.done.eq(0)
        with m.If(self.start):
            m.d.sync += [
                divisor.eq(table[self.sel]), shift.eq(self.dividend), count.eq(self.width),
                rem.eq(0), self.quotient.eq(0), self.busy.eq(1),
            ]
        with m.Elif(self.busy):
            with m.If(trial >= divisor):
                m.d.sync += [rem.eq(trial - divisor), self.quotient.eq((self.quotient << 1) | 1)]
            with m.Else():
                m.d.sync += [rem.eq(trial), self.quotient.eq(self.quotient << 1)]
            m.d.sync += [shift.eq(shift << 1), count.eq(count - 1)]
            with m.If(count == 1):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        m.d.comb += self.remainder.eq(rem)
        return m

