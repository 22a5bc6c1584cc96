"""The standalone top: a neuron core that loads itself from a boot ROM and runs with no host.

After reset the loader replays the ROM's records (boards/boot_rom.py) into the core over its load
bus; then, every ``step_cycles`` clock cycles (one network ``dt`` in real time), it sends the next
step's input spikes from the ROM's stimulus, starts a timestep and streams the neurons that spiked
out of the UART. The stimulus loops; the network's state carries on.

Spike stream (UART 8N1, the board's USB serial port): a spike of neuron i is two bytes
``0x80 | i >> 7``, ``i & 0x7F``; the end of a timestep is ``0xFF``. First bytes (0x80..0x9F) and
continuation bytes (< 0x80) never collide, so a reader can start anywhere (``decode_spike_stream``).
LEDs: LED 0 toggles every ``blink_steps`` steps (alive), LED 1 lights for ~50 ms after any spike;
both on and steady = the ROM is not a spikeforge boot ROM.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out

from spikeforge.boards import boot_rom as br
from spikeforge.boards.interim_link import neuron_core_class
from spikeforge.core.config import CoreConfig
from spikeforge.hdl.uart import UartTx, uart_divisor

END_OF_STEP = 0xFF


class StandaloneTop(wiring.Component):
    """``config``'s core with a boot ROM of ``rom_depth`` 16-bit words initialised to ``rom``.

    The ROM's header sets the clock cycles per timestep and the LED blink rate (boot_rom.py).
    Exposes ``uart_rx`` (unused), ``uart_tx`` and ``leds`` (2) for boards/top.py."""

    LINK_NAME = "standalone"

    def __init__(self, config: CoreConfig, rom: list[int], rom_depth: int, clk_freq: float,
                 baud: int = 1_000_000):
        if len(rom) > rom_depth:
            raise ValueError(f"the ROM has {len(rom)} words but the bitstream's ROM holds {rom_depth}")
        self.config = config
        self.rom = list(rom) + [0] * (rom_depth - len(rom))
        self.rom_depth = rom_depth
        self.clk_freq = clk_freq
        self.divisor = uart_divisor(clk_freq, baud)
        super().__init__({"uart_rx": wiring.In(1, init=1), "uart_tx": Out(1, init=1), "leds": Out(2),
                          "booted": Out(1), "error": Out(1), "steps": Out(32)})

    def elaborate(self, platform):
        m = Module()
        c = self.config
        m.submodules.core = core = neuron_core_class()(c)
        rom = Memory(shape=16, depth=self.rom_depth, init=self.rom, attrs={"ram_style": "block"})
        m.submodules.rom = rom
        rd = rom.read_port()

        # ---- ROM reader: ``word`` is rom[ptr] when ``fresh`` (one cycle after ptr settled) ----------
        ptr = Signal(range(self.rom_depth + 1))
        fresh = Signal()
        take = Signal()            # consume ``word`` this cycle: ptr advances
        jump = Signal()            # ptr is reloaded this cycle (stimulus loop)
        m.d.comb += rd.addr.eq(ptr)
        word = rd.data
        m.d.sync += fresh.eq(~take & ~jump)
        with m.If(take):
            m.d.sync += ptr.eq(ptr + 1)

        # ---- loader registers --------------------------------------------------------------------
        op = Signal(4)
        region = Signal(4)
        addr = Signal(24)
        count = Signal(32)
        value = Signal(32)
        half = Signal()            # SYN8: which byte of the word; SPARSE16: the step was read
        step16 = Signal(16)        # SPARSE16: the address step read before the synapse
        wb, SB = c.weight_bits, br.packed_synapse_bits(c)

        def synapse_word(value):
            """A packed synapse (boot_rom.pack_synapse_value) -> the 32-bit bus word."""
            packed = Signal(16)
            m.d.comb += packed.eq(value)
            w = packed[:wb].as_signed()
            out = Signal(32)
            m.d.comb += out[:16].eq(w)
            shift = wb
            if c.stdp:
                m.d.comb += out[16].eq(packed[shift])
                shift += 1
            if c.delay_bits:
                m.d.comb += out[24:24 + c.delay_bits].eq(packed[shift:shift + c.delay_bits])
            return out

        req = Signal(61)
        req_valid = Signal()
        in_flight = Signal()       # a request was taken and its response has not come back yet
        m.d.comb += [core.bus_req.payload.eq(req), core.bus_req.valid.eq(req_valid), core.bus_resp.ready.eq(1)]
        with m.If(core.bus_req.valid & core.bus_req.ready):
            m.d.sync += [req_valid.eq(0), in_flight.eq(1)]
        with m.If(core.bus_resp.valid):
            m.d.sync += in_flight.eq(0)

        def issue(data_word):
            """Start the bus write of ``data_word`` (sign-extended to 32 bits) to (region, addr) and
            step to the next address."""
            word32 = Signal(32)
            m.d.comb += word32.eq(data_word)
            m.d.sync += [req.eq(Cat(Const(1, 1), region, addr, word32)), req_valid.eq(1),
                         addr.eq(addr + 1), count.eq(count - 1)]

        def issue_at(target, data_word):
            """A write to (region, ``target``) that leaves ``addr`` at ``target``: sparse records step
            from the last address written."""
            target24, word32 = Signal(24), Signal(32)
            m.d.comb += [target24.eq(target), word32.eq(data_word)]
            m.d.sync += [req.eq(Cat(Const(1, 1), region, target24, word32)), req_valid.eq(1),
                         addr.eq(target24), count.eq(count - 1)]

        # registered only: the core's bus_req.ready depends on ``start`` combinationally
        bus_free = ~req_valid & ~in_flight

        # ---- run registers ---------------------------------------------------------------------------
        n_steps = Signal(16)
        stim_base = Signal.like(ptr)
        step_idx = Signal(16)
        k_left = Signal(16)
        step_cycles = Signal(32)
        blink_steps = Signal(16)
        timer = Signal(32)
        timer_done = Signal()
        m.d.comb += timer_done.eq(timer == 0)
        with m.If(~timer_done):
            m.d.sync += timer.eq(timer - 1)
        spike_in_valid = Signal()
        spike_in_idx = Signal(16)
        if c.n_inputs:
            m.d.comb += [core.spike_in.valid.eq(spike_in_valid), core.spike_in.payload.eq(spike_in_idx)]
            spike_in_taken = core.spike_in.valid & core.spike_in.ready
        else:
            spike_in_taken = spike_in_valid
        with m.If(spike_in_taken):
            m.d.sync += spike_in_valid.eq(0)

        start = Signal()
        m.d.comb += core.start.eq(start)
        end_pending = Signal()     # the end-of-step event waits for room in the spike FIFO
        step_done = Signal()
        steps = Signal(32)
        m.d.comb += self.steps.eq(steps)

        with m.FSM():
            with m.State("MAGIC"):
                with m.If(fresh):
                    m.d.comb += take.eq(1)
                    with m.If(word == br.MAGIC):
                        m.next = "CYCLES_LO"
                    with m.Else():
                        m.next = "ERROR"
            with m.State("CYCLES_LO"):
                with m.If(fresh):
                    m.d.comb += take.eq(1)
                    m.d.sync += step_cycles[:16].eq(word)
                    m.next = "CYCLES_HI"
            with m.State("CYCLES_HI"):
                with m.If(fresh):
                    m.d.comb += take.eq(1)
                    m.d.sync += step_cycles[16:].eq(word)
                    m.next = "BLINK"
            with m.State("BLINK"):
                with m.If(fresh):
                    m.d.comb += take.eq(1)
                    m.d.sync += blink_steps.eq(word)
                    m.next = "HEAD"
            with m.State("ERROR"):
                m.d.comb += self.error.eq(1)
            with m.State("HEAD"):
                with m.If(fresh & bus_free):
                    m.d.comb += take.eq(1)
                    m.d.sync += [op.eq(word[12:16]), region.eq(word[8:12]), addr[16:24].eq(word[:8]),
                                 half.eq(0)]
                    with m.If(word[12:16] == br.Op.END):
                        m.next = "STEPS"
                    with m.Else():
                        m.next = "ADDR"
            with m.State("ADDR"):
                with m.If(fresh):
                    m.d.comb += take.eq(1)
                    m.d.sync += addr[:16].eq(word)
                    m.next = "COUNT_LO"
            with m.State("COUNT_LO"):
                with m.If(fresh):
                    m.d.comb += take.eq(1)
                    m.d.sync += count[:16].eq(word)
                    m.next = "COUNT_HI"
            with m.State("COUNT_HI"):
                with m.If(fresh):
                    m.d.comb += take.eq(1)
                    m.d.sync += count[16:].eq(word)
                    with m.If((op == br.Op.FILL) | (op == br.Op.W32)):
                        m.next = "VALUE_LO"
                    with m.Elif((op == br.Op.SPARSE8) | (op == br.Op.SPARSE16)):
                        m.next = "SPARSE"
                    with m.Else():
                        m.next = "DATA"
            with m.State("VALUE_LO"):
                with m.If(fresh):
                    m.d.comb += take.eq(1)
                    m.d.sync += value[:16].eq(word)
                    m.next = "VALUE_HI"
            with m.State("VALUE_HI"):
                with m.If(fresh):
                    m.d.comb += take.eq(1)
                    m.d.sync += value[16:].eq(word)
                    m.next = "WRITE"
            with m.State("WRITE"):  # FILL repeats ``value``; W32 writes it once
                with m.If(count == 0):
                    m.next = "HEAD"
                with m.Elif(bus_free):
                    issue(value)
                    with m.If(op == br.Op.W32):
                        with m.If(count == 1):
                            m.next = "HEAD"
                        with m.Else():
                            m.next = "VALUE_LO"
            with m.State("DATA"):  # W16, SYN8, SYN16: one value per word (two per word for SYN8)
                with m.If(count == 0):
                    with m.If((op == br.Op.SYN8) & half):
                        with m.If(fresh):  # the odd count's padding byte
                            m.d.comb += take.eq(1)
                            m.next = "HEAD"
                    with m.Else():
                        m.next = "HEAD"
                with m.Elif(fresh & bus_free):
                    with m.Switch(op):
                        with m.Case(br.Op.W16):
                            m.d.comb += take.eq(1)
                            issue(word.as_signed())
                        with m.Case(br.Op.SYN16):
                            m.d.comb += take.eq(1)
                            issue(synapse_word(word))
                        with m.Case(br.Op.SYN8):
                            byte = Mux(half, word[8:16], word[:8])
                            issue(synapse_word(byte))
                            m.d.sync += half.eq(~half)
                            m.d.comb += take.eq(half)
            with m.State("SPARSE"):  # [step | synapse] words, or (step, synapse) word pairs
                with m.If(count == 0):
                    m.next = "HEAD"
                with m.Elif(fresh & bus_free):
                    m.d.comb += take.eq(1)
                    with m.If(op == br.Op.SPARSE8):
                        issue_at(addr + word[8:16], synapse_word(word[:8]))
                    with m.Elif(half):  # SPARSE16, second word: the synapse
                        issue_at(addr + step16, synapse_word(word))
                        m.d.sync += half.eq(0)
                    with m.Else():
                        m.d.sync += [step16.eq(word), half.eq(1)]
            with m.State("STEPS"):
                with m.If(fresh & bus_free):
                    m.d.comb += take.eq(1)
                    m.d.sync += [n_steps.eq(word), stim_base.eq(ptr + 1), step_idx.eq(0)]
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.booted.eq(1)
                with m.If(fresh & timer_done & ~core.busy & ~end_pending):
                    m.d.comb += take.eq(1)
                    m.d.sync += k_left.eq(word)
                    with m.If(step_cycles != 0):
                        m.d.sync += timer.eq(step_cycles - 1)
                    m.next = "INPUTS"
            with m.State("INPUTS"):
                m.d.comb += self.booted.eq(1)
                with m.If(k_left == 0):
                    with m.If(~spike_in_valid):
                        m.next = "START"
                with m.Elif(fresh & ~spike_in_valid):
                    m.d.comb += take.eq(1)
                    m.d.sync += [spike_in_idx.eq(word), spike_in_valid.eq(1), k_left.eq(k_left - 1)]
            with m.State("START"):
                m.d.comb += self.booted.eq(1)
                with m.If(~core.busy & bus_free):
                    m.d.comb += start.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.booted.eq(1)
                with m.If(core.done):
                    m.d.comb += step_done.eq(1)
                    m.d.sync += steps.eq(steps + 1)
                    with m.If(step_idx + 1 == n_steps):
                        m.d.comb += jump.eq(1)
                        m.d.sync += [step_idx.eq(0), ptr.eq(stim_base)]
                    with m.Else():
                        m.d.sync += step_idx.eq(step_idx + 1)
                    m.next = "WAIT"

        # ---- spikes out: a FIFO of events, serialised to UART bytes ---------------------------------
        EVENT = data.StructLayout({"index": 12, "end": 1})
        m.submodules.events = events = fifo.SyncFIFOBuffered(width=EVENT.size, depth=64)
        ev_in = EVENT(events.w_data)
        with m.If(step_done):
            m.d.sync += end_pending.eq(1)
        m.d.comb += core.spike_out.ready.eq(events.w_rdy & ~end_pending)
        with m.If(end_pending & events.w_rdy):
            m.d.comb += [ev_in.end.eq(1), events.w_en.eq(1)]
            m.d.sync += end_pending.eq(0)
        with m.Elif(core.spike_out.valid & core.spike_out.ready):
            m.d.comb += [ev_in.index.eq(core.spike_out.payload), events.w_en.eq(1)]
        m.submodules.tx = tx = UartTx(self.divisor)
        m.d.comb += self.uart_tx.eq(tx.tx)
        ev_out = EVENT(events.r_data)
        second = Signal()
        low = Signal(7)
        with m.If(second):
            m.d.comb += [tx.data.payload.eq(low), tx.data.valid.eq(1)]
            with m.If(tx.data.ready):
                m.d.sync += second.eq(0)
        with m.Elif(events.r_rdy):
            m.d.comb += [tx.data.valid.eq(1),
                         tx.data.payload.eq(Mux(ev_out.end, END_OF_STEP, 0x80 | (ev_out.index >> 7)))]
            with m.If(tx.data.ready):
                m.d.comb += events.r_en.eq(1)
                with m.If(~ev_out.end):
                    m.d.sync += [second.eq(1), low.eq(ev_out.index[:7])]

        # ---- LEDs --------------------------------------------------------------------------------
        blink = Signal(16)
        alive = Signal()
        with m.If(step_done):
            with m.If(blink + 1 >= blink_steps):
                m.d.sync += [blink.eq(0), alive.eq(~alive)]
            with m.Else():
                m.d.sync += blink.eq(blink + 1)
        glow_cycles = max(1, int(0.05 * self.clk_freq))
        glow = Signal(range(glow_cycles + 1))
        with m.If(core.spike_out.valid & core.spike_out.ready):
            m.d.sync += glow.eq(glow_cycles)
        with m.Elif(glow != 0):
            m.d.sync += glow.eq(glow - 1)
        m.d.comb += self.leds.eq(Mux(self.error, 0b11, Cat(alive, glow != 0)))
        return m


def decode_spike_stream(data: bytes) -> list[list[int]]:
    """UART bytes of a standalone board -> the neurons that spiked in each complete timestep.

    Bytes before the first end-of-step marker belong to a step seen only in part and are dropped."""
    steps, current, first, synced = [], [], None, False
    for b in data:
        if b == END_OF_STEP:
            if synced:
                steps.append(current)
            current, first, synced = [], None, True
        elif b & 0x80:
            first = b & 0x1F
        elif first is not None:
            current.append((first << 7) | b)
            first = None
    return steps
