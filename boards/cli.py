"""The ``spikeforge compile`` and ``spikeforge flash`` commands (registered by spikeforge/cli.py).

``compile_command`` and ``flash_command`` are plain typer command functions; spikeforge/cli.py adds
them with ``app.command("compile")(compile_command)`` and ``app.command("flash")(flash_command)``.
"""

from __future__ import annotations

import json
import shlex
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import Progress as RichProgressBar, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()
# no wrapping: messages carry paths and commands a user copies
err_console = Console(stderr=True, soft_wrap=True)


class RichProgress:
    """boards.build.Progress on the terminal: one spinner line per step, ticked off with its time."""

    def __init__(self, console: Console):
        self.console = console

    @contextmanager
    def step(self, name: str):
        start = time.monotonic()
        bar = RichProgressBar(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                              console=self.console, transient=True)
        with bar:
            bar.add_task(name, total=None)
            try:
                yield
            except BaseException:
                self.console.print(f"[red]x[/] {name} (failed after {time.monotonic() - start:.1f} s)")
                raise
        self.console.print(f"[green]v[/] {name} [dim]({time.monotonic() - start:.1f} s)[/]")

    def note(self, text: str):
        self.console.print(f"  [dim]{text}[/]")


def _fail(message: str, code: int = 2):
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _parse_range(text: str) -> tuple[float, float]:
    """``--voltage-range -80,-40`` -> (-80.0, -40.0), or a ValueError that shows the expected form."""
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"--voltage-range {text!r}: expected LO,HI in mV, e.g. --voltage-range=-80,-40") from None
    if not lo < hi:
        raise ValueError(f"--voltage-range {text!r}: LO must be below HI (mV)")
    return lo, hi


