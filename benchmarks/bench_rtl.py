"""RTL benchmark: cycles per step against the bandwidth bound, and RTL simulation speed.

    python benchmarks/bench_rtl.py                 # Icarus and Verilator; writes the RTL section of RESULTS.md
    python benchmarks/bench_rtl.py --no-verilator  # Icarus only (Verilator builds take a minute per config)
    python benchmarks/bench_rtl.py --no-write      # print only

Cycles: the generated core (correct design) runs a blank image (neurons never spike) driven by
random input spikes, so exactly the chosen fraction of the S = A + N sources spikes each step
("activity"); A = N. CONTROL.LAST_CYCLES of every step is compared with the cycle model
(``sim/cycle_model.py``) and with the bound N + synaptic events / P that a time-multiplexed core
with P synapse lanes cannot beat (``cycle_model.bandwidth_bound``; events = spiking sources x N, the
dense row reads of the core).

Speed: simulated timesteps per second of wall time inside the steps (stage inputs, start, collect
spikes, read LAST_CYCLES), excluding build, image load and readback, for Icarus and Verilator.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from spikeforge.bench import publish
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage
from spikeforge.sim import cycle_model
from spikeforge.sim.cocotb_tb import runner
from spikeforge.sim.cocotb_tb.case import RtlCase

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SECTION = "## RTL"
ACTIVITIES = (0.01, 0.05, 0.20)


def workload(config: CoreConfig, activity: float, steps: int, seed: int, tmp: Path) -> RtlCase:
    """A case where ``activity`` x S sources spike per step (inputs only; the neurons stay silent)."""
    img = CoreImage.blank(config)
    img_path = tmp / f"blank-{config.config_hash()}.npz"
    img.save(img_path)
    rng = np.random.default_rng(seed)
    per_step = max(1, round(activity * config.n_sources))
    spikes = np.zeros((steps, config.n_inputs), dtype=bool)
    for t in range(steps):
        spikes[t, rng.choice(config.n_inputs, size=min(per_step, config.n_inputs), replace=False)] = True
    in_path = tmp / f"inputs-{config.config_hash()}-{activity}.npz"
    np.savez(in_path, spikes=spikes)
    return RtlCase(name=f"activity {activity:.0%}", steps=steps, image_path=str(img_path),
                   inputs_path=str(in_path), check=False, final_readback=False)


def measure_cycles(config: CoreConfig, simulator: str, steps: int, tmp: Path) -> list[dict]:
    cases = [workload(config, a, steps, seed=k, tmp=tmp) for k, a in enumerate(ACTIVITIES)]
    b = runner.build(config, simulator=simulator)
    results = runner.run_job(b, cases)
    rows = []
    for activity, case, res in zip(ACTIVITIES, cases, results):
        if not res.passed:
            raise SystemExit(f"{config}: {res.summary()}")
        with np.load(case.inputs_path) as data:
            spikes = data["spikes"]
        rows_per_step = spikes.sum(axis=1)
        predicted = [cycle_model.predict_step_cycles(config, s, np.zeros(config.n_neurons, bool))
                     for s in spikes]
        bound = [cycle_model.bandwidth_bound(config, cycle_model.synaptic_events(config, int(r)))
                 for r in rows_per_step]
        step_s = res.phase_seconds["inputs"] + res.phase_seconds["step"]
        rows.append({
            "activity": activity, "rows": float(rows_per_step.mean()),
            "cycles": float(np.mean(res.cycles)), "model": float(np.mean(predicted)),
            "bound": float(np.mean(bound)), "model_exact": list(res.cycles) == predicted,
            "steps_per_s": res.steps_run / step_s if step_s else float("nan"),
            "cycles_per_s": res.sim_cycles_in_steps / step_s if step_s else float("nan"),
        })
    return rows


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.machine()}, {cpu}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
            f"load average {load} at the end of the run")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10, help="steps per activity level")
    ap.add_argument("--no-verilator", action="store_true", help="Icarus only")
    ap.add_argument("--no-write", action="store_true", help="print the results, do not update RESULTS.md")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="core sizes N (default 64 256)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="RESULTS.md to update (default benchmarks/RESULTS.md; `spikeforge bench` gives a scratch file)")
    args = ap.parse_args(argv)
    configs = [CoreConfig(n_neurons=n, n_inputs=n, lanes=p, n_profiles=1) for n in args.sizes for p in (1, 4)]
    sims = ["icarus"] + ([] if args.no_verilator else ["verilator"])
    t0 = time.time()
    table: dict[tuple[str, int, int], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-rtl-") as tmp:
        for sim in sims:
            for c in configs:
                if sim == "verilator" and c.lanes != 1:
                    continue  # the speed comparison needs one config per size; cycles are the same
                print(f"{sim}: N = {c.n_neurons}, P = {c.lanes} ...", flush=True)
                table[(sim, c.n_neurons, c.lanes)] = measure_cycles(c, sim, args.steps, Path(tmp))

    lines = [SECTION, ""]
    lines.append(
        f"`python benchmarks/bench_rtl.py` ({datetime.date.today().isoformat()}, {machine()}). "
        f"The generated core (correct design) with A = N inputs, a blank image (no neuron spikes) and "
        f"random inputs such that the given fraction of the S = 2N sources spikes in each of "
        f"{args.steps} steps; cycles = CONTROL.LAST_CYCLES read from the core. Bound = N + events / P "
        "(every neuron updated once, every synapse of a spiking row read at P per clock).")
    lines += ["", "| N | P | activity | spiking rows/step | cycles/step (RTL) | cycle model | bound | bound / RTL |",
              "|---|---|---|---|---|---|---|---|"]
    for (sim, n, p), rows in table.items():
        if sim != "icarus":
            continue
        for r in rows:
            exact = "" if r["model_exact"] else " (differs)"
            lines.append(f"| {n} | {p} | {r['activity']:.0%} | {r['rows']:.1f} | {r['cycles']:,.0f} | "
                         f"{r['model']:,.0f}{exact} | {r['bound']:,.0f} | {r['bound'] / r['cycles']:.0%} |")
    exact_all = all(r["model_exact"] for rows in table.values() for r in rows)
    lines += ["", f"Cycle model against LAST_CYCLES, every step of every run: "
                  f"{'**exact**' if exact_all else '**not exact** (see the table)'}.", ""]
    lines += ["RTL simulation speed inside the steps (wall time; the build, image load and readback excluded):",
              "", "| simulator | N | P | activity | steps/s | clock cycles/s | steps/s vs Icarus |",
              "|---|---|---|---|---|---|---|"]
    for (sim, n, p), rows in table.items():
        if p != 1:
            continue
        base = table.get(("icarus", n, p))
        for k, r in enumerate(rows):
            vs = f"{r['steps_per_s'] / base[k]['steps_per_s']:.1f}x" if base and base[k]["steps_per_s"] else "-"
            lines.append(f"| {sim} | {n} | {p} | {r['activity']:.0%} | {r['steps_per_s']:,.1f} | "
                         f"{r['cycles_per_s']:,.0f} | {vs} |")
    lines += ["", f"Total benchmark time {time.time() - t0:.0f} s. The machine was shared with other jobs "
                  "(see the load average), so absolute speeds are lower bounds; ratios between simulators "
                  "measured in the same run are comparable."]
    text = "\n".join(lines) + "\n"
    publish(text, args.results, SECTION, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
