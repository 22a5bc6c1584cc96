"""``spikeforge demo place``: visual place recognition with ensembles of region-specific SNN modules.

The lead registers ``place_command`` as ``spikeforge demo place`` (``demo_app.command("place")``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def _progress_factory(enabled: bool):
    @contextlib.contextmanager
    def bar(label: str):
        if not enabled:
            yield lambda done, total: None
            return
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True) as prog:
            task = prog.add_task(label, total=None)

            def update(done: int, total: int) -> None:
                prog.update(task, completed=done, total=total)

            yield update
    return bar


def print_table(metrics: dict) -> None:
    from spikeforge.demos.place.plots import LABELS

    table = Table(title=f"Place recognition, test split: {metrics['places']} places, {metrics['modules']} modules "
                        f"({metrics['ensemble_members']} members x {metrics['modules_per_member']})")
    for col in ("method", "R@1", "R@5", "R@10", "PR AUC", "regularisation"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for key in ("snn_ensemble", "snn_single", "snn_no_regularisation", "sad"):
        thr = metrics["regularisation_threshold"].get(key)
        table.add_row(LABELS[key], f"{metrics['recall_at_1'][key]:.3f}", f"{metrics['recall_at_5'][key]:.3f}",
                      f"{metrics['recall_at_10'][key]:.3f}", f"{metrics['pr_auc'][key]:.3f}",
                      "-" if thr is None else ("off" if thr == 0 else f">= {thr} places"))
    for name, v in metrics.get("sad_single_reference", {}).items():
        table.add_row(f"SAD, {name} reference only", f"{v['recall_at_1']:.3f}", "", "", f"{v['pr_auc']:.3f}", "-")
    console.print(table)
    if "sequence" in metrics:
        seq = metrics["sequence"]
        st = Table(title=f"With sequence matching over {seq['length']} frames (test split)")
        for col in ("method", "R@1", "R@5", "PR AUC"):
            st.add_column(col, justify="left" if col == "method" else "right")
        for key in ("snn_ensemble", "snn_single", "snn_no_regularisation", "sad"):
            st.add_row(LABELS[key], f"{seq['recall_at_1'][key]:.3f}", f"{seq['recall_at_5'][key]:.3f}",
                       f"{seq['pr_auc'][key]:.3f}")
        console.print(st)
    tp = metrics["throughput"]
    g, hw = tp["golden"], tp["hardware_predicted"]
    console.print(
        f"golden model: {g['module_images_per_s']:.0f} module-images/s ({g['ensemble_queries_per_s']:.1f} ensemble "
        f"queries/s, {g['numba_threads']} thread(s)); predicted hardware: {hw['cycles_per_image']:.0f} cycles per image "
        f"= {hw['compute_images_per_s_per_core']:.0f} images/s per core at {hw['clock_hz'] / 1e6:.0f} MHz, "
        f"{hw['link_images_per_s']:.0f} images/s through a {hw['link_baud'] / 1e6:.0f} Mbaud UART "
        f"({hw['bound']}-bound)"
    )
    if "scaling" in tp:
        s = tp["scaling"]
        console.print(f"cost vs modules (golden, 1 thread): {s['seconds_per_module'] * 1e3:.0f} ms per module for "
                      f"{s['images']} images, intercept {s['intercept_s'] * 1e3:.0f} ms, R^2 {s['r2']:.3f}")
    for name, check in metrics.get("checks", {}).items():
        console.print(bitstream_line(check) if name == "bitstream" else f"{name}: {check}")
    if "limits" in metrics:
        from spikeforge.demos.place.limits import rows

        lim = Table(title="Where the SNN loses against SAD (test split, Recall@1)")
        for col in ("stage", "matcher", "R@1", "note"):
            lim.add_column(col, justify="right" if col == "R@1" else "left")
        for stage, label, value, note in rows(metrics["limits"]):
            lim.add_row(stage, label, f"{value:.3f}", note)
        console.print(lim)


def bitstream_line(check: dict) -> str:
    """One line on the module's core build: what place and route used, and the timing."""
    if check["bitstream"] is None:  # Vivado boards without Vivado: the project is written, not built
        why = check["note"] or check["status"]
        return f"bitstream: one module's core for {check['board']}: {why} (report: {check['report']})"
    labels = {"luts": "logic", "bram": "block RAM", "spram": "SPRAM", "dsp": "DSP"}
    res = ", ".join(f"{labels[name]} {used:,} / {avail:,}" for name, (used, avail) in check["resources"].items()
                    if name in labels)
    t = check["timing"]
    timing = f"{t['fmax_mhz']:.1f} MHz at {t['target_mhz']:g} MHz ({'met' if t['met'] else 'NOT met'})"
    return (f"bitstream: one module's core on {check['board']} ({check['link']}) placed and routed: {res}; "
            f"{timing}; {check['bitstream']} (report: {check['report']})")


