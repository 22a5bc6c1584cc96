"""The boot ROM loader: replays a boot ROM's image records into a core's load bus, then serves the
rest of the ROM (a stimulus, for example) as a word stream.

The ROM format is ``boards/boot_rom.py``'s: header (MAGIC, step cycles, blink steps), image records
(FILL / W32 / W16 / SYN8 / SYN16 / SPARSE8 / SPARSE16), END, then whatever the ROM's user put after
it. Two tops use it: ``boards/standalone.py`` (StandaloneTop: after END it plays the stimulus, looping
with ``mark`` / ``rewind``) and the blimp controller (``demos/blimp/standalone_top.py``, which ignores
everything after END: its per-step inputs come from the UART).

Ports:

- ``req`` / ``req_valid`` (a bus write and its valid, to the core's ``bus_req``), ``req_ready`` and
  ``resp_valid`` (from the core). A write is in flight from ``req_valid & req_ready`` until
  ``resp_valid``;
- ``booted``: END reached and the last write answered (the bus is free for others);
  ``error``: the ROM does not start with boot_rom.MAGIC; ``step_cycles`` / ``blink_steps``: the
  header's values (valid once loading has begun);
- the word stream after END: ``word`` is the ROM word at the read pointer while ``word_valid``;
  ``take`` consumes it (the pointer advances); ``take`` with ``mark`` also records the address after
  it as the loop point; ``rewind`` reloads the pointer from the loop point (``word_valid`` drops for
  the cycle the ROM needs to read it).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikeforge.boards import boot_rom as br
from spikeforge.core.config import CoreConfig


class BootLoader(wiring.Component):
    req: Out(61)
    req_valid: Out(1)
    req_ready: In(1)
    resp_valid: In(1)
    booted: Out(1)
    error: Out(1)
    step_cycles: Out(32)
    blink_steps: Out(16)
    word: Out(16)
    word_valid: Out(1)
    take: In(1)
    mark: In(1)
    rewind: In(1)

    def __init__(self, config: CoreConfig, rom: list[int], rom_depth: int):
        if len(rom) > rom_depth:
            self._MustUse__silence = True
            raise ValueError(f"the ROM has {len(rom)} words but the loader's ROM holds {rom_depth}")
        self.config = config
        self.rom = list(rom) + [0] * (rom_depth - len(rom))
        self.rom_depth = rom_depth
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        c = self.config
        rom = Memory(shape=16, depth=self.rom_depth, init=self.rom, attrs={"ram_style": "block"})
        m.submodules.rom = rom
        rd = rom.read_port()

        # ROM reader: ``word`` is rom[ptr] when ``fresh`` (one cycle after ptr settled)
        ptr = Signal(range(self.rom_depth + 1))
        loop = Signal.like(ptr)    # the stream's loop point (``mark``), reloaded by ``rewind``
        fresh = Signal()
        take = Signal()
        jump = Signal()
        m.d.comb += rd.addr.eq(ptr)
        word = rd.data
        m.d.sync += fresh.eq(~take & ~jump)
        with m.If(jump):
            m.d.sync += ptr.eq(loop)
        with m.Elif(take):
            m.d.sync += ptr.eq(ptr + 1)

        op = Signal(4)
        region = Signal(4)
        addr = Signal(24)
        count = Signal(32)
        value = Signal(32)
        half = Signal()
        step16 = Signal(16)
        wb = c.weight_bits

        def synapse_word(packed_value):
            """A packed synapse (boot_rom.pack_synapse_value) -> the 32-bit bus word."""
            packed = Signal(16)
            m.d.comb += packed.eq(packed_value)
            out = Signal(32)
            m.d.comb += out[:16].eq(packed[:wb].as_signed())
            shift = wb
            if c.stdp:
                m.d.comb += out[16].eq(packed[shift])
                shift += 1
            if c.delay_bits:
                m.d.comb += out[24:24 + c.delay_bits].eq(packed[shift:shift + c.delay_bits])
            return out

        req, req_valid = self.req, self.req_valid
        in_flight = Signal()
        with m.If(req_valid & self.req_ready):
            m.d.sync += [req_valid.eq(0), in_flight.eq(1)]
        with m.If(self.resp_valid):
            m.d.sync += in_flight.eq(0)
        bus_free = ~req_valid & ~in_flight

        def issue(data_word):
            word32 = Signal(32)
            m.d.comb += word32.eq(data_word)
            m.d.sync += [req.eq(Cat(Const(1, 1), region, addr, word32)), req_valid.eq(1),
                         addr.eq(addr + 1), count.eq(count - 1)]

        def issue_at(target, data_word):
            target24, word32 = Signal(24), Signal(32)
            m.d.comb += [target24.eq(target), word32.eq(data_word)]
            m.d.sync += [req.eq(Cat(Const(1, 1), region, target24, word32)), req_valid.eq(1),
                         addr.eq(target24), count.eq(count - 1)]

        def read_into(target, next_state):
            with m.If(fresh):
                m.d.comb += take.eq(1)
                m.d.sync += target.eq(word)
                m.next = next_state

        with m.FSM() as fsm:
            with m.State("MAGIC"):
                with m.If(fresh):
                    m.d.comb += take.eq(1)
                    with m.If(word == br.MAGIC):
                        m.next = "CYCLES_LO"
                    with m.Else():
                        m.next = "ERROR"
            with m.State("CYCLES_LO"):
                read_into(self.step_cycles[:16], "CYCLES_HI")
            with m.State("CYCLES_HI"):
                read_into(self.step_cycles[16:], "BLINK")
            with m.State("BLINK"):
                read_into(self.blink_steps, "HEAD")
            with m.State("ERROR"):
                m.d.comb += self.error.eq(1)
            with m.State("HEAD"):
                with m.If(fresh & bus_free):
                    m.d.comb += take.eq(1)
                    m.d.sync += [op.eq(word[12:16]), region.eq(word[8:12]), addr[16:24].eq(word[:8]), half.eq(0)]
                    with m.If(word[12:16] == br.Op.END):
                        m.next = "BOOTED"
                    with m.Else():
                        m.next = "ADDR"
            with m.State("ADDR"):
                read_into(addr[:16], "COUNT_LO")
            with m.State("COUNT_LO"):
                read_into(count[:16], "COUNT_HI")
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
                read_into(value[:16], "VALUE_HI")
            with m.State("VALUE_HI"):
                read_into(value[16:], "WRITE")
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
            with m.State("DATA"):  # W16, SYN8, SYN16
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
                            issue(synapse_word(Mux(half, word[8:16], word[:8])))
                            m.d.sync += half.eq(~half)
                            m.d.comb += take.eq(half)
            with m.State("SPARSE"):
                with m.If(count == 0):
                    m.next = "HEAD"
                with m.Elif(fresh & bus_free):
                    m.d.comb += take.eq(1)
                    with m.If(op == br.Op.SPARSE8):
                        issue_at(addr + word[8:16], synapse_word(word[:8]))
                    with m.Elif(half):
                        issue_at(addr + step16, synapse_word(word))
                        m.d.sync += half.eq(0)
                    with m.Else():
                        m.d.sync += [step16.eq(word), half.eq(1)]
            with m.State("BOOTED"):  # the rest of the ROM is the user's stream
                m.d.comb += [self.booted.eq(bus_free), take.eq(fresh & self.take)]
                with m.If(fresh & self.take & self.mark):
                    m.d.sync += loop.eq(ptr + 1)
        # outside the FSM's case: Icarus never evaluates an ``always @*`` block whose inputs stay
        # constant, and with ``rewind`` tied off (the blimp controller) ``jump`` would stay X
        in_stream = fsm.ongoing("BOOTED")
        m.d.comb += [self.word.eq(word), self.word_valid.eq(in_stream & fresh), jump.eq(in_stream & self.rewind)]
        return m
