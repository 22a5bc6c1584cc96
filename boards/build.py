"""One bitstream with the open tools: Amaranth design -> Yosys -> nextpnr -> icepack/ecppack, cached.

Amaranth's platform writes the RTLIL netlist and the pin constraints; this module runs the tools
itself (not Amaranth's build script) so that each step is timed, shown, logged to its own file and
its failure explained. Builds are cached under a key made of everything that shapes the bitstream --
board, PLL setting, the design's constructor arguments (CoreConfig, mode, ROM size), the hardware
sources' fingerprint and the tool versions -- so a network with new weights but the same CoreConfig
reuses the placed and routed design.

The netlist goes through boards/netlist.py on its way to Yosys (zero memory inits removed, the iCE40
weight memory put in SPRAM).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from amaranth.hdl import Elaboratable

from spikeforge.boards.catalog import Board
from spikeforge.boards.logs import parse_nextpnr_log, parse_yosys_stat, read
from spikeforge.boards.netlist import SYNTH, prepare_for_synthesis
from spikeforge.boards.pll import PllSolution
from spikeforge.boards.toolchain import (
    ToolError, cache_home, design_fingerprint, run_tool, tool_environment, tool_versions,
)
from spikeforge.boards.top import BoardTop
from spikeforge.file_lock import locked


class BuildError(RuntimeError):
    """A tool failed or the design does not fit; the message names the step, the limit and the log."""


class Progress:
    """Where the flow reports its steps. The default prints nothing; the CLI shows rich spinners."""

    @contextmanager
    def step(self, name: str):
        yield

    def note(self, text: str):
        pass


def bitstream_cache_root() -> Path:
    env = os.environ.get("SPIKEFORGE_BITSTREAM_CACHE")
    return Path(env) if env else cache_home() / "bitstreams"


# ---- results ---------------------------------------------------------------------------------------
@dataclass
class BuildResult:
    """A built bitstream (fresh or from the cache) and what the tools said about it."""

    key: str
    directory: Path
    board: str
    bitstream: Path
    verilog: Path
    logs: dict[str, Path]
    utilisation: dict[str, tuple[int, int]]      # nextpnr: cell type -> (used, available)
    cells: dict[str, int]                        # yosys: primitive -> count
    clocks: list[dict]                           # nextpnr: per clock fmax/target/pass
    seconds: dict[str, float]                    # per step, of the build that made it
    cached: bool = False
    extra: dict = field(default_factory=dict)

    def design_clock(self, target_hz: float) -> dict | None:
        """The clock whose constraint is ``target_hz`` (the PLL output), or the fastest-constrained."""
        if not self.clocks:
            return None
        return min(self.clocks, key=lambda c: abs(c["target_mhz"] * 1e6 - target_hz))

    def to_json(self) -> dict:
        d = asdict(self)
        d["directory"] = str(self.directory)
        d["bitstream"] = str(self.bitstream)
        d["verilog"] = str(self.verilog)
        d["logs"] = {k: str(v) for k, v in self.logs.items()}
        return d

    @classmethod
    def from_json(cls, d: dict) -> "BuildResult":
        d = dict(d)
        for k in ("directory", "bitstream", "verilog"):
            d[k] = Path(d[k])
        d["logs"] = {k: Path(v) for k, v in d["logs"].items()}
        d["utilisation"] = {k: tuple(v) for k, v in d["utilisation"].items()}
        return cls(**d)


def cache_key(board: Board, pll: PllSolution, design_fields: dict, seed: int) -> str:
    text = json.dumps({
        "board": board.name, "part": board.part, "pll": pll.to_dict(), "design": design_fields,
        "seed": seed, "fingerprint": design_fingerprint(), "tools": tool_versions(),
        "synth": SYNTH.get(board.family),
    }, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


# ---- the build -------------------------------------------------------------------------------------
def build_bitstream(board: Board, pll: PllSolution, make_design: Callable[[], Elaboratable],
                    design_fields: dict, *, seed: int = 1, use_cache: bool = True,
                    cache_root: Path | None = None, progress: Progress | None = None) -> BuildResult:
    """Build (or fetch from the cache) the bitstream of ``make_design()`` on ``board``.

    ``design_fields`` must identify the design completely (it is the cache key with the board, the PLL
    and the tools): the flow passes the CoreConfig, the mode, the top level and the ROM size."""
    if not board.open_toolchain:
        raise BuildError(f"the {board.title} ({board.family}) is built by Vivado, not the open tools; "
                         "use spikeforge.boards.vivado")
    progress = progress or Progress()
    key = cache_key(board, pll, design_fields, seed)
    root = cache_root or bitstream_cache_root()
    entry = root / key
    with locked(root / f".{key}.lock"):
        result_file = entry / "result.json"
        if use_cache and result_file.exists():
            result = BuildResult.from_json(json.loads(result_file.read_text()))
            if result.bitstream.exists():
                result.cached = True
                progress.note(f"bitstream for this design found in the cache ({entry})")
                return result
        if entry.exists():
            shutil.rmtree(entry)
        entry.mkdir(parents=True)
        (entry / "design.json").write_text(json.dumps(
            {**design_fields, "board": board.name, "family": board.family, "fingerprint": design_fingerprint()},
            indent=1, sort_keys=True, default=str))
        result = _run_open_flow(board, pll, make_design, entry, key, seed, progress)
        result_file.write_text(json.dumps(result.to_json(), indent=1))
        return result


def _run_open_flow(board, pll, make_design, entry: Path, key: str, seed: int, progress: Progress) -> BuildResult:
    env = tool_environment()
    logs = entry / "logs"
    logs.mkdir()
    seconds = {}
    with progress.step("generating the design (Amaranth)"):
        t0 = time.monotonic()
        platform = board.platform()
        top = BoardTop(board, pll, make_design())
        plan = platform.prepare(top, name="top")
        rtlil = plan.files["top.il"]
        constraints = "top.pcf" if board.family == "ice40" else "top.lpf"
        (entry / "top.il").write_text(rtlil)
        (entry / "top_synth.il").write_text(prepare_for_synthesis(rtlil, board.family))
        (entry / constraints).write_text(plan.files[constraints])
        seconds["generate"] = time.monotonic() - t0
    script = entry / "synth.ys"
    script.write_text("\n".join([
        "read_rtlil top.il", "proc", "opt_clean", "write_verilog -norename -noattr top.v", "design -reset",
        "read_rtlil top_synth.il", f"{SYNTH[board.family]} -top top", "write_json top.json", "",
    ]))
    with progress.step("synthesis (yosys)"):
        seconds["synthesis"] = run_tool(["yosys", "-q", "-l", "logs/yosys.log", "synth.ys"],
                                        cwd=entry, log=logs / "yosys.stdout.log", env=env, what="synthesis (yosys)")
    pnr_log = logs / "nextpnr.log"
    if board.family == "ice40":
        platform_obj = board.platform()
        device = {"iCE40UP5K": "--up5k"}[platform_obj.device]
        argv = ["nextpnr-ice40", "--quiet", "--timing-allow-fail", "--seed", str(seed), device,
                "--package", platform_obj.package.lower(), "--json", "top.json", "--pcf", "top.pcf",
                "--asc", "top.asc", "--log", "logs/nextpnr.log", "--report", "nextpnr_report.json"]
    else:
        platform_obj = board.platform()
        size = {"LFE5U-85F": "--85k", "LFE5U-45F": "--45k", "LFE5U-25F": "--25k", "LFE5U-12F": "--12k"}
        package = {"BG381": "CABGA381", "BG256": "CABGA256"}
        argv = ["nextpnr-ecp5", "--quiet", "--timing-allow-fail", "--seed", str(seed),
                size[platform_obj.device], "--package", package[platform_obj.package],
                "--speed", str(platform_obj.speed), "--json", "top.json", "--lpf", "top.lpf",
                "--textcfg", "top.config", "--log", "logs/nextpnr.log", "--report", "nextpnr_report.json"]
    with progress.step("place and route (nextpnr)"):
        try:
            seconds["place_and_route"] = run_tool(argv, cwd=entry, log=logs / "nextpnr.stdout.log", env=env,
                                                  what="place and route (nextpnr)")
        except ToolError as exc:
            pnr = parse_nextpnr_log(read(pnr_log))
            if pnr.utilisation:  # what did not fit is still a measurement of the design's size
                (entry / "failed.json").write_text(json.dumps({"utilisation": pnr.utilisation}))
            raise BuildError(_explain_pnr_failure(board, pnr, str(exc))) from None
    with progress.step("bitstream (icepack)" if board.family == "ice40" else "bitstream (ecppack)"):
        seconds["pack"] = pack(board, entry, env)
    pnr = parse_nextpnr_log(read(pnr_log))
    cells = parse_yosys_stat(read(logs / "yosys.log"))
    if (entry / "nextpnr_report.json").exists():
        shutil.copyfile(entry / "nextpnr_report.json", logs / "nextpnr_report.json")
    (entry / "top.json").unlink(missing_ok=True)  # 5-50 MB netlist; the logs keep what matters
    return BuildResult(
        key=key, directory=entry, board=board.name, bitstream=entry / board.bitstream,
        verilog=entry / "top.v", logs={"yosys": logs / "yosys.log", "nextpnr": pnr_log},
        utilisation=pnr.utilisation, cells=cells,
        clocks=[asdict(c) for c in pnr.clocks.values()], seconds=seconds,
        extra={"derived_clocks_mhz": pnr.derived, "critical_paths": pnr.critical_paths},
    )


def pack(board: Board, entry: Path, env=None, asc: str | None = None, config: str | None = None) -> float:
    """icepack top.asc -> top.bin, or ecppack top.config -> top.bit (compressed, as ULX3S builds do)."""
    logs = entry / "logs"
    if board.family == "ice40":
        return run_tool(["icepack", asc or "top.asc", "top.bin"], cwd=entry, log=logs / "pack.log", env=env,
                        what="icepack")
    return run_tool(["ecppack", "--compress", "--input", config or "top.config", "--bit", "top.bit"],
                    cwd=entry, log=logs / "pack.log", env=env, what="ecppack")


def _explain_pnr_failure(board: Board, pnr, raw: str) -> str:
    """nextpnr failed: if the design is over a resource, say which one (the usual case)."""
    over = [(cell, used, avail) for cell, (used, avail) in pnr.utilisation.items() if used > avail]
    if over:
        what = "; ".join(f"{cell} {used} of {avail}" for cell, used, avail in over)
        return (f"the design does not fit the {board.part}: {what} (nextpnr). The capacity estimate was "
                "too optimistic for this configuration: use a smaller network or a bigger board, and "
                f"re-run benchmarks/bench_boards.py --calibrate to refit the estimate.\n{raw}")
    if any("Failed to expand region" in e or "Unable to place" in e for e in pnr.errors):
        return (f"nextpnr could not place the design on the {board.part} (logic too full: "
                f"{pnr.utilisation.get('ICESTORM_LC') or pnr.utilisation.get('TRELLIS_COMB')}). "
                f"Use a smaller network or a bigger board.\n{raw}")
    return raw
