"""Compile-time benchmark -> the "Compile time" section of benchmarks/RESULTS.md.

    python benchmarks/bench_compile.py            # example networks and N = 256, 1024, 4096
    python benchmarks/bench_compile.py --quick    # example networks and N = 256, 1024

Network -> CoreImage (``spikeforge.compiler.compile``), for the example networks (examples/*.yaml)
and the golden benchmark's random networks (bench_golden.benchmark_network):

- cold: a fresh Python process that imports spikeforge, loads/builds the network and compiles it
  once -- what one ``spikeforge inspect`` costs; the network build is timed apart and left out;
- warm: the same compile again in a process that has compiled it before (best of 3) -- what a sweep
  (``spikeforge explore``) or a training loop pays per compile.

Also the golden kernel's first call in a fresh process with an empty numba cache (it compiles) and
with the cache that run left behind; bitstreams cold vs warm (cached place and route) are in the
"Boards" section (``bench_boards.py``, full mode).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "RESULTS.md"
SECTION = "## Compile time"
EXAMPLES = ("balanced.yaml", "recurrent.yaml", "delays.yaml", "adaptive.yaml", "stdp_pair.yaml")

#: one measurement in a fresh process: prints {"import_s", "build_s", "cold_s", "warm_s", ...}
CHILD = textwrap.dedent("""
    import json, sys, time, warnings
    t0 = time.perf_counter()
    from spikeforge.compiler import compile
    from spikeforge.compiler.loaders import load_any
    t1 = time.perf_counter()
    kind, arg = sys.argv[1], sys.argv[2]
    if kind == "file":
        net = load_any(arg)
    else:
        sys.path.insert(0, sys.argv[3])
        from bench_golden import NOISE_RATE_HZ, benchmark_network
        n = int(arg)
        net = benchmark_network(n, NOISE_RATE_HZ.get(n, 58.0))
    t2 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cn = compile(net, warn=False)
        t3 = time.perf_counter()
        warm = []
        for _ in range(3):
            a = time.perf_counter()
            compile(net, warn=False)
            warm.append(time.perf_counter() - a)
    syn = int(sum(p.synapses for p in cn.report.projections))
    print(json.dumps({"import_s": t1 - t0, "build_s": t2 - t1, "cold_s": t3 - t2, "warm_s": min(warm),
                      "neurons": net.n_neurons, "synapses": syn}))
""")


def measure(kind: str, arg: str) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, kind, arg, str(HERE)], capture_output=True, text=True,
                         cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"compiling {arg} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def report(rows: list[tuple[str, dict]], jit: dict | None, quick: bool) -> str:
    lines = [
        SECTION, "",
        f"`python benchmarks/bench_compile.py{' --quick' if quick else ''}` ({datetime.date.today().isoformat()}, "
        f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}). Network -> CoreImage with "
        "`spikeforge.compiler.compile`: **cold** = the first compile in a fresh process (after `import "
        "spikeforge.compiler`, which is timed apart), **warm** = the same compile again in that process "
        "(best of 3). Network construction is not included.",
        "",
        "| network | neurons | synapses | import | cold compile | warm compile | cold / warm |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        lines.append(f"| {name} | {r['neurons']:,} | {r['synapses']:,} | {r['import_s']:.2f} s | "
                     f"{r['cold_s'] * 1e3:,.0f} ms | {r['warm_s'] * 1e3:,.0f} ms | {r['cold_s'] / r['warm_s']:.1f}x |")
    if jit:
        lines += ["", f"Golden kernel, first call in a fresh process (CPU time): {jit['cold'][0]:.1f} s with an empty "
                  f"numba cache (compiling), {jit['cached'][0]:.2f} s with the cache: "
                  f"{jit['cold'][0] / max(jit['cached'][0], 1e-3):.0f}x."]
    lines += ["", "Bitstreams, cold (synthesis, place and route) vs warm (new weights into a cached build): the "
              "\"Boards\" section (full mode)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="benchmark networks up to N = 1024, no numba cold start")
    ap.add_argument("--sizes", type=int, nargs="+", help="benchmark network sizes (default 256 1024 4096)")
    ap.add_argument("--no-write", action="store_true", help="print the results, do not update RESULTS.md")
    ap.add_argument("--results", type=Path, default=RESULTS, help="RESULTS.md to update")
    args = ap.parse_args(argv)
    sizes = args.sizes or ([256, 1024] if args.quick else [256, 1024, 4096])
    rows = []
    for name in EXAMPLES:
        path = REPO / "examples" / name
        if path.exists():
            rows.append((f"examples/{name}", measure("file", str(path))))
            print(name, rows[-1][1], flush=True)
    for n in sizes:
        rows.append((f"random N = {n} (bench_golden)", measure("random", str(n))))
        print(n, rows[-1][1], flush=True)
    jit = None
    if not args.quick:
        sys.path.insert(0, str(HERE))
        from bench_golden import jit_times

        jit = jit_times()
    text = report(rows, jit, args.quick)
    from spikeforge.bench import publish

    publish(text, args.results, SECTION, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
