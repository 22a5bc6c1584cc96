"""PLL settings for each FPGA family: the divider search, the frequency it really gives, the primitive.

A board's oscillator (12 MHz on the iCEBreaker and the Cmod A7, 25 MHz on the ULX3S) rarely divides
into the clock a design wants, so every solver searches the family's legal divider ranges for the
output closest to the target and returns the frequency it *achieves*: that achieved frequency -- not
the request -- is what the timing constraint, the UART baud divider, the cycle model's latency and
the report use.

The searches follow the vendor rules as the open tools implement them (``icepll`` from IceStorm,
``ecppll`` from Trellis; tests/test_boards_pll.py compares with both), and Xilinx UG472 for the
7-series MMCM. Each solution turns into an Amaranth ``Instance`` of the primitive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from amaranth.hdl import Instance, Module, Signal


class PllError(ValueError):
    """No divider setting reaches the requested clock; the message gives the family's range."""


@dataclass(frozen=True)
class PllSolution:
    """One PLL setting: ``params`` are the primitive's parameters (Amaranth ``p_`` names without the
    prefix), ``achieved_hz`` what the output runs at, ``vco_hz`` the oscillator inside."""

    family: str
    primitive: str
    input_hz: float
    requested_hz: float
    achieved_hz: float
    vco_hz: float
    params: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    @property
    def error_ppm(self) -> float:
        return (self.achieved_hz - self.requested_hz) / self.requested_hz * 1e6

    def describe(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.params.items() if "DIV" in k or "MULT" in k)
        return (f"{self.primitive}: {self.input_hz / 1e6:g} MHz -> {self.achieved_hz / 1e6:.4f} MHz "
                f"(requested {self.requested_hz / 1e6:g} MHz, VCO {self.vco_hz / 1e6:.1f} MHz; {settings})")

    def to_dict(self) -> dict:
        return {"family": self.family, "primitive": self.primitive, "input_hz": self.input_hz,
                "requested_hz": self.requested_hz, "achieved_hz": self.achieved_hz,
                "vco_hz": self.vco_hz, "params": dict(self.params), "attrs": dict(self.attrs)}


# ---- iCE40 (SB_PLL40, simple feedback) -----------------------------------------------------------
ICE40_PFD_HZ = (10e6, 133e6)
ICE40_VCO_HZ = (533e6, 1066e6)
ICE40_OUT_HZ = (16e6, 275e6)


def _ice40_filter_range(pfd_hz: float) -> int:
    """The loop filter setting for a phase detector frequency (the table icepll uses)."""
    mhz = pfd_hz / 1e6
    for limit, value in ((17, 1), (26, 2), (44, 3), (66, 4), (101, 5)):
        if mhz < limit:
            return value
    return 6


def solve_ice40(input_hz: float, target_hz: float, *, pad: bool = True) -> PllSolution:
    """Dividers of an iCE40 SB_PLL40 (simple feedback): out = in / (DIVR+1) * (DIVF+1) / 2**DIVQ."""
    lo, hi = ICE40_OUT_HZ
    if not lo <= target_hz <= hi:
        raise PllError(f"iCE40 PLL output {target_hz / 1e6:g} MHz is outside {lo / 1e6:g} .. {hi / 1e6:g} MHz")
    best = None
    for divr in range(16):
        pfd = input_hz / (divr + 1)
        if not ICE40_PFD_HZ[0] <= pfd <= ICE40_PFD_HZ[1]:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not ICE40_VCO_HZ[0] <= vco <= ICE40_VCO_HZ[1]:
                continue
            for divq in range(1, 7):
                out = vco / (1 << divq)
                err = abs(out - target_hz)
                if best is None or err < best[0] - 1e-6:
                    best = (err, divr, divf, divq, out, vco, pfd)
    if best is None:
        raise PllError(f"no iCE40 PLL setting turns {input_hz / 1e6:g} MHz into {target_hz / 1e6:g} MHz")
    _, divr, divf, divq, out, vco, pfd = best
    params = {"FEEDBACK_PATH": "SIMPLE", "DIVR": divr, "DIVF": divf, "DIVQ": divq,
              "FILTER_RANGE": _ice40_filter_range(pfd)}
    return PllSolution("ice40", "SB_PLL40_PAD" if pad else "SB_PLL40_CORE", input_hz, target_hz, out, vco, params)


