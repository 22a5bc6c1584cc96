"""``spikeforge demo blimp``: the SNN altitude controller of a blimp, evolved to mimic a PID.

The lead registers ``blimp_command`` as ``spikeforge demo blimp``. Default: the shipped trained
controller (demos/blimp/trained/), closed loop against the PID on the golden model, plots and
metrics.json in --out, a short table on the terminal.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

TRAINED_DIR = Path(__file__).resolve().parent / "trained"
CONTROLLER_FILE = TRAINED_DIR / "controller.json"
HISTORY_FILE = TRAINED_DIR / "history.json"
BACKENDS = ("golden", "virtual-board", "board", "rtl", "spinnaker")


def blimp_command(
    out: Path = typer.Option(Path("out/blimp"), "--out", "-o", help="Output folder (plots, metrics.json)."),
    train: bool = typer.Option(False, "--train", help="Re-evolve the controller (PID tuning + CMA-ES) first."),
    backend: str = typer.Option("golden", "--backend", "-b",
                                help="Where the SNN runs: golden | virtual-board | board | rtl | spinnaker."),
    port: Optional[str] = typer.Option(None, "--port", "-p", help="Serial port of a board (implies --backend board)."),
    runs: int = typer.Option(8, "--runs", min=1, help="Closed-loop runs (seeded scenarios) per evaluation."),
    controller_file: Optional[Path] = typer.Option(None, "--controller", help="A controller JSON (default: shipped)."),
    generations: int = typer.Option(300, "--generations", min=1, help="--train: CMA-ES generations per sub-network."),
    popsize: int = typer.Option(24, "--popsize", min=4, help="--train: CMA-ES population size."),
    seed: int = typer.Option(0, "--seed", help="--train: seed of data sets and CMA-ES."),
    rtl_seconds: float = typer.Option(5.0, "--seconds", "--rtl-seconds", min=0.1,
                                      help="--backend rtl / --standalone: seconds of flight simulated on the RTL "
                                           "(10 ticks/s)."),
    simulator: str = typer.Option("icarus", "--simulator", help="--backend rtl / --standalone: icarus or verilator."),
    standalone: bool = typer.Option(False, "--standalone",
                                    help="Build the controller as a standalone bitstream (error in, command out over "
                                         "UART; no host) and check it in simulation against the golden model."),
    board: str = typer.Option("icebreaker", "--board", help="--standalone: the board (iCE40/ECP5, open tools)."),
    no_build: bool = typer.Option(False, "--no-build", help="--standalone: simulate only, skip place and route."),
):
    """Closed-loop altitude control of a blimp by an SNN evolved to mimic PID, bit-exact on the core."""
    from spikeforge.demos.blimp import snn
    from spikeforge.demos.blimp.evaluation import evaluate_controller, write_outputs

    console = Console()
    if port is not None and backend == "golden":
        backend = "board"
    if backend not in BACKENDS:
        raise typer.BadParameter(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}", param_hint="--backend")
    if backend == "board" and port is None:
        raise typer.BadParameter("--backend board needs --port (e.g. /dev/ttyUSB0 or the pty of "
                                 "`spikeforge board emulate`)", param_hint="--port")
    out = Path(out)
    history = None
    if train:
        controller, history = _train(out, generations, popsize, seed, console)
    else:
        path = controller_file or CONTROLLER_FILE
        try:
            controller = snn.Controller.load(path)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--controller") from None
        if controller_file is None and HISTORY_FILE.exists():
            history = json.loads(HISTORY_FILE.read_text())
    if standalone:
        _standalone(controller, board, out, rtl_seconds, simulator, not no_build, console)
        return
    eval_backend = backend if backend in ("golden", "virtual-board", "board") else "golden"
    t0 = time.perf_counter()
    try:
        ev = evaluate_controller(controller, runs=runs, backend=eval_backend, port=port)
    except Exception as exc:  # a board that went away or refused: say so, no traceback
        from spikeforge.host.board import BoardError

        if isinstance(exc, BoardError):
            console.print(f"[red]board error:[/red] {exc}")
            raise typer.Exit(1)
        raise
    m = ev.metrics
    failed = False
    if eval_backend != "golden":
        m["identical_to_golden"] = _compare_with_golden(controller, ev, runs)
    if backend == "rtl":
        m["rtl"] = _rtl_check(controller, rtl_seconds, simulator, console)
        if not m["rtl"].get("identical"):
            failed = True
    if backend == "spinnaker":
        m["spinnaker"] = _spinnaker_mapping(controller, console)
        failed = failed or not m["spinnaker"]["mapped"]
    m["backend"] = backend
    m["wall_seconds"] = time.perf_counter() - t0
    paths = write_outputs(ev, controller, out, history)
    _print_table(console, m)
    console.print(f"wrote {', '.join(str(p) for p in paths)}")
    if failed:
        if "rtl" in m:
            console.print("[red]the RTL closed loop did not match the golden model[/red] (metrics.json: rtl)")
        else:
            console.print("[red]the SpiNNaker mapping failed[/red] (metrics.json: spinnaker)")
        raise typer.Exit(1)


def _train(out: Path, generations: int, popsize: int, seed: int, console: Console):
    from spikeforge.demos.blimp import train as T

    T.limit_threads(1)
    settings = T.TrainSettings(generations=generations, popsize=popsize, seed=seed)
    controller, history = T.train(out / "train", settings, settings, log=console.print)
    controller.save(out / "controller.json")
    (out / "history.json").write_text(json.dumps(history))
    console.print(f"saved the trained controller to {out / 'controller.json'} (use it with --controller)")
    return controller, history


def _compare_with_golden(controller, ev, runs: int) -> bool:
    """The board's trajectories must equal the golden model's on the same scenario, bit for bit."""
    from spikeforge.demos.blimp.evaluation import eval_scenario, run_snn

    gold, _ = run_snn(controller, eval_scenario(runs), "golden")
    return bool(np.array_equal(gold.command, ev.snn.command) and np.array_equal(gold.altitude, ev.snn.altitude))


def _rtl_check(controller, seconds: float, simulator: str, console: Console) -> dict:
    """Fly the first ``seconds`` of evaluation run 0 in closed loop on the generated Verilog (cocotb)
    and on the golden model; the trajectories must be identical, bit for bit."""
    from spikeforge.demos.blimp.evaluation import rtl_closed_loop

    console.print(f"RTL: {int(round(seconds * 10))} control ticks in closed loop on the generated Verilog "
                  f"({simulator}, one core step per tick) ...")
    try:
        return rtl_closed_loop(controller, seconds, simulator)
    except Exception as exc:  # simulator missing, build failed, RTL hung: report, do not hide
        console.print(f"[red]RTL run failed:[/red] {exc}")
        return {"identical": False, "error": str(exc), "steps": int(round(seconds * 10))}


def _standalone(controller, board: str, out: Path, seconds: float, simulator: str, build: bool,
                console: Console) -> None:
    """--standalone: the board's Verilog (boot ROM + core + encoder/decoder) flies ``seconds`` of
    evaluation run 0 in simulation against the golden model; then the bitstream is built."""
    from spikeforge.demos.blimp.evaluation import eval_scenario
    from spikeforge.demos.blimp.standalone import build_standalone, check_against_golden

    out.mkdir(parents=True, exist_ok=True)
    ticks = max(1, int(round(seconds * 10)))
    sc = eval_scenario(1)
    sc.setpoint = sc.setpoint[:, :ticks]
    console.print(f"standalone controller: {ticks} control ticks in closed loop on its Verilog ({simulator}; "
                  "the boot alone is ~300,000 clock cycles) ...")
    try:
        sim = check_against_golden(controller, sc, simulator=simulator)
    except Exception as exc:  # simulator missing or failed: say so
        console.print(f"[red]simulation failed:[/red] {exc}")
        raise typer.Exit(1)
    (out / "standalone_check.json").write_text(json.dumps(sim, indent=2))
    console.print(f"simulated board vs golden model (integer encoder/decoder), {sim['ticks_flown']} ticks: "
                  f"identical = {sim['identical']}; boot {sim['boot_cycles']:,} cycles, "
                  f"<= {sim['tick_cycles_max']} cycles per tick")
    if not sim["identical"]:
        console.print(f"[red]the standalone controller left the golden trajectory[/red] "
                      f"(tick {sim['first_difference']}, {sim['error']}); see {out / 'standalone_check.json'}")
        raise typer.Exit(1)
    if not build:
        return
    from spikeforge.boards.build import BuildError

    console.print(f"building the bitstream for the {board} (place and route takes minutes; cached after) ...")
    try:
        report = build_standalone(controller, out, board)
    except (BuildError, ValueError, KeyError) as exc:
        console.print(f"[red]build failed:[/red] {exc}")
        raise typer.Exit(1)
    t = report["timing"]
    console.print(f"wrote {out / report['bitstream']['file']} ({'cached' if report['bitstream']['cached'] else 'built'}; "
                  f"{t['fmax_mhz']:.1f} MHz reached for {t['target_mhz']:.1f} MHz), report.json, rom.hex, top.v. "
                  f"UART: send {report['uart_protocol']['in']}; receive {report['uart_protocol']['out']}.")


def _spinnaker_mapping(controller, console: Console) -> dict:
    """Map the controller's network onto a virtual SpiNNaker machine. Mapping only, no closed loop:
    sPyNNaker takes no per-step host currents (the encoders are mapped as plain populations) and its
    IF_curr_exp resets to v_reset (the mapped copy uses that reset; placement and routing do not
    depend on it)."""
    from spikeforge.demos.blimp.snn import network
    from spikeforge.sim.backends import simulate

    try:
        res = simulate(network(controller, analog_inputs=False, reset="to_v_reset"), 10, backend="spinnaker", virtual=True,
                       console=console)
    except Exception as exc:
        console.print(f"[red]SpiNNaker mapping failed:[/red] {exc}")
        return {"mapped": False, "error": str(exc)}
    info = res.meta.get("spinnaker", {})
    return {"mapped": True, "virtual": True, "parameter_notes": info.get("parameter_notes", []),
            **{k: v for k, v in info.items() if isinstance(v, (int, float, str, bool))}}


def _print_table(console: Console, m: dict) -> None:
    t = Table(title=f"blimp altitude control: SNN ({m['neurons']} neurons, backend {m['backend']}) vs PID, "
                    f"{m['runs']} seeded runs")
    t.add_column("metric")
    for col in ("SNN", "PID", "SNN (b<0)", "PID (b<0)"):
        t.add_column(col, justify="right")
    rows = [("RMSE (m)", "rmse_m"), ("steady-state error (m)", "steady_state_error_m"),
            ("overshoot up (m)", "overshoot_up_m"), ("overshoot down (m)", "overshoot_down_m"),
            ("settling time (s)", "settling_time_s")]
    for label, key in rows:
        t.add_row(label, *(f"{m[s][key]:.3f}" for s in ("snn", "pid", "snn_negative_buoyancy", "pid_negative_buoyancy")))
    console.print(t)
    console.print(f"RMSE SNN / PID = {m['rmse_ratio_snn_over_pid']:.3f}")
    if "identical_to_golden" in m:
        console.print(f"trajectory identical to the golden model: {m['identical_to_golden']}")
    if "rtl" in m:
        r = m["rtl"]
        console.print(f"RTL closed loop, {r.get('steps')} ticks: commands, altitudes and spikes identical to the "
                      f"golden model: {r.get('identical')}")