def place_command(
    out: Path = typer.Option(Path("out/place"), "--out", "-o", help="Output folder (plots, metrics.json)."),
    train: bool = typer.Option(False, "--train", help="Retrain the ensemble with STDP on the golden model first."),
    dataset: str = typer.Option("synthetic", "--dataset", help="synthetic (built in), nordland or oxford-robotcar."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of a real data set (nordland, oxford-robotcar)."),
    frames: Optional[Path] = typer.Option(None, "--frames",
                                          help="Nordland: file of kept frame names/numbers (VPRSNN's speed filter)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Trained weights file to evaluate."),
    weights_out: Optional[Path] = typer.Option(None, "--weights-out",
                                               help="Where --train writes the weights (default OUT/weights.npz)."),
    members: int = typer.Option(3, "--members", min=1, help="Ensemble members to train (--train)."),
    epochs: int = typer.Option(30, "--epochs", min=1, help="Training epochs (--train)."),
    calibration_places: Optional[int] = typer.Option(None, "--calibration-places",
                                                     help="Real data: calibration places (paper: 600 / 75)."),
    test_places: Optional[int] = typer.Option(None, "--test-places", help="Real data: test places (paper: 2700 / 375)."),
    places_per_module: int = typer.Option(25, "--places-per-module", min=1, help="Real data: places per module."),
    skip: Optional[int] = typer.Option(None, "--skip", min=1, help="Real data: use every SKIP-th frame."),
    board_cores: int = typer.Option(0, "--board-cores", min=0,
                                    help="Also run K modules on a K-core virtual board and compare with the golden model."),
    spinnaker: bool = typer.Option(False, "--spinnaker", help="Also map the ensemble on a virtual SpiNNaker machine."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for the golden model."),
    no_scaling: bool = typer.Option(False, "--no-scaling", help="Skip measuring cost against the number of modules."),
    bitstream: Optional[str] = typer.Option(None, "--bitstream",
                                            help="Also build one module's core for this board (e.g. icebreaker) "
                                                 "with the open toolchain: OUT/bitstream-BOARD/, report.md says "
                                                 "what it uses."),
    sequence: int = typer.Option(1, "--sequence", min=1,
                                 help="Also score every method with sequence matching over this many "
                                      "consecutive frames (1 = off)."),
    seed: int = typer.Option(7, "--seed", help="Seed of the inference Poisson spikes."),
    limits: bool = typer.Option(False, "--limits",
                                help="Also measure where the SNN loses against SAD (exact-template modules; "
                                     "docs/place-recognition.md section 7.1); writes limits.png."),
):
    """Visual place recognition with ensembles of compact, region-specific SNN modules (VPRSNN),
    each module one neuron core learning with the core's own STDP. Default: the built-in synthetic
    route benchmark with the shipped weights; writes plots and OUT/metrics.json."""
    from spikeforge.boards.build import BuildError
    from spikeforge.demos.place.dataset import DatasetError
    from spikeforge.demos.place.demo import DemoOptions, run_demo
    from spikeforge.demos.place.ensemble import WeightsFileError
    from spikeforge.demos.place.module import ModuleError
    from spikeforge.demos.place.preprocess import PreprocessError

    if threads is not None:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    opts = DemoOptions(out=out, dataset=dataset.lower(), data=data, frames=frames, train=train, weights=weights,
                       weights_out=weights_out, members=members, epochs=epochs,
                       calibration_places=calibration_places, test_places=test_places,
                       places_per_module=places_per_module, skip=skip, board_cores=board_cores,
                       spinnaker=spinnaker, scaling=not no_scaling, limits=limits, bitstream=bitstream,
                       sequence=sequence, seed=seed)
    try:
        result = run_demo(opts, progress=_progress_factory(console.is_terminal or bool(os.environ.get("SPIKEFORGE_PROGRESS"))),
                          log=console.print)
    except (DatasetError, WeightsFileError, ModuleError, PreprocessError, ValueError, FileNotFoundError,
            BuildError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2)
    print_table(result.metrics)
    console.print(f"wrote {', '.join(str(f) for f in result.files)} ({result.metrics['seconds']:.0f} s)")