def compile_command(
    net: Path = typer.Argument(..., help="Network file: .yaml/.json, .nir graph (with --dt) or a PyNN script (.py)."),
    board: str = typer.Option(..., "--board", "-b",
                              help="icebreaker (iCE40 UP5K), ulx3s-85f (ECP5 85F) or cmod-a7-35t (Artix-7)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: out/NETWORK-BOARD)."),
    standalone: bool = typer.Option(False, "--standalone",
                                    help="Bake the network and its input stimulus into a boot ROM: the board "
                                         "runs with no host and streams spikes out of its UART."),
    clock: Optional[float] = typer.Option(None, "--clock", help="Core clock in MHz (default: the board's own: "
                                          "24 iCEBreaker, 25 ULX3S, 50 Cmod A7)."),
    baud: int = typer.Option(1_000_000, "--baud", help="UART baud rate."),
    weight_bits: Optional[int] = typer.Option(None, "--weight-bits", help="Weight width (default 8)."),
    lanes: Optional[int] = typer.Option(None, "--lanes",
                                        help="Synapses read per clock (default: as many as fill one word "
                                             "of the weight memory and still fit)."),
    seed: int = typer.Option(1, "--seed", help="Placement seed (nextpnr)."),
    steps: int = typer.Option(200, "--steps", min=1, help="Golden-model steps behind the latency estimate."),
    stimulus_steps: int = typer.Option(1000, "--stimulus-steps", min=1,
                                       help="Standalone: steps of input stimulus in the ROM (they loop)."),
    input_seed: int = typer.Option(0, "--input-seed", help="Seed of the network's Poisson sources."),
    top: str = typer.Option("auto", "--top", help="Runtime host link: auto (the protocol link if it fits, else the bus bridge), link, bridge or interim."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Place and route again even if cached."),
    vivado: Optional[bool] = typer.Option(None, "--vivado/--no-vivado",
                                          help="Artix-7: run Vivado (default: if it is on PATH)."),
    force: bool = typer.Option(False, "--force",
                               help="Build even if the capacity estimate says the network does not fit "
                                    "(place and route decides)."),
    as_json: bool = typer.Option(False, "--json", help="Print report.json at the end."),
    dt: Optional[float] = typer.Option(None, "--dt", help="Timestep (ms) for NIR files (NIR carries none)."),
    voltage_range: Optional[str] = typer.Option(None, "--voltage-range",
                                                help="LO,HI: the membrane window (mV) the voltage scale covers "
                                                     "(default: from the neuron parameters)."),
    current_range: Optional[float] = typer.Option(None, "--current-range",
                                                  help="Peak synaptic current (nA) the current scale is sized "
                                                       "for (default: estimated from the weights)."),
):
    """Compile a network into an FPGA bitstream for a board, with report.md / report.json."""
    from spikeforge.boards.build import BuildError
    from spikeforge.boards.capacity import CapacityError
    from spikeforge.boards.catalog import BoardError, get_board
    from spikeforge.boards.flow import BoardOptions, TimingError, compile_for_board
    from spikeforge.boards.toolchain import ToolError
    from spikeforge.cli import load_network_file

    try:
        b = get_board(board)
        vrange = _parse_range(voltage_range) if voltage_range is not None else None
        network = load_network_file(net, dt)
    except (BoardError, ValueError, FileNotFoundError, RuntimeError) as exc:
        _fail(str(exc))
    out = out or Path("out") / f"{network.name}-{b.name}"
    options = BoardOptions(standalone=standalone, clock_mhz=clock, baud=baud, top=top, weight_bits=weight_bits,
                           lanes=lanes, seed=seed, activity_steps=steps, stimulus_steps=stimulus_steps,
                           input_seed=input_seed, use_cache=not no_cache, vivado=vivado, force=force,
                           voltage_range=vrange, current_range=current_range)
    console.print(f"[bold]spikeforge compile[/] {net} -> {b.title} ({b.part}), "
                  f"{'standalone' if standalone else 'runtime-loaded'}, output {out}")
    try:
        result = compile_for_board(network, b, out, options, progress=RichProgress(console))
    except TimingError as exc:
        _fail(str(exc), code=1)
    except (CapacityError, BuildError, ToolError, ValueError, RuntimeError) as exc:
        _fail(str(exc))
    _print_summary(result.report, out)
    if as_json:
        print(json.dumps(result.report, indent=2, default=str))


def _print_summary(r: dict, out: Path):
    table = Table(title=f"{r['network']['name']} on {r['board']['title']}", show_header=True)
    for col in ("resource", "used", "available", "use"):
        table.add_column(col, justify="left" if col == "resource" else "right")
    for key, label in (("luts", "logic"), ("ffs", "flip-flops"), ("bram", "block RAM"), ("spram", "SPRAM"),
                       ("dsp", "DSP")):
        row = r["resources"].get(key)
        if row:
            pct = f"{100 * row['used'] / row['available']:.0f} %" if row["available"] else "-"
            table.add_row(f"{label} ({row['unit']})", f"{row['used']:,.0f}", f"{row['available']:,.0f}", pct)
    if table.row_count:
        console.print(table)
    t = r.get("timing") or {}
    if t.get("fmax_mhz") is not None:
        console.print(f"clock {t['target_mhz']:.2f} MHz, Fmax {t['fmax_mhz']:.2f} MHz: "
                      + ("[green]timing met[/]" if t["met"] else "[red]timing NOT met[/]"))
    lat = r.get("latency") or {}
    if lat.get("mean_us") is not None:
        console.print(f"timestep: {lat['mean_us']:.2f} us mean, {lat['max_us']:.2f} us worst "
                      f"({lat['realtime_factor']:.1f}x real time at dt = {lat['dt_ms']} ms)")
    elif lat.get("note"):
        console.print(f"timestep latency: {lat['note']}")
    if r.get("link") == "interim":
        console.print("[yellow]note:[/] this runtime bitstream has the interim UART bridge (raw bus bytes, for "
                      "resource studies): the spikeforge host driver does not speak it; --top bridge does")
    elif str(r.get("link", "")).startswith("bus bridge"):
        console.print(f"host link: the bus bridge -- run it with `spikeforge board run NET --port "
                      f"bridge://DEVICE?build={out}` (docs/bus-bridge.md)")
    if r.get("status") == "vivado_not_run":
        console.print(f"[yellow]{r['vivado']}[/]")
    console.print(f"wrote {out}/ ({', '.join(r['files'])}); read {out / 'report.md'}")
    if r["bitstream"].get("file"):
        console.print(f"flash: {r['flash'].split('   #')[0]}")


def flash_command(
    build_dir: Path = typer.Argument(..., help="Output folder of spikeforge compile."),
    board: Optional[str] = typer.Option(None, "--board", "-b",
                                        help="Board (default: the one report.json names)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the openFPGALoader command, do not run it."),
    to_flash: bool = typer.Option(False, "--flash/--sram",
                                  help="ULX3S / Cmod A7: write the configuration flash (persistent) instead "
                                       "of SRAM. The iCEBreaker is always written to flash."),
    cable: Optional[str] = typer.Option(None, "--cable", help="openFPGALoader cable instead of the board's default."),
    serial: Optional[str] = typer.Option(None, "--serial", help="FTDI serial number, to pick one of several boards."),
    verify: bool = typer.Option(False, "--verify", help="Read the flash back and compare."),
):
    """Put a compiled bitstream on a board with openFPGALoader."""
    from spikeforge.boards.catalog import BoardError, get_board
    from spikeforge.boards.flash import FlashError, flash

    try:
        if board is None:
            report = Path(build_dir) / "report.json"
            if not report.exists():
                raise FlashError(f"{report} not found: give --board, or compile into {build_dir} first")
            board = json.loads(report.read_text())["board"]["name"]
        b = get_board(board)
        argv = flash(build_dir, b, dry_run=dry_run, to_flash=to_flash, cable=cable, serial=serial, verify=verify)
    except (BoardError, FlashError) as exc:
        _fail(str(exc))
    if dry_run:
        print(shlex.join(argv))
    else:
        console.print(f"[green]flashed[/] {b.title}: {shlex.join(argv)}")
