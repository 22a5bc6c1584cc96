"""Pareto fronts of an exploration and its report: explore.md (table) and explore.png (two panels).

A point is on the front of (quality, cost) when no other point is at least as good in both and
strictly better in one. The sweep has two costs -- logic (LUTs / logic cells) and timestep latency --
so there are two fronts, one per panel of the plot and one column each in the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def pareto_front(objectives: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``objectives`` (n, k), every column minimised.

    Rows holding a NaN are never on the front (a point without a measurement cannot win)."""
    obj = np.asarray(objectives, dtype=float)
    if obj.ndim != 2:
        raise ValueError(f"objectives must be (points, objectives), got shape {obj.shape}")
    valid = ~np.isnan(obj).any(axis=1)
    front = valid.copy()
    for i in np.flatnonzero(valid):
        others = obj[valid]
        dominated = np.all(others <= obj[i], axis=1) & np.any(others < obj[i], axis=1)
        front[i] = not dominated.any()
    return front


def front_of(rows: Sequence[dict], cost: str, higher_is_better: bool) -> np.ndarray:
    """The front of (quality, ``cost``) over ``rows`` (dicts with numbers or None)."""
    def num(x):
        return np.nan if x is None else float(x)

    q = np.array([num(r.get("quality")) for r in rows])
    c = np.array([num(r.get(cost)) for r in rows])
    if len(rows) == 0:
        return np.zeros(0, dtype=bool)
    return pareto_front(np.column_stack([-q if higher_is_better else q, c]))


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}" if isinstance(x, float) else f"{x:,}" if isinstance(x, int) else str(x)


