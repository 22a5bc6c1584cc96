"""The board level: oscillator -> PLL -> ``sync`` clock domain with a power-on reset, UART pins, LEDs,
and the design in the middle.

The design is a parameter. Anything with ``uart_rx`` (in, 1) and ``uart_tx`` (out, 1) signals fits:
the protocol link's top level (``spikeforge.hdl.link.LinkTop``), the interim bridge, the standalone top. If it
also has ``leds`` (out, n), they drive the board's LEDs. ``TopFactory`` is the constructor shape the
flow calls once the PLL has fixed the real clock: ``factory(configs, clk_freq, baud)``.
"""

from __future__ import annotations

from typing import Callable, Protocol

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Module, ResetSignal, Signal
from amaranth.lib import io

from spikeforge.boards.catalog import Board
from spikeforge.boards.pll import PllSolution, pll_instance


class TopFactory(Protocol):
    def __call__(self, configs: list, clk_freq: float, baud: int) -> Elaboratable: ...


#: iCE40 block RAM reads zero for ~3 us after configuration; Amaranth's own iCE40 platform holds the
#: design in reset for 15 us for this reason. Every family gets the same hold after PLL lock.
POWER_ON_RESET_S = 15e-6


def uart_pins_of(design) -> tuple[Signal, Signal]:
    """The (rx, tx) signals of a design: ``uart_rx``/``uart_tx``, or ``rx``/``tx``, or ``uart.rx``/``uart.tx``."""
    for rx_name, tx_name in (("uart_rx", "uart_tx"), ("rx", "tx")):
        rx, tx = getattr(design, rx_name, None), getattr(design, tx_name, None)
        if rx is not None and tx is not None:
            return rx, tx
    uart = getattr(design, "uart", None)
    if uart is not None and hasattr(uart, "rx") and hasattr(uart, "tx"):
        return uart.rx, uart.tx
    raise TypeError(
        f"{type(design).__name__} has no UART pins: the board top needs attributes uart_rx (in, 1) and "
        "uart_tx (out, 1) (or rx/tx, or uart.rx/uart.tx)"
    )


class BoardTop(Elaboratable):
    """``design`` on ``board``, clocked by the PLL setting ``pll`` (already solved for the board's
    oscillator), so ``pll.achieved_hz`` is the frequency the design was built for."""

    def __init__(self, board: Board, pll: PllSolution, design: Elaboratable):
        self.board = board
        self.pll = pll
        self.design = design
        try:
            uart_pins_of(design)  # fail early, with the message above
        except TypeError:
            self._MustUse__silence = True
            raise

    def elaborate(self, platform):
        m = Module()
        board = self.board
        pad = platform.request(board.clock_resource, dir="-")
        clk_out, locked = Signal(), Signal()
        if self.pll.primitive == "SB_PLL40_PAD":
            clk_in = pad.io
        else:
            m.submodules.clk_in_buf = buf = io.Buffer("i", pad)
            clk_in = buf.i
        m.submodules.pll = pll_instance(self.pll, clk_in, clk_out, locked)

        # power-on reset: held while the PLL is unlocked and POWER_ON_RESET_S after lock
        m.domains.sync = ClockDomain("sync")
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        m.d.comb += [ClockSignal("sync").eq(clk_out), ClockSignal("por").eq(clk_out)]
        hold = max(2, int(POWER_ON_RESET_S * self.pll.achieved_hz))
        timer = Signal(range(hold + 1))
        with m.If(~locked):
            m.d.por += timer.eq(0)
        with m.Elif(timer != hold):
            m.d.por += timer.eq(timer + 1)
        m.d.comb += ResetSignal("sync").eq(timer != hold)
        # No constraint on clk_out: nextpnr and Vivado derive the PLL output clock from the board
        # clock's constraint and the divider settings (the report checks the derived target).

        m.submodules.design = design = self.design
        rx, tx = uart_pins_of(design)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [rx.eq(rx_buf.i), tx_buf.o.eq(tx)]
        leds = getattr(design, "leds", None)
        if leds is not None:
            for k in range(min(len(leds), board.leds)):
                m.submodules[f"led{k}"] = led = io.Buffer("o", platform.request("led", k, dir="-"))
                m.d.comb += led.o.eq(leds[k])
        return m


def design_factory(name: str) -> Callable:
    """The top-level constructor for a runtime-loaded bitstream.

    ``"link"`` (and ``"auto"``, which ``boards.flow.choose_core`` resolves to link or bridge first): the
    protocol link (``spikeforge.hdl.link.LinkTop``: docs/protocol.md runs in the FPGA); ``"bridge"``:
    the bus bridge (``spikeforge.hdl.bus_bridge.BusBridge``: the core's own interface on a CRC-checked
    UART protocol, the board protocol served by the host -- for boards too small for the link, the iCE40
    UP5K: docs/bus-bridge.md); ``"interim"``: the raw, unchecked bus bridge (boards/interim_link.py) the
    capacity model's calibration builds use to measure the core alone."""
    if name in ("link", "auto"):
        from spikeforge.hdl.link import LinkTop

        return LinkTop
    if name == "bridge":
        from spikeforge.hdl.bus_bridge import BusBridge

        return BusBridge
    if name == "interim":
        from spikeforge.boards.interim_link import InterimUartLink

        return InterimUartLink
    raise ValueError(f"unknown top {name!r}; choose auto, link, bridge or interim")


def link_name(design) -> str:
    """How report.json names the host link of a design."""
    return getattr(design, "LINK_NAME", None) or type(design).__module__ + "." + type(design).__name__