# ---- ECP5 (EHXPLLL, feedback from CLKOP) ---------------------------------------------------------
ECP5_IN_HZ = (8e6, 400e6)
ECP5_OUT_HZ = (10e6, 400e6)
ECP5_PFD_HZ = (3.125e6, 400e6)
ECP5_VCO_HZ = (400e6, 800e6)


def solve_ecp5(input_hz: float, target_hz: float) -> PllSolution:
    """Dividers of an ECP5 EHXPLLL: out = in / CLKI_DIV * CLKFB_DIV, VCO = out * CLKOP_DIV.

    Ties go to the VCO closest to 600 MHz, as ecppll does."""
    lo, hi = ECP5_OUT_HZ
    if not lo <= target_hz <= hi:
        raise PllError(f"ECP5 PLL output {target_hz / 1e6:g} MHz is outside {lo / 1e6:g} .. {hi / 1e6:g} MHz")
    if not ECP5_IN_HZ[0] <= input_hz <= ECP5_IN_HZ[1]:
        raise PllError(f"ECP5 PLL input {input_hz / 1e6:g} MHz is outside 8 .. 400 MHz")
    best = None
    for clki in range(1, 129):
        pfd = input_hz / clki
        if not ECP5_PFD_HZ[0] <= pfd <= ECP5_PFD_HZ[1]:
            continue
        for clkfb in range(1, 81):
            out = pfd * clkfb
            for clkop in range(1, 129):
                vco = out * clkop
                if not ECP5_VCO_HZ[0] <= vco <= ECP5_VCO_HZ[1]:
                    continue
                err = abs(out - target_hz)
                key = (round(err, 3), abs(vco - 600e6))
                if best is None or key < best[0]:
                    best = (key, clki, clkfb, clkop, out, vco)
    if best is None:
        raise PllError(f"no ECP5 PLL setting turns {input_hz / 1e6:g} MHz into {target_hz / 1e6:g} MHz")
    _, clki, clkfb, clkop, out, vco = best
    params = {
        "PLLRST_ENA": "DISABLED", "INTFB_WAKE": "DISABLED", "STDBY_ENABLE": "DISABLED",
        "DPHASE_SOURCE": "DISABLED", "OUTDIVIDER_MUXA": "DIVA", "CLKI_DIV": clki, "CLKOP_ENABLE": "ENABLED",
        "CLKOP_DIV": clkop, "CLKOP_CPHASE": (clkop - 1) // 2, "CLKOP_FPHASE": 0, "FEEDBK_PATH": "CLKOP",
        "CLKFB_DIV": clkfb,
    }
    # analog settings and the frequencies nextpnr derives its timing constraint from: attributes
    attrs = {"ICP_CURRENT": "12", "LPF_RESISTOR": "8", "MFG_ENABLE_FILTEROPAMP": "1", "MFG_GMCREF_SEL": "2",
             "FREQUENCY_PIN_CLKI": f"{input_hz / 1e6:g}", "FREQUENCY_PIN_CLKOP": f"{out / 1e6:g}"}
    return PllSolution("ecp5", "EHXPLLL", input_hz, target_hz, out, vco, params, attrs)


# ---- Xilinx 7 series (MMCME2_BASE) ---------------------------------------------------------------
#: -1 speed grade limits (DS181, Artix-7): VCO, phase detector, input.
XC7_VCO_HZ = (600e6, 1200e6)
XC7_PFD_HZ = (10e6, 450e6)
XC7_IN_HZ = (10e6, 800e6)
XC7_OUT_HZ = (4.69e6, 800e6)


