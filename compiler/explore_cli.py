"""``spikeforge explore``: the co-design sweep (compiler/explore.py) behind a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

SWEEP_HELP = ("Core widths to sweep: KEY=V1,V2,... items, several after one --sweep or one per --sweep "
              "(e.g. --sweep weight_bits=4,6,8,12 lanes=1,2,4,8). Keys: weight_bits, lanes, v_bits, i_bits, "
              "refrac_bits, adapt_bits, trace_bits, trace_frac.")


def explore_command(
    net: str = typer.Argument(..., help="Network file (.yaml/.json/.nir/.py), or 'blimp' / 'place' for the "
                                        "demo's own network (sets --task too)."),
    more: Optional[List[str]] = typer.Argument(None, metavar="[KEY=V1,V2 ...]",
                                               help="More --sweep items (what follows --sweep's first item)."),
    board: str = typer.Option("icebreaker", "--board", "-b", help="Board the resources, clock and latency are for."),
    sweep: Optional[List[str]] = typer.Option(None, "--sweep", "-s", help=SWEEP_HELP),
    task: Optional[str] = typer.Option(None, "--task", help="Quality metric: blimp (closed-loop tracking RMSE), "
                                                           "place (Recall@1 of one module); default: spike-train "
                                                           "agreement with the float reference."),
    out: Path = typer.Option(Path("out/explore"), "--out", "-o", help="Output folder: explore.csv, explore.md, explore.png."),
    build: bool = typer.Option(False, "--build", help="Synthesise, place and route every point for the board "
                                                      "(measured LUTs and Fmax; minutes per new core, cached)."),
    census: bool = typer.Option(True, "--census/--no-census",
                                help="Count block RAM and DSPs with Yosys' memory census (10-20 s per new core, "
                                     "cached; the default) or, with --no-census, by the placement rules (instant, "
                                     "can be off by 2x in block RAM)."),
    steps: int = typer.Option(1000, "--steps", "-n", min=10, help="Steps of the golden and float runs (spike agreement)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the network's Poisson sources."),
    dt: Optional[float] = typer.Option(None, "--dt", help="Timestep (ms) for NIR files."),
    fresh: bool = typer.Option(False, "--fresh", help="Start over: drop the rows an earlier sweep left in the folder."),
    top: str = typer.Option("auto", "--top", help="Host link around the core, as `spikeforge compile --top`: auto "
                                                  "(the protocol link where it fits, else the bus bridge), link, bridge, or interim (the core alone)."),
):
    """Sweep core widths for a network: quality, resources, Fmax, latency and which boards each core fits.

    Rows go to OUT/explore.csv as each point finishes; rerunning the same command resumes an interrupted
    sweep (done points are skipped). OUT/explore.md is the table, OUT/explore.png the Pareto plot."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from spikeforge.cli import USER_ERRORS, _fail, console, load_network_file
    from spikeforge.compiler.explore import ExploreOptions, explore, parse_sweep
    from spikeforge.compiler.explore_quality import ExploreError, make_task

    try:
        from spikeforge.boards.catalog import get_board

        get_board(board)  # an unknown board fails before any work, naming the known ones
        items = list(sweep or []) + list(more or [])
        if not items:
            raise ExploreError("give what to sweep: --sweep KEY=V1,V2,... (e.g. --sweep weight_bits=4,6,8 lanes=1,2,4)")
        parsed = parse_sweep(items)
        builtin = net in ("blimp", "place") and not Path(net).exists()
        if builtin:
            if task not in (None, net):
                raise ExploreError(f"NET {net!r} is the {net} demo's network; it goes with --task {net}, not --task {task}")
            task = net
        the_task = make_task(task, steps=steps, seed=seed)
        if builtin:
            network, path = the_task.default_network(), None
        else:
            path = Path(net)
            network = load_network_file(path, dt)
        options = ExploreOptions(board=board, task=the_task.name, build=build, census=census, steps=steps,
                                 seed=seed, fresh=fresh, top=top)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as progress:
            bar = progress.add_task("exploring", total=None)

            def on_point(i: int, n: int, label: str, skipped: bool) -> None:
                progress.update(bar, total=n, completed=i,
                                description=f"{label}" + (" (done before, skipped)" if skipped else ""))

            result = explore(network, parsed, out, options, network_path=path, task=the_task, on_point=on_point)
            progress.update(bar, completed=len(result.rows), description="done")
    except USER_ERRORS as exc:
        _fail(exc)
    console.print(summary_table(result.rows, the_task, board))
    from spikeforge.boards.catalog import get_board
    from spikeforge.compiler.pareto import recommend

    best = recommend(result.rows, get_board(board).name, the_task.higher_is_better)
    console.print(f"best that fits {get_board(board).name}: " + (best["point"] if best else "none of these points"))
    console.print(f"{result.evaluated} point(s) measured, {result.skipped} resumed from {out / 'explore.csv'}; "
                  f"~ = estimated, the full table with every board is in {out / 'explore.md'}")
    console.print("wrote " + ", ".join(str(p) for p in result.files))


def summary_table(rows: list[dict], task, board: str):
    """The terminal's view of the sweep: quality, cost, fit on the chosen board, fronts."""
    from rich.table import Table

    from spikeforge.boards.catalog import get_board
    from spikeforge.compiler.pareto import front_of

    b = get_board(board).name
    lut_front = front_of(rows, "luts", task.higher_is_better)
    lat_front = front_of(rows, "latency_us", task.higher_is_better)
    table = Table(title=f"{task.metric} ({'higher' if task.higher_is_better else 'lower'} is better) vs cost on {b}")
    for col in ("point", task.metric, "LUTs", "BRAM", "Fmax MHz", "latency us", f"fits {b}", "front"):
        table.add_column(col, justify="left" if col == "point" else "right")
    for i, r in enumerate(rows):
        status = r.get("status") or "ok"
        if status.startswith("invalid"):
            table.add_row(r["point"], f"[red]{status[:60]}[/]", "", "", "", "", "", "")
            continue
        est = "" if (r.get("resources_source") or "").startswith("measured") else "~"
        num = lambda x, f="{:,.0f}": "-" if x is None else f.format(x)
        front = ", ".join(n for n, m in (("LUTs", lut_front[i]), ("latency", lat_front[i])) if m)
        table.add_row(r["point"], num(r.get("quality"), "{:.4g}"), est + num(r.get("luts")), est + num(r.get("bram"), "{:g}"),
                      num(r.get("fmax_mhz"), "{:.1f}"), num(r.get("latency_us"), "{:.1f}"),
                      "yes" if r.get(f"fits_{b}") else f"[red]no[/] ({r.get('over_limits') or 'see explore.md'})", front)
    return table
