"""The Artix-7 (Cmod A7-35T) build: no Vivado on this machine, so the generated project is checked
instead -- a complete non-project Tcl flow, the pin and clock constraints of the Cmod A7, and the
MMCM in the Verilog with the dividers the solver chose."""

import re
import shutil
from pathlib import Path

import pytest

from spikeforge.boards.catalog import get_board
from spikeforge.boards.interim_link import InterimUartLink
from spikeforge.boards.pll import solve_xc7
from spikeforge.boards.vivado import how_to_run, write_vivado_project
from spikeforge.core.config import CoreConfig

CONFIG = CoreConfig(n_neurons=16, n_inputs=8)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    board = get_board("cmod-a7-35t")
    pll = solve_xc7(board.clock_hz, 100e6)
    out = tmp_path_factory.mktemp("cmod")
    paths = write_vivado_project(board, pll, InterimUartLink([CONFIG], pll.achieved_hz, 1_000_000), out)
    return out, paths, pll


def test_files_are_written(project):
    out, paths, _ = project
    assert set(paths) == {"top.v", "top.xdc", "build.tcl", "run_vivado.sh"}
    assert all(p.exists() and p.stat().st_size > 0 for p in paths.values())
    assert (out / "run_vivado.sh").stat().st_mode & 0o111


def test_tcl_is_a_complete_non_project_flow(project):
    tcl = (project[0] / "build.tcl").read_text()
    assert "create_project" not in tcl  # non-project mode
    order = ["read_verilog top.v", "read_xdc top.xdc", "synth_design -top $top -part $part", "opt_design",
             "place_design", "phys_opt_design", "route_design", "write_bitstream -force top.bit"]
    positions = [tcl.index(step) for step in order]
    assert positions == sorted(positions)
    routed = tcl[tcl.index("route_design"):tcl.index("write_bitstream")]
    for report in ("report_utilization -file reports/utilization.rpt", "report_timing_summary",
                   "report_drc", "report_power", "report_clocks"):
        assert report in routed
    assert "set part xc7a35tcpg236-1" in tcl
    # timing is checked before the bitstream is written
    assert tcl.index("SPIKEFORGE_WNS_NS") < tcl.index("write_bitstream")
    assert re.search(r"if \{\$wns < 0\}", tcl)
    assert "100.0000 MHz" in tcl


def test_xdc_pins_clock_and_config(project):
    xdc = (project[0] / "top.xdc").read_text()
    # Cmod A7 schematic: 12 MHz clock on L17, USB UART RX J17 / TX J18, 3.3 V banks
    assert re.search(r"set_property LOC L17 \[get_ports \"?clk12_0__io\"?\]", xdc)
    assert re.search(r"set_property LOC J17 \[get_ports \"?uart_0__rx__io\"?\]", xdc)
    assert re.search(r"set_property LOC J18 \[get_ports \"?uart_0__tx__io\"?\]", xdc)
    assert xdc.count('IOSTANDARD "LVCMOS33"') == 3
    assert re.search(r"create_clock .*-period 83\.333", xdc)
    # no hand-made constraint on the MMCM output: Vivado derives it
    assert xdc.count("create_clock") == 1
    assert "CONFIG_VOLTAGE 3.3" in xdc and "CFGBVS VCCO" in xdc


def test_verilog_has_the_mmcm_and_the_core(project):
    out, _, pll = project
    v = (out / "top.v").read_text()
    assert "MMCME2_BASE" in v and "BUFG" in v
    p = pll.params
    assert f".CLKFBOUT_MULT_F({p['CLKFBOUT_MULT_F']})" in v
    assert f".CLKOUT0_DIVIDE_F({p['CLKOUT0_DIVIDE_F']})" in v
    assert ".CLKIN1_PERIOD(83.333)" in v
    assert re.search(r"module \S*core", v)  # the neuron core is in the design


def test_how_to_run_names_the_command(tmp_path):
    text = how_to_run(tmp_path)
    assert "./run_vivado.sh" in text and "vivado -mode batch" in text and "spikeforge flash" in text


@pytest.mark.skipif(shutil.which("vivado") is None, reason="Vivado is not installed here (see docs/bitstreams.md)")
def test_vivado_builds_the_bitstream(project):  # pragma: no cover - needs Vivado
    from spikeforge.boards.vivado import run_vivado

    res = run_vivado(project[0])
    assert res["returncode"] == 0 and res["bitstream"] is not None
    assert res["wns_ns"] is not None and res["wns_ns"] >= 0
