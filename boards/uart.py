"""A small 8N1 UART (receiver and transmitter) with stream interfaces, for the board tops in boards/.

Used by the standalone top (spike output) and the interim host bridge; the protocol link of
``spikeforge.hdl.link`` brings its own. ``divisor`` is clock cycles per bit: round(clk / baud), so
the achieved baud rate is clk / divisor (``baud_error`` says how far from the request that is).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


def uart_divisor(clk_hz: float, baud: int) -> int:
    """Clock cycles per bit; raises ValueError when the clock is too slow for the baud rate or the
    rounding error would exceed 2 % (8N1 tolerates about 4 % between both ends)."""
    divisor = round(clk_hz / baud)
    if divisor < 4:
        raise ValueError(f"a {clk_hz / 1e6:g} MHz clock cannot run a UART at {baud} baud "
                         "(needs at least 4 clocks per bit); lower the baud rate")
    error = baud_error(clk_hz, baud)
    if abs(error) > 0.02:
        raise ValueError(f"{baud} baud from a {clk_hz / 1e6:g} MHz clock is off by {error:+.1%}; "
                         "choose a clock that is a closer multiple of the baud rate")
    return divisor


def baud_error(clk_hz: float, baud: int) -> float:
    """Relative error of the achieved baud rate."""
    return clk_hz / round(clk_hz / baud) / baud - 1


class UartTx(wiring.Component):
    """Transmits each byte of ``data`` (a stream) on ``tx``: start bit, 8 data bits LSB first, stop bit."""

    data: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor: int):
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        shift = Signal(10)
        bits = Signal(range(11))
        m.d.comb += self.data.ready.eq(bits == 0)
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [shift.eq((self.data.payload << 1) | (1 << 9)), bits.eq(10), timer.eq(0)]
        with m.Elif(bits != 0):
            with m.If(timer == 0):
                m.d.sync += [self.tx.eq(shift[0]), shift.eq(shift >> 1), timer.eq(self.divisor - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 1):
                    m.d.sync += bits.eq(bits - 1)
        return m


class UartRx(wiring.Component):
    """Receives bytes from ``rx`` into ``data`` (a stream; a byte not taken before the next one
    arrives is lost). The input is synchronised with two flip-flops and sampled mid-bit."""

    rx: In(1, init=1)
    data: Out(stream.Signature(8))

    def __init__(self, divisor: int):
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        sync1 = Signal(init=1)
        line = Signal(init=1)
        m.d.sync += [sync1.eq(self.rx), line.eq(sync1)]
        timer = Signal(range(self.divisor + self.divisor // 2 + 1))
        shift = Signal(8)
        bit = Signal(range(10))
        busy = Signal()
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        with m.If(~busy):
            with m.If(~line):  # start bit: wait 1.5 bits to the middle of data bit 0
                m.d.sync += [busy.eq(1), bit.eq(0), timer.eq(self.divisor + self.divisor // 2 - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(bit == 8):  # the stop bit: deliver the byte if the line is high
            m.d.sync += busy.eq(0)
            with m.If(line):
                m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
        with m.Else():
            m.d.sync += [shift.eq((shift >> 1) | (line << 7)), bit.eq(bit + 1), timer.eq(self.divisor - 1)]
        return m
