"""``spikeforge board ...`` and ``spikeforge run``: the UART link from the command line.

``board_app`` (a typer app, registered as ``spikeforge board``) has ``info``, ``load``, ``run``,
``read-weights`` and ``emulate``; ``run_command`` is ``spikeforge run NET --port P --steps N``
(compile for the board's core, load, run, read back, print and save the result). Every command takes
``--port`` (a serial device, the pty ``spikeforge board emulate`` printed, or ``virtual://``) and
``--baud``. Errors end in a one-paragraph message (exit code 2), never a traceback.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)

board_app = typer.Typer(
    help="Talk to a spikeforge board over the UART link, or emulate one on a pseudo-terminal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PORT = typer.Option(..., "--port", "-p", help="Serial port of the board (/dev/ttyUSB0, the path `spikeforge board "
                                               "emulate` printed, or virtual:// for an in-process virtual board).")
BAUD = typer.Option(1_000_000, "--baud", help="UART baud rate of the board.")
TIMEOUT = typer.Option(2.0, "--timeout", help="Seconds without an answer before a command is retried.")
CORE = typer.Option(0, "--core", "-c", min=0, help="Core of the board.")


def _user_errors() -> tuple[type[BaseException], ...]:
    from spikeforge.host.board import BoardError

    return (BoardError, ValueError, FileNotFoundError, RuntimeError, KeyError)


def _fail(exc: BaseException) -> None:
    err_console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(2)


def _open(port: str, baud: int, timeout: float):
    from spikeforge.host.board import Board

    return Board(port, baud=baud, timeout=timeout)


def _compile_for_board(net: Path, board, core: int):
    """Load a network file and compile it for core ``core`` of the board (FitError says what does not fit)."""
    from spikeforge.compiler import compile as compile_network
    from spikeforge.compiler.netfile import load_network

    if not net.exists():
        raise FileNotFoundError(f"{net}: no such network file")
    return compile_network(load_network(net), config=board.config(core), warn=False)


# ---- info ----------------------------------------------------------------------------------------
@board_app.command("info")
def info(port: str = PORT, baud: int = BAUD, timeout: float = TIMEOUT):
    """Identify the board: protocol version, link parameters and the CoreConfig of every core."""
    try:
        with _open(port, baud, timeout) as board:
            rtt = board.ping(bytes(range(16)))
            board_info = board.info
    except _user_errors() as exc:
        _fail(exc)
    from spikeforge.core.protocol import BoardFlag

    flags = [f.name.lower() for f in BoardFlag if board_info.flags & f] or ["-"]
    clock = f", core clock {board_info.clock_hz / 1e6:g} MHz" if board_info.clock_hz else ""
    console.print(f"[bold]{board_info.name}[/] on {port}: link protocol {board_info.version[0]}.{board_info.version[1]}, "
                  f"{len(board_info.cores)} core(s), {board_info.baud} baud{clock}")
    console.print(f"window {board_info.window} commands, {board_info.max_words} words per frame, "
                  f"{board_info.slots} step slots, flags: {', '.join(flags)}; ping {rtt * 1e3:.2f} ms")
    table = Table(title="CoreConfig per core")
    table.add_column("field")
    for k in range(len(board_info.cores)):
        table.add_column(f"core {k}", justify="right")
    for name in board_info.cores[0].to_dict():
        table.add_row(name, *(str(getattr(c, name)) for c in board_info.cores))
    console.print(table)


# ---- load ----------------------------------------------------------------------------------------
def _is_core_image(path: Path) -> bool:
    if path.suffix != ".npz":
        return False
    with np.load(path) as data:
        return "config_json" in data.files


@board_app.command("load")
def load(
    source: Path = typer.Argument(..., help="Network file (.yaml, .json) to compile for the board, or a saved "
                                            "CoreImage (.npz)."),
    port: str = PORT, baud: int = BAUD, timeout: float = TIMEOUT, core: int = CORE,
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Read everything back and compare."),
):
    """Load a network (compiled for the board's core) or a CoreImage into a core."""
    from spikeforge.core.image import CoreImage

    try:
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such file")
        with _open(port, baud, timeout) as board:
            image = CoreImage.load(source) if _is_core_image(source) else _compile_for_board(source, board, core).image
            t0 = time.perf_counter()
            board.load(image, core, verify=verify)
            seconds = time.perf_counter() - t0
            sent = board.stats["tx_bytes"]
    except _user_errors() as exc:
        _fail(exc)
    check = "written and verified" if verify else "written (not verified)"
    console.print(f"core {core}: {source.name} {check} in {seconds:.2f} s ({sent} bytes sent)")


# ---- run -----------------------------------------------------------------------------------------
def run_command(
    net: Path = typer.Argument(..., help="Network file (.yaml, .json)."),
    port: str = PORT,
    steps: int = typer.Option(1000, "--steps", "-n", min=1, help="Timesteps to run."),
    baud: int = BAUD,
    timeout: float = TIMEOUT,
    core: int = CORE,
    seed: Optional[int] = typer.Option(None, "--seed", help="Run seed mixed into every Poisson source."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the result (spike rasters per population, "
                                                                 "learned weights) to this .npz file."),
    record: str = typer.Option("", "--record", help="Comma-separated variables to read back every step: "
                                                    "v, ie, ii, threshold, adapt, refrac_count (slow)."),
):
    """Compile a network for the board, load it, run it and read the result back."""
    try:
        with _open(port, baud, timeout) as board:
            compiled = _compile_for_board(net, board, core)
            t0 = time.perf_counter()
            result = board.run_network(compiled, steps, seed, core=core,
                                       record=tuple(r for r in record.split(",") if r))
            seconds = time.perf_counter() - t0
    except _user_errors() as exc:
        _fail(exc)
    table = Table(title=f"{net.name}: {steps} steps of {compiled.dt} ms on {port} (core {core}), {seconds:.2f} s")
    for col in ("population", "size", "spikes", "mean rate (Hz)"):
        table.add_column(col, justify="right" if col != "population" else "left")
    for label, size, count, rate in result.summary_rows():
        table.add_row(label, str(size), str(count), f"{rate:.2f}")
    console.print(table)
    if out:
        result.save(out)
        console.print(f"wrote {out}")


board_app.command("run")(run_command)


# ---- read-weights --------------------------------------------------------------------------------
@board_app.command("read-weights")
def read_weights(
    port: str = PORT, baud: int = BAUD, timeout: float = TIMEOUT, core: int = CORE,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the weights to this .npz file."),
    net: Optional[Path] = typer.Option(None, "--net", help="The network loaded on the core: weights are then "
                                                           "given per projection in nA."),
):
    """Read the weight memory of a core (integers, or nA per projection with --net)."""
    try:
        with _open(port, baud, timeout) as board:
            if net is not None:
                compiled = _compile_for_board(net, board, core)
                image = board.read_image(core, state=False)
                arrays = compiled.projection_weights(image, plastic_only=False)
                unit = "nA"
            else:
                weights = board.read_weights(core)
                arrays = {"weights": weights}
                unit = "integer"
    except _user_errors() as exc:
        _fail(exc)
    table = Table(title=f"weights of core {core} on {port} ({unit})")
    for col in ("name", "shape", "non-zero", "min", "max"):
        table.add_column(col, justify="right" if col != "name" else "left")
    for name, w in arrays.items():
        table.add_row(name, "x".join(map(str, w.shape)), str(int(np.count_nonzero(w))),
                      f"{w.min():.6g}" if w.size else "-", f"{w.max():.6g}" if w.size else "-")
    console.print(table)
    if out:
        np.savez_compressed(out, **arrays)
        console.print(f"wrote {out}")


# ---- emulate -------------------------------------------------------------------------------------
def _blimp_core():
    from spikeforge.demos.blimp.cli import CONTROLLER_FILE
    from spikeforge.demos.blimp.snn import Controller

    return Controller.load(CONTROLLER_FILE).config()


#: `board emulate --network NAME`: the core a demo loads onto a board (`demo blimp --port`)
DEMO_CORES = {"blimp": _blimp_core}


@board_app.command("emulate")
def emulate(
    cores: Optional[int] = typer.Option(None, "--cores", "-k", min=1, help="Number of cores (default: 1, or one "
                                                                           "per entry of --config)."),
    config: Optional[Path] = typer.Option(None, "--config", help="JSON/YAML file: CoreConfig fields, or a list of "
                                                                 "them (one per core)."),
    network: Optional[Path] = typer.Option(None, "--network", help="Give the cores the CoreConfig this network "
                                                                   "compiles to, or 'blimp': the core of the blimp "
                                                                   "demo's controller (for demo blimp --port)."),
    baud: int = typer.Option(1_000_000, "--baud", help="Baud rate the board reports (and paces at, with --pace)."),
    pace: bool = typer.Option(False, "--pace/--no-pace", help="Deliver bytes no faster than a UART at --baud."),
    slots: int = typer.Option(64, "--slots", min=1, max=65535, help="Steps of input buffered ahead / spikes kept."),
    drop: float = typer.Option(0.0, "--drop", help="Drop each byte on the wire with this probability."),
    corrupt: float = typer.Option(0.0, "--corrupt", help="Corrupt each byte on the wire with this probability."),
    seed: int = typer.Option(0, "--seed", help="Seed of the wire faults."),
    engine: str = typer.Option("auto", "--engine", help="auto, fast (numba kernel) or golden (NumPy reference)."),
    device: str = typer.Option("golden", "--device", help="What serves the link: golden (the virtual board); "
                                                          "other byte devices registered in "
                                                          "spikeforge.host.emulator.DEVICES."),
    rtl: bool = typer.Option(False, "--rtl", help="Serve the generated RTL instead: the link and cores' Verilog "
                                                 "under cocotb + Verilator, byte for byte through its UART "
                                                 "(short bit time; build ~1-2 min the first time)."),
):
    """Serve a virtual board (golden-model cores) on a pseudo-terminal. The first line printed is
    `port: /dev/pts/N`; open that port with any spikeforge command. Ctrl-C stops it."""
    from spikeforge.host.emulator import EmulatorError, emulate as serve
    from spikeforge.host.wire import LinkFaults

    try:
        faults = LinkFaults(drop, corrupt, seed) if (drop or corrupt) else None
        if network is not None and str(network) in DEMO_CORES and not network.exists():
            if config is not None:
                raise EmulatorError("give --config or --network, not both")
            config, network = DEMO_CORES[str(network)](), None
        options = dict(cores=cores, config=config, network=network, slots=slots, baud=baud)
        if rtl:
            if device != "golden":
                raise ValueError(f"--rtl and --device {device} both choose what serves the link: give one")
            device = "rtl"
        if device == "golden":
            options["engine"] = engine
        serve(device, pace_baud=baud if pace else None, faults=faults, **options)
    except (EmulatorError, *_user_errors()) as exc:
        _fail(exc)


if __name__ == "__main__":  # python -m spikeforge.host.cli_board emulate ... (before the lead registers it)
    board_app()
