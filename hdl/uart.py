"""8N1 UART receiver and transmitter with ``amaranth.lib.stream`` byte interfaces (the board link's PHY).

``divisor`` is clock cycles per bit (``uart_divisor(clk_hz, baud)``): the link runs at 1 Mbaud by
default and at 3 Mbaud and more on FT2232H-class bridges, so the only constraint is divisor >= 4
(the receiver samples the middle of each bit and needs room for its 2-flip-flop synchroniser).

The one UART of spikeforge: the protocol link (hdl/link.py) and the board tops (boards/standalone.py,
boards/interim_link.py) all use it. The receiver reports framing errors (``error`` pulses on a low
stop bit) and re-arms on the line's falling edge only after a high stop bit, so a break or a glitch
never produces a stream of 0x00 bytes.
"""


from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

MIN_DIVISOR = 4


def uart_divisor(clk_hz: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` from a ``clk_hz`` clock; ValueError when the clock is too slow
    (fewer than MIN_DIVISOR clocks per bit) or the rounding error exceeds 2 % (8N1 tolerates ~4 %
    between both ends together)."""
    if baud <= 0 or clk_hz <= 0:
        raise ValueError(f"baud = {baud} and clk_hz = {clk_hz} must be positive")
    divisor = round(clk_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"a {clk_hz / 1e6:g} MHz clock cannot run a UART at {baud} baud (needs at least "
                         f"{MIN_DIVISOR} clocks per bit); lower the baud rate or raise the clock")
    error = baud_error(clk_hz, baud)
    if abs(error) > 0.02:
        raise ValueError(f"{baud} baud from a {clk_hz / 1e6:g} MHz clock is off by {error:+.1%} (limit 2 %); "
                         "choose a clock that is a closer multiple of the baud rate")
    return divisor


def baud_error(clk_hz: float, baud: int) -> float:
    """Relative error of the baud rate achieved with ``uart_divisor``'s rounding: clk / divisor / baud - 1."""
    return clk_hz / round(clk_hz / baud) / baud - 1


def _check_divisor(divisor: int) -> int:
    if int(divisor) != divisor or divisor < MIN_DIVISOR:
        raise ValueError(f"UART divisor = {divisor}: expected an integer >= {MIN_DIVISOR} clocks per bit")
    return int(divisor)


class UartTx(wiring.Component):
    """Sends each byte taken from ``data``: start bit, 8 data bits LSB first, stop bit, on ``tx``.

    Back-to-back bytes leave without idle time between stop and start bit (full line rate)."""

    data: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        shift = Signal(9)     # data bits then stop bit, still to send after the current bit
        bits = Signal(range(11))  # bits left including the one on the line
        # ready in the last cycle of the stop bit too, so back-to-back bytes leave no idle cycle
        m.d.comb += self.data.ready.eq((bits == 0) | ((bits == 1) & (timer == 0)))
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [self.tx.eq(0), shift.eq(self.data.payload | (1 << 8)), bits.eq(10),
                         timer.eq(self.divisor - 1)]
        with m.Elif(bits == 0):
            pass
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += bits.eq(bits - 1)
            with m.If(bits != 1):
                m.d.sync += [self.tx.eq(shift[0]), shift.eq(shift >> 1), timer.eq(self.divisor - 1)]
            with m.Else():
                m.d.sync += self.tx.eq(1)
        return m


class UartRx(wiring.Component):
    """Receives bytes from ``rx`` into ``data``. A byte not taken before the next one completes is
    replaced (``overrun`` pulses); put a FIFO behind it. ``error`` pulses when a stop bit is low
    (framing error: the byte is dropped)."""

    rx: In(1, init=1)
    data: Out(stream.Signature(8))
    error: Out(1)
    overrun: Out(1)

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        sync1 = Signal(init=1)
        line = Signal(init=1)
        m.d.sync += [sync1.eq(self.rx), line.eq(sync1)]
        timer = Signal(range(d + d // 2 + 1))
        shift = Signal(8)
        bit = Signal(range(10))
        m.d.sync += [self.error.eq(0), self.overrun.eq(0)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):  # start bit: to the middle of data bit 0 (1.5 bits minus the edge)
                    m.d.sync += [bit.eq(0), timer.eq(d + d // 2 - 2)]
                    m.next = "BITS"
            with m.State("BITS"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(bit == 8):  # middle of the stop bit
                    with m.If(line):
                        m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                        m.d.sync += self.overrun.eq(self.data.valid & ~self.data.ready)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.error.eq(1)
                        m.next = "BREAK"
                with m.Else():
                    m.d.sync += [shift.eq((shift >> 1) | (line << 7)), bit.eq(bit + 1), timer.eq(d - 1)]
            with m.State("BREAK"):  # wait for the line to go idle before the next start bit
                with m.If(line):
                    m.next = "IDLE"
        return m
