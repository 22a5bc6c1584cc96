"""The board side of the UART link protocol (docs/protocol.md, spikeforge/core/protocol.py) in Amaranth.

``LinkTop(configs, clk_freq, baud)`` holds K neuron cores (``spikeforge.hdl.NeuronCore``) behind one
UART (``uart_rx`` / ``uart_tx``). Parts, in the order a byte meets them:

- ``UartRx`` -> a receive FIFO of ``window`` frames (commands arriving while one executes wait here);
- ``FrameReceiver``: the receiver of protocol section 2 -- hunt for ``A5 5A``, header CRC-8 and
  payload CRC-32 checked by byte-wide ``amaranth.lib.crc.Processor`` residues (``match_detected``),
  payload into the frame buffer, verdict ok / BAD_CRC / TOO_LONG;
- the command controller (``LinkTop.elaborate``): checks a command completely, then drives the
  cores' ``bus_req``/``bus_resp``, ``spike_in``, ``start`` and ``spike_out``; keeps per core the
  ``slots`` steps of input ahead (an A-bit bitmap and K analog inputs per slot) and of spike history;
- ``FrameSender``: header, CRC-8, payload, CRC-32 -> ``UartTx``.

Why this shape: one frame is executed at a time, in order, so every reply goes out in command order
(protocol section 3) and no sequence memory is needed -- RUN's start-step check is the idempotency
guard. The receiver hunts from the next new byte after a rejected frame (``rescan=False`` in the
host's terms); the host recovers from that (it may lose one more frame per damaged frame).

FREERUN runs a step whenever a microsecond timer derived from ``clk_freq`` says one is due, between
commands (docs/link-rtl.md, "FREERUN"). Every memory is read synchronously so that it maps to block
RAM on every family (iCE40 has no LUT RAM): docs/link-rtl.md, "Memories".

SPIKES frames are always sent as bitmaps (format 1), which the protocol allows.
"""


import math

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import crc, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikeforge.core import fixedpoint as fx
from spikeforge.core import protocol as P
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage
from spikeforge.core.memory_map import ControlReg, Region, image_writes
from spikeforge.hdl.uart import UartRx, UartTx, uart_divisor

__all__ = ["FrameReceiver", "FrameSender", "LinkTop", "IMPLEMENTED", "STATUS_OK"]

#: Commands this RTL executes; every other opcode below 0x80 is answered NACK UNKNOWN_OPCODE.
IMPLEMENTED = frozenset({
    P.Op.PING, P.Op.IDENTIFY, P.Op.WRITE, P.Op.READ, P.Op.INJECT, P.Op.INJECT_BITMAP, P.Op.CURRENTS,
    P.Op.RUN, P.Op.FREERUN, P.Op.STOP, P.Op.RESEND, P.Op.LEARNING, P.Op.RESET,
})

STATUS_OK = 0  # FrameReceiver.status; otherwise the protocol.Err code of the NACK to send


def _crc_processors():
    alg8, alg32 = P.amaranth_crc_algorithms()
    return crc.Processor(alg8(data_width=8)), crc.Processor(alg32(data_width=8))


class FrameReceiver(wiring.Component):
    """Bytes in (``data``), frames out: the receiver of protocol section 2.

    A frame whose header CRC-8 is wrong is dropped silently. When a frame ends (or its header announces
    more than MAX_PAYLOAD bytes), ``frame_valid`` rises with ``opcode``/``core``/``seq``/``length`` and
    ``status`` (STATUS_OK, Err.BAD_CRC or Err.TOO_LONG) and stays up, taking no more bytes, until
    ``frame_ack``. Payload byte i (i < ``buffer_bytes``) is written to the frame buffer through
    ``wr_*``; bytes beyond the buffer are checked but not stored (``length > buffer_bytes``: the
    controller answers BAD_LENGTH). The first 12 payload bytes are also kept in ``head`` (the fixed
    fields of every command)."""

    def __init__(self, buffer_bytes: int):
        self.buffer_bytes = buffer_bytes
        super().__init__({
            "data": In(stream.Signature(8)),
            "frame_valid": Out(1), "frame_ack": In(1),
            "status": Out(4), "opcode": Out(8), "core": Out(8), "seq": Out(8), "length": Out(16),
            "head": Out(96),
            "wr_addr": Out(range(max(2, buffer_bytes))), "wr_data": Out(8), "wr_en": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc8, m.submodules.crc32 = crc8, crc32 = _crc_processors()
        byte = self.data.payload
        take = self.data.valid & self.data.ready
        count = Signal(16)
        hdr = Signal(40)
        m.d.comb += [crc8.data.eq(byte), crc32.data.eq(byte), self.wr_data.eq(byte)]
        busy = Signal()  # CHECK and VERDICT take no byte (the next frame's sync may be waiting)
        m.d.comb += self.data.ready.eq(~self.frame_valid & ~busy)
        with m.If(self.frame_valid & self.frame_ack):
            m.d.sync += self.frame_valid.eq(0)
        with m.FSM():
            with m.State("HUNT"):
                with m.If(take & (byte == 0xA5)):
                    m.next = "SYNC"
            with m.State("SYNC"):
                with m.If(take):
                    with m.If(byte == 0x5A):
                        m.d.comb += [crc8.start.eq(1), crc32.start.eq(1)]
                        m.d.sync += count.eq(0)
                        m.next = "HEADER"
                    with m.Elif(byte != 0xA5):
                        m.next = "HUNT"
            with m.State("HEADER"):
                m.d.comb += [crc8.valid.eq(take), crc32.valid.eq(take)]
                with m.If(take):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count < 5):
                        m.d.sync += hdr.eq(Cat(hdr[8:], byte))
                    with m.Else():  # the CRC-8 byte: the register holds the residue iff intact
                        m.next = "CHECK"
            with m.State("CHECK"):
                m.d.comb += busy.eq(1)
                length = hdr[24:40]
                m.d.sync += [self.opcode.eq(hdr[0:8]), self.core.eq(hdr[8:16]), self.seq.eq(hdr[16:24]),
                             self.length.eq(length), count.eq(0)]
                with m.If(~crc8.match_detected):
                    m.next = "HUNT"
                with m.Elif(length > P.MAX_PAYLOAD):
                    m.d.sync += [self.status.eq(P.Err.TOO_LONG), self.frame_valid.eq(1)]
                    m.next = "HUNT"
                with m.Elif(length == 0):
                    m.next = "CRC"
                with m.Else():
                    m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [crc32.valid.eq(take), self.wr_addr.eq(count),
                             self.wr_en.eq(take & (count < self.buffer_bytes))]
                with m.If(take):
                    m.d.sync += count.eq(count + 1)
                    for i in range(12):
                        with m.If(count == i):
                            m.d.sync += self.head.word_select(i, 8).eq(byte)
                    with m.If(count + 1 == self.length):
                        m.d.sync += count.eq(0)
                        m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += crc32.valid.eq(take)
                with m.If(take):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == 3):
                        m.next = "VERDICT"
            with m.State("VERDICT"):
                m.d.comb += busy.eq(1)
                m.d.sync += [self.status.eq(Mux(crc32.match_detected, STATUS_OK, P.Err.BAD_CRC)),
                             self.frame_valid.eq(1)]
                m.next = "HUNT"
        return m


