"""Benchmark: the golden model (numba kernel and NumPy reference) against NEST 3 through PyNN.

    python benchmarks/bench_golden.py            # N = 256, 1024, 4096; batch at N = 256 and 1024
    python benchmarks/bench_golden.py --quick    # N = 256, 1024, fewer steps; batch at N = 256

All simulators run the SAME networks, built once with spikeforge's network model
(``spikeforge.compiler.network``): N current-based LIF neurons (80 % excitatory, 20 % inhibitory,
PyNN IF_curr_exp defaults with tau_refrac = 2 ms), 10 % random connectivity among them and from a
Poisson noise population of N/4 sources, dt = 1 ms. Weights scale as 256/N so that every size sees the
same summed input; the noise rate is set per size so that about 5 % of the neurons spike per step,
and the activity each simulator actually produced is measured and reported. The golden model runs
``spikeforge.compiler.compile(network)``'s CoreImage with the input raster of the network's Poisson
sources; NEST runs the network through the project's NEST backend (``spikeforge.sim.nest_backend``,
PyNN 0.13, ``spike_precision="on_grid"``) with the same input spike trains.

What is timed (wall clock, best of ``--repeats``; NEST runs in a child process per size, one after
the golden model, so both see the same machine):
- golden fast, run(): one ``golden_fast.run(image, inputs)`` call, setup included (checking the
  image and inputs, packing the synapses, building the final image); the kernel is compiled before.
- golden fast, kernel: steps/s of the time steps alone, ``T / (t(T) - t(0))``: the setup (a run of
  0 steps) subtracted.
- NumPy reference: one ``golden.run`` call over fewer steps (it walks all S x N synapses every step).
- NEST: ``nest.Simulate(T * dt)`` on a network that is already built and past its first step;
  building the network (PyNN Populations, Projections) is not timed. NEST runs on one thread, as
  does a single golden run.
- batch: ``run_batch`` of B images (the compiled network, each with its own Poisson seed) against
  a Python loop of B single ``run`` calls; per-network steps/s = B * T / time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("PYNEST_QUIET", "1")  # no NEST banner in the output

from spikeforge.bench import publish
from spikeforge.compiler.compile import compile as compile_network
from spikeforge.compiler.network import Connector, LIFParameters, Network, PoissonSource, Population, Projection
from spikeforge.sim import golden, golden_fast

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SECTION = "## Golden model"

#: Poisson noise rate (Hz) per network size giving about 5 % of the neurons spiking per step on the
#: golden model (found with --tune; the benchmark measures and reports the activity it gets).
NOISE_RATE_HZ = {256: 60.0, 1024: 58.0, 4096: 56.0}
TARGET_ACTIVITY = 0.05


# ---- the benchmark network ------------------------------------------------------------------------
def benchmark_network(n: int, noise_rate: float, seed: int = 0) -> Network:
    """N LIF neurons (80 % exc, 20 % inh), 10 % connectivity, N/4 Poisson noise sources."""
    n_exc = int(0.8 * n)
    n_inh = n - n_exc
    n_noise = n // 4
    cell = LIFParameters(tau_m=20.0, cm=1.0, v_rest=-65.0, v_reset=-65.0, v_thresh=-50.0,
                         tau_syn_E=5.0, tau_syn_I=5.0, tau_refrac=2.0, i_offset=0.0)
    net = Network(dt=1.0, name=f"bench_{n}")
    net.add(Population("exc", n_exc, cell))
    net.add(Population("inh", n_inh, cell))
    net.add(PoissonSource("noise", n_noise, rate=noise_rate, seed=seed))
    scale = 256.0 / n  # same summed input at every size: fan-in grows as N, weights shrink as 1/N
    w_noise, w_exc, g = 1.0 * scale, 0.3 * scale, 5.0
    sizes = {"noise": n_noise, "exc": n_exc, "inh": n_inh}
    k = 0
    for post in ("exc", "inh"):
        for pre, weight, receptor in (("noise", w_noise, "excitatory"), ("exc", w_exc, "excitatory"),
                                      ("inh", g * w_exc, "inhibitory")):
            k += 1
            rule = Connector("fixed_probability", weight=weight, delay=1.0, p=0.1, seed=1000 * seed + k)
            dense = rule.expand(sizes[pre], sizes[post], plastic=False)
            net.add(Projection(pre, post, weights=dense["weights"], delays=dense["delays"], receptor=receptor,
                               label=f"{pre}_{post}", connector=rule))
    return net


def compiled(n: int, noise_rate: float):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantisation notes are not what this measures
        return compile_network(benchmark_network(n, noise_rate))


def network_spikes(cn, spikes: np.ndarray) -> np.ndarray:
    """The columns of the network's neurons in a (..., steps, core neurons) raster."""
    cols = np.concatenate([np.arange(r.start, r.stop) for r in cn.mapping.neurons.values()])
    return spikes[..., cols]


