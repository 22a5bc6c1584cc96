"""report.json and report.md of a board build: what was built, how big, how fast, how exact.

``report.json`` is for programs (benchmarks, tests, CI dashboards); ``report.md`` renders the same
dictionary for a person: board and part, the CoreConfig, resources used against the part's totals
(with the capacity estimate next to the tools' count), Fmax against the clock, the timestep latency
the cycle model predicts for this network's activity, the quantisation summary and how to flash.
"""

from __future__ import annotations

import json
from pathlib import Path

#: the resource rows of a report, in display order: key -> label
RESOURCE_ROWS = (("luts", "Logic"), ("ffs", "Flip-flops"), ("bram", "Block RAM"), ("spram", "SPRAM"),
                 ("dsp", "DSP"), ("io", "I/O"), ("pll", "PLL"))

#: nextpnr / Yosys cell names per family for each resource row
ICE40_CELLS = {"luts": "ICESTORM_LC", "bram": "ICESTORM_RAM", "spram": "ICESTORM_SPRAM", "dsp": "ICESTORM_DSP",
               "io": "SB_IO", "pll": "ICESTORM_PLL"}
ECP5_CELLS = {"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "bram": "DP16KD", "dsp": "MULT18X18D",
              "io": "TRELLIS_IO", "pll": "EHXPLLL"}
UNITS = {
    "ice40": {"luts": "logic cells (LUT4 + FF)", "ffs": "flip-flops (Yosys)", "bram": "4 Kbit EBR",
              "spram": "256 Kbit SPRAM", "dsp": "SB_MAC16", "io": "pins", "pll": "SB_PLL40"},
    "ecp5": {"luts": "LUT4", "ffs": "flip-flops", "bram": "18 Kbit DP16KD", "dsp": "MULT18X18D",
             "io": "pins", "pll": "EHXPLLL"},
    "xc7": {"luts": "LUT6", "ffs": "flip-flops", "bram": "36 Kbit tiles", "dsp": "DSP48E1", "io": "pins",
            "pll": "MMCM"},
}


def resources_from_build(family: str, utilisation: dict, cells: dict, board_resources) -> dict:
    """The resource table of an open-toolchain build: nextpnr's counts (the LUT row is exactly
    nextpnr's log), flip-flops from Yosys on iCE40 (nextpnr counts them inside logic cells)."""
    table = {}
    names = ICE40_CELLS if family == "ice40" else ECP5_CELLS
    for key, cell in names.items():
        if cell in utilisation:
            used, avail = utilisation[cell]
            table[key] = {"used": used, "available": avail, "unit": UNITS[family][key],
                          "source": f"nextpnr {cell}"}
    if family == "ice40":
        ffs = sum(n for name, n in cells.items() if name.startswith("SB_DFF"))
        table["ffs"] = {"used": ffs, "available": board_resources.ffs, "unit": UNITS[family]["ffs"],
                        "source": "yosys SB_DFF*"}
        if "SB_LUT4" in cells:
            table["lut4"] = {"used": cells["SB_LUT4"], "available": board_resources.luts,
                             "unit": "LUT4 (inside logic cells)", "source": "yosys SB_LUT4"}
    return table


def _pct(used, avail) -> str:
    return f"{100.0 * used / avail:.1f} %" if avail else "-"


def _num(x) -> str:
    if isinstance(x, float) and not x.is_integer():
        return f"{x:,.1f}"
    return f"{int(x):,}"