class FrameSender(wiring.Component):
    """Frames out: on ``start`` (with ``opcode``/``core``/``seq``/``length``, sampled then) sends the
    sync and header, then ``length`` bytes taken from ``payload``, then the CRC-32; ``idle`` is high
    when it can take the next frame."""

    def __init__(self):
        super().__init__({
            "start": In(1), "opcode": In(8), "core": In(8), "seq": In(8), "length": In(16),
            "payload": In(stream.Signature(8)), "idle": Out(1),
            "tx": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc8, m.submodules.crc32 = crc8, crc32 = _crc_processors()
        hdr = Signal(40)
        length = Signal(16)
        count = Signal(16)
        sent = self.tx.valid & self.tx.ready
        m.d.comb += [crc8.data.eq(self.tx.payload), crc32.data.eq(self.tx.payload)]
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(1)
                with m.If(self.start):
                    m.d.sync += [hdr.eq(Cat(self.opcode, self.core, self.seq, self.length)),
                                 length.eq(self.length), count.eq(0)]
                    m.next = "SYNC0"
            with m.State("SYNC0"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(0xA5)]
                with m.If(sent):
                    m.next = "SYNC1"
            with m.State("SYNC1"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(0x5A)]
                with m.If(sent):
                    m.d.comb += [crc8.start.eq(1), crc32.start.eq(1)]
                    m.next = "HEADER"
            with m.State("HEADER"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(hdr[:8]),
                             crc8.valid.eq(sent), crc32.valid.eq(sent)]
                with m.If(sent):
                    m.d.sync += [hdr.eq(hdr >> 8), count.eq(count + 1)]
                    with m.If(count == 4):
                        m.next = "HCRC"
            with m.State("HCRC"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(crc8.crc), crc32.valid.eq(sent)]
                with m.If(sent):
                    m.d.sync += count.eq(0)
                    m.next = "PAYLOAD"
                    with m.If(length == 0):
                        m.next = "CRC"
            with m.State("PAYLOAD"):
                m.d.comb += [self.tx.valid.eq(self.payload.valid), self.tx.payload.eq(self.payload.payload),
                             self.payload.ready.eq(self.tx.ready), crc32.valid.eq(sent)]
                with m.If(sent):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count + 1 == length):
                        m.d.sync += count.eq(0)
                        m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(crc32.crc.word_select(count[:2], 8))]
                with m.If(sent):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == 3):
                        m.next = "IDLE"
        return m


def _reset_script(config: CoreConfig, mode: P.ResetMode) -> list[tuple[int, int, int, int]]:
    """(region, address, count, word) bus writes that do RESET ``mode`` on a core of ``config``:
    zero fills of whole regions, then the non-zero words of the target image, then STEP = 0."""
    sizes = {r: P.region_size(config, r) for r in Region}
    if mode == P.ResetMode.STATE:
        fills = [Region.NEURON_STATE, Region.X_TRACE, Region.RING]
        script = [(r, 0, sizes[r], 0) for r in fills if sizes[r]]
        script.append((Region.CONTROL, ControlReg.STEP, 1, 0))
        return script
    fills = [Region.PROFILE, Region.STDP, Region.NEURON_PROFILE, Region.SYNAPSE, Region.ROW_SHIFT,
             Region.NEURON_STATE, Region.X_TRACE, Region.RING]
    script = [(r, 0, sizes[r], 0) for r in fills if sizes[r]]
    blank = CoreImage.blank(config)
    script += [(r, a, 1, w) for r, a, w in image_writes(blank) if w and r != Region.CONTROL]
    script.append((Region.CONTROL, ControlReg.STEP, 1, 0))
    script.append((Region.CONTROL, ControlReg.LEARNING, 1, int(blank.learning)))
    return script


