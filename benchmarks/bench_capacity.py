"""The capacity model's logic estimate against place and route -> the "Capacity model" section of
benchmarks/RESULTS.md and benchmarks/capacity_model.png.

Every build in boards/calibration.json (real nextpnr runs of the current hardware, written by
``benchmarks/bench_boards.py --calibrate``) is predicted by the logic model fitted to all the *other*
builds (``spikeforge.boards.capacity.cross_validate``, leave-one-out), so each row is a prediction of a
build the model has not seen -- the error a user can expect for a new core. No tools run: seconds.

    python benchmarks/bench_capacity.py
    python benchmarks/bench_capacity.py --calibration FILE --results FILE
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

from spikeforge.bench import publish  # noqa: E402
from spikeforge.boards.capacity import (  # noqa: E402
    CALIBRATION_FILE, LOGIC_UNIT, cross_validate, error_summary, load_calibration,
)

HEADING = "## Capacity model"
FAMILIES = ("ice40", "ecp5")


def core_summary(c: dict) -> str:
    feats = [name for name, on in (("STDP", c.get("stdp")), ("adaptive", c.get("adaptive_threshold")),
                                   (f"delay {c.get('max_delay')}", c.get("max_delay", 1) > 1),
                                   (f"{c.get('n_current_inputs')} analog in", c.get("n_current_inputs", 0) > 0),
                                   (f"{c.get('trace_bits')}-bit traces", c.get("stdp") and c.get("trace_bits", 12) != 12),
                                   (f"{c.get('refrac_bits')}-bit refractory", c.get("refrac_bits", 8) != 8))
             if on]
    return (f"{c['n_neurons']} N, {c['n_inputs']} A, {c['weight_bits']}-bit x {c['lanes']} lanes"
            + (", " + ", ".join(feats) if feats else ""))


def render(results: dict[str, list[dict]], meta: dict) -> str:
    L = [HEADING, "",
         f"Date {meta['date']}, {meta['machine']}; calibration of {meta['calibrated']} (hardware "
         f"{meta['fingerprint']}, {meta['tools']}). Every build of `boards/calibration.json` predicted by "
         "the logic model fitted to the others (leave-one-out: a core the model has not seen); measured = "
         "nextpnr's count (iCE40 logic cells, ECP5 LUT4).", "", "![logic model vs place and route](capacity_model.png)", "",
         "| family | builds | mean error | worst error | estimates within 5 % |", "|---|---|---|---|---|"]
    for family, rows in results.items():
        summary = error_summary(rows)
        within = sum(abs(r["error"]) <= 0.05 for r in rows)
        L.append(f"| {family} | {len(rows)} | {100 * summary['mean_error']:.1f} % | "
                 f"{100 * summary['worst_error']:.1f} % | {within} of {len(rows)} |")
    L += ["", "| family | top level | core | measured | predicted | error |", "|---|---|---|---:|---:|---:|"]
    for family, rows in results.items():
        for r in sorted(rows, key=lambda r: (r["top"], r["measured"])):
            L.append(f"| {family} | {r['top']} | {core_summary(r['config'])} | {r['measured']:,} | "
                     f"{r['predicted']:,} | {100 * r['error']:+.1f} % |")
    return "\n".join(L) + "\n"


def plot(results: dict[str, list[dict]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 5), squeeze=False)
    for ax, (family, rows) in zip(axes[0], results.items()):
        lo = min(min(r["measured"], r["predicted"]) for r in rows) * 0.9
        hi = max(max(r["measured"], r["predicted"]) for r in rows) * 1.05
        xs = np.array([lo, hi])
        ax.fill_between(xs, xs * 0.95, xs * 1.05, color="0.88", label="+-5 %", zorder=1)
        ax.plot(xs, xs, "k-", lw=0.8, label="exact", zorder=2)
        for top in sorted({r["top"] for r in rows}):
            m = [r["measured"] for r in rows if r["top"] == top]
            p = [r["predicted"] for r in rows if r["top"] == top]
            ax.scatter(m, p, label=top, s=26, zorder=3, edgecolors="k", linewidths=0.4)
        if family == "ice40":  # the UP5K: what the iCEBreaker's decisions are about
            ax.axvline(5280, color="tab:red", ls="--", lw=0.8, label="iCE40 UP5K (5,280 cells)", zorder=2)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"place and route ({LOGIC_UNIT[family]})")
        ax.set_ylabel("logic model, leave-one-out")
        ax.set_title(f"{family}: {len(rows)} builds")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calibration", type=Path, default=CALIBRATION_FILE)
    ap.add_argument("--results", type=Path, default=HERE / "RESULTS.md",
                    help="RESULTS.md to update (default benchmarks/RESULTS.md)")
    ap.add_argument("--plot", type=Path, default=HERE / "capacity_model.png",
                    help="the plot (default benchmarks/capacity_model.png, which RESULTS.md shows)")
    args = ap.parse_args()
    calibration = load_calibration(args.calibration)
    results = {f: cross_validate(f, calibration) for f in FAMILIES}
    results = {f: rows for f, rows in results.items() if rows}
    if not results:
        raise SystemExit(f"{args.calibration}: no calibration builds (run benchmarks/bench_boards.py --calibrate)")
    tools = calibration.get("tools", {})
    meta = {"date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "calibrated": calibration.get("date", "unknown date"), "fingerprint": calibration.get("fingerprint", "?"),
            "tools": ", ".join(f"{k} {v}" for k, v in tools.items() if k.startswith("yowasp")) or "tools not recorded"}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    png = plot(results, args.plot)
    publish(render(results, meta), args.results, HEADING)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