def render_markdown(r: dict) -> str:
    """report.md from the report dictionary."""
    b, c, t = r["board"], r["core_config"], r.get("timing") or {}
    lines = [f"# spikeforge build: {r['network']['name']} on {b['title']}", ""]
    status = r.get("status", "ok")
    if status != "ok":
        lines += [f"**{status.upper()}**: {r.get('status_message', '')}", ""]
    lines += [
        "| | |", "|---|---|",
        f"| Board | {b['title']} (`{b['name']}`) |",
        f"| Part | {b['part']} ({b['family']}) |",
        f"| Mode | {r['mode']}" + (" (weights and stimulus in a boot ROM; no host needed)" if r["mode"] == "standalone"
                                  else " (generic bitstream for this CoreConfig; the network is loaded over UART)") + " |",
        f"| Host link | {r['link']} |",
        f"| Bitstream | `{r['bitstream']['file'] or '(not built here)'}`"
        + (f", {r['bitstream']['bytes']:,} bytes" if r["bitstream"].get("bytes") else "")
        + (" (from the cache)" if r["bitstream"].get("cached") else "") + " |",
        f"| Network | {r['network']['neurons']:,} neurons, {r['network']['inputs']:,} inputs, "
        f"{r['network']['synapses']:,} synapses, dt = {r['network']['dt_ms']} ms |",
        "",
    ]
    if r.get("link") == "interim":
        lines += ["> Built with the **interim** UART bridge (raw bus bytes, boards/interim_link.py), for "
                  "resource and timing studies: the spikeforge host driver does not speak it. The protocol "
                  "link (spikeforge.hdl.link.LinkTop) is the runtime top wherever it fits; the iCE40 UP5K "
                  "cannot hold it beside a core (docs/bitstreams.md).", ""]
    elif str(r.get("link", "")).startswith("bus bridge"):
        lines += ["> Built with the **bus bridge** (spikeforge.hdl.bus_bridge.BusBridge): the FPGA carries the "
                  "core's own bus and spikes over a CRC-checked UART protocol and the host serves the board "
                  f"protocol. Connect with `{r.get('connect')}` (docs/bus-bridge.md)."
                  + (f" Why: {r['link_note']}." if r.get("link_note") else ""), ""]
    lines += ["## Core", "", "| CoreConfig field | value |", "|---|---|"]
    for k in ("n_neurons", "n_inputs", "weight_bits", "lanes", "max_delay", "stdp", "adaptive_threshold",
              "n_current_inputs", "n_profiles", "v_bits", "i_bits"):
        lines.append(f"| {k} | {c[k]} |")
    lines += [f"| config hash | `{r['config_hash']}` |", ""]

    lines += ["## Resources", "", "| resource | used | available | use | estimate | unit |",
              "|---|---:|---:|---:|---:|---|"]
    est = (r.get("estimate") or {})
    est_map = {"luts": est.get("luts"), "bram": est.get("bram_tiles_total"), "spram": est.get("spram_tiles"),
               "dsp": est.get("dsps")}
    for key, label in RESOURCE_ROWS + (("lut4", "LUT4"),):
        row = r["resources"].get(key)
        if not row:
            continue
        e = est_map.get(key)
        lines.append(f"| {label} | {_num(row['used'])} | {_num(row['available'])} | "
                     f"{_pct(row['used'], row['available'])} | {'' if e is None else _num(e)} | {row['unit']} |")
    lines += ["", f"Estimate: {est.get('logic_model', '-')}.", ""]

    lines += ["## Clock and timing", ""]
    clk = r["clock"]
    lines += [f"- Oscillator {clk['board_hz'] / 1e6:g} MHz -> PLL ({clk['pll']['primitive']}) -> "
              f"**{clk['achieved_hz'] / 1e6:.4f} MHz** (requested {clk['requested_hz'] / 1e6:g} MHz, "
              f"VCO {clk['pll']['vco_hz'] / 1e6:.1f} MHz)."]
    if t.get("fmax_mhz") is not None:
        verdict = "met" if t["met"] else f"**NOT met** (short by {-t['slack_mhz']:.2f} MHz)"
        lines.append(f"- Fmax {t['fmax_mhz']:.2f} MHz against the {t['target_mhz']:.2f} MHz target: timing {verdict}.")
        cp = t.get("critical_path")
        if cp:
            lines.append(f"- Critical path: `{cp['start']}` -> `{cp['end']}`, {cp['total_ns']:.2f} ns "
                         f"({cp['logic_ns']:.2f} logic, {cp['routing_ns']:.2f} routing).")
    else:
        lines.append(f"- Fmax: {t.get('note', 'not available')}.")
    lines.append("")

    lat = r.get("latency") or {}
    lines += ["## Timestep latency", ""]
    if lat.get("mean_us") is not None:
        lines += [
            f"Predicted by the cycle model for this network's activity ({lat['steps']} simulated steps on "
            f"the golden model: {lat['activity']['input_spikes_per_step']:.2f} input and "
            f"{lat['activity']['neuron_spikes_per_step']:.2f} neuron spikes per step) at "
            f"{clk['achieved_hz'] / 1e6:.2f} MHz:", "",
            f"- mean {lat['mean_us']:.2f} us ({lat['mean_cycles']:.0f} cycles), median {lat['median_us']:.2f} us, "
            f"worst {lat['max_us']:.2f} us ({lat['max_cycles']} cycles)",
            f"- real-time factor: dt / mean step = {lat['realtime_factor']:.1f}x "
            + ("(faster than real time)" if lat["realtime_factor"] >= 1 else "(slower than real time)"), ""]
    else:
        lines += [f"{lat.get('note', 'not available')}", ""]

    q = r.get("quantisation") or {}
    lines += ["## Quantisation", ""]
    projs = q.get("projections") or []
    if projs:
        lines += ["| projection | synapses | rounded to zero | max rel. weight error | plastic |",
                  "|---|---:|---:|---:|---|"]
        for p in projs:
            lines.append(f"| {p['name']} | {p['synapses']:,} | {p['rounded_to_zero']:,} | "
                         f"{100 * p['max_rel_error']:.2f} % | {'yes' if p['plastic'] else 'no'} |")
        lines.append("")
    risks = q.get("risks") or []
    if risks:
        lines += [f"- {x['severity']}: {x['message']}" for x in risks] + [""]
    else:
        lines += ["No quantisation risks reported.", ""]
    lines.append(f"{q.get('profiles', '?')} neuron parameter profile(s). Full details: `report.json` "
                 "(quantisation) or `spikeforge inspect`.")
    lines.append("")

    sa = r.get("standalone")
    if sa:
        lines += ["## Standalone", "",
                  f"- Boot ROM: {sa['rom_words']:,} of {sa['rom_depth']:,} words (16 bit); stimulus: "
                  f"{sa['stimulus_steps']} steps, looping; one step every {sa['step_cycles']:,} cycles "
                  f"({sa['step_ms']} ms).",
                  f"- ROM contents {sa['rom_method']}.",
                  "- Output: UART spike stream (2 bytes per spike, 0xFF per step; "
                  "`spikeforge.boards.standalone.decode_spike_stream`), LED 0 alive, LED 1 spikes.", ""]

    lines += ["## Build", ""]
    secs = r.get("build_seconds") or {}
    if secs:
        lines.append("- Steps: " + ", ".join(f"{k.replace('_', ' ')} {v:.1f} s" for k, v in secs.items()))
    lines.append(f"- Total: {r.get('total_seconds', 0):.1f} s"
                 + (" (bitstream from the cache)" if r["bitstream"].get("cached") else ""))
    lines.append("- Tools: " + ", ".join(f"{k} {v}" for k, v in (r.get("tools") or {}).items()))
    if r.get("vivado"):
        lines.append(f"- Vivado: {r['vivado']}")
    lines += ["", "## Flash", "", f"```\n{r.get('flash', '')}\n```", ""]
    return "\n".join(lines)


def write_reports(out_dir: Path, report: dict) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    js = out_dir / "report.json"
    md = out_dir / "report.md"
    js.write_text(json.dumps(report, indent=2, default=_json_default))
    md.write_text(render_markdown(report))
    return js, md


def _json_default(x):
    try:
        import numpy as np

        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(x, Path):
        return str(x)
    return str(x)