class LinkTop(wiring.Component):
    """K neuron cores behind the UART link protocol.

    ``configs``: one CoreConfig per core (or one CoreConfig). ``clk_freq``: the core clock in Hz,
    ``baud``: the UART rate (``divisor`` overrides ``round(clk_freq / baud)``, e.g. 4..8 in
    simulation). ``slots``: steps of input ahead / spike history behind per core (a power of two).
    ``max_words``: words per WRITE/READ frame (the frame buffer holds 4 + 4 * max_words bytes; a
    PING longer than that is answered BAD_LENGTH). ``window``: frames the receive FIFO holds while a
    command executes (advertised in IDENTIFY). ``min_period_us``: the shortest FREERUN period accepted
    (shorter: NACK BAD_VALUE with this detail); steps that cannot keep up are flagged LATE."""

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)
    idle: Out(1)  # no command executing, nothing received and not yet parsed, nothing left to send

    #: what a bitstream report (boards/report.py) names this host link
    LINK_NAME = "protocol link: spikeforge.hdl.link.LinkTop"

    def __init__(self, configs, clk_freq: float = 12_000_000, baud: int = 1_000_000, *, divisor: int | None = None,
                 slots: int = 16, max_words: int = P.MAX_WORDS, window: int = 2, name: str = "spikeforge-rtl",
                 core_factory=None, min_period_us: int = 1):
        configs = [configs] if isinstance(configs, CoreConfig) else list(configs)
        if not 1 <= len(configs) <= P.MAX_CORES:
            raise ValueError(f"LinkTop takes 1 .. {P.MAX_CORES} CoreConfigs, got {len(configs)}")
        for k, c in enumerate(configs):
            if not isinstance(c, CoreConfig):
                raise TypeError(f"configs[{k}] is a {type(c).__name__}, expected a CoreConfig")
        if slots < 1 or slots & (slots - 1) or slots > 0x8000:
            raise ValueError(f"slots = {slots}: expected a power of two 1 .. 32768")
        if not 1 <= max_words <= P.MAX_WORDS:
            raise ValueError(f"max_words = {max_words}: expected 1 .. {P.MAX_WORDS}")
        if not 1 <= window <= 8:
            raise ValueError(f"window = {window}: expected 1 .. 8 frames")
        if int(clk_freq) < 1_000_000:
            raise ValueError(f"clk_freq = {clk_freq} Hz: the free-run timer needs a clock of at least 1 MHz")
        if not 1 <= min_period_us < 1 << 32:
            raise ValueError(f"min_period_us = {min_period_us}: expected 1 .. {(1 << 32) - 1}")
        self.configs = configs
        self.clk_freq = int(clk_freq)
        self.baud = int(baud)
        self.divisor = int(divisor) if divisor is not None else uart_divisor(clk_freq, baud)
        self.slots = slots
        self.max_words = max_words
        self.window = window
        self.name = name
        self.buffer_bytes = 4 + 4 * max_words
        self.core_factory = core_factory
        self.min_period_us = int(min_period_us)
        super().__init__()

    @property
    def rx_fifo_depth(self) -> int:
        """Bytes the receive FIFO holds: ``window - 1`` whole frames behind the one executing, plus slack."""
        return (self.window - 1) * (self.buffer_bytes + P.FRAME_OVERHEAD) + 16

    def own_memories(self) -> list[tuple[str, int, int]]:
        """(name, depth, width) of every memory of the link itself (not of its cores), as ``elaborate``
        builds them: what the board flow's capacity model places in block RAM."""
        mems = [("rx_fifo", self.rx_fifo_depth - 1, 8),  # SyncFIFOBuffered: depth - 1 words + a register
                ("frame_buf", (self.buffer_bytes + 3) // 4, 32),
                ("ident_rom", len(self.info().encode()), 8)]
        entries = [e for c in self.configs for mode in (P.ResetMode.STATE, P.ResetMode.BLANK)
                   for e in _reset_script(c, mode)]
        aw = max(1, max(a for _, a, _, _ in entries).bit_length())
        nw = max(1, max(n for _, _, n, _ in entries).bit_length())
        mems.append(("script_rom", len(entries), 4 + aw + nw + 32))
        for k, c in enumerate(self.configs):
            mems.append((f"history{k}", self.slots, c.n_neurons))
            if c.n_inputs:
                mems.append((f"inputs{k}", self.slots, c.n_inputs))
            if c.n_current_inputs:
                mems.append((f"currents{k}", self.slots * c.n_current_inputs, 32))
        return mems

    def info(self) -> P.BoardInfo:
        """What IDENTIFY answers."""
        return P.BoardInfo(cores=tuple(self.configs), name=self.name, window=self.window, clock_hz=self.clk_freq,
                           baud=self.baud, max_words=self.max_words, slots=self.slots, flags=0)

    # ---------------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        cfgs = self.configs
        K = len(cfgs)
        S = self.slots
        slot_bits = max(1, (S - 1).bit_length()) if S > 1 else 1
        A_max = max(max(c.n_inputs for c in cfgs), 1)
        N_max = max(c.n_neurons for c in cfgs)
        Kc_max = max(max(c.n_current_inputs for c in cfgs), 1)
        OP = P.Op
        E = P.Err

        # ---- cores -----------------------------------------------------------------------------
        if self.core_factory is None:
            from spikeforge.hdl import NeuronCore
            factory = NeuronCore
        else:
            factory = self.core_factory
        cores = []
        for k, c in enumerate(cfgs):
            core = factory(c)
            m.submodules[f"core{k}"] = core
            cores.append(core)

        # ---- UART, receive FIFO, receiver, frame buffer ----------------------------------------
        m.submodules.rx = rx = UartRx(self.divisor)
        m.submodules.tx = tx = UartTx(self.divisor)
        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx)]
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=self.rx_fifo_depth)
        m.d.comb += [rx_fifo.w_data.eq(rx.data.payload), rx_fifo.w_en.eq(rx.data.valid),
                     rx.data.ready.eq(rx_fifo.w_rdy)]
        m.submodules.receiver = recv = FrameReceiver(self.buffer_bytes)
        m.d.comb += [recv.data.payload.eq(rx_fifo.r_data), recv.data.valid.eq(rx_fifo.r_rdy),
                     rx_fifo.r_en.eq(recv.data.ready)]
        # The frame buffer is 32 bits wide (byte-enable writes): every field a command reads is aligned
        # to its size (u32 at 4 + 4i or 8 + 4i, u16 at 4 + 2i, bytes anywhere), so one synchronous read
        # port gives it. The port is addressed with the pointer's *next* value (``ptr_next``,
        # ``ti_next``), so its data always belongs to the current ``ptr`` / ``ti`` and the controller
        # sees no read latency. It maps to block RAM on every family (no LUT RAM needed).
        m.submodules.frame_buf = fbuf = Memory(shape=32, depth=(self.buffer_bytes + 3) // 4, init=[])
        wp = fbuf.write_port(granularity=8)
        m.d.comb += [wp.addr.eq(recv.wr_addr[2:]), wp.data.eq(Cat(*([recv.wr_data] * 4))),
                     wp.en.eq(Mux(recv.wr_en, Const(1, 4) << recv.wr_addr[:2], 0))]
        # payload read pointer (byte address) and its next value: a state either loads it (``ptr_load``
        # with 0, 4 or 8) or advances it by ``ptr_step`` bytes (one adder, not one per state)
        ptr = Signal(range(self.buffer_bytes + 1024), name="ptr")
        ptr_next = Signal.like(ptr, name="ptr_next")
        ptr_load, ptr_load_val, ptr_step = Signal(name="ptr_load"), Signal(4, name="ptr_load_val"), Signal(16)
        ti, ti_next = Signal(16, name="ti"), Signal(16, name="ti_next")  # reply payload byte index, its next value
        m.d.comb += [ptr_next.eq(Mux(ptr_load, ptr_load_val, ptr + ptr_step)), ti_next.eq(ti)]
        m.d.sync += [ptr.eq(ptr_next), ti.eq(ti_next)]
        sending = Signal()  # SEND / SEND_BODY: the buffer is read at ti (PING echo), else at ptr
        rd_at = Signal(16)
        m.d.comb += rd_at.eq(Mux(sending, ti, ptr))
        fbuf_rp = fbuf.read_port()
        m.d.comb += fbuf_rp.addr.eq(Mux(sending, ti_next, ptr_next)[2:])
        buf_word = fbuf_rp.data
        buf_u16 = Signal(16)
        buf_byte = Signal(8)
        m.d.comb += [buf_u16.eq(buf_word.word_select(rd_at[1], 16)), buf_byte.eq(buf_word.word_select(rd_at[:2], 8))]

        # ---- IDENTIFY reply ROM ----------------------------------------------------------------
        ident = self.info().encode()
        m.submodules.ident_rom = ident_rom = Memory(shape=8, depth=len(ident), init=list(ident))
        ident_rp = ident_rom.read_port()
        m.d.comb += ident_rp.addr.eq(ti_next)

        # ---- sender ----------------------------------------------------------------------------
        m.submodules.sender = send = FrameSender()
        wiring.connect(m, send.tx, tx.data)
        r_op, r_core, r_len = Signal(8, name="r_op"), Signal(8, name="r_core"), Signal(16, name="r_len")
        # The first (at most 6) bytes of a reply payload (NACK, ACK heads, SPIKES head) are not copied
        # into a register: ``r_src`` names their source (``head_sources`` below) and, for a NACK,
        # ``r_err`` / ``r_det`` the error and its detail's source. Every source is stable until the
        # reply is sent (the command's header fields, the current step, constants), and one mux at
        # the sender replaces a 48-bit register loaded from dozens of places.
        small = Signal(48)
        r_src, r_err, r_det = Signal(4, name="r_src"), Signal(4, name="r_err"), Signal(5, name="r_det")
        head_sources, detail_sources = [], []

        def source_index(sources, value, width):
            key = repr(Const(value, width) if isinstance(value, int) else value)
            for i, (k, _) in enumerate(sources):
                if k == key:
                    return i
            sources.append((key, Const(value, width) if isinstance(value, int) else value))
            return len(sources) - 1
        KIND_SMALL, KIND_PING, KIND_IDENT, KIND_SPIKES, KIND_READ = range(5)
        kind = Signal(3)
        fstep = Signal()  # executing a free-run step (its SPIKES carry the FREERUN's sequence number)
        free_seq = Signal(8)
        m.d.comb += [send.opcode.eq(r_op), send.core.eq(r_core), send.seq.eq(Mux(fstep, free_seq, recv.seq)),
                     send.length.eq(r_len)]

        # ---- per-core link state ---------------------------------------------------------------
        sel = Signal(range(max(K, 2)))
        steps_reg = Array(Signal(32, name=f"step{k}") for k in range(K))
        hist_lo = Array(Signal(32, name=f"hist_lo{k}") for k in range(K))
        cur_step = steps_reg[sel]
        N_of = Array(Const(c.n_neurons, 16) for c in cfgs)
        A_of = Array(Const(c.n_inputs, 16) for c in cfgs)
        Kc_of = Array(Const(c.n_current_inputs, 16) for c in cfgs)
        amask_of = Array(Const((1 << c.n_inputs) - 1, A_max) for c in cfgs)
        nbin_of = Array(Const(P.bitmap_bytes(c.n_inputs), 16) for c in cfgs)
        nbout_of = Array(Const(P.bitmap_bytes(c.n_neurons), 16) for c in cfgs)
        vmax_of = Array(Const(fx.smax(c.v_bits), 33) for c in cfgs)
        sizes_of = Array(Array(Const(P.region_size(c, r), 25) for r in range(len(Region))) for c in cfgs)

        slot = Signal(slot_bits)  # slot index of the memories below
        cur_idx = Signal(range(S * Kc_max + 1))
        in_w, in_we = Signal(A_max), Signal()
        cur_w, cur_we = Signal(32), Signal()
        hist_w, hist_we = Signal(N_max), Signal()
        in_r = Array(Signal(A_max, name=f"in_r{k}") for k in range(K))
        cur_r = Array(Signal(32, name=f"cur_r{k}") for k in range(K))
        hist_r = Array(Signal(N_max, name=f"hist_r{k}") for k in range(K))
        # Synchronous, write-transparent read ports: the data of cycle t is the memory at the address of
        # cycle t-1 (after that cycle's write). ``mem_ok``: the address has not changed since, so the
        # read data belongs to the current address; a state that reads waits for it (one cycle after
        # an address change). All of a core's memories see the same address, whatever ``sel`` is.
        slot_q, cur_idx_q = Signal.like(slot), Signal.like(cur_idx)
        m.d.sync += [slot_q.eq(slot), cur_idx_q.eq(cur_idx)]
        mem_ok = Signal()
        m.d.comb += mem_ok.eq((slot == slot_q) & (cur_idx == cur_idx_q))
        for k, c in enumerate(cfgs):
            # a core without inputs / analog inputs gets no memory for them (reads as 0)
            mems = [("history", Memory(shape=c.n_neurons, depth=S, init=[]), slot, hist_w, hist_we, hist_r[k])]
            if c.n_inputs:
                mems.append(("inputs", Memory(shape=c.n_inputs, depth=S, init=[]), slot, in_w, in_we, in_r[k]))
            if c.n_current_inputs:
                mems.append(("currents", Memory(shape=32, depth=S * c.n_current_inputs, init=[]), cur_idx, cur_w,
                             cur_we, cur_r[k]))
            for what, mem, addr, data, we, rdata in mems:
                m.submodules[f"{what}{k}"] = mem
                w = mem.write_port()
                r = mem.read_port(transparent_for=(w,))
                m.d.comb += [w.addr.eq(addr), r.addr.eq(addr), w.data.eq(data), w.en.eq(we & (sel == k)),
                             rdata.eq(r.data)]

        # ---- the cores' ports, multiplexed by sel ----------------------------------------------
        bus_valid, bus_write, bus_region, bus_addr, bus_data = Signal(), Signal(), Signal(4), Signal(24), Signal(32)
        resp_valid = Array(Signal(name=f"resp_valid{k}") for k in range(K))
        resp_data = Array(Signal(32, name=f"resp_data{k}") for k in range(K))
        req_ready = Array(Signal(name=f"req_ready{k}") for k in range(K))
        sin_valid, sin_idx = Signal(), Signal(16)
        sin_ready = Array(Signal(name=f"sin_ready{k}") for k in range(K))
        sout_valid = Array(Signal(name=f"sout_valid{k}") for k in range(K))
        sout_idx = Array(Signal(16, name=f"sout_idx{k}") for k in range(K))
        done_k = Array(Signal(name=f"done{k}") for k in range(K))
        start_pulse, collect = Signal(), Signal()
        for k, (core, c) in enumerate(zip(cores, cfgs)):
            here = sel == k
            m.d.comb += [
                core.bus_req.valid.eq(bus_valid & here), core.bus_req.payload.write.eq(bus_write),
                core.bus_req.payload.region.eq(bus_region), core.bus_req.payload.addr.eq(bus_addr),
                core.bus_req.payload.data.eq(bus_data), req_ready[k].eq(core.bus_req.ready),
                resp_valid[k].eq(core.bus_resp.valid), resp_data[k].eq(core.bus_resp.payload.data),
                core.bus_resp.ready.eq(here),
                core.start.eq(start_pulse & here), done_k[k].eq(core.done),
                sout_valid[k].eq(core.spike_out.valid), sout_idx[k].eq(core.spike_out.payload),
                core.spike_out.ready.eq(collect & here),
            ]
            if c.n_inputs:
                m.d.comb += [core.spike_in.valid.eq(sin_valid & here), core.spike_in.payload.eq(sin_idx),
                             sin_ready[k].eq(core.spike_in.ready)]

        # ---- RESET scripts ---------------------------------------------------------------------
        entries, bounds = [], []
        for c in cfgs:
            per_mode = []
            for mode in (P.ResetMode.STATE, P.ResetMode.BLANK):
                lo = len(entries)
                entries += _reset_script(c, mode)
                per_mode.append((lo, len(entries)))
            bounds.append(per_mode)
        aw = max(1, max(a for _, a, _, _ in entries).bit_length())
        nw = max(1, max(n for _, _, n, _ in entries).bit_length())
        m.submodules.script_rom = script_rom = Memory(
            shape=4 + aw + nw + 32, depth=len(entries),
            init=[r | a << 4 | n << (4 + aw) | w << (4 + aw + nw) for r, a, n, w in entries])
        script_rp = script_rom.read_port()  # data of cycle t = entry j of cycle t-1: see script_ok
        script_lo = Array(Array(Const(b[i][0], 16) for i in range(2)) for b in bounds)
        script_hi = Array(Array(Const(b[i][1], 16) for i in range(2)) for b in bounds)

        # ---- the command controller ------------------------------------------------------------
        op, core_id, length, head, status = recv.opcode, recv.core, recv.length, recv.head, recv.status
        h_region, h_addr = head[0:8], head[8:32]
        h_u32a, h_u32b, h_u16c, h_u16d = head[0:32], head[32:64], head[32:48], head[48:64]
        k_lo, k_hi = Signal(range(max(K, 2))), Signal(range(max(K, 2)))
        j = Signal(range(max(S * Kc_max, len(entries), self.buffer_bytes) + 2))  # loop counter
        j_q = Signal(range(max(2, len(entries))))
        m.d.sync += j_q.eq(j)
        script_ok = Signal()  # the script ROM's data is entry j
        m.d.comb += script_ok.eq(j[:len(j_q)] == j_q)
        c_idx = Signal(16)   # inner loop counter
        word = Signal(32)
        acc = Signal(max(N_max, A_max, 8))
        value = Signal(2)    # READ: bit 0 the word is in ``word``, bit 1 its bus request was taken
        ret = Signal(4)
        step_hit = Signal()
        RET_DONE, RET_RUN = 0, 1
        is_all = core_id == P.ALL_CORES

        detail = Signal(32)  # the NACK's detail: detail_sources[r_det]
        NACK_SRC = source_index(head_sources, Cat(op, r_err, Const(0, 4), detail), 48)

        def nack(err, detail_value):
            m.d.sync += [r_op.eq(OP.NACK), r_core.eq(core_id), r_len.eq(6), kind.eq(KIND_SMALL), ret.eq(RET_DONE),
                         r_src.eq(NACK_SRC), r_err.eq(err), r_det.eq(source_index(detail_sources, detail_value, 32))]
            m.next = "SEND"

        def reply(opcode, core, payload_small, n_bytes, kind_=KIND_SMALL, ret_=RET_DONE):
            m.d.sync += [r_op.eq(opcode), r_core.eq(core), r_len.eq(n_bytes), kind.eq(kind_), ret.eq(ret_),
                         r_src.eq(source_index(head_sources, payload_small, 48))]
            m.next = "SEND"

        def ack(payload_small, n_bytes, kind_=KIND_SMALL, ret_=RET_DONE):
            reply(op | 0x80, core_id, payload_small, n_bytes, kind_, ret_)

        # WRITE: which read-only CONTROL words the range covers (outside the FSM: a NACK's detail)
        ro = Signal(3)
        ro_end = h_addr + (length - 4)[2:]
        m.d.comb += ro.eq(Cat(*((h_addr <= a) & (a < ro_end) for a in sorted(P.READ_ONLY_CONTROL))))
        run_end = Signal(32)  # RUN: the step after the last
        m.d.comb += run_end.eq(h_u32a + h_u32b)
        size_sel = Signal(25)
        m.d.comb += size_sel.eq(sizes_of[sel][Mux(h_region < len(Region), h_region, 0)])
        oldest = Signal(33)
        m.d.comb += oldest.eq(Mux(cur_step >= S + hist_lo[sel], cur_step - S, hist_lo[sel]))
        m.d.comb += script_rp.addr.eq(j)

        # ---- free run: a microsecond tick, the time to the next step, the step's LATE flag -------
        # A Bresenham prescaler turns clk_freq into microsecond ticks exactly (no drift; each tick
        # within one clock of its real time): ``inc`` / ``thr`` are 1e6 / clk_freq in lowest terms.
        # ``due`` = (time of the next step) - now, in microseconds: step n of the run is due at
        # FREERUN + n * period; a step that begins when due < -period began more than one period
        # after its time: LATE (docs/protocol.md section 5, as host/virtual_board.py).
        g = math.gcd(self.clk_freq, 1_000_000)
        inc, thr = 1_000_000 // g, self.clk_freq // g
        us_acc = Signal(range(thr + inc))
        us_tick = Signal()
        free = Signal()        # a free run is going
        free_lo, free_hi = Signal(range(max(K, 2))), Signal(range(max(K, 2)))
        free_period = Signal(32)
        free_left = Signal(32)  # steps still to run; 0 = until STOP
        due = Signal(signed(35))
        late = Signal()
        free_start, step_begin = Signal(), Signal()
        frame_turn = Signal()  # a free step just ran: a waiting command goes first (so STOP always gets in)
        step_due = Signal()
        m.d.comb += [us_tick.eq(us_acc + inc >= thr), step_due.eq(free & (due <= 0))]
        m.d.sync += us_acc.eq(Mux(us_tick, us_acc + inc - thr, us_acc + inc))
        with m.If(free_start):
            m.d.sync += [due.eq(0), us_acc.eq(0)]
        with m.Elif(step_begin):
            m.d.sync += [due.eq(due + free_period - us_tick), late.eq(due < -free_period)]
        with m.Elif(free & us_tick & (due > -(1 << 33))):  # saturates hours behind, never wraps
            m.d.sync += due.eq(due - 1)

        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(~recv.frame_valid & ~rx_fifo.r_rdy & ~rx.data.valid & send.idle &
                                         tx.data.ready & ~step_due)
                m.d.sync += [j.eq(0), c_idx.eq(0), step_hit.eq(0)]
                m.d.comb += [ptr_load.eq(1), ptr_load_val.eq(0)]
                with m.If(step_due & ~(recv.frame_valid & frame_turn)):
                    m.d.comb += step_begin.eq(1)
                    m.d.sync += [fstep.eq(1), sel.eq(free_lo), frame_turn.eq(1)]
                    m.next = "FREE_STEP"
                with m.Elif(recv.frame_valid):
                    m.d.sync += frame_turn.eq(0)
                    m.d.sync += sel.eq(Mux(is_all | (core_id >= K), 0, core_id))
                    m.d.sync += [k_lo.eq(Mux(is_all, 0, core_id)), k_hi.eq(Mux(is_all, K - 1, core_id))]
                    m.next = "DISPATCH"
            with m.State("DISPATCH"):
                broadcast_ok = Cat(*(op == o for o in P.BROADCAST_OK)).any()
                known = Cat(*(op == o for o in IMPLEMENTED)).any()
                no_core = Cat(op == OP.PING, op == OP.IDENTIFY).any()
                with m.If(op >= 0x80):
                    m.next = "DONE"  # replies (our own bytes looped back) are ignored
                with m.Elif(status != STATUS_OK):
                    # the receiver's verdict: BAD_CRC (detail 0) or TOO_LONG (detail MAX_PAYLOAD)
                    nack(status, Mux(status == E.TOO_LONG, Const(P.MAX_PAYLOAD, 32), Const(0, 32)))
                with m.Elif(~known):
                    nack(E.UNKNOWN_OPCODE, 0)
                with m.Elif(free & ~Cat(*(op == o for o in P.ALLOWED_WHILE_RUNNING)).any()):
                    nack(E.BUSY, steps_reg[free_lo])
                with m.Elif(length > self.buffer_bytes):
                    nack(E.BAD_LENGTH, self.buffer_bytes)
                with m.Elif(~no_core & is_all & ~broadcast_ok):
                    nack(E.BAD_CORE, K)
                with m.Elif(~no_core & ~is_all & (core_id >= K)):
                    nack(E.BAD_CORE, K)
                with m.Else():
                    with m.Switch(op):
                        with m.Case(OP.PING):
                            ack(0, length, KIND_PING)
                        with m.Case(OP.IDENTIFY):
                            ack(0, len(ident), KIND_IDENT)
                        with m.Case(OP.WRITE):
                            m.next = "WRITE_CHECK"
                        with m.Case(OP.READ):
                            m.next = "READ_CHECK"
                        with m.Case(OP.INJECT):
                            with m.If((length < 4) | length[0]):
                                nack(E.BAD_LENGTH, P.MAX_PAYLOAD)
                            with m.Else():
                                m.d.sync += [j.eq(1)]
                                m.d.comb += [ptr_load.eq(1), ptr_load_val.eq(4)]
                                m.next = "INJECT_SCAN"
                        with m.Case(OP.INJECT_BITMAP):
                            nb = nbin_of[sel]
                            with m.If((nb == 0) | (length < 4 + nb)):
                                nack(E.BAD_LENGTH, nb)
                            with m.Else():
                                m.d.sync += [j.eq(0)]
                                m.d.comb += [ptr_load.eq(1), ptr_load_val.eq(4)]
                                m.next = "BITMAP_SCAN"
                        with m.Case(OP.CURRENTS):
                            with m.If(length < 12):
                                nack(E.BAD_LENGTH, 12)
                            with m.Elif((h_u16d == 0) | (length - 8)[:2].any()):
                                nack(E.BAD_LENGTH, 4 * Mux(h_u16d == 0, 1, h_u16d))
                            with m.Else():
                                m.d.sync += [j.eq(0), c_idx.eq(0)]
                                m.d.comb += [ptr_load.eq(1), ptr_load_val.eq(8)]
                                m.next = "CURRENTS_SCAN"
                        with m.Case(OP.RUN):
                            with m.If(length != 8):
                                nack(E.BAD_LENGTH, 8)
                            with m.Else():
                                m.next = "RUN_CHECK"
                        with m.Case(OP.FREERUN):
                            with m.If(length != 12):
                                nack(E.BAD_LENGTH, 12)
                            with m.Elif(h_u32b < self.min_period_us):
                                nack(E.BAD_VALUE, self.min_period_us)
                            with m.Else():
                                m.next = "FREE_CHECK"
                        with m.Case(OP.STOP):
                            m.d.sync += free.eq(0)
                            ack(cur_step, 4)
                        with m.Case(OP.RESEND):
                            with m.If(length != 4):
                                nack(E.BAD_LENGTH, 4)
                            with m.Elif((h_u32a < oldest) | (h_u32a >= cur_step)):
                                nack(E.BAD_STEP, oldest[:32])
                            with m.Else():
                                m.next = "RESEND"
                        with m.Case(OP.LEARNING):
                            with m.If(length != 1):
                                nack(E.BAD_LENGTH, 1)
                            with m.Elif(head[0:8] > 1):
                                nack(E.BAD_VALUE, 1)
                            with m.Else():
                                m.d.sync += sel.eq(k_lo)
                                m.next = "LEARNING"
                        with m.Case(OP.RESET):
                            with m.If(length != 1):
                                nack(E.BAD_LENGTH, 1)
                            with m.Elif(head[0:8] > 1):
                                nack(E.BAD_VALUE, 1)
                            with m.Else():
                                m.d.sync += sel.eq(k_lo)
                                m.next = "RESET_START"

            # ---- WRITE ----
            n_words = (length - 4)[2:]
            with m.State("WRITE_CHECK"):
                end = h_addr + n_words
                with m.If((length < 8) | length[:2].any()):
                    nack(E.BAD_LENGTH, P.MAX_PAYLOAD)
                with m.Elif(n_words > self.max_words):
                    nack(E.BAD_LENGTH, self.buffer_bytes)
                with m.Elif(h_region >= len(Region)):
                    nack(E.BAD_REGION, len(Region))
                with m.Elif(end > size_sel):
                    nack(E.BAD_ADDRESS, size_sel)
                with m.Elif((h_region == Region.CONTROL) & ro.any()):
                    ro_addr = Mux(ro[0], 0, Mux(ro[1], 3, 4))
                    nack(E.READ_ONLY, ro_addr)
                with m.Else():
                    m.d.sync += [j.eq(0)]
                    m.d.comb += [ptr_load.eq(1), ptr_load_val.eq(4)]
                    m.next = "WRITE_WORD"
            with m.State("WRITE_WORD"):
                addr_now = h_addr + j
                with m.If(j == n_words):
                    with m.If(step_hit):
                        m.d.sync += [j.eq(0), hist_lo[sel].eq(cur_step)]
                        m.next = "CLEAR"
                    with m.Else():
                        ack(Cat(head[0:32], n_words[:16]), 6)
                with m.Elif(h_region == Region.CURRENT_IN):
                    m.d.comb += [cur_idx.eq(cur_step[:slot_bits] * Kc_of[sel] + addr_now),
                                 cur_w.eq(buf_word), cur_we.eq(1)]
                    m.d.sync += [j.eq(j + 1)]
                    m.d.comb += ptr_step.eq(4)
                with m.Else():
                    m.d.comb += [bus_valid.eq(1), bus_write.eq(1), bus_region.eq(h_region), bus_addr.eq(addr_now),
                                 bus_data.eq(buf_word)]
                    with m.If(req_ready[sel]):
                        with m.If((h_region == Region.CONTROL) & (addr_now == ControlReg.STEP)):
                            m.d.sync += [steps_reg[sel].eq(buf_word), step_hit.eq(1)]
                        m.next = "WRITE_RESP"
            with m.State("WRITE_RESP"):
                with m.If(resp_valid[sel]):
                    m.d.sync += [j.eq(j + 1)]
                    m.d.comb += ptr_step.eq(4)
                    m.next = "WRITE_WORD"
            # clear every input slot and the history of core sel, then ACK (WRITE of STEP) or go on (RESET)
            with m.State("CLEAR"):
                m.d.comb += [slot.eq(j), cur_idx.eq(j), in_w.eq(0), cur_w.eq(0),
                             in_we.eq(j < S), cur_we.eq(j < S * Kc_max)]
                m.d.sync += j.eq(j + 1)
                with m.If(j + 1 >= max(S, S * Kc_max)):
                    with m.If(op == OP.WRITE):
                        ack(Cat(head[0:32], n_words[:16]), 6)
                    with m.Else():
                        m.next = "RESET_NEXT"

            # ---- READ ----
            with m.State("READ_CHECK"):
                with m.If(length != 6):
                    nack(E.BAD_LENGTH, 6)
                with m.Elif((h_u16c == 0) | (h_u16c > self.max_words)):
                    nack(E.BAD_VALUE, self.max_words)
                with m.Elif(h_region >= len(Region)):
                    nack(E.BAD_REGION, len(Region))
                with m.Elif(h_addr + h_u16c > size_sel):
                    nack(E.BAD_ADDRESS, size_sel)
                with m.Else():
                    ack(head[0:32], 4 + 4 * h_u16c, KIND_READ)

            # ---- INJECT: pass 1 checks every index and counts the steps, pass 2 ORs them in ----
            with m.State("INJECT_SCAN"):
                with m.If(ptr >= length):
                    with m.If((h_u32a < cur_step) | (h_u32a + j > cur_step + S)):
                        nack(E.BAD_STEP, cur_step)
                    with m.Else():
                        m.d.sync += [j.eq(0)]
                        m.d.comb += [ptr_load.eq(1), ptr_load_val.eq(4)]
                        m.next = "INJECT_APPLY"
                with m.Elif(buf_u16 == P.NEXT_STEP):
                    m.d.sync += [j.eq(j + 1)]
                    m.d.comb += ptr_step.eq(2)
                with m.Elif(buf_u16 >= A_of[sel]):
                    nack(E.BAD_VALUE, A_of[sel])
                with m.Else():
                    m.d.comb += ptr_step.eq(2)
            with m.State("INJECT_APPLY"):
                m.d.comb += slot.eq(h_u32a + j)
                with m.If(ptr >= length):
                    ack(0, 0)
                with m.Elif(buf_u16 == P.NEXT_STEP):
                    m.d.sync += [j.eq(j + 1)]
                    m.d.comb += ptr_step.eq(2)
                with m.Elif(mem_ok):
                    m.d.comb += [in_w.eq(in_r[sel] | (Const(1, A_max) << buf_u16[:max(1, (A_max - 1).bit_length())])),
                                 in_we.eq(1)]
                    m.d.comb += ptr_step.eq(2)

            # ---- INJECT_BITMAP ----
            with m.State("BITMAP_SCAN"):  # count the steps; the length must be 4 + k * nb
                nb = nbin_of[sel]
                with m.If(ptr == length):
                    with m.If((h_u32a < cur_step) | (h_u32a + j > cur_step + S)):
                        nack(E.BAD_STEP, cur_step)
                    with m.Else():
                        m.d.sync += [j.eq(0), c_idx.eq(0), acc.eq(0)]
                        m.d.comb += [ptr_load.eq(1), ptr_load_val.eq(4)]
                        m.next = "BITMAP_APPLY"
                with m.Elif(ptr + nb > length):
                    nack(E.BAD_LENGTH, nb)
                with m.Else():
                    m.d.sync += [j.eq(j + 1)]
                    m.d.comb += ptr_step.eq(nb)
            with m.State("BITMAP_APPLY"):
                nb = nbin_of[sel]
                m.d.comb += slot.eq(h_u32a + j)
                with m.If(c_idx == nb):  # a whole bitmap: OR it into its slot (before the end check)
                    mask = Signal(A_max)
                    m.d.comb += mask.eq(acc[:A_max] & amask_of[sel])
                    with m.If(mem_ok):
                        m.d.comb += [in_w.eq(in_r[sel] | mask), in_we.eq(1)]
                        m.d.sync += [j.eq(j + 1), c_idx.eq(0), acc.eq(0)]
                with m.Elif(ptr >= length):
                    ack(0, 0)
                with m.Else():
                    m.d.sync += [acc.eq(acc | (buf_byte << (c_idx[:6] * 8))), c_idx.eq(c_idx + 1)]
                    m.d.comb += ptr_step.eq(1)

            # ---- CURRENTS ----
            with m.State("CURRENTS_SCAN"):  # check the range of K and every value, count the steps
                with m.If(h_u16c + h_u16d > Kc_of[sel]):
                    nack(E.BAD_ADDRESS, Kc_of[sel])
                with m.Elif(ptr >= length):
                    with m.If(c_idx != 0):
                        nack(E.BAD_LENGTH, 4 * h_u16d)
                    with m.Elif((h_u32a < cur_step) | (h_u32a + j > cur_step + S)):
                        nack(E.BAD_STEP, cur_step)
                    with m.Else():
                        m.d.sync += [j.eq(0), c_idx.eq(0)]
                        m.d.comb += [ptr_load.eq(1), ptr_load_val.eq(8)]
                        m.next = "CURRENTS_APPLY"
                with m.Elif((buf_word.as_signed() > vmax_of[sel].as_signed()) |
                            (buf_word.as_signed() < -vmax_of[sel].as_signed() - 1)):
                    nack(E.BAD_VALUE, vmax_of[sel][:32])
                with m.Else():
                    m.d.comb += ptr_step.eq(4)
                    with m.If(c_idx + 1 == h_u16d):
                        m.d.sync += [c_idx.eq(0), j.eq(j + 1)]
                    with m.Else():
                        m.d.sync += c_idx.eq(c_idx + 1)
            with m.State("CURRENTS_APPLY"):
                with m.If(ptr >= length):
                    ack(0, 0)
                with m.Else():
                    s_slot = (h_u32a + j)[:slot_bits]
                    m.d.comb += [cur_idx.eq(s_slot * Kc_of[sel] + h_u16c + c_idx), cur_w.eq(buf_word), cur_we.eq(1)]
                    m.d.comb += ptr_step.eq(4)
                    with m.If(c_idx + 1 == h_u16d):
                        m.d.sync += [c_idx.eq(0), j.eq(j + 1)]
                    with m.Else():
                        m.d.sync += c_idx.eq(c_idx + 1)

            # ---- RUN: lock-step, one SPIKES frame per core per step, then the ACK ----
            with m.State("RUN_CHECK"):
                with m.If(cur_step != h_u32a):
                    nack(E.BAD_STEP, cur_step)
                with m.Elif(sel != k_hi):
                    m.d.sync += sel.eq(sel + 1)
                with m.Else():
                    m.d.sync += [sel.eq(k_lo), j.eq(0)]
                    m.next = "RUN_STEP"
            # ---- FREERUN: checked like RUN, acknowledged, then IDLE runs a step whenever one is due ----
            with m.State("FREE_CHECK"):
                with m.If(cur_step != h_u32a):
                    nack(E.BAD_STEP, cur_step)
                with m.Elif(sel != k_hi):
                    m.d.sync += sel.eq(sel + 1)
                with m.Else():
                    m.d.comb += free_start.eq(1)
                    m.d.sync += [free.eq(1), free_lo.eq(k_lo), free_hi.eq(k_hi), free_seq.eq(recv.seq),
                                 free_period.eq(h_u32b), free_left.eq(head[64:96]), frame_turn.eq(0)]
                    ack(h_u32a, 4)
            with m.State("FREE_STEP"):  # one step of core sel of the free run (RUN_CURRENTS .. RUN_NEXT)
                m.d.sync += [c_idx.eq(0), acc.eq(0)]
                m.next = "RUN_CURRENTS"

            with m.State("RUN_STEP"):  # the next step of the run on core sel (= k_lo, all cores in lock-step)
                with m.If(cur_step == run_end):
                    ack(run_end, 4)
                with m.Else():
                    m.d.sync += [c_idx.eq(0), acc.eq(0)]
                    m.next = "RUN_CURRENTS"
            with m.State("RUN_CURRENTS"):  # the slot's analog inputs -> CURRENT_IN (then the slot is cleared)
                m.d.comb += cur_idx.eq(cur_step[:slot_bits] * Kc_of[sel] + c_idx)
                with m.If(c_idx >= Kc_of[sel]):
                    m.d.sync += c_idx.eq(0)
                    m.next = "RUN_INPUTS"
                with m.Elif(mem_ok):
                    m.d.comb += [bus_valid.eq(1), bus_write.eq(1), bus_region.eq(Region.CURRENT_IN),
                                 bus_addr.eq(c_idx), bus_data.eq(cur_r[sel])]
                    with m.If(req_ready[sel]):
                        m.d.comb += [cur_w.eq(0), cur_we.eq(1)]
                        m.next = "RUN_CURRENTS_RESP"
            with m.State("RUN_CURRENTS_RESP"):
                with m.If(resp_valid[sel]):
                    m.d.sync += c_idx.eq(c_idx + 1)
                    m.next = "RUN_CURRENTS"
            with m.State("RUN_INPUTS"):  # every set bit of the slot's bitmap -> spike_in
                m.d.comb += slot.eq(cur_step)
                bit = (in_r[sel] >> c_idx[:max(1, (A_max - 1).bit_length() + 1)])[0]
                with m.If(~mem_ok):
                    pass
                with m.Elif(c_idx >= A_of[sel]):
                    m.d.comb += [in_w.eq(0), in_we.eq(1)]
                    m.next = "RUN_START"
                with m.Elif(bit):
                    m.d.comb += [sin_valid.eq(1), sin_idx.eq(c_idx)]
                    with m.If(sin_ready[sel]):
                        m.d.sync += c_idx.eq(c_idx + 1)
                with m.Else():
                    m.d.sync += c_idx.eq(c_idx + 1)
            with m.State("RUN_START"):
                m.d.comb += start_pulse.eq(1)
                m.next = "RUN_COLLECT"
            with m.State("RUN_COLLECT"):
                m.d.comb += collect.eq(1)
                with m.If(sout_valid[sel]):
                    m.d.sync += acc.eq(acc | (Const(1, len(acc)) << sout_idx[sel][:max(1, (len(acc) - 1).bit_length())]))
                with m.If(done_k[sel]):
                    m.next = "RUN_RECORD"
            with m.State("RUN_RECORD"):
                m.d.comb += [slot.eq(cur_step), hist_w.eq(acc[:N_max]), hist_we.eq(1)]
                m.d.sync += cur_step.eq(cur_step + 1)
                # the head is sent after the increment: the step that ran is cur_step - 1 then
                reply(OP.SPIKES, sel, Cat((cur_step - 1)[:32], Const(P.SpikeFormat.BITMAP, 8),
                                          Mux(fstep & late, Const(P.SpikeFlag.LATE, 8), 0)),
                      6 + nbout_of[sel], KIND_SPIKES, RET_RUN)
            with m.State("RUN_NEXT"):
                with m.If(fstep):
                    with m.If(sel != free_hi):
                        m.d.sync += sel.eq(sel + 1)
                        m.next = "FREE_STEP"
                    with m.Else():  # the step is done on every core of the free run
                        m.d.sync += fstep.eq(0)
                        with m.If(free_left != 0):
                            m.d.sync += free_left.eq(free_left - 1)
                            with m.If(free_left == 1):
                                m.d.sync += free.eq(0)
                        m.next = "IDLE"
                with m.Else():
                    with m.If(sel != k_hi):
                        m.d.sync += sel.eq(sel + 1)
                    with m.Else():
                        m.d.sync += sel.eq(k_lo)
                    m.next = "RUN_STEP"

            # ---- RESEND ----
            with m.State("RESEND"):
                m.d.comb += slot.eq(h_u32a[:slot_bits])
                with m.If(mem_ok):
                    m.d.sync += acc.eq(hist_r[sel])
                    ack(Cat(h_u32a, Const(P.SpikeFormat.BITMAP, 8), Const(0, 8)), 6 + nbout_of[sel], KIND_SPIKES)

            # ---- LEARNING ----
            with m.State("LEARNING"):
                m.d.comb += [bus_valid.eq(1), bus_write.eq(1), bus_region.eq(Region.CONTROL),
                             bus_addr.eq(ControlReg.LEARNING), bus_data.eq(head[0:8])]
                with m.If(req_ready[sel]):
                    m.next = "LEARNING_RESP"
            with m.State("LEARNING_RESP"):
                with m.If(resp_valid[sel]):
                    with m.If(sel != k_hi):
                        m.d.sync += sel.eq(sel + 1)
                        m.next = "LEARNING"
                    with m.Else():
                        ack(0, 0)

            # ---- RESET: run the core's script, clear its slots, next core ----
            with m.State("RESET_START"):
                m.d.sync += [j.eq(script_lo[sel][head[0]]), c_idx.eq(0)]
                m.next = "RESET_WRITE"
            with m.State("RESET_WRITE"):
                e = script_rp.data
                e_region, e_addr, e_count, e_word = e[0:4], e[4:4 + aw], e[4 + aw:4 + aw + nw], e[4 + aw + nw:]
                with m.If(j == script_hi[sel][head[0]]):
                    m.d.sync += [j.eq(0), steps_reg[sel].eq(0), hist_lo[sel].eq(0)]
                    m.next = "CLEAR"
                with m.Elif(~script_ok):
                    pass
                with m.Elif(c_idx >= e_count):
                    m.d.sync += [j.eq(j + 1), c_idx.eq(0)]
                with m.Else():
                    m.d.comb += [bus_valid.eq(1), bus_write.eq(1), bus_region.eq(e_region),
                                 bus_addr.eq(e_addr + c_idx), bus_data.eq(e_word)]
                    with m.If(req_ready[sel]):
                        m.next = "RESET_RESP"
            with m.State("RESET_RESP"):
                with m.If(resp_valid[sel]):
                    m.d.sync += c_idx.eq(c_idx + 1)
                    m.next = "RESET_WRITE"
            with m.State("RESET_NEXT"):
                with m.If(sel != k_hi):
                    m.d.sync += sel.eq(sel + 1)
                    m.next = "RESET_START"
                with m.Else():
                    ack(0, 0)

            # ---- sending a reply ----
            with m.State("SEND"):
                with m.If(send.idle):
                    m.d.comb += send.start.eq(1)
                    m.d.sync += [word.eq(0), c_idx.eq(0), value.eq(0)]
                    m.d.comb += ti_next.eq(0)
                    m.next = "SEND_BODY"
            with m.State("SEND_BODY"):
                byte = Signal(8)
                ok = Signal()
                with m.Switch(kind):
                    with m.Case(KIND_SMALL):
                        m.d.comb += [byte.eq(small.word_select(ti[:3], 8)), ok.eq(1)]
                    with m.Case(KIND_PING):
                        m.d.comb += [byte.eq(buf_byte), ok.eq(1)]
                    with m.Case(KIND_IDENT):
                        flags_at = P.BOARD_HEADER.size - 2  # flags: bit 0 free-running
                        m.d.comb += [byte.eq(ident_rp.data | Mux(ti == flags_at, free, 0)), ok.eq(1)]
                    with m.Case(KIND_SPIKES):
                        m.d.comb += [byte.eq(Mux(ti < 6, small.word_select(ti[:3], 8),
                                                 acc.word_select((ti - 6)[:max(1, (len(acc) // 8).bit_length())], 8))),
                                     ok.eq(1)]
                    with m.Case(KIND_READ):
                        widx = (ti - 4)[2:]
                        with m.If(ti < 4):
                            m.d.comb += [byte.eq(small.word_select(ti[:2], 8)), ok.eq(1)]
                        with m.Elif(value[0]):  # the word is here
                            m.d.comb += [byte.eq(word.word_select(ti[:2], 8)), ok.eq(1)]
                        with m.Elif(h_region == Region.CURRENT_IN):
                            m.d.comb += cur_idx.eq(cur_step[:slot_bits] * Kc_of[sel] + h_addr + widx)
                            with m.If(mem_ok):
                                m.d.sync += [word.eq(cur_r[sel]), value.eq(1)]
                        with m.Elif(~value[1]):
                            m.d.comb += [bus_valid.eq(1), bus_region.eq(h_region), bus_addr.eq(h_addr + widx)]
                            with m.If(req_ready[sel]):
                                m.d.sync += value.eq(2)
                        with m.Elif(resp_valid[sel]):
                            m.d.sync += [word.eq(resp_data[sel]), value.eq(1)]
                m.d.comb += [send.payload.valid.eq(ok & (ti < r_len)), send.payload.payload.eq(byte)]
                with m.If(send.payload.valid & send.payload.ready):
                    m.d.comb += ti_next.eq(ti + 1)
                    with m.If((kind == KIND_READ) & (ti >= 4) & (ti[:2] == 3)):
                        m.d.sync += value.eq(0)
                with m.If((ti == r_len) & send.idle):
                    with m.If(ret == RET_RUN):
                        m.next = "RUN_NEXT"
                    with m.Else():
                        m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += recv.frame_ack.eq(1)
                m.next = "IDLE"
        m.d.comb += sending.eq(fsm.ongoing("SEND") | fsm.ongoing("SEND_BODY"))
        assert len(detail_sources) <= 32 and len(head_sources) <= 16
        for sources, code, out in ((detail_sources, r_det, detail), (head_sources, r_src, small)):
            with m.Switch(code):  # a case per source: constant sources fold into the select logic
                for i, (_, value) in enumerate(sources):
                    with m.Case(i):
                        m.d.comb += out.eq(value)
        return m