# ---- timing helpers -------------------------------------------------------------------------------
def best_time(fn, repeats: int) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fn()``, each the best of ``repeats`` calls. CPU time (this process, all
    threads) is what a single-threaded run would take on an idle core; on a shared machine it is the
    steadier figure."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


def rate(steps: float, seconds: tuple[float, float]) -> tuple[float, float]:
    """steps/s by wall and by CPU time."""
    return steps / max(seconds[0], 1e-9), steps / max(seconds[1], 1e-9)


def time_golden(cn, steps: int, repeats: int) -> dict:
    raster = cn.input_raster(steps)
    golden_fast.run(cn.image, raster[:2])  # load (or compile) the kernel
    full = best_time(lambda: golden_fast.run(cn.image, raster), repeats)
    setup = best_time(lambda: golden_fast.run(cn.image, raster[:0]), repeats)  # everything but the steps
    _, rec = golden_fast.run(cn.image, raster)
    # the steps alone; when noise hides the difference (very short runs), fall back to the whole call
    steps_only = tuple(f - s if f - s > 0.1 * f else f for f, s in zip(full, setup))
    kernel = rate(steps, steps_only)
    return {"run": rate(steps, full), "kernel": kernel, "setup_s": max(0.0, full[1] - steps / kernel[1]),
            "activity": float(network_spikes(cn, rec.spikes).mean())}


def time_reference(cn, steps: int) -> dict:
    raster = cn.input_raster(steps)
    return {"run": rate(steps, best_time(lambda: golden.run(cn.image, raster), 1)), "steps": steps}


