"""The neuron core in Amaranth: bit-exact with sim/golden.py (GoldenCore.step, phases 1-7).

Schedule of one timestep (docs/core-rtl.md has the cycle counts):

1. NEURON   one neuron per clock through a 10-stage pipeline (phases 1-3 and the post-trace decay of
            phase 4): membrane with three products, current decay plus this step's ring-buffer
            arrivals (the slot is cleared as it is read), refractory countdown, threshold with
            adaptation, spike, reset. Spiking neurons are appended to the spike list. With STDP a
            second pipeline decays the S pre traces concurrently (phase 4).
2. POT      (stdp, learning, some neuron spiked) potentiation down the columns of the neurons that
            spiked: for every word-column group with a spike, every row is read, its spiking lanes
            raised by rnd(x_row) up to w_max, and written back (phase 5, first half).
3. DELIVER  every source that spiked (inputs of the step, then neurons in increasing order) reads its
            weight row, ``lanes`` synapses per clock. With STDP and learning the row is depressed on
            the way (phase 5, second half) and written back; then each synapse adds
            ``w << row_shift`` to the ring slot (step + delay) % max_delay of its target, exc or inh by
            sign, saturating (phase 7). Pre traces of the sources are incremented (phase 6). Neuron
            indices leave on ``spike_out`` as their rows start.
4. YINC     (stdp) post traces of the neurons that spiked are incremented (phase 6).

The weight memory has a single port (iCE40 SPRAM): with read-modify-write (POT, learning DELIVER)
reads and writes alternate in pairs (R R W W), otherwise it reads every clock. The ring buffer is
split into max(lanes, 2) banks by target index, so the P lanes of a weight word update P banks in the
same clock and the neuron pass can read a neuron's exc and inh entries in consecutive clocks.
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikeforge.core import fixedpoint as fx
from spikeforge.core import memory_map as mm
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import PROFILE_FIELDS, STDP_FIELDS
from spikeforge.hdl import arith
from spikeforge.hdl.divider import ConstDivider
from spikeforge.hdl.layouts import (
    BUS_REQUEST, BUS_RESPONSE, early_profile_layout, index_bits, late_profile_layout, mid_profile_layout,
    neuron_currents_layout, neuron_state_layout, synapse_layout,
)

#: Deliberate single-line bugs for the verification suite's mutation check (hdl/INTERFACE.md).
MUTATIONS = (
    "v_shift_off_by_one",
    "no_v_saturation",
    "swap_current_order",
    "wrong_trace_decay",
    "refrac_off_by_one",
    "no_weight_bound",
    "ring_slot_off_by_one",
)

#: Depth of the neuron pipeline: neuron j is issued at stage 0 and written back at stage NEURON_STAGES-1.
NEURON_STAGES = 10
#: Depth of the pre-trace decay pipeline.
XDECAY_STAGES = 4
#: Stages of the weight engine from issue to the ring-buffer write.
WEIGHT_STAGES = 4


class _Pipe:
    """Named values flowing down a pipeline that never stalls: ``get(name, k)`` returns the value as
    it is at stage ``k``, adding the registers from the stage where it was ``put``."""

    def __init__(self, m: Module, prefix: str):
        self.m, self.prefix, self.vals = m, prefix, {}

    def put(self, name: str, stage: int, value) -> Value:
        value = Value.cast(value)
        sig = Signal(value.shape(), name=f"{self.prefix}_{name}_s{stage}")
        self.m.d.comb += sig.eq(value)
        self.vals[name] = {stage: sig}
        return sig

    def get(self, name: str, stage: int) -> Value:
        chain = self.vals[name]
        have = max(k for k in chain if k <= stage)
        while have < stage:
            # data registers need no reset (less routing); only the valid bits do
            # (multiplier operands and products keep theirs: yosys then maps all of them to DSPs)
            reset_less = name != "valid" and not name.endswith(("_c", "_x", "_sign", "_prod"))
            reg = Signal(chain[have].shape(), name=f"{self.prefix}_{name}_s{have + 1}",
                         reset_less=reset_less)
            self.m.d.sync += reg.eq(chain[have])
            chain[have + 1] = reg
            have += 1
        return chain[stage]


def _onehot(index: Value, width: int) -> Value:
    """A ``width``-bit mask with bit ``index`` set."""
    return (Const(1, width) << index)[:width]


def _all(port, cond: Value) -> Value:
    """A write port's enable with every lane set when ``cond`` (ports with a granularity have one
    enable bit per lane)."""
    width = len(port.en)
    return Mux(cond, (1 << width) - 1, 0)


def _signed(x: Value) -> Value:
    """An unsigned value as a signed one of one more bit (same number)."""
    x = Value.cast(x)
    return x if x.shape().signed else Cat(x, Const(0, 1)).as_signed()


class NeuronCore(wiring.Component):
    """One spikeforge neuron core for ``config``; see hdl/INTERFACE.md for ports and protocol."""

    def __init__(self, config: CoreConfig, mutation: str | None = None):
        if not isinstance(config, CoreConfig):
            raise TypeError(f"NeuronCore(config=...): expected a CoreConfig, got {type(config).__name__}")
        if mutation is not None and mutation not in MUTATIONS:
            raise ValueError(f"NeuronCore: unknown mutation {mutation!r}; known: {', '.join(MUTATIONS)}")
        if config.delay_bits > mm.SYNAPSE_DELAY_BITS:
            raise ValueError("NeuronCore: max_delay does not fit the memory map's 6-bit delay field")
        self.config = config
        self.mutation = mutation
        c = config
        members = {
            "bus_req": In(stream.Signature(BUS_REQUEST)),
            "bus_resp": Out(stream.Signature(BUS_RESPONSE)),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "spike_out": Out(stream.Signature(unsigned(index_bits(c.n_neurons)))),
        }
        if c.n_inputs:
            members["spike_in"] = In(stream.Signature(unsigned(index_bits(c.n_inputs))))
        super().__init__(members)

    # ------------------------------------------------------------------------------------------
    def elaborate(self, platform):
        c = self.config
        mut = self.mutation
        m = Module()
        N, A, S, P, D, K = c.n_neurons, c.n_inputs, c.n_sources, c.lanes, c.max_delay, c.n_current_inputs
        W, VB, IB, RB, AB, TB, TF = (c.weight_bits, c.v_bits, c.i_bits, c.refrac_bits, c.adapt_bits,
                                    c.trace_bits, c.trace_frac)
        STDP, ADAPT = c.stdp, c.adaptive_threshold
        NP = N // P                       # weight words per row
        B = max(P, 2)                     # ring banks
        LB = int(math.log2(B))
        NB = -(-N // B)                   # ring entries per bank per (slot, channel)
        LP = int(math.log2(P))
        SYN = synapse_layout(c)
        SB = SYN.size
        ST = neuron_state_layout(c)
        PE, PM, PL = early_profile_layout(c), mid_profile_layout(c), late_profile_layout(c)

        # ---- memories ------------------------------------------------------------------------
        def memory(name, shape, depth, style="block", rw_check=False):
            # small tables (profiles) would become flip-flops; block RAM saves the scarce logic cells
            attrs = {"ram_style": style} if style else {}
            if not rw_check:
                # The schedule never reads a word in the clock that writes it, or ignores what such
                # a read returns (docs/core-rtl.md, "Read/write collisions"). Without this attribute
                # Yosys emulates read-first behaviour on every block RAM whose ports may collide
                # (iCE40 EBR, ECP5 DP16KD): it delays every write by a register and adds an address
                # comparator and bypass multiplexer to the read data, hundreds of logic cells that
                # also sat on the ring buffer's read-add-write path.
                attrs["no_rw_check"] = 1
            mem = Memory(shape=shape, depth=depth, init=[], attrs=attrs)
            m.submodules[name] = mem
            return mem

        # the weight memory picks its own kind (large: iCE40 SPRAM); read and write share one
        # address so that it fits a single-port RAM
        wmem = memory("weights", unsigned(P * SB), S * NP, style=None)
        w_rp, w_wp = wmem.read_port(), wmem.write_port()
        w_addr, w_we = Signal(range(S * NP)), Signal()
        m.d.comb += [w_rp.addr.eq(w_addr), w_wp.addr.eq(w_addr), w_rp.en.eq(~w_we), w_wp.en.eq(w_we)]
        rsmem = memory("row_shift", unsigned(fx.ROW_SHIFT_BITS), S)
        rs_rp, rs_wp = rsmem.read_port(), rsmem.write_port()
        # tables whose fields all have one width get per-field write enables: a bus write then needs
        # no read-modify-write multiplexer (they are stored as plain bit vectors, viewed through layouts)
        def field_granularity(layout):
            widths = {f.width for _, f in layout}
            return widths.pop() if len(widths) == 1 else None

        pemem = memory("profile_early", unsigned(PE.size), c.n_profiles)
        pe_rp, pe_wp = pemem.read_port(), pemem.write_port(granularity=field_granularity(PE))
        plmem = memory("profile_late", PL, c.n_profiles)
        pl_rp, pl_wp = plmem.read_port(), plmem.write_port()
        pmmem = memory("profile_mid", unsigned(PM.size), c.n_profiles)
        pm_rp, pm_wp = pmmem.read_port(), pmmem.write_port(granularity=field_granularity(PM))
        stmem = memory("neuron_state", ST, N)
        st_rp, st_wp = stmem.read_port(), stmem.write_port()
        CU = neuron_currents_layout(c)
        cumem = memory("neuron_currents", unsigned(CU.size), N)
        cu_rp, cu_wp = cumem.read_port(), cumem.write_port(granularity=field_granularity(CU))
        ring = [memory(f"ring{b}", signed(IB), 2 * D * NB) for b in range(B)]
        ring_rp = [r.read_port() for r in ring]
        ring_wp = [r.write_port() for r in ring]
        slmem = memory("spike_list", unsigned(index_bits(N)), N)
        sl_rp, sl_wp = slmem.read_port(), slmem.write_port()
        if K:
            umem = memory("current_in", signed(VB), K)
            u_rp, u_wp = umem.read_port(), umem.write_port()
        if A:
            ibmem = memory("input_bitmap", unsigned(1), A)
            ib_rp, ib_wp = ibmem.read_port(), ibmem.write_port()
            ilmem = memory("input_list", unsigned(index_bits(A)), A)
            il_rp, il_wp = ilmem.read_port(), ilmem.write_port()
        if STDP:
            xmem = memory("x_trace", unsigned(TB), S)
            x_rp, x_wp = xmem.read_port(), xmem.write_port()
            # the neuron pass and YINC read a y word while another lane of it is written: the
            # other lanes must read back unchanged, so this memory keeps Yosys's collision logic
            ymem = memory("y_trace", unsigned(P * TB), NP, rw_check=True)
            y_rp, y_wp = ymem.read_port(), ymem.write_port(granularity=TB)
            GL = data.StructLayout({"k": unsigned(index_bits(NP)), "mask": unsigned(P)})
            glmem = memory("group_list", GL, NP)
            gl_rp, gl_wp = glmem.read_port(), glmem.write_port()

        # ---- control registers ---------------------------------------------------------------
        step = Signal(32)
        ptr = Signal(range(D))            # step % max_delay
        learning = Signal(init=1)
        # 24 bits count steps of up to 16.7M cycles (the longest STDP steps of a 4096-neuron core)
        last_cycles = Signal(24)
        cycles = Signal(24)
        if STDP:
            stdp_regs = {
                "c_xdecay": Signal(fx.COEF_BITS, init=fx.COEF_ONE, name="c_xdecay"),
                "c_ydecay": Signal(fx.COEF_BITS, init=fx.COEF_ONE, name="c_ydecay"),
                "x_inc": Signal(TB, name="x_inc"), "y_inc": Signal(TB, name="y_inc"),
                "w_min": Signal(signed(W), name="w_min"),
                "w_max": Signal(signed(W), init=arith.smax(W), name="w_max"),
            }
        n_in = Signal(range(A + 1))       # entries in the input list
        n_post = Signal(range(N + 1))     # entries in the spike list
        n_groups = Signal(range(NP + 1))  # entries in the group list

        IDLE, NEURON, POT, DELIVER, YINC, FINISH = range(6)
        phase = Signal(range(6))
        busy = Signal()
        # busy (phase != IDLE) and done (phase == FINISH) are registers of their own, set and cleared
        # with the phase: the link's control logic then starts at a flip-flop, not at a phase decoder
        done = Signal()
        m.d.comb += [self.busy.eq(busy), self.done.eq(done)]

        # bus state (defined early: start is accepted only with no bus transaction in flight)
        B_IDLE, B_DECODE, B_DIV, B_ISSUE, B_DATA, B_RESP = range(6)
        bstate = Signal(range(6))
        bus_idle = bstate == B_IDLE
        with m.If(busy):
            m.d.sync += cycles.eq(cycles + 1)

        def ring_addr(slot, ch, jb):
            """Address inside a bank: ((slot * 2 + ch) * NB + jb)."""
            return arith.index_concat(Cat(ch, slot) if D > 1 else ch, NB, jb)

        # ==== 1. NEURON pass ===================================================================
        # exc/inh arrivals are read at stage RS and RS+1 so they arrive where they are added (stage 6);
        # the swap_current_order mutation needs them at stage 2, before the decay product
        RS = 0 if mut == "swap_current_order" else 4
        n_issue = Signal(range(N + 1))
        npipe = _Pipe(m, "n")
        v0 = npipe.put("valid", 0, (phase == NEURON) & (n_issue != N))
        j0 = npipe.put("j", 0, n_issue[: index_bits(N)] if N > 1 else Const(0, 1))
        with m.If(v0):
            m.d.sync += n_issue.eq(n_issue + 1)
        v = [npipe.get("valid", k) for k in range(NEURON_STAGES)]
        j = [npipe.get("j", k) for k in range(NEURON_STAGES)]
        n_pipe_busy = Cat(*v[1:]).any()

        def bank_of(jj):
            return jj[:LB]

        def in_bank(jj):
            return jj >> LB

        with m.If(phase == NEURON):
            # stage 0: state, current input, exc arrival; stage 1: inh arrival; clears one stage later
            m.d.comb += [st_rp.addr.eq(j[0]), cu_rp.addr.eq(j[1])]
            if K:
                m.d.comb += [u_rp.addr.eq(j[5]), u_wp.addr.eq(j[6]), u_wp.data.eq(0),
                             u_wp.en.eq(v[6] & (j[6] < K))]
            for b in range(B):
                exc_here = v[RS] & (bank_of(j[RS]) == b)
                m.d.comb += ring_rp[b].addr.eq(Mux(exc_here, ring_addr(ptr, 0, in_bank(j[RS])),
                                                   ring_addr(ptr, 1, in_bank(j[RS + 1]))))
                clr_exc = v[RS + 1] & (bank_of(j[RS + 1]) == b)
                clr_inh = v[RS + 2] & (bank_of(j[RS + 2]) == b)
                m.d.comb += [
                    ring_wp[b].addr.eq(Mux(clr_exc, ring_addr(ptr, 0, in_bank(j[RS + 1])),
                                           ring_addr(ptr, 1, in_bank(j[RS + 2])))),
                    ring_wp[b].data.eq(0),
                    ring_wp[b].en.eq(clr_exc | clr_inh),
                ]
            if STDP:
                m.d.comb += y_rp.addr.eq(j[0] >> LP)

        ring_data = Array(rp.data for rp in ring_rp)
        # stage 1
        st1 = ST(st_rp.data)
        for name in ST.members:
            npipe.put(name, 1, st1[name])
        # one 8:1 (B:1) multiplexer serves the exc arrivals and, while idle, the bus's RING reads
        exc_sel = Signal(LB, name="exc_bank_sel")
        m.d.comb += exc_sel.eq(bank_of(j[RS + 1]))
        exc_mux = ring_data[exc_sel]
        npipe.put("exc", RS + 1, exc_mux)
        npipe.put("inh", RS + 2, ring_data[bank_of(j[RS + 2])])

        if STDP:
            lanes_y = Array(y_rp.data[l * TB:(l + 1) * TB] for l in range(P))
            npipe.put("y", 1, lanes_y[j[1][:LP]] if P > 1 else y_rp.data)
        pidx1 = npipe.get("pidx", 1) if c.profile_bits else Const(0, 1)
        with m.If(phase == NEURON):
            m.d.comb += pe_rp.addr.eq(pidx1)
        # stage 2: early profile fields and the inh arrival are here; set up the products
        E = PE(pe_rp.data)
        v2, ie2, ii2 = npipe.get("v", 2), CU(cu_rp.data).ie, CU(cu_rp.data).ii
        # a refractory neuron keeps v: its scaled-up sum is replaced by 2**15 * (v - v_rest) and its base
        # by v_rest, which gives rtz(2**15 * (v - v_rest), 15) + v_rest = v exactly, so v itself needs no
        # delay line to the end of the pipeline (the multipliers' inputs stay plain, for DSP mapping)
        refr2 = npipe.get("refrac", 2) != 0
        npipe.put("d", 2, v2 - E.v_rest)
        npipe.put("refr", 2, refr2)

        if mut == "swap_current_order":
            ie_operand = arith.sat(ie2 + npipe.get("exc", 2), IB)
            ii_operand = arith.sat(ii2 + npipe.get("inh", 2), IB)
        else:
            ie_operand, ii_operand = ie2, ii2
        products = {
            "pv": (E.c_vdecay, npipe.get("d", 2)),
            "pie": (E.c_ie, ie2),
            "pii": (E.c_ii, ii2),
            "pe": (E.c_edecay, ie_operand),
            "pi": (E.c_idecay, ii_operand),
        }
        if ADAPT:
            products["pa"] = (E.c_adecay, npipe.get("adapt", 2))
        if STDP:
            products["py"] = (stdp_regs["c_ydecay"], npipe.get("y", 2))
        # stage 3: registered operands (DSP input registers) -> product; stage 4: registered product
        membrane = ("pv", "pie", "pii")
        corrections = {}
        # the current decays are single products followed by rtz: multiplying the magnitude and negating
        # the scaled result is exact and needs neither a sign correction nor a rounding adder
        magnitude = ("pe", "pi")
        for name in magnitude:
            coef, x = products[name]
            npipe.put(name + "_c", 2, coef)
            npipe.put(name + "_x", 2, Mux(x < 0, -x, x)[: len(x)])
            npipe.put(name + "_sign", 2, x < 0)
            npipe.put(name + "_prod", 3, npipe.get(name + "_c", 3) * npipe.get(name + "_x", 3))
            q4 = npipe.get(name + "_prod", 4) >> fx.COEF_FRAC
            npipe.put(name + "_d", 4, Mux(npipe.get(name + "_sign", 4), -q4, q4))
        for name, (coef, x) in products.items():
            if name in magnitude:
                continue
            low, sign, w = arith.split_operand(x)
            npipe.put(name + "_c", 2, coef)
            npipe.put(name + "_x", 2, low)
            npipe.put(name + "_sign", 2, sign)
            c3, x3, s3 = npipe.get(name + "_c", 3), npipe.get(name + "_x", 3), npipe.get(name + "_sign", 3)
            npipe.put(name + "_prod", 3, c3 * x3)
            corrections[name] = arith.correction(c3, s3, w)
            if name not in membrane:
                npipe.put(name + "_corr", 3, corrections[name])
                # stage 4: signed product
                npipe.put(name, 4, _signed(npipe.get(name + "_prod", 4)) - npipe.get(name + "_corr", 4))
        # the three membrane products are summed unsigned, their sign corrections summed aside
        npipe.put("csum", 3, sum(corrections[n] for n in membrane))
        # one adder per stage: stage 4 adds two products and, beside it, the third minus the
        # corrections; stage 5 adds the two partial sums
        npipe.put("psum", 4, npipe.get("pv_prod", 4) + npipe.get("pie_prod", 4))
        npipe.put("pt", 4, _signed(npipe.get("pii_prod", 4)) - npipe.get("csum", 4))
        # stage 5: sums and decays
        npipe.put("acc", 5, Mux(npipe.get("refr", 5), npipe.get("d", 5) << fx.COEF_FRAC,
                                _signed(npipe.get("psum", 5)) + npipe.get("pt", 5)))
        npipe.put("ie_d", 5, npipe.get("pe_d", 5))
        npipe.put("ii_d", 5, npipe.get("pi_d", 5))
        if ADAPT:
            npipe.put("adapt_d", 5, arith.usat(arith.rtz(npipe.get("pa", 5), fx.COEF_FRAC), AB))
        if STDP:
            npipe.put("y_d", 5, arith.usat(arith.rtz(npipe.get("py", 5), fx.COEF_FRAC), TB))
        # stage 6: membrane scale-down, currents plus arrivals; issue the late profile read
        vshift = fx.COEF_FRAC - 1 if mut == "v_shift_off_by_one" else fx.COEF_FRAC
        npipe.put("r", 6, arith.rtz(npipe.get("acc", 6), vshift))
        if mut == "swap_current_order":
            npipe.put("ie_n", 6, arith.sat(npipe.get("ie_d", 6), IB))
            npipe.put("ii_n", 6, arith.sat(npipe.get("ii_d", 6), IB))
        else:
            npipe.put("ie_n", 6, arith.sat(npipe.get("ie_d", 6) + npipe.get("exc", 6), IB))
            npipe.put("ii_n", 6, arith.sat(npipe.get("ii_d", 6) + npipe.get("inh", 6), IB))
        # base = v_rest + bias + u from the mid profile table and the current input, read at stage 5
        # (a refractory neuron's base is v_rest, see stage 2)
        Mp = PM(pm_rp.data)
        u6 = Mux(j[6] < K, u_rp.data, 0) if K else Const(0, signed(VB))
        npipe.put("base", 6, Mux(npipe.get("refr", 6), Mp.v_rest, Mp.v_rest + Mp.bias + u6))
        pidx5 = npipe.get("pidx", 5) if c.profile_bits else Const(0, 1)
        pidx6 = npipe.get("pidx", 6) if c.profile_bits else Const(0, 1)
        with m.If(phase == NEURON):
            m.d.comb += [pl_rp.addr.eq(pidx6), pm_rp.addr.eq(pidx5)]
        # stage 7: new membrane, refractory hold, threshold
        L = PL(pl_rp.data)
        v_sum = npipe.get("r", 7) + npipe.get("base", 7)
        v_new = arith.wrap(v_sum, VB) if mut == "no_v_saturation" else arith.sat(v_sum, VB)
        npipe.put("v1", 7, v_new)
        thr7 = L.v_thresh + npipe.get("adapt_d", 7) if ADAPT else L.v_thresh
        npipe.put("thr", 7, thr7)
        npipe.put("tmr", 7, thr7 - L.v_reset)
        for name in PL.members:
            npipe.put("L_" + name, 7, L[name])
        # stage 8: spike and reset
        v1, thr, refr = npipe.get("v1", 8), npipe.get("thr", 8), npipe.get("refr", 8)
        spike8 = v[8] & ~refr & (v1 >= thr)
        npipe.put("spike", 8, spike8)
        v_sub = arith.sat(v1 - npipe.get("tmr", 8), VB)
        npipe.put("v_out", 8, Mux(spike8, Mux(npipe.get("L_reset_subtract", 8), v_sub,
                                              npipe.get("L_v_reset", 8)), v1))
        refrac8 = npipe.get("refrac", 8)
        refrac_load = npipe.get("L_refrac", 8)
        if mut == "refrac_off_by_one":
            refrac_load = (refrac_load + 1)[:RB]
        npipe.put("refrac_out", 8, Mux(spike8, refrac_load, Mux(refr, (refrac8 - 1)[:RB], refrac8)))
        if ADAPT:
            adapt8 = npipe.get("adapt_d", 8)
            npipe.put("adapt_out", 8, Mux(spike8, arith.usat(adapt8 + npipe.get("L_a_inc", 8), AB), adapt8))
        # stage 9: write back, spike list, group list
        s9 = NEURON_STAGES - 1
        spike9 = npipe.get("spike", s9)
        with m.If(phase == NEURON):
            fields = {"v": npipe.get("v_out", s9), "refrac": npipe.get("refrac_out", s9)}
            # currents are final at stage 6: written there (their own memory)
            m.d.comb += [cu_wp.addr.eq(j[6]), cu_wp.en.eq(_all(cu_wp, v[6])),
                         CU(cu_wp.data).ie.eq(npipe.get("ie_n", 6)),
                         CU(cu_wp.data).ii.eq(npipe.get("ii_n", 6))]
            if ADAPT:
                fields["adapt"] = npipe.get("adapt_out", s9)
            if c.profile_bits:
                fields["pidx"] = npipe.get("pidx", s9)
            m.d.comb += [st_wp.addr.eq(j[s9]), st_wp.en.eq(v[s9])]
            m.d.comb += [ST(st_wp.data)[name].eq(val) for name, val in fields.items()]
            m.d.comb += [sl_wp.addr.eq(n_post), sl_wp.data.eq(j[s9]), sl_wp.en.eq(spike9)]
            with m.If(spike9):
                m.d.sync += n_post.eq(n_post + 1)
            if STDP:
                lane9 = j[s9][:LP] if P > 1 else Const(0, 1)
                m.d.comb += [y_wp.addr.eq(j[s9] >> LP), y_wp.data.eq(Cat(*[npipe.get("y_d", s9)] * P)),
                             y_wp.en.eq(Mux(v[s9], _onehot(lane9, P), 0))]
                gmask = Signal(P)
                mask_now = gmask | Mux(spike9, _onehot(lane9, P), 0)
                closes = v[s9] & ((lane9 == P - 1) | (j[s9] == N - 1))
                m.d.comb += [gl_wp.addr.eq(n_groups), GL(gl_wp.data).k.eq(j[s9] >> LP),
                             GL(gl_wp.data).mask.eq(mask_now), gl_wp.en.eq(closes & mask_now.any())]
                with m.If(v[s9]):
                    m.d.sync += gmask.eq(Mux(closes, 0, mask_now))
                with m.If(closes & mask_now.any()):
                    m.d.sync += n_groups.eq(n_groups + 1)

        # ---- pre-trace decay (STDP), concurrent with the neuron pass ----------------------------
        x_pipe_busy = Const(0)
        if STDP:
            x_issue = Signal(range(S + 1))
            xpipe = _Pipe(m, "x")
            xv0 = xpipe.put("valid", 0, (phase == NEURON) & (x_issue != S))
            xpipe.put("i", 0, x_issue[: index_bits(S)])
            with m.If(xv0):
                m.d.sync += x_issue.eq(x_issue + 1)
            xv = [xpipe.get("valid", k) for k in range(XDECAY_STAGES)]
            xi = [xpipe.get("i", k) for k in range(XDECAY_STAGES)]
            x_pipe_busy = Cat(*xv[1:]).any()
            xcoef = stdp_regs["c_ydecay"] if mut == "wrong_trace_decay" else stdp_regs["c_xdecay"]
            xpipe.put("x", 1, x_rp.data)
            xpipe.put("c", 1, xcoef)
            xpipe.put("prod", 2, xpipe.get("c", 2) * xpipe.get("x", 2))
            x_new = arith.usat(xpipe.get("prod", 3) >> fx.COEF_FRAC, TB)
            with m.If(phase == NEURON):
                m.d.comb += [x_rp.addr.eq(xi[0]), x_wp.addr.eq(xi[3]), x_wp.data.eq(x_new),
                             x_wp.en.eq(xv[3])]

        # ==== 2./3. weight engine: POT and DELIVER ==============================================
        MODE_POT, MODE_DEL = 0, 1
        it_valid = Signal()
        it_row = Signal(range(S))
        it_k = Signal(range(NP))
        it_mode = Signal()
        it_first = Signal()
        it_mask = Signal(P)
        # the word address row * NP + k comes from a register of its sequencer (stepped by +1 along a
        # row, by +NP down a column), so no multiplier sits between the sequencers and the RAM address
        it_addr = Signal(range(S * NP))
        cur_row = Signal(range(S))       # DELIVER: the row being delivered, its next word's address
        cur_k = Signal(range(NP))
        cur_addr = Signal(range(S * NP))
        if STDP:                         # POT: the row and address of the next item of the column
            g_row = Signal(range(S))
            g_addr = Signal(range(S * NP))
        rmw_delivery = Const(1) & learning if STDP else Const(0)
        it_rmw = (it_mode == MODE_POT) | rmw_delivery
        wpipe = _Pipe(m, "w")
        wpipe.put("valid", 0, it_valid)
        wpipe.put("rmw", 0, it_rmw)
        wpipe.put("addr", 0, it_addr)
        wpipe.put("row", 0, it_row)
        wpipe.put("k", 0, it_k)
        wpipe.put("mode", 0, it_mode)
        wpipe.put("first", 0, it_first)
        wpipe.put("mask", 0, it_mask)
        wv = [wpipe.get("valid", k) for k in range(3)]
        write_now = wv[2] & wpipe.get("rmw", 2)
        can_issue = ~write_now
        # The weight RAM's address and write enable come from registers through one multiplexer
        # level, independent of whether the sequencer issues this clock (a read nobody uses is
        # harmless); on the iCE40 they fan out to the SPRAM address, chip select and write enables.
        pot_now = (phase == POT) if STDP else Const(0)
        issue_row = Mux(pot_now, g_row, cur_row) if STDP else cur_row
        issue_addr = Mux(pot_now, g_addr, cur_addr) if STDP else cur_addr
        m.d.comb += [w_addr.eq(Mux(write_now, wpipe.get("addr", 2), issue_addr)), w_we.eq(write_now)]
        with m.If((phase == POT) | (phase == DELIVER)):
            m.d.comb += rs_rp.addr.eq(issue_row)
            if STDP:
                m.d.comb += [x_rp.addr.eq(issue_row), y_rp.addr.eq(it_k)]
        # stage 1: the word is here; modify it (STDP)
        word1 = w_rp.data
        lanes1 = [SYN(word1[l * SB:(l + 1) * SB]) for l in range(P)]
        mod_lanes = []
        if STDP:
            mode1, mask1 = wpipe.get("mode", 1), wpipe.get("mask", 1)
            dx = arith.rnd(x_rp.data, TF)
            for l, syn in enumerate(lanes1):
                w = syn.weight
                dy = arith.rnd(y_rp.data[l * TB:(l + 1) * TB], TF)
                up = w + dx
                down = w - dy
                if mut == "no_weight_bound":
                    up_b, down_b = up[:W], down[:W]
                else:
                    up_b = Mux(up > stdp_regs["w_max"], stdp_regs["w_max"], up)[:W]
                    down_b = Mux(down < stdp_regs["w_min"], stdp_regs["w_min"], down)[:W]
                pot = (mode1 == MODE_POT) & mask1[l] & syn.plastic
                dep = (mode1 == MODE_DEL) & learning & syn.plastic
                new_w = Mux(pot, up_b, Mux(dep, down_b, w.as_unsigned()))
                mod_lanes.append(Cat(new_w, Value.cast(syn.as_value())[W:]))
            wpipe.put("word", 1, Cat(*mod_lanes))
            # phase 6 for the sources: x += x_inc once per delivered row
            with m.If(phase == DELIVER):
                m.d.comb += [x_wp.addr.eq(wpipe.get("row", 1)),
                             x_wp.data.eq(arith.usat(x_rp.data + stdp_regs["x_inc"], TB)),
                             x_wp.en.eq(wv[1] & wpipe.get("first", 1))]
        else:
            wpipe.put("word", 1, word1)
        wpipe.put("shift", 1, rs_rp.data)
        # stage 2: write back (RMW) and split the word into deliveries
        word2 = wpipe.get("word", 2)
        m.d.comb += w_wp.data.eq(word2)
        deliver2 = wv[2] & (wpipe.get("mode", 2) == MODE_DEL)
        k2 = wpipe.get("k", 2)
        lane_pipes = []
        for l in range(P):
            syn = SYN(word2[l * SB:(l + 1) * SB])
            lp = _Pipe(m, f"l{l}")
            w = syn.weight
            lp.put("valid", 2, deliver2 & (w != 0))
            lp.put("ch", 2, w[-1])
            lp.put("w", 2, w)
            # The shifted weight is formed at stage 2, clamped to i_bits + 1 bits: an addend at or
            # beyond that range saturates the entry whatever it holds (|entry| < 2**(i_bits-1)), so
            # the clamp changes no result and stage 3 is a short read + add + saturate.
            lp.put("add", 2, arith.sat(w << wpipe.get("shift", 2), IB + 1))
            if D > 1:
                extra = 2 if mut == "ring_slot_off_by_one" else 1
                raw = ptr + syn.delay + extra
                lp.put("slot", 2, Mux(raw >= D, raw - D, raw)[: index_bits(D)])
            else:
                lp.put("slot", 2, Const(0, 1))
            jj = k2 * P + l
            lp.put("bank", 2, bank_of(jj))
            lp.put("jb", 2, in_bank(jj))
            # stage 3: ring address and read; stage 4: saturating add and write
            # stage 2: ring address and read; stage 3: saturating add and write
            lp.put("raddr", 2, ring_addr(lp.get("slot", 2), lp.get("ch", 2), lp.get("jb", 2)))
            lane_pipes.append(lp)
        deliver_busy = Cat(*[wpipe.get("valid", k) for k in range(1, WEIGHT_STAGES)]).any()
        with m.If(phase == DELIVER):
            for b in range(B):
                src = [l for l in range(P) if l % B == b] if P >= 2 else [0]
                l = src[0]
                lp = lane_pipes[l]
                here3 = lp.get("valid", 3) & (lp.get("bank", 3) == b) if P == 1 else lp.get("valid", 3)
                total = ring_rp[b].data + lp.get("add", 3)
                # exc entries only grow and inh entries only shrink, so one saturation serves both
                sat_total = arith.sat(total, IB)
                m.d.comb += [
                    ring_rp[b].addr.eq(lp.get("raddr", 2)),
                    ring_wp[b].addr.eq(lp.get("raddr", 3)),
                    ring_wp[b].data.eq(sat_total),
                    ring_wp[b].en.eq(here3),
                ]

        # ---- POT sequencer -------------------------------------------------------------------
        pot_busy = Const(0)
        if STDP:
            g_idx = Signal(range(NP + 1))
            g_state = Signal(2)   # 0 wait for group list data, 1 run rows
            g_k = Signal(range(NP))
            g_mask = Signal(P)
            m.d.comb += gl_rp.addr.eq(g_idx)
            with m.If(phase == POT):
                with m.If(g_state == 0):   # group list address presented; data next cycle
                    with m.If(g_idx != n_groups):
                        m.d.sync += g_state.eq(2)
                with m.Elif(g_state == 2):
                    m.d.sync += [g_k.eq(GL(gl_rp.data).k), g_mask.eq(GL(gl_rp.data).mask),
                                 g_row.eq(0), g_addr.eq(GL(gl_rp.data).k), g_state.eq(1)]
                with m.Else():
                    m.d.comb += [it_valid.eq(can_issue), it_row.eq(g_row), it_k.eq(g_k),
                                 it_addr.eq(g_addr), it_mode.eq(MODE_POT), it_mask.eq(g_mask)]
                    with m.If(can_issue):
                        m.d.sync += [g_row.eq(g_row + 1), g_addr.eq(g_addr + NP)]
                        with m.If(g_row == S - 1):
                            m.d.sync += [g_idx.eq(g_idx + 1), g_state.eq(0)]
            pot_busy = (g_idx != n_groups)

        # ---- DELIVER sequencer ---------------------------------------------------------------
        src_idx = Signal(range(S + 1))
        # sources of the step, registered: n_in and n_post are final before DELIVER starts (n_post
        # last changes at least one clock before the neuron pass ends, n_in only while idle)
        total_src = Signal(range(S + 1))
        m.d.sync += total_src.eq(n_in + n_post)
        fetch_pending = Signal()
        fetch_input = Signal()
        nxt_valid = Signal()
        nxt_row = Signal(range(S))
        nxt_neuron = Signal()
        nxt_idx = Signal(index_bits(N))
        nxt_emitted = Signal()
        cur_active = Signal()
        cur_first = Signal()
        m.d.comb += sl_rp.addr.eq(src_idx - n_in)
        if A:
            m.d.comb += il_rp.addr.eq(src_idx)
        # spike_out.valid is the register so_valid == (phase == DELIVER) & nxt_valid & nxt_neuron &
        # ~nxt_emitted: set when a neuron source is fetched, cleared when taken (a neuron row loads only
        # after its index was taken) and when DELIVER starts
        so_valid = Signal()
        m.d.comb += [self.spike_out.valid.eq(so_valid),
                     self.spike_out.payload.eq(nxt_idx)]
        so_taken = self.spike_out.valid & self.spike_out.ready
        load = ~cur_active & nxt_valid & (~nxt_neuron | nxt_emitted | so_taken)
        with m.If(phase == DELIVER):
            # prefetch the next source while the current row runs (also in the cycle a row loads)
            with m.If((~nxt_valid | load) & ~fetch_pending & (src_idx != total_src)):
                m.d.sync += [fetch_pending.eq(1), fetch_input.eq(src_idx < n_in), src_idx.eq(src_idx + 1)]
            with m.If(fetch_pending):
                m.d.sync += [fetch_pending.eq(0), nxt_valid.eq(1), nxt_emitted.eq(0),
                             nxt_neuron.eq(~fetch_input), so_valid.eq(~fetch_input)]
                if A:
                    with m.If(fetch_input):
                        m.d.sync += nxt_row.eq(il_rp.data)
                    with m.Else():
                        m.d.sync += [nxt_row.eq(A + sl_rp.data), nxt_idx.eq(sl_rp.data)]
                else:
                    m.d.sync += [nxt_row.eq(sl_rp.data), nxt_idx.eq(sl_rp.data)]
            with m.If(so_taken):
                m.d.sync += [nxt_emitted.eq(1), so_valid.eq(0)]
            with m.If(load):
                m.d.sync += [cur_row.eq(nxt_row), cur_k.eq(0), cur_active.eq(1), cur_first.eq(1),
                             cur_addr.eq(arith.const_mul(nxt_row, NP)), nxt_valid.eq(0)]
                if A:
                    m.d.comb += [ib_wp.addr.eq(nxt_row), ib_wp.data.eq(0), ib_wp.en.eq(~nxt_neuron)]
            with m.If(cur_active):
                m.d.comb += [it_valid.eq(can_issue), it_row.eq(cur_row), it_k.eq(cur_k),
                             it_addr.eq(cur_addr), it_mode.eq(MODE_DEL), it_first.eq(cur_first)]
                with m.If(can_issue):
                    m.d.sync += [cur_k.eq(cur_k + 1), cur_addr.eq(cur_addr + 1), cur_first.eq(0)]
                    with m.If(cur_k == NP - 1):
                        m.d.sync += cur_active.eq(0)
        deliver_seq_busy = (src_idx != total_src) | fetch_pending | nxt_valid | cur_active

        # ---- YINC: post traces of the neurons that spiked --------------------------------------
        yinc_busy = Const(0)
        if STDP:
            yi = Signal(range(N + 1))
            ypipe = _Pipe(m, "yi")
            yv0 = ypipe.put("valid", 0, (phase == YINC) & (yi != n_post))
            with m.If(yv0):
                m.d.sync += yi.eq(yi + 1)
            yv1, yv2 = ypipe.get("valid", 1), ypipe.get("valid", 2)
            yj1 = ypipe.put("j", 1, sl_rp.data)
            yj2 = ypipe.get("j", 2)
            lane2 = yj2[:LP] if P > 1 else Const(0, 1)
            lanes_y2 = Array(y_rp.data[l * TB:(l + 1) * TB] for l in range(P))
            y_new = arith.usat(lanes_y2[lane2] + stdp_regs["y_inc"], TB)
            with m.If(phase == YINC):
                m.d.comb += [sl_rp.addr.eq(yi), y_rp.addr.eq(yj1 >> LP),
                             y_wp.addr.eq(yj2 >> LP), y_wp.data.eq(Cat(*[y_new] * P)),
                             y_wp.en.eq(Mux(yv2, _onehot(lane2, P), 0))]
            yinc_busy = (yi != n_post) | yv1 | yv2

        # ==== phase sequencing ==================================================================
        start_ok = self.start & ~busy & bus_idle
        with m.Switch(phase):
            with m.Case(IDLE):
                with m.If(start_ok):
                    m.d.sync += [phase.eq(NEURON), busy.eq(1), cycles.eq(0), n_issue.eq(0), n_post.eq(0),
                                 n_groups.eq(0)]
                    if STDP:
                        m.d.sync += [x_issue.eq(0), g_idx.eq(0), g_state.eq(0)]
            with m.Case(NEURON):
                done_n = (n_issue == N) & ~n_pipe_busy
                if STDP:
                    done_n &= (x_issue == S) & ~x_pipe_busy
                with m.If(done_n):
                    m.d.sync += [src_idx.eq(0), fetch_pending.eq(0), nxt_valid.eq(0), cur_active.eq(0),
                                 so_valid.eq(0)]
                    if STDP:
                        m.d.sync += phase.eq(Mux(learning & (n_groups != 0), POT, DELIVER))
                    else:
                        m.d.sync += phase.eq(DELIVER)
            with m.Case(POT):
                with m.If(~pot_busy & ~deliver_busy):
                    m.d.sync += phase.eq(DELIVER)
            with m.Case(DELIVER):
                with m.If(~deliver_seq_busy & ~deliver_busy):
                    if STDP:
                        m.d.sync += [phase.eq(YINC), yi.eq(0)]
                    else:
                        m.d.sync += [phase.eq(FINISH), done.eq(1)]
            with m.Case(YINC):
                with m.If(~yinc_busy):
                    m.d.sync += [phase.eq(FINISH), done.eq(1)]
            with m.Case(FINISH):
                m.d.sync += [phase.eq(IDLE), busy.eq(0), done.eq(0), step.eq(step + 1), last_cycles.eq(cycles + 1), n_in.eq(0)]
                if D > 1:
                    m.d.sync += ptr.eq(Mux(ptr == D - 1, 0, ptr + 1))

        # ==== spike_in: input bitmap and input list ===========================================
        if A:
            si_pending = Signal()
            si_idx = Signal(index_bits(A))
            m.d.comb += self.spike_in.ready.eq(~busy & ~si_pending)
            with m.If(self.spike_in.valid & self.spike_in.ready & (self.spike_in.payload < A)):
                m.d.sync += [si_pending.eq(1), si_idx.eq(self.spike_in.payload)]
            with m.If(~busy):
                m.d.comb += ib_rp.addr.eq(self.spike_in.payload)
            with m.If(si_pending):
                m.d.sync += si_pending.eq(0)
                with m.If(ib_rp.data == 0):
                    m.d.comb += [ib_wp.addr.eq(si_idx), ib_wp.data.eq(1), ib_wp.en.eq(1),
                                 il_wp.addr.eq(n_in), il_wp.data.eq(si_idx), il_wp.en.eq(1)]
                    m.d.sync += n_in.eq(n_in + 1)

        # ==== bus ==============================================================================
        self._bus(m, locals())
        return m

    # ------------------------------------------------------------------------------------------
    def _bus(self, m: Module, e: dict):
        """Load/read bus: exactly core/memory_map.py; served only while no step runs."""
        c = self.config
        N, A, S, P, D, K = c.n_neurons, c.n_inputs, c.n_sources, c.lanes, c.max_delay, c.n_current_inputs
        W, TB = c.weight_bits, c.trace_bits
        STDP, ADAPT = c.stdp, c.adaptive_threshold
        NP, B, LB, LP, NB = e["NP"], e["B"], e["LB"], e["LP"], e["NB"]
        SYN, SB, ST, PE, PL, CU, PM = e["SYN"], e["SB"], e["ST"], e["PE"], e["PL"], e["CU"], e["PM"]
        busy, bstate = e["busy"], e["bstate"]
        B_IDLE, B_DECODE, B_DIV, B_ISSUE, B_DATA, B_RESP = range(6)
        R = mm.Region

        req = BUS_REQUEST(Signal(BUS_REQUEST.size, name="bus_latched"))
        q = Signal(24, name="bus_quot")      # address // N (SYNAPSE, RING)
        r = Signal(range(max(N, D, 2)), name="bus_rem")  # address % N; or STEP data % D
        region, addr, wdata, write = req.region, req.addr, req.data, req.write
        resp_valid = Signal(name="bus_resp_valid")   # == (bstate == B_RESP), as a register

        m.d.comb += [self.bus_req.ready.eq(~busy & (bstate == B_IDLE) & ~self.start),
                     self.bus_resp.valid.eq(resp_valid)]

        pow2 = lambda n: n & (n - 1) == 0
        need_div = not (pow2(N) and pow2(D))
        if need_div:
            div = ConstDivider(32, (N, D))
            m.submodules.bus_divider = div
        # request class flags, decoded from the payload as it is accepted (registered), so B_DECODE's
        # divider start and state choice do not wait for a 32-bit address comparison
        is_step_write = Signal(name="bus_is_step_write")
        needs_n_split = Signal(name="bus_needs_n_split")
        pl = self.bus_req.payload

        with m.Switch(bstate):
            with m.Case(B_IDLE):
                with m.If(self.bus_req.valid & self.bus_req.ready):
                    m.d.sync += [req.as_value().eq(self.bus_req.payload.as_value()), bstate.eq(B_DECODE),
                                 is_step_write.eq((pl.region == R.CONTROL) & (pl.addr == mm.ControlReg.STEP)
                                                  & pl.write),
                                 needs_n_split.eq((pl.region == R.SYNAPSE) | (pl.region == R.RING))]
            with m.Case(B_DECODE):
                if pow2(N):
                    m.d.sync += [q.eq(addr >> int(math.log2(N))), r.eq(addr & (N - 1))]
                if pow2(D):
                    with m.If(is_step_write):
                        m.d.sync += r.eq(wdata & (D - 1))
                slow = Const(0)
                if not pow2(N):
                    slow = slow | needs_n_split
                if not pow2(D):
                    slow = slow | is_step_write
                if need_div:
                    with m.If(slow):
                        m.d.comb += [div.start.eq(1), div.sel.eq(Mux(is_step_write, 1, 0)),
                                     div.dividend.eq(Mux(is_step_write, wdata, addr))]
                        m.d.sync += bstate.eq(B_DIV)
                    with m.Else():
                        m.d.sync += bstate.eq(B_ISSUE)
                else:
                    m.d.sync += bstate.eq(B_ISSUE)
            with m.Case(B_DIV):
                if need_div:
                    with m.If(div.done):
                        m.d.sync += [q.eq(div.quotient), r.eq(div.remainder), bstate.eq(B_ISSUE)]
            with m.Case(B_ISSUE):
                m.d.sync += bstate.eq(B_DATA)
            with m.Case(B_DATA):
                m.d.sync += [bstate.eq(B_RESP), resp_valid.eq(1)]
            with m.Case(B_RESP):
                with m.If(self.bus_resp.ready):
                    m.d.sync += [bstate.eq(B_IDLE), resp_valid.eq(0)]

        # decoded indices (stable from B_ISSUE on)
        prof_p, prof_f = addr >> 4, addr[:4]
        ns_n, ns_f = addr >> 3, addr[:3]
        syn_word = arith.index_concat(q[: index_bits(S) + 1], NP, r >> LP)
        syn_lane = r[:LP] if P > 1 else Const(0, 1)
        ring_bank = r[:LB]
        ring_jb = r >> LB
        ring_a = arith.index_concat(q[: index_bits(2 * D) + 1], NB, ring_jb)
        data_phase = bstate == B_DATA
        # The region's address range check (carry chains over the 32-bit address) is registered in
        # B_ISSUE (address, q and r are final then) and gates reads and writes in B_DATA, so the
        # memories' write enables start at a flip-flop.
        range_checks = {R.PROFILE: prof_p < c.n_profiles, R.NEURON_PROFILE: addr < N, R.SYNAPSE: q < S,
                        R.ROW_SHIFT: addr < S, R.NEURON_STATE: ns_n < N, R.X_TRACE: addr < S,
                        R.RING: q < 2 * D, R.CURRENT_IN: addr < K}
        range_ok = Signal()
        with m.Switch(region):
            for reg, check in range_checks.items():
                with m.Case(reg):
                    m.d.comb += range_ok.eq(check)
        addr_ok = Signal(name="bus_addr_ok")
        with m.If(bstate == B_ISSUE):
            m.d.sync += addr_ok.eq(range_ok)
        do_write = data_phase & write

        with m.If(~busy):
            m.d.comb += [
                e["pe_rp"].addr.eq(prof_p), e["pe_wp"].addr.eq(prof_p),
                e["pl_rp"].addr.eq(prof_p), e["pl_wp"].addr.eq(prof_p),
                e["pm_rp"].addr.eq(prof_p), e["pm_wp"].addr.eq(prof_p),
                e["st_rp"].addr.eq(Mux(region == R.NEURON_STATE, ns_n, addr)),
                e["st_wp"].addr.eq(Mux(region == R.NEURON_STATE, ns_n, addr)),
                e["cu_rp"].addr.eq(ns_n), e["cu_wp"].addr.eq(ns_n),
                e["w_addr"].eq(syn_word),
                e["rs_rp"].addr.eq(addr), e["rs_wp"].addr.eq(addr),
            ]
            m.d.comb += e["exc_sel"].eq(ring_bank)
            for b in range(B):
                m.d.comb += [e["ring_rp"][b].addr.eq(ring_a), e["ring_wp"][b].addr.eq(ring_a)]
            if K:
                m.d.comb += [e["u_rp"].addr.eq(addr), e["u_wp"].addr.eq(addr)]
            if STDP:
                m.d.comb += [e["x_rp"].addr.eq(addr), e["x_wp"].addr.eq(addr),
                             e["y_rp"].addr.eq(ns_n >> LP), e["y_wp"].addr.eq(ns_n >> LP)]

        def field_word(value: Value) -> Value:
            """A field as a 32-bit two's-complement bus word (sign-extended when signed)."""
            out = Signal(32)
            m.d.comb += out.eq(value)
            return out

        def replace(word: Value, layout, name: str, new: Value) -> Value:
            f = layout[name]
            lo, hi = f.offset, f.offset + f.width
            parts = []
            if lo:
                parts.append(word[:lo])
            parts.append(Value.cast(new)[: f.width])
            if hi < layout.size:
                parts.append(word[hi:])
            return Cat(*parts)

        def field_write(wp, rp, layout, name):
            """Statements writing ``wdata`` into one field of the word at the bus address: with a
            per-field write enable when the port has one, else read-modify-write."""
            f = layout[name]
            g = wp.signature.granularity
            if g is not None and f.width == g and f.offset % g == 0:
                return [wp.data.eq(Cat(*[wdata[:g]] * (layout.size // g))),
                        wp.en.eq(Mux(do_write, 1 << (f.offset // g), 0))]
            return [wp.data.eq(replace(Value.cast(rp.data), layout, name, wdata)), wp.en.eq(_all(wp, do_write))]

        # SYNAPSE accesses work on the weight word registered at the end of B_DATA: a read formats
        # its lane in B_RESP, a write merges its lane into it and writes it in the first B_RESP clock
        # (the address is still the request's). So the weight RAM's read multiplexer tree ends in a
        # register, and no path runs from its read data through the lane multiplexers into its write
        # data. syn_write is high exactly in that clock and drives the write enable from a register.
        bus_word = Signal(P * SB, name="bus_weight_word")
        resp_syn = Signal(name="bus_resp_synapse")
        syn_write = Signal(name="bus_synapse_write")
        with m.If(data_phase):
            m.d.sync += [bus_word.eq(e["w_rp"].data),
                         resp_syn.eq((region == R.SYNAPSE) & addr_ok & ~write)]
        with m.If(bstate == B_RESP):
            m.d.sync += syn_write.eq(0)
        m.d.comb += e["w_we"].eq(e["write_now"] | syn_write)
        syn = SYN(Array(bus_word[l * SB:(l + 1) * SB] for l in range(P))[syn_lane])
        syn_read = Signal(32, name="bus_synapse_read")
        m.d.comb += syn_read[:16].eq(syn.weight)  # sign-extended to 16 bits
        if STDP:
            m.d.comb += syn_read[mm.SYNAPSE_PLASTIC_BIT].eq(syn.plastic)
        if c.delay_bits:
            m.d.comb += syn_read[mm.SYNAPSE_DELAY_SHIFT:mm.SYNAPSE_DELAY_SHIFT + c.delay_bits].eq(syn.delay)
        new_syn = Signal(SB)
        m.d.comb += SYN(new_syn).weight.eq(wdata[:W])
        if STDP:
            m.d.comb += SYN(new_syn).plastic.eq(wdata[mm.SYNAPSE_PLASTIC_BIT])
        if c.delay_bits:
            m.d.comb += SYN(new_syn).delay.eq(wdata[mm.SYNAPSE_DELAY_SHIFT:])
        with m.If(~busy):
            m.d.comb += e["w_wp"].data.eq(
                Cat(*[Mux(syn_lane == l, new_syn, bus_word[l * SB:(l + 1) * SB]) for l in range(P)]))

        read = Signal(32, name="bus_read_value")
        # the response is registered at the end of B_DATA (the memories present the addressed word
        # from B_DATA on), so no read multiplexer tree reaches the link's logic
        resp = Signal(32, name="bus_resp_data")
        with m.If(data_phase):
            m.d.sync += resp.eq(Mux(write, 0, read))
        m.d.comb += self.bus_resp.payload.data.eq(Mux(resp_syn, syn_read, resp))

        with m.If(~busy), m.Switch(region):
            # CONTROL
            with m.Case(R.CONTROL):
                with m.Switch(addr):
                    with m.Case(mm.ControlReg.MAGIC):
                        m.d.comb += read.eq(mm.MAGIC)
                    with m.Case(mm.ControlReg.STEP):
                        m.d.comb += read.eq(e["step"])
                        with m.If(do_write):
                            m.d.sync += e["step"].eq(wdata)
                            if D > 1:
                                m.d.sync += e["ptr"].eq(r)
                    with m.Case(mm.ControlReg.LEARNING):
                        m.d.comb += read.eq(e["learning"])
                        with m.If(do_write):
                            m.d.sync += e["learning"].eq(wdata[0])
                    with m.Case(mm.ControlReg.LAST_CYCLES):
                        m.d.comb += read.eq(e["last_cycles"])
                    with m.Case(mm.ControlReg.CONFIG_HASH):
                        m.d.comb += read.eq(mm.config_hash_word(c))
            # PROFILE
            with m.Case(R.PROFILE):
                with m.If(addr_ok):
                    with m.Switch(prof_f):
                        tables = ((PE, e["pe_rp"], e["pe_wp"]), (PM, e["pm_rp"], e["pm_wp"]),
                                  (PL, e["pl_rp"], e["pl_wp"]))
                        for f, name in enumerate(PROFILE_FIELDS):
                            holders = [t for t in tables if name in t[0].members]
                            if not holders:
                                continue  # field of a feature that is off: not stored
                            with m.Case(f):
                                layout, rp, _ = holders[0]
                                m.d.comb += read.eq(field_word(layout(rp.data)[name]))
                                for layout, rp, wp in holders:   # v_rest lives in two tables
                                    m.d.comb += field_write(wp, rp, layout, name)
            # STDP
            if STDP:
                with m.Case(R.STDP):
                    with m.Switch(addr):
                        for f, name in enumerate(STDP_FIELDS):
                            reg = e["stdp_regs"][name]
                            with m.Case(f):
                                m.d.comb += read.eq(field_word(reg))
                                with m.If(do_write):
                                    m.d.sync += reg.eq(wdata[: len(reg)])
            # NEURON_PROFILE
            with m.Case(R.NEURON_PROFILE):
                if c.profile_bits:
                    with m.If(addr_ok):
                        word = e["st_rp"].data.as_value()
                        m.d.comb += [read.eq(ST(word).pidx),
                                     e["st_wp"].data.eq(replace(word, ST, "pidx", wdata)),
                                     e["st_wp"].en.eq(do_write)]
            # SYNAPSE: read and merged from the word registered in B_DATA (below)
            with m.Case(R.SYNAPSE):
                with m.If(addr_ok):
                    with m.If(do_write):
                        m.d.sync += syn_write.eq(1)
            # ROW_SHIFT
            with m.Case(R.ROW_SHIFT):
                with m.If(addr_ok):
                    m.d.comb += [read.eq(e["rs_rp"].data), e["rs_wp"].data.eq(wdata[:fx.ROW_SHIFT_BITS]),
                                 e["rs_wp"].en.eq(do_write)]
            # NEURON_STATE
            with m.Case(R.NEURON_STATE):
                with m.If(addr_ok):
                    with m.Switch(ns_f):
                        for fld, name in ((mm.NeuronStateField.V, "v"), (mm.NeuronStateField.IE, "ie"),
                                          (mm.NeuronStateField.II, "ii"),
                                          (mm.NeuronStateField.REFRAC_COUNT, "refrac"),
                                          (mm.NeuronStateField.ADAPT, "adapt")):
                            layout, rp, wp = (ST, e["st_rp"], e["st_wp"]) if name in ST.members else \
                                (CU, e["cu_rp"], e["cu_wp"]) if name in CU.members else (None, None, None)
                            if layout is None:
                                continue
                            with m.Case(fld):
                                m.d.comb += [read.eq(field_word(layout(rp.data)[name])),
                                             *field_write(wp, rp, layout, name)]
                        if STDP:
                            with m.Case(mm.NeuronStateField.Y_TRACE):
                                lane = ns_n[:LP] if P > 1 else Const(0, 1)
                                ylanes = Array(e["y_rp"].data[l * TB:(l + 1) * TB] for l in range(P))
                                m.d.comb += [read.eq(ylanes[lane]),
                                             e["y_wp"].data.eq(Cat(*[wdata[:TB]] * P)),
                                             e["y_wp"].en.eq(Mux(do_write, _onehot(lane, P), 0))]
            # X_TRACE
            if STDP:
                with m.Case(R.X_TRACE):
                    with m.If(addr_ok):
                        m.d.comb += [read.eq(e["x_rp"].data), e["x_wp"].data.eq(wdata[:TB]),
                                     e["x_wp"].en.eq(do_write)]
            # RING
            with m.Case(R.RING):
                with m.If(addr_ok):
                    m.d.comb += read.eq(field_word(e["exc_mux"]))
                    for b in range(B):
                        m.d.comb += [e["ring_wp"][b].data.eq(wdata[: c.i_bits]),
                                     e["ring_wp"][b].en.eq(do_write & (ring_bank == b))]
            # CURRENT_IN
            if K:
                with m.Case(R.CURRENT_IN):
                    with m.If(addr_ok):
                        m.d.comb += [read.eq(field_word(e["u_rp"].data)), e["u_wp"].data.eq(wdata[: c.v_bits]),
                                     e["u_wp"].en.eq(do_write)]
