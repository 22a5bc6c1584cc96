"""The ``spikeforge`` command.

Every subcommand has --help. Errors in the user's input end with a one-paragraph message that names
the problem and the fix (exit code 2), never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

import spikeforge

app = typer.Typer(
    name="spikeforge",
    help="Hardware co-design toolchain for spiking neural networks: describe a network, compile it to a "
    "fixed-point neuron core, simulate it bit-exactly, build FPGA bitstreams, run it on boards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
demo_app = typer.Typer(help="Runnable demonstrations.", no_args_is_help=True)
app.add_typer(demo_app, name="demo")

console = Console()
err_console = Console(stderr=True)

#: Errors that come from the user's input: shown as a message, not a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, RuntimeError)


def _fail(exc: BaseException) -> None:
    err_console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(2)


def _version(value: bool):
    if value:
        console.print(f"spikeforge {spikeforge.__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
):
    """spikeforge: compile, simulate and deploy spiking neural networks on FPGA neuron cores."""


def load_network_file(path: Path, dt: Optional[float] = None):
    """A network file: .yaml/.json, .nir (needs --dt unless spikeforge wrote it), or a PyNN script (.py)."""
    from spikeforge.compiler.loaders import load_any

    if not path.exists():
        raise FileNotFoundError(f"{path}: no such network file")
    return load_any(path, dt)


NET_HELP = "Network: .yaml/.json file, .nir graph, or a PyNN script (.py)."
DT_HELP = "Timestep (ms) for NIR files (NIR carries none)."


def _print_report(compiled) -> None:
    c = compiled.config
    console.print(
        f"[bold]CoreConfig[/]: N = {c.n_neurons} neurons, A = {c.n_inputs} inputs, {c.weight_bits}-bit weights, "
        f"P = {c.lanes} lanes, max delay {c.max_delay}, STDP {'on' if c.stdp else 'off'}, adaptive threshold "
        f"{'on' if c.adaptive_threshold else 'off'}, {c.n_profiles} profiles  (hash {c.config_hash()})"
    )
    for table in compiled.report.rich_tables():
        console.print(table)


@app.command()
def sim(
    net: Path = typer.Argument(..., help=NET_HELP),
    steps: int = typer.Option(1000, "--steps", "-n", min=1, help="Timesteps to simulate."),
    backend: str = typer.Option("golden", "--backend", "-b",
                                help="golden (bit-exact core model), float (exact float reference), "
                                     "nest (PyNN on NEST), rtl (generated Verilog under cocotb), "
                                     "spinnaker (PyNN on sPyNNaker)."),
    dt: Optional[float] = typer.Option(None, "--dt", help=DT_HELP),
    seed: Optional[int] = typer.Option(None, "--seed", help="Run seed mixed into every Poisson source."),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="Write spike rasters (one boolean (steps, size) array per "
                                            "population, named by label) to this .npz file."),
    record: str = typer.Option("", "--record",
                               help="Comma-separated variables to record too: v, ie, ii, threshold."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a spike raster plot (PNG)."),
    simulator: str = typer.Option("icarus", "--simulator", help="RTL backend: icarus or verilator."),
    vcd: Optional[Path] = typer.Option(None, "--vcd", help="RTL backend: write a waveform (VCD) here."),
    virtual: bool = typer.Option(False, "--virtual", help="spinnaker: map onto a virtual SpiNNaker board (no spikes)."),
    spinnaker_host: Optional[str] = typer.Option(None, "--spinnaker-host", help="spinnaker: IP of a SpiNNaker board."),
    spinnaker_version: Optional[int] = typer.Option(None, "--spinnaker-version",
                                                    help="spinnaker: 5 (SpiNN-5) or 3 (SpiNN-3)."),
    spalloc: Optional[str] = typer.Option(None, "--spalloc", help="spinnaker: spalloc server URL."),
    spinnaker_config: Optional[Path] = typer.Option(None, "--spinnaker-config",
                                                    help="spinnaker: your own sPyNNaker config file."),
):
    """Simulate a network and print spikes and rates per population."""
    from spikeforge.sim.backends import simulate

    try:
        network = load_network_file(net, dt)
        options = dict(seed=seed, record=tuple(r for r in record.split(",") if r))
        if backend == "rtl":
            options.update(simulator=simulator, vcd=vcd)
        elif backend == "spinnaker":
            options.update(virtual=virtual, spinnaker_host=spinnaker_host, spinnaker_version=spinnaker_version,
                           spalloc=spalloc, config_file=spinnaker_config, console=console)
        if vcd is not None and backend != "rtl":
            raise ValueError("--vcd only applies to --backend rtl")
        with console.status(f"simulating {steps} steps on backend {backend} ..."):
            result = simulate(network, steps, backend=backend, **options)
    except USER_ERRORS as exc:
        _fail(exc)
    table = Table(title=f"{net.name}: {steps} steps of {network.dt} ms on {backend}")
    for col in ("population", "size", "spikes", "mean rate (Hz)"):
        table.add_column(col, justify="right" if col != "population" else "left")
    for label, size, count, rate in result.summary_rows():
        table.add_row(label, str(size), str(count), f"{rate:.2f}")
    console.print(table)
    if out:
        result.save(out)
        console.print(f"wrote {out}")
    if plot:
        from spikeforge.sim.plots import raster_png

        raster_png(result, plot)
        console.print(f"wrote {plot}")


@app.command()
def inspect(
    net: Path = typer.Argument(..., help=NET_HELP),
    dt: Optional[float] = typer.Option(None, "--dt", help=DT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    weight_bits: Optional[int] = typer.Option(None, "--weight-bits", help="Weight width to compile for."),
):
    """Show the CoreConfig chosen for a network, its memory use and the quantisation report."""
    from spikeforge.compiler import compile as compile_network

    try:
        network = load_network_file(net, dt)
        kwargs = {} if weight_bits is None else {"weight_bits": weight_bits}
        compiled = compile_network(network, **kwargs)
    except USER_ERRORS as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(compiled.report.to_dict(), indent=2, default=str))
    else:
        _print_report(compiled)


@demo_app.command("network")
def demo_network(
    net: Path = typer.Argument(Path("examples/balanced.yaml"), help="Network file to run."),
    out: Path = typer.Option(Path("out/demo"), "--out", "-o", help="Output folder."),
    steps: int = typer.Option(1000, "--steps", "-n", min=1),
):
    """Compile a network, simulate it on the golden model, write a raster plot and the report."""
    from spikeforge.compiler import compile as compile_network
    from spikeforge.sim.backends import simulate
    from spikeforge.sim.plots import raster_png

    try:
        network = load_network_file(net)
        compiled = compile_network(network)
        with console.status(f"simulating {steps} steps on the golden model ..."):
            result = simulate(network, steps, backend="golden")
    except USER_ERRORS as exc:
        _fail(exc)
    out.mkdir(parents=True, exist_ok=True)
    _print_report(compiled)
    result.save(out / "result.npz")
    png = raster_png(result, out / "raster.png", title=f"{net.name} on the spikeforge golden model")
    (out / "report.json").write_text(json.dumps(compiled.report.to_dict(), indent=2, default=str))
    for label, size, count, rate in result.summary_rows():
        console.print(f"  {label:>12}: {size:5d} neurons, {count:7d} spikes, {rate:8.2f} Hz")
    console.print(f"wrote {png}, {out / 'result.npz'}, {out / 'report.json'}")


def _register_commands() -> None:
    from spikeforge.bench import bench_command
    from spikeforge.boards.cli import compile_command, flash_command
    from spikeforge.compiler.explore_cli import explore_command
    from spikeforge.compiler.nir_frontend import export_command
    from spikeforge.demos.blimp.cli import blimp_command
    from spikeforge.demos.place.cli import place_command
    from spikeforge.host.cli_board import board_app, run_command

    app.command("compile", help="Compile a network to a bitstream for a board, with a report (docs/bitstreams.md)."
                )(compile_command)
    app.command("flash", help="Program a board with a compiled bitstream (openFPGALoader).")(flash_command)
    app.command("explore", help="Sweep core widths for a network: quality vs resources and latency on every "
                "board (docs/choosing-a-core.md).")(explore_command)
    app.command("bench", help="Run the benchmarks and regenerate benchmarks/RESULTS.md (--quick | --full)."
                )(bench_command)
    app.command("export", help="Write a network as a NIR graph (.nir).")(export_command)
    demo_app.command("blimp")(blimp_command)
    demo_app.command("place")(place_command)
    app.add_typer(board_app, name="board", help="Talk to a board (or the virtual board): info, load, run, "
                  "read-weights, emulate.")
    app.command("run", help="Compile a network, load it onto a board, run it and read the results back.")(run_command)


_register_commands()


def main():
    app()


if __name__ == "__main__":
    main()
