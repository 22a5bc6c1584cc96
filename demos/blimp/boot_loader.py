"""The boot ROM loader as a component of its own: replays a boot ROM's image records into a core's bus.

``boards/standalone.py`` (StandaloneTop) has the same loader inlined in its FSM, followed by the
stimulus player; a standalone *controller* needs the loader without the player (its per-step inputs
come from the UART), so this is that loader's logic lifted out unchanged: the ROM format is
``boards/boot_rom.py``'s (header, FILL/W32/W16/SYN8/SYN16/SPARSE8/SPARSE16 records, END), built by
``boot_rom.encode_header`` + ``boot_rom.encode_image``. Everything after END (a stimulus) is ignored.
(StandaloneTop could use this component too; until then the two copies must stay in step:
tests/test_blimp_standalone.py boots the blimp controller's ROM through it and checks the whole
closed loop against the golden model, which fails on any word loaded wrong.)

Ports: ``req`` / ``req_valid`` (a bus request and its valid, to the core's ``bus_req``),
``req_ready`` and ``resp_valid`` (from the core), ``booted`` (END reached: the bus is free for
others from the next cycle), ``error`` (the ROM does not start with boot_rom.MAGIC).
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
        fresh = Signal()
        take = Signal()
        m.d.comb += rd.addr.eq(ptr)
        word = rd.data
        m.d.sync += fresh.eq(~take)
        with m.If(take):
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

        with m.FSM():
            with m.State("MAGIC"):
                with m.If(fresh):
                    m.d.comb += take.eq(1)
                    with m.If(word == br.MAGIC):
                        m.next = "SKIP_CYCLES_LO"
                    with m.Else():
                        m.next = "ERROR"
            with m.State("SKIP_CYCLES_LO"):  # step_cycles and blink_steps: the controller is paced by its UART
                read_into(value[:16], "SKIP_CYCLES_HI")
            with m.State("SKIP_CYCLES_HI"):
                read_into(value[16:], "SKIP_BLINK")
            with m.State("SKIP_BLINK"):
                read_into(value[:16], "HEAD")
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
            with m.State("BOOTED"):
                m.d.comb += self.booted.eq(bus_free)
        return m
