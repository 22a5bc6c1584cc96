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

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import Out

from spikeforge.boards.boot_loader import BootLoader
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
        self.rom = list(rom)       # BootLoader pads it to rom_depth
        self.rom_depth = rom_depth
        self.clk_freq = clk_freq
        self.divisor = uart_divisor(clk_freq, baud)
        super().__init__({"uart_rx": wiring.In(1, init=1), "uart_tx": Out(1, init=1), "leds": Out(2),
                          "booted": Out(1), "error": Out(1), "steps": Out(32)})

    def elaborate(self, platform):
        m = Module()
        c = self.config
        m.submodules.core = core = neuron_core_class()(c)

        # ---- boot: the loader replays the ROM's image into the core, then streams the stimulus ------
        m.submodules.loader = loader = BootLoader(c, self.rom, self.rom_depth)
        m.d.comb += [core.bus_req.payload.eq(loader.req), core.bus_req.valid.eq(loader.req_valid),
                     loader.req_ready.eq(core.bus_req.ready), loader.resp_valid.eq(core.bus_resp.valid),
                     core.bus_resp.ready.eq(1), self.error.eq(loader.error)]
        word, fresh = loader.word, loader.word_valid
        step_cycles, blink_steps = loader.step_cycles, loader.blink_steps

        # ---- run registers ---------------------------------------------------------------------------
        n_steps = Signal(16)
        step_idx = Signal(16)
        k_left = Signal(16)
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
            with m.State("STEPS"):  # the loader is done: the stimulus starts with its step count
                with m.If(fresh & loader.booted):
                    m.d.comb += [loader.take.eq(1), loader.mark.eq(1)]  # the stimulus loops back to here
                    m.d.sync += [n_steps.eq(word), step_idx.eq(0)]
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.booted.eq(1)
                with m.If(fresh & timer_done & ~core.busy & ~end_pending):
                    m.d.comb += loader.take.eq(1)
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
                    m.d.comb += loader.take.eq(1)
                    m.d.sync += [spike_in_idx.eq(word), spike_in_valid.eq(1), k_left.eq(k_left - 1)]
            with m.State("START"):
                m.d.comb += self.booted.eq(1)
                with m.If(~core.busy & loader.booted):
                    m.d.comb += start.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.booted.eq(1)
                with m.If(core.done):
                    m.d.comb += step_done.eq(1)
                    m.d.sync += steps.eq(steps + 1)
                    with m.If(step_idx + 1 == n_steps):
                        m.d.comb += loader.rewind.eq(1)
                        m.d.sync += step_idx.eq(0)
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