def time_nest(n: int, noise_rate: float, steps: int, repeats: int) -> dict:
    """time_nest_here in a fresh process: one NEST kernel per process (NEST 3.10 crashed here when a
    second network was built in a process after the first had been ended)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--nest-worker", str(n), str(noise_rate), str(steps),
           str(repeats)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"NEST benchmark at N = {n} failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def time_nest_here(network: Network, steps: int, repeats: int) -> dict:
    """Build the network in NEST with the project's NEST backend (not timed), then time
    ``nest.Simulate`` over ``steps`` steps, ``repeats`` times in a row (the input raster covers all)."""
    from spikeforge.compiler.sources import network_input_rasters
    from spikeforge.sim import nest_backend
    from spikeforge.sim.float_ref import population_currents

    sim, nest = nest_backend._import()
    total = repeats * steps + 4
    with nest_backend._quiet():
        t0 = time.perf_counter()
        runner = nest_backend._NestRun(sim, nest, network, total, network_input_rasters(network, total),
                                       population_currents(network, None, total), ())
        sim.simulator.state.run(0.0)
        nest.Simulate(network.dt)  # the backend's padding step; NEST prepares its kernel here
        build = time.perf_counter() - t0
        timed = best_time(lambda: nest.Simulate(steps * network.dt), repeats)
        n_spikes = len(runner.spike_recorder.get("events")["senders"])
        threads = nest.GetKernelStatus("local_num_threads")
        sim.end()
    return {"run": rate(steps, timed), "build_s": build, "threads": threads,
            "activity": n_spikes / (network.n_neurons * repeats * steps)}


def time_batch(cn, batch: int, steps: int, repeats: int, reference_steps: int) -> dict:
    """run_batch of ``batch`` copies of the network (own Poisson seed each) vs a loop of single runs.
    Per-network steps/s by wall time (threads share the wall clock, so CPU time would hide them)."""
    rasters = np.stack([cn.input_raster(steps, seed=k) for k in range(batch)])
    images = [cn.image] * batch
    golden_fast.run_batch(images[:2], rasters[:2, :2])
    out = {
        "fast_loop": rate(batch * steps, best_time(
            lambda: [golden_fast.run(cn.image, rasters[k]) for k in range(batch)], repeats))[0],
        "fast_batch": rate(batch * steps, best_time(lambda: golden_fast.run_batch(images, rasters), repeats))[0],
        "fast_batch_1thread": rate(batch * steps, best_time(
            lambda: golden_fast.run_batch(images, rasters, parallel=False), repeats))[0],
    }
    _, rec = golden_fast.run_batch(images, rasters)
    out["activity"] = float(network_spikes(cn, rec.spikes).mean())
    if reference_steps:  # the NumPy batch holds (B, S, N) temporaries: only for small N
        r = rasters[:, :reference_steps]
        out["ref_loop"] = rate(batch * reference_steps, best_time(
            lambda: [golden.run(cn.image, r[k]) for k in range(batch)], 1))[0]
        out["ref_batch"] = rate(batch * reference_steps, best_time(lambda: golden.run_batch(images, r), 1))[0]
    out["reference_steps"] = reference_steps
    return out


def jit_times() -> dict:
    """CPU seconds of the kernel's first call in a fresh process: with an empty numba cache (it
    compiles) and again with the cache that left behind (``cache=True``)."""
    code = textwrap.dedent("""
        import time
        from spikeforge.core.random_image import random_config, random_image
        from spikeforge.sim import golden_fast
        img = random_image(random_config(0, stdp=True, max_delay=4, adaptive_threshold=True), 0)
        c0 = time.process_time()
        golden_fast.run(img, steps=2)
        c1 = time.process_time()
        golden_fast.run_batch([img, img], steps=2)
        print(c1 - c0, time.process_time() - c1)
    """)
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "cached"):
            res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            out[label] = tuple(float(x) for x in res.stdout.split())
    return out


# ---- tuning ---------------------------------------------------------------------------------------
def tune(n: int, steps: int = 1000) -> float:
    """The noise rate (Hz) that gives TARGET_ACTIVITY on the golden model (bisection, 8 compiles)."""
    lo, hi = 5.0, 200.0
    for _ in range(8):
        rate = 0.5 * (lo + hi)
        cn = compiled(n, rate)
        _, rec = golden_fast.run(cn.image, cn.input_raster(steps))
        act = network_spikes(cn, rec.spikes).mean()
        print(f"  N={n} rate {rate:.1f} Hz -> activity {act:.4f}", flush=True)
        lo, hi = (rate, hi) if act < TARGET_ACTIVITY else (lo, rate)
    return 0.5 * (lo + hi)


# ---- report ---------------------------------------------------------------------------------------
def machine() -> dict:
    cpu = platform.processor() or "?"
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = re.search(r"model name\s*:\s*(.*)", text).group(1).strip()
    except (OSError, AttributeError):
        pass
    import numba
    versions = {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__}
    try:
        import nest
        import pyNN

        versions["nest"] = nest.__version__
        versions["pyNN"] = pyNN.__version__
    except Exception:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "versions": versions}


def fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def pair(x: tuple[float, float]) -> str:
    """wall (CPU) steps/s."""
    return f"{fmt(x[0])} ({fmt(x[1])})"


def ratio(a: tuple[float, float], b: tuple[float, float]) -> str:
    return f"{a[0] / b[0]:.1f}x ({a[1] / b[1]:.1f}x)"


def report(args, info, rows, batches, jit, load_before, load_after) -> str:
    v = info["versions"]
    lines = [
        SECTION,
        "",
        f"`python benchmarks/bench_golden.py{' --quick' if args.quick else ''}` on "
        f"{datetime.date.today().isoformat()}: {info['cpu']}, {info['cores']} cores; "
        + ", ".join(f"{k} {val}" for k, val in v.items()) + ". "
        f"Load average {load_before:.1f} before and {load_after:.1f} after: other jobs shared the machine, "
        f"so every figure is the best of {args.repeats} and is given by wall clock and, in parentheses, by "
        "CPU time of the process (what an idle core would give).",
        "",
        "Networks: N LIF neurons (80 % exc / 20 % inh, IF_curr_exp), 10 % random connectivity, N/4 Poisson "
        "noise inputs, dt = 1 ms, compiled with `spikeforge.compiler.compile`; NEST 3 via PyNN "
        "(`spike_precision=\"on_grid\"`, 1 thread, the project's NEST backend) on the same network and input "
        "spikes. Steps/s = simulated 1-ms steps per second. NEST: `nest.Simulate` only (network built, "
        "first step done). Golden `run()`: one call including its setup (checks, synapse packing, final "
        "image); `kernel`: the time steps alone (the time of a 0-step `run()` subtracted).",
        "",
        "| N | noise | activity golden / NEST | golden fast run() | golden fast kernel | NumPy reference "
        "| NEST | run() / NEST | kernel / NEST |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        g, ref, nest = r["golden"], r["reference"], r.get("nest")
        act = f"{100 * g['activity']:.1f} % / " + (f"{100 * nest['activity']:.1f} %" if nest else "n/a")
        lines.append(
            f"| {r['n']} | {r['rate']:.0f} Hz | {act} | {pair(g['run'])} | {pair(g['kernel'])} | "
            f"{pair(ref['run'])}, {ref['steps']} steps | {pair(nest['run']) if nest else 'n/a'} | "
            f"{ratio(g['run'], nest['run']) if nest else 'n/a'} | {ratio(g['kernel'], nest['run']) if nest else 'n/a'} |"
        )
    lines.append("")
    lines.append("Setup of one golden `run()` (CPU): " + ", ".join(
        f"N = {r['n']}: {r['golden']['setup_s'] * 1e3:.0f} ms" for r in rows) + ". NEST network build "
        "(not timed above): " + ", ".join(
        f"N = {r['n']}: {r['nest']['build_s']:.1f} s" for r in rows if r.get("nest")) + ".")
    if batches:
        lines += [
            "",
            f"Batch mode: B = {args.batch} copies of the network, each with its own Poisson seed, "
            f"{args.steps} steps; per-network steps/s (B x steps / wall time):",
            "",
            "| N | activity | fast: loop of B run() | fast: run_batch, 1 thread | fast: run_batch, "
            f"{info['cores']} threads | batch / loop | NumPy: loop | NumPy: run_batch | batch / loop |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for n, b in batches:
            ref = (f"{fmt(b['ref_loop'])} | {fmt(b['ref_batch'])} | {b['ref_batch'] / b['ref_loop']:.1f}x"
                   if "ref_loop" in b else "n/a | n/a | n/a")
            lines.append(
                f"| {n} | {100 * b['activity']:.1f} % | {fmt(b['fast_loop'])} | {fmt(b['fast_batch_1thread'])} | "
                f"{fmt(b['fast_batch'])} | {b['fast_batch'] / b['fast_loop']:.1f}x | {ref} |"
            )
        lines += ["", f"NumPy batch figures over {batches[0][1]['reference_steps']} steps, at N = 256 only "
                  "(its (B, S, N) temporaries take gigabytes above that)."]
    lines += [
        "",
        f"First call of the kernel in a fresh process (CPU time): {jit['cold'][0]:.1f} s with an empty numba "
        f"cache (compiling), {jit['cached'][0]:.2f} s with the cache (`cache=True`); the first batch call "
        f"after it {jit['cold'][1]:.2f} s (the same compiled kernel, on threads).",
        "",
    ]
    lines += goals(rows, batches)
    return "\n".join(lines) + "\n"


def goals(rows, batches) -> list[str]:
    out = ["Goals (issue \"Foundation\"):", ""]
    for r in rows:
        if r["n"] <= 1024 and r.get("nest"):
            g, nest = r["golden"], r["nest"]
            ok = g["run"][0] >= nest["run"][0] and g["run"][1] >= nest["run"][1]
            out.append(f"- golden >= NEST at N = {r['n']}: {'met' if ok else 'NOT met'}, run() "
                       f"{ratio(g['run'], nest['run'])} and kernel {ratio(g['kernel'], nest['run'])} NEST's speed.")
    for n, b in batches:
        fast = b["fast_batch"] / b["fast_loop"]
        line = f"- batch >= 10x the loop at N = {n}: fast kernel {fast:.1f}x ({'met' if fast >= 10 else 'NOT met'})"
        if "ref_loop" in b:
            ref = b["ref_batch"] / b["ref_loop"]
            line += (f", NumPy reference {ref:.1f}x ({'met' if ref >= 10 else 'NOT met'}); the fast batch "
                     f"against the NumPy loop: {b['fast_batch'] / b['ref_loop']:,.0f}x")
        out.append(line + ".")
    if any(b["fast_batch"] < 10 * b["fast_loop"] for _, b in batches):
        out += ["", WHY_BATCH]
    return out


#: Why batching cannot give the event-driven kernel a 10x gain per network (printed when it does not).
WHY_BATCH = (
    "Why batch mode is not 10x the loop: the kernel is event-driven, so the work of one network per step "
    "(the synapses of the sources that spiked, plus one update per neuron) is the same whether it runs "
    "alone or in a batch. Batching saves only the per-call overhead (the setup of `run()` above, small "
    "against the time steps) and runs the cores of the batch on one thread per CPU core: at most 2x on a "
    "2-core machine when it is idle, about 1x while other jobs share it. The "
    "NumPy reference's batch is slower than its loop, because its (B, S, N) temporaries do not fit the "
    "caches."
)


# ---- main -----------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N = 256, 1024 only, fewer steps (about 2 min)")
    ap.add_argument("--sizes", type=int, nargs="+", help="network sizes (default 256 1024 4096)")
    ap.add_argument("--steps", type=int, help="steps per timed run (default 2000, quick 500)")
    ap.add_argument("--batch", type=int, default=64, help="batch size B (default 64)")
    ap.add_argument("--repeats", type=int, default=3, help="repetitions; the best time counts")
    ap.add_argument("--no-nest", action="store_true", help="skip NEST")
    ap.add_argument("--tune", action="store_true", help="find the noise rate for 5 %% activity per size, print it")
    ap.add_argument("--no-write", action="store_true", help="print the results, do not update RESULTS.md")
    ap.add_argument("--results", type=Path, default=RESULTS, help="RESULTS.md to update (default benchmarks/RESULTS.md; `spikeforge bench` gives a scratch file)")
    ap.add_argument("--nest-worker", nargs=4, metavar=("N", "RATE", "STEPS", "REPEATS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.nest_worker:  # one NEST measurement, in its own process (see time_nest)
        n, rate, steps, repeats = args.nest_worker
        result = time_nest_here(benchmark_network(int(n), float(rate)), int(steps), int(repeats))
        print(json.dumps(result))
        return 0
    sizes = args.sizes or ([256, 1024] if args.quick else [256, 1024, 4096])
    args.steps = args.steps or (500 if args.quick else 2000)
    if args.tune:
        for n in sizes:
            print(f"N = {n}: {tune(n):.1f} Hz")
        return 0

    info = machine()
    load_before = os.getloadavg()[0]
    print(f"{info['cpu']}, {info['cores']} cores, {info['versions']}", flush=True)
    jit = jit_times()
    print(f"kernel first call (CPU s): cold {jit['cold']}, cached {jit['cached']}", flush=True)
    rows, batches = [], []
    reference_steps = {256: 200, 1024: 20, 4096: 3}
    for n in sizes:
        rate = NOISE_RATE_HZ.get(n, 58.0)
        t0 = time.perf_counter()
        cn = compiled(n, rate)
        print(f"N = {n}: compiled in {time.perf_counter() - t0:.1f} s", flush=True)
        row = {"n": n, "rate": rate}
        row["golden"] = time_golden(cn, args.steps, args.repeats)
        print(f"  golden fast: {row['golden']}", flush=True)
        row["reference"] = time_reference(cn, min(args.steps, reference_steps.get(n, 3)))
        print(f"  NumPy reference: {row['reference']}", flush=True)
        if not args.no_nest:
            row["nest"] = time_nest(n, rate, args.steps, args.repeats)
            print(f"  NEST: {row['nest']}", flush=True)
        rows.append(row)
        if n in ((256,) if args.quick else (256, 1024)):
            b = time_batch(cn, args.batch, args.steps, args.repeats, 10 if n <= 256 else 0)
            print(f"  batch B = {args.batch}: {b}", flush=True)
            batches.append((n, b))
        del cn
    text = report(args, info, rows, batches, jit, load_before, os.getloadavg()[0])
    print()
    publish(text, args.results, SECTION, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
