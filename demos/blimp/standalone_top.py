"""The standalone blimp controller: the neuron core, its boot ROM, and the encoder and decoder in logic.

No host computer runs anything: a sensor-side sender (a microcontroller reading the LiDAR, or any
UART) sends the altitude error every control tick and gets the motor command back. The board

1. boots: ``BootLoader`` replays the ROM (the controller's CoreImage, boards/boot_rom.py format) into
   the core over its load bus;
2. per tick, on a frame ``A5 e_lo e_hi`` (e: signed 16-bit error in mm, fixed_point.ERROR_LSB_M):
   computes the K encoder inputs ``clamp((G_k e + B_k + 2^(F-1)) >> F, +-CLIP)`` one after the other
   (a shift-and-add multiplier: no DSP block, the core's pipeline needs them all) and writes them into CURRENT_IN over the bus, starts one core step, adds the decoder weight D_j of
   every hidden neuron that spikes to its sub-network's sum, leaks the two decoder states and sends
   ``5A c_lo c_hi`` (c: signed 16-bit command in units of 2^-CMD_FRAC, clamped to +-3.3).

The arithmetic is ``fixed_point.FixedPointIO``'s, integer for integer, so a closed loop through this
board equals ``FixedPointController`` on the golden model bit for bit (tests/test_blimp_standalone.py
simulates it). Bytes that are not part of a frame are ignored, so the sender can resynchronise by
sending A5 again. The control rate is the sender's; one tick takes ~2,000 clock cycles plus 6 bytes
on the line. LEDs: 0 toggles every tick, 1 = booted; both on and steady = not a boot ROM.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikeforge.core.config import CoreConfig
from spikeforge.core.memory_map import Region
from spikeforge.boards.boot_loader import BootLoader
from spikeforge.demos.blimp.fixed_point import CLIP, DECAY_FRAC, ENC_FRAC, FixedPointIO
from spikeforge.hdl.uart import UartRx, UartTx, uart_divisor

FRAME_IN = 0xA5
FRAME_OUT = 0x5A


class SerialMultiplier(wiring.Component):
    """``p = a * b`` (signed) by shift and add, one bit of ``a`` per cycle: ``len(a)`` cycles after
    ``start`` (a and b sampled then), ``done`` pulses with ``p`` valid. The controller's 28 products
    per tick take ~500 cycles this way and no DSP block: the core's neuron pipeline needs those."""

    def __init__(self, a_bits: int, b_bits: int):
        self.a_bits, self.b_bits = a_bits, b_bits
        super().__init__({"a": In(signed(a_bits)), "b": In(signed(b_bits)), "start": In(1),
                          "p": Out(signed(a_bits + b_bits)), "done": Out(1), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        n = self.a_bits
        a = Signal(signed(n))
        b = Signal(signed(self.a_bits + self.b_bits))
        i = Signal(range(n + 1))
        m.d.sync += self.done.eq(0)
        m.d.comb += self.busy.eq(i != 0)
        with m.If(self.start & (i == 0)):
            m.d.sync += [a.eq(self.a), b.eq(self.b), self.p.eq(0), i.eq(n)]
        with m.Elif(i != 0):
            # two's complement: the top bit of a weighs -2^(n-1)
            with m.If(a[0]):
                with m.If(i == 1):
                    m.d.sync += self.p.eq(self.p - b)
                with m.Else():
                    m.d.sync += self.p.eq(self.p + b)
            m.d.sync += [a.eq(a >> 1), b.eq(b << 1), i.eq(i - 1)]
            with m.If(i == 1):
                m.d.sync += self.done.eq(1)
        return m


class BlimpControllerTop(wiring.Component):
    """``config``'s core booted from ``rom`` (``rom_depth`` words), with ``io``'s encoder and decoder.
    Exposes ``uart_rx``, ``uart_tx`` and ``leds`` (2) for boards/top.py's BoardTop, and ``booted``,
    ``error``, ``ticks`` for testbenches."""

    LINK_NAME = "blimp-standalone-controller"

    def __init__(self, config: CoreConfig, rom: list[int], rom_depth: int, io: FixedPointIO, clk_freq: float,
                 baud: int = 1_000_000, divisor: int | None = None):
        if config.n_current_inputs != io.gain.size or config.n_neurons != io.dec_weight.size:
            self._MustUse__silence = True  # never elaborated: no "created but never used" warning
            raise ValueError(f"the controller's encoder/decoder ({io.gain.size} inputs, {io.dec_weight.size} "
                             f"neurons) does not match the core ({config.n_current_inputs}, {config.n_neurons})")
        self.config = config
        self.rom, self.rom_depth = list(rom), rom_depth
        self.io = io
        self.clk_freq = clk_freq
        self.divisor = divisor if divisor is not None else uart_divisor(clk_freq, baud)
        super().__init__({"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1), "leds": Out(2),
                          "booted": Out(1), "error": Out(1), "ticks": Out(32)})

    def elaborate(self, platform):
        from spikeforge.hdl import NeuronCore

        m = Module()
        c, io = self.config, self.io
        K, N = c.n_current_inputs, c.n_neurons
        m.submodules.core = core = NeuronCore(c)
        m.submodules.loader = loader = BootLoader(c, self.rom, self.rom_depth)
        m.submodules.rx = rx = UartRx(self.divisor)
        m.submodules.tx = tx = UartTx(self.divisor)
        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx), self.booted.eq(loader.booted),
                     self.error.eq(loader.error)]

        # ---- the bus: the loader's until booted, then the controller's --------------------------------
        req = Signal(61)
        req_valid = Signal()
        in_flight = Signal()
        booted = loader.booted
        m.d.comb += [core.bus_resp.ready.eq(1), loader.req_ready.eq(core.bus_req.ready),
                     loader.resp_valid.eq(core.bus_resp.valid)]
        with m.If(booted):
            m.d.comb += [core.bus_req.payload.eq(req), core.bus_req.valid.eq(req_valid)]
        with m.Else():
            m.d.comb += [core.bus_req.payload.eq(loader.req), core.bus_req.valid.eq(loader.req_valid)]
        with m.If(booted & req_valid & core.bus_req.ready):
            m.d.sync += [req_valid.eq(0), in_flight.eq(1)]
        with m.If(booted & core.bus_resp.valid):
            m.d.sync += in_flight.eq(0)
        bus_free = ~req_valid & ~in_flight  # registered only: bus_req.ready depends on start

        # ---- constants (logic ROMs: a few hundred bits) --------------------------------------------------
        gains = Array(Const(int(g), signed(18)) for g in io.gain)
        biases = Array(Const(int(b), signed(26)) for b in io.bias)
        dec_w = Array(Const(int(d), signed(16)) for d in io.dec_weight)
        dec_part = Array(Const(int(p) & 3, 2) for p in io.dec_part)  # 0 PD, 1 I, 3 none
        decay = [int(a) for a in io.decay]
        one = 1 << DECAY_FRAC

        # ---- per tick ---------------------------------------------------------------------------------
        err = Signal(signed(16))
        k = Signal(range(max(K, 1) + 1))
        pre = Signal(signed(40))       # G_k e + B_k + rounding, registered
        enc = Signal(signed(40))
        m.d.comb += enc.eq(pre >> ENC_FRAC)
        u = Signal(signed(32))
        m.d.comb += u.eq(Mux(enc > CLIP, CLIP, Mux(enc < -CLIP, -CLIP, enc)))
        acc = [Signal(signed(24), name=f"acc_{n}") for n in ("pd", "i")]
        y = [Signal(signed(26), name=f"y_{n}") for n in ("pd", "i")]
        cmd = Signal(signed(16))
        s_valid = Signal()            # one pipeline stage between spike_out and the sums
        s_idx = Signal(range(N))
        start = Signal()
        m.d.comb += core.start.eq(start)
        out_byte = Signal(2)
        ticks = Signal(32)
        m.d.comb += self.ticks.eq(ticks)

        m.submodules.mul = mul = SerialMultiplier(18, 27)
        prod = [Signal(signed(45), name=f"prod_{j}") for j in range(2)]
        leak_i = Signal(range(5))
        leak_a = Array(Const(v, signed(18)) for v in (decay[0], one - decay[0], decay[1], one - decay[1]))
        leak_b = Array([y[0], acc[0], y[1], acc[1]])

        with m.If(s_valid):
            for n in (0, 1):
                with m.If(dec_part[s_idx] == n):
                    m.d.sync += acc[n].eq(acc[n] + dec_w[s_idx])
        m.d.sync += s_valid.eq(0)

        with m.FSM():
            with m.State("BOOT"):
                with m.If(booted):
                    m.next = "SYNC"
            with m.State("SYNC"):
                m.d.comb += rx.data.ready.eq(1)
                with m.If(rx.data.valid & (rx.data.payload == FRAME_IN)):
                    m.next = "ERR_LO"
            with m.State("ERR_LO"):
                m.d.comb += rx.data.ready.eq(1)
                with m.If(rx.data.valid):
                    m.d.sync += err[:8].eq(rx.data.payload)
                    m.next = "ERR_HI"
            with m.State("ERR_HI"):
                m.d.comb += rx.data.ready.eq(1)
                with m.If(rx.data.valid):
                    m.d.sync += [err[8:].eq(rx.data.payload), k.eq(0)]
                    m.next = "ENC_MUL"
            with m.State("ENC_MUL"):
                with m.If(k == K):
                    m.next = "START"
                with m.Else():
                    m.d.comb += [mul.a.eq(gains[k]), mul.b.eq(err), mul.start.eq(1)]
                    m.next = "ENC_WAIT"
            with m.State("ENC_WAIT"):
                with m.If(mul.done):
                    m.d.sync += pre.eq(mul.p + biases[k] + (1 << (ENC_FRAC - 1)))
                    m.next = "ENC_WRITE"
            with m.State("ENC_WRITE"):
                with m.If(bus_free):
                    addr24 = Signal(24)
                    m.d.comb += addr24.eq(k)
                    m.d.sync += [req.eq(Cat(Const(1, 1), Const(int(Region.CURRENT_IN), 4), addr24, u)),
                                 req_valid.eq(1), k.eq(k + 1)]
                    m.next = "ENC_MUL"
            with m.State("START"):
                with m.If(~core.busy & bus_free):
                    m.d.comb += start.eq(1)
                    m.d.sync += [acc[0].eq(0), acc[1].eq(0)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += core.spike_out.ready.eq(1)
                with m.If(core.spike_out.valid):
                    m.d.sync += [s_valid.eq(1), s_idx.eq(core.spike_out.payload)]
                with m.If(core.done):
                    m.next = "LEAK"
            with m.State("LEAK"):  # y = (A y + (2^16 - A) acc + 2^15) >> 16: four products in turn
                with m.If(~s_valid):  # the spike pipeline stage has emptied
                    m.d.sync += leak_i.eq(0)
                    m.next = "LEAK_MUL"
            with m.State("LEAK_MUL"):
                with m.If(leak_i == 4):
                    for n in (0, 1):
                        m.d.sync += y[n].eq((prod[n] + (one >> 1)) >> DECAY_FRAC)
                    m.next = "CMD"
                with m.Else():
                    m.d.comb += [mul.a.eq(leak_a[leak_i]), mul.b.eq(leak_b[leak_i]), mul.start.eq(1)]
                    m.next = "LEAK_WAIT"
            with m.State("LEAK_WAIT"):
                with m.If(mul.done):
                    with m.Switch(leak_i):
                        for j in range(4):
                            with m.Case(j):
                                if j % 2 == 0:
                                    m.d.sync += prod[j // 2].eq(mul.p)
                                else:
                                    m.d.sync += prod[j // 2].eq(prod[j // 2] + mul.p)
                    m.d.sync += leak_i.eq(leak_i + 1)
                    m.next = "LEAK_MUL"
            with m.State("CMD"):
                total = Signal(signed(27))
                m.d.comb += total.eq(y[0] + y[1])
                m.d.sync += [cmd.eq(Mux(total > io.cmd_max, io.cmd_max, Mux(total < -io.cmd_max, -io.cmd_max, total))),
                             out_byte.eq(0), ticks.eq(ticks + 1)]
                m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [tx.data.valid.eq(1),
                             tx.data.payload.eq(Mux(out_byte == 0, FRAME_OUT, Mux(out_byte == 1, cmd[:8], cmd[8:])))]
                with m.If(tx.data.ready):
                    m.d.sync += out_byte.eq(out_byte + 1)
                    with m.If(out_byte == 2):
                        m.next = "SYNC"

        m.d.comb += self.leds.eq(Mux(loader.error, 0b11, Cat(ticks[0], booted)))
        return m
