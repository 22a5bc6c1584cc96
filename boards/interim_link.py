"""The interim host bridge: the core's bus and spike streams on a raw UART byte protocol.

For boards too small for the protocol link. The board link proper -- the spikeforge protocol with
CRCs, acknowledgements and K cores behind one UART (``spikeforge.hdl.link.LinkTop``, docs/protocol.md)
-- is the default runtime top level, but at about 4,400 logic cells it does not fit the iCE40 UP5K
next to a core (docs/bitstreams.md). There this bridge (a few hundred cells) lets the whole flow
(synthesis, place and route, timing, reports, caching) run on the real core with a real UART in front
of it, and its builds calibrate the capacity model's estimate of the core's own logic. It drives one
core, has no error detection, and the spikeforge host driver does not speak it; report.json marks a
bitstream built with it (``"link": "interim"``).

Byte protocol (8N1; multi-byte fields little-endian):

    host -> board   0x01 + 8 bytes   bus request (the core's 61-bit bus_req payload)
                    0x02 + 2 bytes   input spike index for the next step
                    0x03             run one timestep
    board -> host   0x81 + 4 bytes   bus response data (one per 0x01)
                    0x82 + 2 bytes   index of a neuron that spiked
                    0x83             the timestep finished
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikeforge.core.config import CoreConfig
from spikeforge.hdl.uart import UartRx, UartTx, uart_divisor

CMD_BUS, CMD_SPIKE, CMD_RUN = 0x01, 0x02, 0x03
REPLY_BUS, REPLY_SPIKE, REPLY_DONE = 0x81, 0x82, 0x83


def neuron_core_class():
    """The Amaranth component of the neuron core (hdl/INTERFACE.md)."""
    try:
        from spikeforge.hdl import NeuronCore
    except ImportError:
        from spikeforge.hdl.core import NeuronCore
    return NeuronCore


class InterimUartLink(wiring.Component):
    """One neuron core behind the raw byte protocol above. Same constructor as the protocol link's
    top level: ``(configs, clk_freq, baud)``; exposes ``uart_rx`` and ``uart_tx``."""

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)

    #: what report.json says about the link of a bitstream built with this top
    LINK_NAME = "interim"

    def __init__(self, configs, clk_freq: float, baud: int = 1_000_000):
        configs = [configs] if isinstance(configs, CoreConfig) else list(configs)
        if len(configs) != 1:
            raise ValueError(f"the interim UART bridge drives exactly one core, got {len(configs)} configs; "
                             "K cores need the protocol link (spikeforge.hdl.link)")
        self.configs = configs
        self.clk_freq = clk_freq
        self.baud = baud
        self.divisor = uart_divisor(clk_freq, baud)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        config = self.configs[0]
        m.submodules.core = core = neuron_core_class()(config)
        m.submodules.rx = rx = UartRx(self.divisor)
        m.submodules.tx = tx = UartTx(self.divisor)
        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx)]

        # ---- host -> board: collect a command and its argument bytes -------------------------
        cmd = Signal(8)
        arg = Signal(64)
        need = Signal(range(9))          # argument bytes still to come
        have_cmd = Signal()
        bus_pending = Signal()
        spike_pending = Signal()
        run_pending = Signal()
        idle_inputs = ~bus_pending & ~spike_pending & ~run_pending
        m.d.comb += rx.data.ready.eq(idle_inputs)
        with m.If(rx.data.valid & rx.data.ready):
            with m.If(~have_cmd):
                m.d.sync += [cmd.eq(rx.data.payload), arg.eq(0)]
                with m.Switch(rx.data.payload):
                    with m.Case(CMD_BUS):
                        m.d.sync += [have_cmd.eq(1), need.eq(8)]
                    with m.Case(CMD_SPIKE):
                        m.d.sync += [have_cmd.eq(1), need.eq(2)]
                    with m.Case(CMD_RUN):
                        m.d.sync += run_pending.eq(1)
                    # any other byte is ignored (resynchronises a confused host)
            with m.Else():
                m.d.sync += [arg.eq(Cat(arg[8:], rx.data.payload)), need.eq(need - 1)]
                with m.If(need == 1):
                    m.d.sync += have_cmd.eq(0)
                    with m.If(cmd == CMD_BUS):
                        m.d.sync += bus_pending.eq(1)
                    with m.Else():
                        m.d.sync += spike_pending.eq(1)

        # bytes arrive LSB first: after n shifts the argument sits in the top n bytes of ``arg``
        bus_word = arg
        spike_word = arg[48:64]
        m.d.comb += [core.bus_req.payload.eq(bus_word[:61]), core.bus_req.valid.eq(bus_pending)]
        with m.If(core.bus_req.valid & core.bus_req.ready):
            m.d.sync += bus_pending.eq(0)
        if config.n_inputs:
            m.d.comb += [core.spike_in.payload.eq(spike_word), core.spike_in.valid.eq(spike_pending)]
            with m.If(core.spike_in.valid & core.spike_in.ready):
                m.d.sync += spike_pending.eq(0)
        else:
            with m.If(spike_pending):
                m.d.sync += spike_pending.eq(0)
        start_ok = run_pending & ~core.busy & ~bus_pending
        m.d.comb += core.start.eq(start_ok)
        step_running = Signal()
        with m.If(start_ok):
            m.d.sync += [run_pending.eq(0), step_running.eq(1)]

        # ---- board -> host: one reply of up to 5 bytes at a time -------------------------------
        out = Signal(40)
        out_left = Signal(range(6))
        m.d.comb += [tx.data.payload.eq(out[:8]), tx.data.valid.eq(out_left != 0)]
        with m.If(tx.data.valid & tx.data.ready):
            m.d.sync += [out.eq(out >> 8), out_left.eq(out_left - 1)]
        free = (out_left == 0)
        done_seen = Signal()
        with m.If(core.done):
            m.d.sync += done_seen.eq(1)
        m.d.comb += [core.bus_resp.ready.eq(free), core.spike_out.ready.eq(free & ~core.bus_resp.valid)]
        with m.If(core.bus_resp.valid & core.bus_resp.ready):
            m.d.sync += [out.eq(Cat(Const(REPLY_BUS, 8), core.bus_resp.payload.data)), out_left.eq(5)]
        with m.Elif(core.spike_out.valid & core.spike_out.ready):
            m.d.sync += [out.eq(Cat(Const(REPLY_SPIKE, 8), core.spike_out.payload[:16])), out_left.eq(3)]
        with m.Elif(free & done_seen & step_running & ~core.spike_out.valid):
            m.d.sync += [out.eq(REPLY_DONE), out_left.eq(1), done_seen.eq(0), step_running.eq(0)]
        return m
