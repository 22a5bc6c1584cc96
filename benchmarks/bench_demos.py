"""Demos benchmark -> the "Demos" section of benchmarks/RESULTS.md.

    python benchmarks/bench_demos.py            # blimp: 16 runs per scenario set; place: full evaluation
    python benchmarks/bench_demos.py --quick    # blimp: 8 runs

Each demo against the baseline it is meant to match, on the same data in the same run, through the
demos' own evaluation code (nothing re-implemented here):

- blimp (demos/blimp/evaluation.py ``evaluate_controller``): the shipped SNN controller on the golden
  model against the CMA-tuned PID it mimics, on the held-out evaluation scenarios (seed 2024) and
  under negative buoyancy: RMSE, steady-state error, overshoot up/down, settling time;
- place recognition (demos/place/evaluation.py ``evaluate``): the shipped synthetic ensemble on the
  golden model against SAD (sum of absolute differences of the pixels): Recall@1/5/10 and PR-AUC on
  the test split, for the ensemble, one member, and the ensemble without regularisation.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SECTION = "## Demos"

BLIMP_KEYS = (("rmse_m", "RMSE (m)"), ("steady_state_error_m", "steady-state error (m)"),
              ("overshoot_up_m", "overshoot up (m)"), ("overshoot_down_m", "overshoot down (m)"),
              ("settling_time_s", "settling time (s)"))


def blimp(runs: int) -> dict:
    from importlib.resources import files

    from spikeforge.demos.blimp import evaluation, snn

    controller = snn.Controller.load(files("spikeforge.demos.blimp") / "trained" / "controller.json")
    t0 = time.perf_counter()
    ev = evaluation.evaluate_controller(controller, runs=runs)
    return {**ev.metrics, "wall_s": time.perf_counter() - t0}


def place() -> dict:
    from spikeforge.demos.place.demo import SHIPPED_WEIGHTS, DemoOptions, load_dataset
    from spikeforge.demos.place.ensemble import TrainedEnsemble
    from spikeforge.demos.place.evaluation import evaluate

    t0 = time.perf_counter()
    ensemble = TrainedEnsemble.load(SHIPPED_WEIGHTS["synthetic"])
    dataset = load_dataset(DemoOptions(), ensemble.params)
    ensemble.check_dataset(dataset)
    ev = evaluate(ensemble, dataset)
    return {"metrics": ev.metrics, "thresholds": ev.thresholds, "modules": len(ensemble.specs),
            "members": len(ensemble.members), "test_places": int(len(ev.test_places)),
            "module_steps": ev.responses.module_steps, "respond_s": ev.responses.seconds,
            "wall_s": time.perf_counter() - t0}


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def report(b: dict, p: dict, quick: bool) -> str:
    lines = [
        SECTION, "",
        f"`python benchmarks/bench_demos.py{' --quick' if quick else ''}` ({datetime.date.today().isoformat()}, "
        f"{os.cpu_count()} CPU cores). The demos' own evaluation code, shipped weights, golden model.",
        "",
        f"**Blimp altitude control** (docs/blimp.md): the SNN controller ({b['neurons']} neurons, "
        f"{b['profiles']} profiles) against the PID it mimics (Kp {b['pid_gains']['kp']:.3g}, Ki "
        f"{b['pid_gains']['ki']:.3g}, Kd {b['pid_gains']['kd']:.3g}), {b['runs']} runs of "
        f"{b['seconds_per_run']:.0f} s per scenario set (evaluation seed {b['eval_seed']}), flown in "
        f"{b['wall_s']:.0f} s:",
        "",
        "| metric | SNN | PID | SNN / PID | SNN, negative buoyancy | PID, negative buoyancy | SNN / PID |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in BLIMP_KEYS:
        s, q = b["snn"][key], b["pid"][key]
        sn, qn = b["snn_negative_buoyancy"][key], b["pid_negative_buoyancy"][key]
        lines.append(f"| {label} | {s:.3f} | {q:.3f} | {_ratio(s, q)} | {sn:.3f} | {qn:.3f} | {_ratio(sn, qn)} |")
    m = p["metrics"]
    sad = m["sad"]
    lines += [
        "",
        f"**Place recognition** (docs/place-recognition.md): the shipped synthetic ensemble ({p['members']} members, "
        f"{p['modules']} modules) against SAD on the {p['test_places']} test places; {p['module_steps']:,} module "
        f"steps on the golden model in {p['respond_s']:.0f} s (whole evaluation {p['wall_s']:.0f} s). "
        f"Regularisation thresholds (calibrated): ensemble {p['thresholds']['snn_ensemble']}, single "
        f"{p['thresholds']['snn_single']}.",
        "",
        "| variant | Recall@1 | Recall@5 | Recall@10 | PR-AUC | Recall@1 / SAD |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("snn_ensemble", "snn_single", "snn_no_regularisation", "sad"):
        r = m[name]
        lines.append(f"| {name} | {r['recall']['1']:.2f} | {r['recall']['5']:.2f} | {r['recall']['10']:.2f} | "
                     f"{r['pr_auc']:.3f} | {_ratio(r['recall']['1'], sad['recall']['1'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="blimp: 8 runs per scenario set (default 16)")
    ap.add_argument("--runs", type=int, help="blimp runs per scenario set")
    ap.add_argument("--no-write", action="store_true", help="print the results, do not update RESULTS.md")
    ap.add_argument("--results", type=Path, default=RESULTS, help="RESULTS.md to update")
    args = ap.parse_args(argv)
    runs = args.runs or (8 if args.quick else 16)
    print(f"blimp: {runs} runs per scenario set ...", flush=True)
    b = blimp(runs)
    print(f"  SNN RMSE {b['snn']['rmse_m']:.3f} m, PID {b['pid']['rmse_m']:.3f} m", flush=True)
    print("place: evaluating the shipped ensemble ...", flush=True)
    p = place()
    print(f"  Recall@1 ensemble {p['metrics']['snn_ensemble']['recall']['1']:.2f}, SAD "
          f"{p['metrics']['sad']['recall']['1']:.2f}", flush=True)
    text = report(b, p, args.quick)
    from spikeforge.bench import publish

    publish(text, args.results, SECTION, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
