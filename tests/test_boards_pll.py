"""PLL settings: the solvers agree with the vendor tools' open reimplementations (icepll, ecppll) and
respect every range; the achieved frequency is what the dividers really give."""

import re
import subprocess

import pytest

from spikeforge.boards.pll import (
    ECP5_VCO_HZ, ICE40_PFD_HZ, ICE40_VCO_HZ, XC7_PFD_HZ, XC7_VCO_HZ, PllError, solve, solve_ecp5, solve_ice40,
    solve_xc7,
)
from spikeforge.boards.toolchain import tool_command, tool_environment


def _run(tool, *args, cwd=None):
    return subprocess.run([tool_command(tool), *args], capture_output=True, text=True, env=tool_environment(),
                          timeout=120, cwd=cwd)


@pytest.mark.parametrize("mhz", [18, 24, 30, 36, 48])
def test_ice40_matches_icepll(mhz):
    sol = solve_ice40(12e6, mhz * 1e6)
    out = _run("icepll", "-i", "12", "-o", str(mhz))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    field = lambda name: int(re.search(rf"{name}:\s+(\d+)", text).group(1))
    achieved = float(re.search(r"F_PLLOUT:\s+([\d.]+) MHz \(achieved\)", text).group(1))
    assert (sol.params["DIVR"], sol.params["DIVF"], sol.params["DIVQ"]) == (field("DIVR"), field("DIVF"), field("DIVQ"))
    assert sol.params["FILTER_RANGE"] == field("FILTER_RANGE")
    assert sol.achieved_hz / 1e6 == pytest.approx(achieved, abs=5e-4)


@pytest.mark.parametrize("mhz", [40, 50, 63, 75])
def test_ecp5_matches_ecppll(mhz, tmp_path):
    sol = solve_ecp5(25e6, mhz * 1e6)
    out = _run("ecppll", "-i", "25", "-o", str(mhz), "-f", "pll.v", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert sol.params["CLKI_DIV"] == int(re.search(r"Refclk divisor: (\d+)", text).group(1))
    assert sol.params["CLKFB_DIV"] == int(re.search(r"Feedback divisor: (\d+)", text).group(1))
    assert sol.params["CLKOP_DIV"] == int(re.search(r"clkout0 divisor: (\d+)", text).group(1))
    assert sol.achieved_hz / 1e6 == pytest.approx(float(re.search(r"clkout0 frequency: ([\d.]+)", text).group(1)))


def test_ice40_achieved_is_the_divider_arithmetic():
    for mhz in (16.5, 20, 27.3, 33, 100):
        s = solve_ice40(12e6, mhz * 1e6)
        p = s.params
        pfd = 12e6 / (p["DIVR"] + 1)
        vco = pfd * (p["DIVF"] + 1)
        assert ICE40_PFD_HZ[0] <= pfd <= ICE40_PFD_HZ[1]
        assert ICE40_VCO_HZ[0] <= vco <= ICE40_VCO_HZ[1]
        assert s.achieved_hz == pytest.approx(vco / 2 ** p["DIVQ"])
        assert abs(s.achieved_hz - mhz * 1e6) / (mhz * 1e6) < 0.02


def test_ecp5_ranges_and_phase():
    for mhz in (12, 33.3, 50, 125, 200):
        s = solve_ecp5(25e6, mhz * 1e6)
        p = s.params
        assert s.achieved_hz == pytest.approx(25e6 / p["CLKI_DIV"] * p["CLKFB_DIV"])
        assert ECP5_VCO_HZ[0] <= s.achieved_hz * p["CLKOP_DIV"] <= ECP5_VCO_HZ[1]
        assert p["CLKOP_CPHASE"] == (p["CLKOP_DIV"] - 1) // 2
        assert s.attrs["FREQUENCY_PIN_CLKOP"] == f"{s.achieved_hz / 1e6:g}"


def test_mmcm_exact_100mhz_from_12mhz_with_integer_dividers():
    s = solve_xc7(12e6, 100e6)
    p = s.params
    assert s.achieved_hz == pytest.approx(100e6)
    assert float(p["CLKFBOUT_MULT_F"]).is_integer() and float(p["CLKOUT0_DIVIDE_F"]).is_integer()
    assert XC7_VCO_HZ[0] <= s.vco_hz <= XC7_VCO_HZ[1]
    assert XC7_PFD_HZ[0] <= 12e6 / p["DIVCLK_DIVIDE"] <= XC7_PFD_HZ[1]
    assert p["CLKIN1_PERIOD"] == pytest.approx(83.333)


def test_mmcm_fractional_steps_are_eighths():
    s = solve_xc7(12e6, 74.25e6)
    p = s.params
    assert (p["CLKFBOUT_MULT_F"] * 8).is_integer() and (p["CLKOUT0_DIVIDE_F"] * 8).is_integer()
    assert s.achieved_hz == pytest.approx(12e6 * p["CLKFBOUT_MULT_F"] / (p["DIVCLK_DIVIDE"] * p["CLKOUT0_DIVIDE_F"]))
    assert abs(s.error_ppm) < 2000


@pytest.mark.parametrize("family,mhz", [("ice40", 5), ("ice40", 400), ("ecp5", 1000), ("xc7", 2000)])
def test_out_of_range_requests_name_the_range(family, mhz):
    with pytest.raises(PllError, match="outside"):
        solve(family, 12e6 if family != "ecp5" else 25e6, mhz * 1e6)


def test_unknown_family():
    with pytest.raises(PllError, match="no PLL solver"):
        solve("gowin", 27e6, 50e6)
