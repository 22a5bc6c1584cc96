"""Xilinx 7 series: a complete Vivado non-project build in the output folder.

Open place and route for the Artix-7 is not part of the pip toolchain, so the flow writes everything
Vivado needs next to the report and runs it when ``vivado`` is on PATH:

    top.v           the design (Amaranth -> Verilog, Xilinx I/O buffers and the MMCM inside)
    top.xdc         pins, I/O standards, the board clock, configuration voltage
    build.tcl       non-project flow: synth_design, opt/place/phys_opt/route, reports, write_bitstream
    run_vivado.sh   vivado -mode batch -source build.tcl, logs in logs/vivado.log

The Tcl script checks timing itself (WNS of the routed design) and stops with a message before
writing a bitstream that would not meet the clock.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from amaranth.hdl import Elaboratable

from spikeforge.boards.catalog import Board
from spikeforge.boards.logs import parse_vivado_utilization, parse_vivado_wns, read
from spikeforge.boards.pll import PllSolution
from spikeforge.boards.top import BoardTop

REPORTS = ("utilization.rpt", "utilization_hierarchical.rpt", "timing.rpt", "clocks.rpt", "drc.rpt", "power.rpt")

BUILD_TCL = """\
# spikeforge: Vivado non-project build of {title} ({part}), core clock {clock_mhz:.4f} MHz.
# Run from this folder:  vivado -mode batch -nojournal -log logs/vivado.log -source build.tcl
# (or ./run_vivado.sh). Writes top.bit and reports/*.rpt; stops if timing is not met.
set part {part}
set top top
file mkdir reports
read_verilog top.v
read_xdc top.xdc
synth_design -top $top -part $part -flatten_hierarchy rebuilt
report_utilization -file reports/utilization_synth.rpt
report_timing_summary -file reports/timing_synth.rpt
opt_design
place_design
phys_opt_design
route_design
write_checkpoint -force post_route.dcp
report_utilization -file reports/utilization.rpt
report_utilization -hierarchical -file reports/utilization_hierarchical.rpt
report_timing_summary -max_paths 10 -report_unconstrained -file reports/timing.rpt
report_clocks -file reports/clocks.rpt
report_drc -file reports/drc.rpt
report_power -file reports/power.rpt
set wns [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]]
puts "SPIKEFORGE_WNS_NS $wns"
if {{$wns < 0}} {{
    puts "SPIKEFORGE: timing not met at {clock_mhz:.4f} MHz (WNS $wns ns); no bitstream written"
    exit 2
}}
write_bitstream -force top.bit
puts "SPIKEFORGE: wrote top.bit"
"""

RUN_SH = """\
#!/bin/sh
# spikeforge: build top.bit with Vivado (2019.1 or newer) in this folder.
set -e
cd "$(dirname "$0")"
mkdir -p logs
exec vivado -mode batch -nojournal -log logs/vivado.log -source build.tcl
"""

#: added to Amaranth's pin constraints: configuration bank voltage (the Cmod A7 is 3.3 V) and a
#: compressed bitstream (faster to load over JTAG)
XDC_EXTRA = """\
# --- spikeforge additions ---
set_property CFGBVS VCCO [current_design]
set_property CONFIG_VOLTAGE 3.3 [current_design]
set_property BITSTREAM.GENERAL.COMPRESS TRUE [current_design]
"""


def write_vivado_project(board: Board, pll: PllSolution, design: Elaboratable, out_dir: Path) -> dict[str, Path]:
    """Write top.v, top.xdc, build.tcl and run_vivado.sh for ``design`` on ``board`` into ``out_dir``."""
    if board.family != "xc7":
        raise ValueError(f"{board.name} is not a Xilinx board")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    platform = board.platform(toolchain="Vivado")
    plan = platform.prepare(BoardTop(board, pll, design), name="top")
    files = {
        "top.v": plan.files["top.v"],
        "top.xdc": plan.files["top.xdc"].rstrip() + "\n" + XDC_EXTRA,
        "build.tcl": BUILD_TCL.format(title=board.title, part=board.part, clock_mhz=pll.achieved_hz / 1e6),
        "run_vivado.sh": RUN_SH,
    }
    paths = {}
    for name, text in files.items():
        path = out_dir / name
        path.write_text(text if isinstance(text, str) else text.decode())
        paths[name] = path
    paths["run_vivado.sh"].chmod(0o755)
    return paths


def vivado_available() -> str | None:
    return shutil.which("vivado")


def how_to_run(out_dir: Path) -> str:
    return (f"Vivado is not on PATH here, so the Artix-7 bitstream was not built. Everything is ready in "
            f"{out_dir}: run\n    cd {out_dir} && ./run_vivado.sh\n(= vivado -mode batch -nojournal "
            f"-log logs/vivado.log -source build.tcl) on a machine with Vivado 2019.1 or newer "
            f"(the free WebPACK/Standard edition covers the xc7a35t), then flash with "
            f"spikeforge flash {out_dir} --board cmod-a7-35t.")


def run_vivado(out_dir: Path) -> dict:
    """Run the build in ``out_dir`` with the ``vivado`` on PATH; returns parsed utilisation and WNS."""
    out_dir = Path(out_dir)
    (out_dir / "logs").mkdir(exist_ok=True)
    proc = subprocess.run(["vivado", "-mode", "batch", "-nojournal", "-log", "logs/vivado.log",
                           "-source", "build.tcl"], cwd=out_dir, capture_output=True, text=True)
    util = parse_vivado_utilization(read(out_dir / "reports" / "utilization.rpt"))
    wns = parse_vivado_wns(read(out_dir / "reports" / "timing.rpt"))
    return {"returncode": proc.returncode, "utilization": util, "wns_ns": wns,
            "bitstream": (out_dir / "top.bit") if (out_dir / "top.bit").exists() else None,
            "log": str(out_dir / "logs" / "vivado.log")}
