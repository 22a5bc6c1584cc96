"""The bus bridge: one neuron core's own interface on a CRC-checked UART byte protocol.

The runtime top level for boards too small for the protocol link (``spikeforge.hdl.link.LinkTop``),
i.e. the iCE40 UP5K of the iCEBreaker: about 400 logic cells instead of about 4,000. Every command of
docs/protocol.md still exists -- the host runs them (``spikeforge.host.bridged_board``) and reaches
the core through this bridge. The protocol (frames, CRC-16, NAKs, the spike count that makes a RUN
safe to retry) is ``spikeforge.core.bridge_protocol``; read its docstring first.

A byte's path: ``UartRx`` -> a ``SyncFIFOBuffered`` (one block RAM: the host may send up to
``fifo_depth`` bytes ahead, e.g. a burst of bus writes, while the bridge works) -> the command
parser (opcode, payload, CRC through an ``amaranth.lib.crc.Processor`` whose residue says whether the
frame is intact) -> the core -> the reply sender (a 5-byte shift register, a second CRC processor
over what it sends) -> ``UartTx``.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import crc, fifo, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.core import bridge_protocol as B
from spikeforge.core.config import CoreConfig
from spikeforge.hdl.uart import UartRx, UartTx, uart_divisor


def _neuron_core_class():
    from spikeforge.hdl.core import NeuronCore

    return NeuronCore


class BusBridge(wiring.Component):
    """One neuron core behind the bus-bridge protocol.

    Same constructor as the protocol link's top level, ``(configs, clk_freq, baud)`` (a list of one
    CoreConfig or a CoreConfig); ``divisor`` overrides the UART clocks per bit (simulation);
    ``fifo_depth``: receive buffer in bytes (512 = one iCE40 block RAM). Ports ``uart_rx``, ``uart_tx``
    and ``idle`` (no byte buffered, being parsed, executed or sent; for testbenches)."""

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)
    idle: Out(1)

    #: what report.json says about the link of a bitstream built with this top
    LINK_NAME = "bus bridge: spikeforge.hdl.bus_bridge.BusBridge (protocol served by the host)"

    def __init__(self, configs, clk_freq: float = 12_000_000, baud: int = 1_000_000, *,
                 divisor: int | None = None, fifo_depth: int = 512, core_factory=None):
        configs = [configs] if isinstance(configs, CoreConfig) else list(configs)
        if len(configs) != 1 or not isinstance(configs[0], CoreConfig):
            raise ValueError(f"the bus bridge drives exactly one core (one CoreConfig), got {len(configs)}; "
                             "K cores need the protocol link (spikeforge.hdl.link.LinkTop)")
        if fifo_depth < 16 or fifo_depth & (fifo_depth - 1):
            raise ValueError(f"fifo_depth = {fifo_depth}: expected a power of two >= 16 bytes")
        self.configs = configs
        self.clk_freq = clk_freq
        self.baud = baud
        self.divisor = uart_divisor(clk_freq, baud) if divisor is None else int(divisor)
        if self.divisor >= 1 << 16:
            raise ValueError(f"UART divisor {self.divisor} does not fit HELLO's 16 bits: raise the baud rate")
        self.fifo_depth = fifo_depth
        self.core_factory = core_factory or _neuron_core_class()
        super().__init__()

    def own_memories(self) -> list[tuple[str, int, int]]:
        """(name, depth, width) of the bridge's own memories (the capacity model places them)."""
        return [("rx_fifo", self.fifo_depth, 8)]

    def elaborate(self, platform):
        m = Module()
        config = self.configs[0]
        m.submodules.core = core = self.core_factory(config)
        m.submodules.rx = rx = UartRx(self.divisor)
        m.submodules.tx = tx = UartTx(self.divisor)
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=self.fifo_depth)
        m.submodules.rx_crc = rx_crc = crc.Processor(B.amaranth_crc_algorithm()(data_width=8))
        m.submodules.tx_crc = tx_crc = crc.Processor(B.amaranth_crc_algorithm()(data_width=8))
        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx)]
        wiring.connect(m, rx.data, rx_fifo.w_stream)

        # ---- parser: opcode, payload, CRC, then execute ---------------------------------------
        byte = rx_fifo.r_stream.payload
        take = rx_fifo.r_stream.valid & rx_fifo.r_stream.ready
        m.d.comb += rx_crc.data.eq(byte)
        op = Signal(8)
        arg = Signal(64)                 # payload bytes shift in from the top (little-endian)
        need = Signal(range(B.BUS_REQUEST_BYTES + 1))
        spikes_in = Signal(16)           # SPIKE frames accepted since the last RUN
        bus_inflight = Signal()          # a bus request taken whose response is not yet sent on
        step_running = Signal()          # start given, DONE not yet queued
        msg_pending = Signal()           # a HELLO_REPLY / NAK waiting for the sender
        halted = Signal()                # a NAK was sent: frames are dropped until a HELLO
        msg = Signal(32)
        word16 = arg[48:64]

        def queue_message(opcode, b1, value16):
            m.d.sync += [msg_pending.eq(1), msg.eq(Cat(Const(opcode, 8), Const(b1, 8) if isinstance(b1, int) else b1,
                                                       value16))]

        with m.FSM(name="parser") as parser:
            with m.State("OP"):
                m.d.comb += rx_fifo.r_stream.ready.eq(1)
                with m.If(take):
                    m.d.sync += op.eq(byte)
                    with m.Switch(byte):
                        for cmd, size in B.COMMAND_PAYLOAD.items():
                            with m.Case(cmd):
                                m.d.comb += [rx_crc.start.eq(1), rx_crc.valid.eq(1)]
                                m.d.sync += need.eq(size)
                                m.next = "ARG" if size else "CRC_HI"
                        # any other byte is not a frame start (FLUSH zeros, noise): ignored
            with m.State("ARG"):
                m.d.comb += [rx_fifo.r_stream.ready.eq(1), rx_crc.valid.eq(take)]
                with m.If(take):
                    m.d.sync += [arg.eq(Cat(arg[8:], byte)), need.eq(need - 1)]
                    with m.If(need == 1):
                        m.next = "CRC_HI"
            with m.State("CRC_HI"):
                m.d.comb += [rx_fifo.r_stream.ready.eq(1), rx_crc.valid.eq(take)]
                with m.If(take):
                    m.next = "CRC_LO"
            with m.State("CRC_LO"):
                m.d.comb += [rx_fifo.r_stream.ready.eq(1), rx_crc.valid.eq(take)]
                with m.If(take):
                    m.next = "CHECK"
            with m.State("CHECK"):   # the residue is in the CRC register one clock after the last byte
                with m.If(halted):   # after a NAK only an intact HELLO counts (no NAK storms)
                    m.next = "OP"
                    with m.If(rx_crc.match_detected & (op == B.Cmd.HELLO)):
                        m.next = "HELLO"
                with m.Elif(~rx_crc.match_detected):
                    m.next = "NAK_CRC"
                with m.Else():
                    with m.Switch(op):
                        with m.Case(B.Cmd.BUS):
                            m.next = "BUS"
                        with m.Case(B.Cmd.SPIKE):
                            m.next = "SPIKE"
                        with m.Case(B.Cmd.RUN):
                            m.next = "RUN"
                        with m.Default():
                            m.next = "HELLO"
            with m.State("NAK_CRC"):
                with m.If(~msg_pending):
                    queue_message(B.Reply.NAK, B.Nak.BAD_CRC, Cat(op, Const(0, 8)))
                    m.d.sync += halted.eq(1)
                    m.next = "OP"
            with m.State("HELLO"):
                with m.If(~msg_pending):
                    queue_message(B.Reply.HELLO_REPLY, B.VERSION, Const(self.divisor, 16))
                    m.d.sync += [halted.eq(0), spikes_in.eq(0)]
                    m.next = "OP"
            with m.State("BUS"):
                m.d.comb += [core.bus_req.payload.eq(arg[:B.BUS_REQUEST_BITS]), core.bus_req.valid.eq(1)]
                with m.If(core.bus_req.ready):
                    m.d.sync += bus_inflight.eq(1)
                    m.next = "OP"
            with m.State("SPIKE"):
                if config.n_inputs:
                    m.d.comb += [core.spike_in.payload.eq(word16), core.spike_in.valid.eq(1)]
                    accepted = core.spike_in.ready
                else:
                    accepted = Const(1)
                with m.If(accepted):
                    m.d.sync += spikes_in.eq(spikes_in + 1)
                    m.next = "OP"
            with m.State("RUN"):
                with m.If(word16 != spikes_in):
                    with m.If(~msg_pending):
                        queue_message(B.Reply.NAK, B.Nak.SPIKE_COUNT, spikes_in)
                        m.d.sync += [spikes_in.eq(0), halted.eq(1)]
                        m.next = "OP"
                with m.Elif(~core.busy & ~bus_inflight & ~step_running):
                    m.d.comb += core.start.eq(1)
                    m.d.sync += [spikes_in.eq(0), step_running.eq(1)]
                    m.next = "OP"

        # ---- sender: one reply at a time, CRC-16 over each reply (over a whole step for spikes) ----
        out = Signal(40)
        out_left = Signal(range(6))
        crc_after = Signal()
        fresh = Signal()                 # the next byte sent starts a new CRC span
        first_of_step = Signal()
        spikes_out = Signal(16)
        done_seen = Signal()
        sent = tx.data.valid & tx.data.ready
        m.d.comb += [tx_crc.data.eq(tx.data.payload)]
        with m.If(core.done):
            m.d.sync += done_seen.eq(1)
        with m.If(core.start):
            m.d.sync += [first_of_step.eq(1), spikes_out.eq(0)]

        def load(payload, nbytes, *, with_crc, starts_span):
            m.d.sync += [out.eq(payload), out_left.eq(nbytes), crc_after.eq(with_crc), fresh.eq(starts_span)]
            m.next = "BYTES"

        with m.FSM(name="sender") as sender:
            with m.State("IDLE"):
                m.d.comb += [core.bus_resp.ready.eq(1), core.spike_out.ready.eq(~core.bus_resp.valid)]
                with m.If(core.bus_resp.valid):
                    m.d.sync += bus_inflight.eq(0)
                    load(Cat(Const(B.Reply.BUS_REPLY, 8), core.bus_resp.payload), 5, with_crc=1, starts_span=1)
                with m.Elif(core.spike_out.valid):
                    m.d.sync += [first_of_step.eq(0), spikes_out.eq(spikes_out + 1)]
                    load(Cat(Const(B.Reply.SPIKE_OUT, 8), core.spike_out.payload), 3, with_crc=0,
                         starts_span=first_of_step)
                with m.Elif(done_seen & step_running):
                    m.d.sync += [done_seen.eq(0), step_running.eq(0), first_of_step.eq(0)]
                    load(Cat(Const(B.Reply.DONE, 8), spikes_out), 3, with_crc=1, starts_span=first_of_step)
                with m.Elif(msg_pending & ~step_running):   # never inside a step's CRC span
                    m.d.sync += msg_pending.eq(0)
                    load(msg, 4, with_crc=1, starts_span=1)
            with m.State("BYTES"):
                m.d.comb += [tx.data.payload.eq(out[:8]), tx.data.valid.eq(1),
                             tx_crc.valid.eq(sent), tx_crc.start.eq(sent & fresh)]
                with m.If(sent):
                    m.d.sync += [out.eq(out >> 8), out_left.eq(out_left - 1), fresh.eq(0)]
                    with m.If((out_left == 1) & crc_after):
                        m.next = "CRC_HI"
                    with m.Elif(out_left == 1):
                        m.next = "IDLE"
            with m.State("CRC_HI"):
                m.d.comb += [tx.data.payload.eq(tx_crc.crc[8:16]), tx.data.valid.eq(1)]
                with m.If(sent):
                    m.next = "CRC_LO"
            with m.State("CRC_LO"):
                m.d.comb += [tx.data.payload.eq(tx_crc.crc[0:8]), tx.data.valid.eq(1)]
                with m.If(sent):
                    m.next = "IDLE"

        m.d.comb += self.idle.eq(parser.ongoing("OP") & ~rx_fifo.r_stream.valid & sender.ongoing("IDLE")
                                 & ~msg_pending & ~step_running & ~bus_inflight & ~core.busy
                                 & ~core.bus_resp.valid & ~rx.data.valid)
        return m