def solve_xc7(input_hz: float, target_hz: float) -> PllSolution:
    """MMCME2_BASE: out = in * M / (D * O), M (CLKFBOUT_MULT_F) 2..64 and O (CLKOUT0_DIVIDE_F) 1..128
    in steps of 1/8, D (DIVCLK_DIVIDE) 1..106. Integer M and O are preferred when equally exact."""
    lo, hi = XC7_OUT_HZ
    if not lo <= target_hz <= hi:
        raise PllError(f"MMCM output {target_hz / 1e6:g} MHz is outside {lo / 1e6:g} .. {hi / 1e6:g} MHz")
    if not XC7_IN_HZ[0] <= input_hz <= XC7_IN_HZ[1]:
        raise PllError(f"MMCM input {input_hz / 1e6:g} MHz is outside 10 .. 800 MHz")
    best = None
    for d in range(1, 107):
        pfd = input_hz / d
        if pfd < XC7_PFD_HZ[0]:
            break
        if pfd > XC7_PFD_HZ[1]:
            continue
        for m8 in range(16, 64 * 8 + 1):
            vco = pfd * m8 / 8
            if not XC7_VCO_HZ[0] <= vco <= XC7_VCO_HZ[1]:
                continue
            # the best O for this VCO, then its neighbours on the 1/8 grid
            o8_ideal = vco / target_hz * 8
            for o8 in {math.floor(o8_ideal), math.ceil(o8_ideal)}:
                if not 8 <= o8 <= 128 * 8 or (o8 % 8 and o8 < 16):
                    continue
                out = vco / (o8 / 8)
                err = abs(out - target_hz)
                fractional = (m8 % 8 != 0) + (o8 % 8 != 0)
                key = (round(err, 3), fractional, d, -vco)
                if best is None or key < best[0]:
                    best = (key, d, m8, o8, out, vco)
    if best is None:
        raise PllError(f"no MMCM setting turns {input_hz / 1e6:g} MHz into {target_hz / 1e6:g} MHz")
    _, d, m8, o8, out, vco = best
    params = {"BANDWIDTH": "OPTIMIZED", "DIVCLK_DIVIDE": d, "CLKFBOUT_MULT_F": m8 / 8,
              "CLKOUT0_DIVIDE_F": o8 / 8, "CLKIN1_PERIOD": round(1e9 / input_hz, 3),
              "CLKFBOUT_PHASE": 0.0, "CLKOUT0_PHASE": 0.0, "CLKOUT0_DUTY_CYCLE": 0.5}
    return PllSolution("xc7", "MMCME2_BASE", input_hz, target_hz, out, vco, params)


SOLVERS = {"ice40": solve_ice40, "ecp5": solve_ecp5, "xc7": solve_xc7}


def solve(family: str, input_hz: float, target_hz: float) -> PllSolution:
    if family not in SOLVERS:
        raise PllError(f"no PLL solver for family {family!r}; known: {', '.join(SOLVERS)}")
    return SOLVERS[family](input_hz, target_hz)


# ---- the primitives -------------------------------------------------------------------------------
def pll_instance(solution: PllSolution, clk_in, clk_out: Signal, locked: Signal) -> Instance:
    """The Amaranth Instance of the PLL: ``clk_in`` is the input (the raw pad port for
    SB_PLL40_PAD, a clock signal otherwise), ``clk_out`` the generated clock, ``locked`` its lock."""
    p = {f"p_{k}": v for k, v in solution.params.items()}
    if solution.primitive == "SB_PLL40_PAD":
        return Instance("SB_PLL40_PAD", **p, io_PACKAGEPIN=clk_in, i_RESETB=1, i_BYPASS=0,
                        o_PLLOUTGLOBAL=clk_out, o_LOCK=locked)
    if solution.primitive == "SB_PLL40_CORE":
        return Instance("SB_PLL40_CORE", **p, i_REFERENCECLK=clk_in, i_RESETB=1, i_BYPASS=0,
                        o_PLLOUTGLOBAL=clk_out, o_LOCK=locked)
    if solution.primitive == "EHXPLLL":
        a = {f"a_{k}": v for k, v in solution.attrs.items()}
        return Instance("EHXPLLL", **p, **a,
                        i_CLKI=clk_in, i_CLKFB=clk_out, i_RST=0, i_STDBY=0, i_PHASESEL0=0,
                        i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
                        i_PLLWAKESYNC=0, i_ENCLKOP=0, o_CLKOP=clk_out, o_LOCK=locked)
    if solution.primitive == "MMCME2_BASE":
        return _mmcm(solution, clk_in, clk_out, locked)
    raise PllError(f"unknown PLL primitive {solution.primitive!r}")


def _mmcm(solution: PllSolution, clk_in, clk_out, locked):
    m = Module()
    fb, out_unbuf = Signal(), Signal()
    p = {f"p_{k}": v for k, v in solution.params.items()}
    m.submodules.mmcm = Instance("MMCME2_BASE", **p, i_CLKIN1=clk_in, i_CLKFBIN=fb, i_RST=0, i_PWRDWN=0,
                                 o_CLKFBOUT=fb, o_CLKOUT0=out_unbuf, o_LOCKED=locked)
    m.submodules.bufg = Instance("BUFG", i_I=out_unbuf, o_O=clk_out)
    return m


__all__ = ["PllError", "PllSolution", "pll_instance", "solve", "solve_ecp5", "solve_ice40", "solve_xc7"]
