"""Reading what the tools say: utilisation and Fmax from nextpnr's log, cell counts from Yosys' log,
and the same figures from Vivado's report files.

nextpnr prints its "Device utilisation" block after packing and "Max frequency for clock ..." lines
after placement and again after routing; the last line per clock is the routed result. Yosys ends
``synth_*`` with a ``stat`` table whose last occurrence is the final netlist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_UTIL_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%")
_FMAX_LINE = re.compile(
    r"^Info: Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)")
_DERIVED = re.compile(r"Derived frequency constraint of ([\d.]+) MHz for net (\S+)")


@dataclass
class ClockTiming:
    clock: str
    fmax_mhz: float
    target_mhz: float
    passed: bool

    @property
    def slack_mhz(self) -> float:
        return self.fmax_mhz - self.target_mhz


@dataclass
class PnrLog:
    """What one nextpnr log says."""

    utilisation: dict[str, tuple[int, int]] = field(default_factory=dict)  # cell type -> (used, available)
    clocks: dict[str, ClockTiming] = field(default_factory=dict)
    derived: dict[str, float] = field(default_factory=dict)  # net -> MHz (PLL outputs)
    errors: list[str] = field(default_factory=list)
    critical_paths: dict[str, dict] = field(default_factory=dict)  # clock -> start, end, ns

    def used(self, cell: str) -> int:
        return self.utilisation.get(cell, (0, 0))[0]

    def available(self, cell: str) -> int:
        return self.utilisation.get(cell, (0, 0))[1]


_CRIT_HEADER = re.compile(r"^Info: Critical path report for clock '([^']+)'")
_CRIT_ENDPOINT = re.compile(r"^Info:\s+(?:\w+\s+[\d.]+\s+[\d.]+\s+)?(Source|Sink)\s+(\S+)")
_CRIT_TOTAL = re.compile(r"^Info: ([\d.]+) ns logic, ([\d.]+) ns routing")


def parse_nextpnr_log(text: str) -> PnrLog:
    out = PnrLog()
    in_util = False
    crit: dict | None = None
    for line in text.splitlines():
        m = _CRIT_HEADER.match(line)
        if m:
            crit = {"clock": m.group(1), "start": None, "end": None}
            continue
        if crit is not None:
            e = _CRIT_ENDPOINT.match(line)
            if e:
                if crit["start"] is None:
                    crit["start"] = e.group(2)
                crit["end"] = e.group(2)
                continue
            t = _CRIT_TOTAL.match(line)
            if t:
                crit["logic_ns"], crit["routing_ns"] = float(t.group(1)), float(t.group(2))
                crit["total_ns"] = crit["logic_ns"] + crit["routing_ns"]
                out.critical_paths[crit.pop("clock")] = crit
                crit = None
                continue
        if line.startswith("Info: Device utilisation"):
            in_util, out.utilisation = True, {}
            continue
        if in_util:
            m = _UTIL_LINE.match(line)
            if m:
                out.utilisation[m.group(1)] = (int(m.group(2)), int(m.group(3)))
                continue
            in_util = False
        m = _FMAX_LINE.match(line)
        if m:
            out.clocks[m.group(1)] = ClockTiming(m.group(1), float(m.group(2)), float(m.group(4)),
                                                 m.group(3) == "PASS")
            continue
        m = _DERIVED.search(line)
        if m:
            out.derived[m.group(2)] = float(m.group(1))
        if line.startswith("ERROR:"):
            out.errors.append(line[len("ERROR:"):].strip())
    return out


_STAT_CELL = re.compile(r"^\s+(\d+)\s+([A-Z][A-Z0-9_]+)\s*$")


def parse_yosys_stat(text: str) -> dict[str, int]:
    """Primitive cell counts (SB_LUT4, TRELLIS_FF, DP16KD, ...) of the last ``stat`` in a Yosys log:
    the top module's table, which after ``synth_*`` (flattened) is the whole netlist."""
    starts = [m.start() for m in re.finditer(r"Printing statistics", text)]
    if not starts:
        return {}
    block = text[starts[-1]:].split("=== design hierarchy ===")[0]
    counts: dict[str, int] = {}
    for line in block.splitlines():
        m = _STAT_CELL.match(line)
        if m:
            counts[m.group(2)] = counts.get(m.group(2), 0) + int(m.group(1))
    return counts


def read(path: Path) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


# ---- Vivado ----------------------------------------------------------------------------------------
_VIVADO_UTIL = re.compile(r"^\|\s*([^|]+?)\s*\|\s*([\d.]+)\s*\|\s*\d+\s*\|\s*(?:\d+\s*\|\s*)?([\d.]+)\s*\|")


def parse_vivado_utilization(text: str) -> dict[str, tuple[float, float]]:
    """``report_utilization`` tables -> row name -> (used, available) (Slice LUTs, Block RAM Tile, DSPs...)."""
    out = {}
    for line in text.splitlines():
        m = _VIVADO_UTIL.match(line)
        if m:
            name = m.group(1).strip().rstrip("*").strip()
            out.setdefault(name, (float(m.group(2)), float(m.group(3))))
    return out


def parse_vivado_wns(text: str) -> float | None:
    """Worst negative slack (ns) from ``report_timing_summary``."""
    m = re.search(r"WNS\(ns\).*?\n\s*-+.*?\n\s*(-?[\d.]+)", text, re.S)
    return float(m.group(1)) if m else None