def markdown_report(rows: list[dict], keys: list[str], task, board, boards: list[str], options,
                    network_name: str) -> str:
    """explore.md: what was swept and how it was measured, the table, the fronts."""
    lut_front = front_of(rows, "luts", task.higher_is_better)
    lat_front = front_of(rows, "latency_us", task.higher_is_better)
    measured = any((r.get("resources_source") or "").startswith("measured") for r in rows)
    lines = [
        f"# Exploration: {network_name} on the {board.title}",
        "",
        f"Quality: **{task.metric}** -- {task.description}.",
    ]
    base = task.reference()
    if base:
        value = base.get(task.metric)
        if value is not None:
            lines.append(f"Baseline ({base['name']}) on the same data: {task.metric} = {_fmt(value)}.")
    lines += [
        "",
        "Latency: mean cycles of a timestep for the network's own activity (golden model, "
        f"{options.activity_steps} steps, cycle model) at the clock in the table"
        + (" (the routed clock)" if options.build else f" (the board's default core clock, "
           f"{board.default_clock_hz / 1e6:g} MHz)") + ".",
        "Resources: " + ("real synthesis and place and route (`--build`)" if options.build else
                         "the capacity model (boards/capacity.py): memories and DSPs "
                         + ("counted by Yosys' memory census for this board (the fits columns of the other "
                            "boards use the placement rules)" if options.census else
                            "from the placement rules (`--no-census`: quick, but block RAM can be off by 2x)")
                         + ", logic from a model calibrated on real builds")
        + ". Numbers marked `~` are estimates; unmarked ones were measured"
        + (" (a build of the same core found in the bitstream cache)" if measured and not options.build else "")
        + ". Fmax is only known for measured points.",
        ""
    ]
    header = [*keys, task.metric, "LUTs", "BRAM", "DSP", "Fmax (MHz)", "clock (MHz)", "cycles/step", "latency (us)",
              *(f"fits {b}" for b in boards), "front: LUTs", "front: latency", "note"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, r in enumerate(rows):
        est = "~" if not (r.get("resources_source") or "").startswith("measured") else ""
        status = r.get("status") or ""
        cells = [str(r.get(k)) for k in keys]
        if status.startswith("invalid"):
            cells += [""] * (len(header) - len(keys) - 1) + [status.replace("|", "/")]
        else:
            cells += [_fmt(r.get("quality")), est + _fmt(r.get("luts")), est + _fmt(r.get("bram")),
                      est + _fmt(r.get("dsp")), _fmt(r.get("fmax_mhz")), _fmt(r.get("clock_mhz")),
                      _fmt(r.get("cycles_mean")), _fmt(r.get("latency_us")),
                      *("yes" if r.get(f"fits_{b}") else "no" for b in boards),
                      "**yes**" if lut_front[i] else "", "**yes**" if lat_front[i] else "",
                      "; ".join(x for x in ("" if status in ("", "ok") else status.replace("|", "/"),
                                            f"over: {r['over_limits']}" if r.get("over_limits") else "") if x)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Pareto front (best quality for its cost, no point better in both):", ""]
    for cost, front in (("LUTs", lut_front), ("latency", lat_front)):
        pts = [rows[i]["point"] for i in np.flatnonzero(front)]
        lines.append(f"- quality vs {cost}: " + ("; ".join(pts) if pts else "no measured point"))
    fitting = [r["point"] for r in rows if r.get(f"fits_{board.name}")]
    lines += ["", f"Points that fit the {board.title}: {len(fitting)} of {len(rows)}."]
    for name in boards:
        best = recommend(rows, name, task.higher_is_better)
        if best is not None and name == board.name:
            lines.append(f"- best that fits {name}: {best['point']} ({task.metric} {_fmt(best.get('quality'))}, "
                         f"{_fmt(best.get('latency_us'))} us per step at {_fmt(best.get('clock_mhz'))} MHz, "
                         f"{'' if (best.get('resources_source') or '').startswith('measured') else '~'}"
                         f"{_fmt(best.get('luts'))} LUTs)")
        elif best is not None:
            lines.append(f"- best that fits {name}: {best['point']} ({task.metric} {_fmt(best.get('quality'))}; "
                         f"explore with --board {name} for its clock and resources)")
        else:
            lines.append(f"- nothing in this sweep fits {name}")
    return "\n".join(lines) + "\n"


def recommend(rows: Sequence[dict], board: str, higher_is_better: bool) -> dict | None:
    """The point to pick for ``board``: best quality among the points that fit it, then the lowest
    latency, then the least logic (quality ties are common: lanes never change it)."""
    ok = [r for r in rows if r.get(f"fits_{board}") and r.get("quality") is not None]
    if not ok:
        return None
    inf = float("inf")
    return min(ok, key=lambda r: (-r["quality"] if higher_is_better else r["quality"],
                                  r.get("latency_us") if r.get("latency_us") is not None else inf,
                                  r.get("luts") if r.get("luts") is not None else inf))


#: marker rings per board (edge colours), drawn around the points that fit it
BOARD_COLOURS = ("tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink")


def plot(rows: list[dict], task, board: str, boards: list[str], path: Path) -> Path:
    """explore.png: quality vs LUTs and quality vs latency; fronts as lines, rings per fitting board."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    ylabel = f"{task.metric}" + (f" ({task.unit})" if task.unit else "") + (
        " (higher is better)" if task.higher_is_better else " (lower is better)")
    for ax, cost, xlabel in ((axes[0], "luts", f"logic on {board} (LUTs / logic cells)"),
                             (axes[1], "latency_us", "timestep latency (us)")):
        pts = [(i, r) for i, r in enumerate(rows) if r.get(cost) is not None and r.get("quality") is not None]
        if not pts:
            ax.text(0.5, 0.5, "no measured points", ha="center", transform=ax.transAxes)
            continue
        x = np.array([float(r[cost]) for _, r in pts])
        y = np.array([float(r["quality"]) for _, r in pts])
        front = front_of([r for _, r in pts], cost, task.higher_is_better)
        ax.scatter(x, y, s=30, c="tab:blue", zorder=3, label="sweep point")
        for k, b in enumerate(boards):
            fit = np.array([bool(r.get(f"fits_{b}")) for _, r in pts])
            if fit.any():
                ax.scatter(x[fit], y[fit], s=90 + 70 * k, facecolors="none",
                           edgecolors=BOARD_COLOURS[k % len(BOARD_COLOURS)], linewidths=1.2, zorder=2,
                           label=f"fits {b}")
        order = np.argsort(x[front])
        ax.step(x[front][order], y[front][order], where="post", color="tab:red", lw=1.5, zorder=1)
        ax.scatter(x[front], y[front], s=30, c="tab:red", zorder=4, label="Pareto front")
        for (_, r), xi, yi in zip(pts, x, y):
            ax.annotate(r["point"].replace("weight_bits=", "w").replace("lanes=", "P").replace(" ", ","),
                        (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(f"{task.name}: quality against resources and latency")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
