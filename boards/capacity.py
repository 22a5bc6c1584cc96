"""Will a CoreConfig fit a board? Memory, DSP and logic estimates per FPGA family, checked against the
part, before any tool runs.

- Memory: the neuron core is elaborated and every memory it really instantiates (name, depth, width)
  is placed the way Yosys' memory mapper would place it: iCE40 weights in SPRAM when that is cheaper
  than block RAM (the single-port weight memory is the one SPRAM candidate), everything else in the
  family's block RAM tile in its best aspect ratio, tiny memories in LUT RAM / logic.
- DSP: one multiplier per product of the neuron pipeline (5, +2 with STDP, +1 with threshold
  adaptation), wider operands taking more.
- Logic: a linear model in what changes the logic (address widths, lanes times synapse width, weight
  width, features, and the top level around the core), fitted per FPGA family to every real build of
  the current hardware (boards/calibration.json, written by ``benchmarks/bench_boards.py --calibrate``,
  plus the local bitstream cache), whatever its top: the top level is a feature, so bus-bridge builds
  also calibrate the core's own logic. ``cross_validate`` predicts each build from the others (docs/
  bitstreams.md has the numbers). Each build's report shows the estimate next to the tools' count.
- The host link: a runtime bitstream with the protocol link (``spikeforge.hdl.link.LinkTop``) adds the
  link's own memories (``LinkTop.own_memories``: receive FIFO, frame buffer, per-core input/spike
  slots, placed like the core's) and its own logic (the model's link terms; their prior is the
  measured ``LINK_LOGIC_BASE`` + ``LINK_LOGIC_PER_LINE`` * (N + A)); the bus bridge its receive FIFO and
  its logic (prior ``BRIDGE_LOGIC``).

The estimate decides which CoreConfig to build and refuses networks that cannot fit with a message
that names the limit; the tools have the last word (a build that still does not fit fails naming the
same limit).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from spikeforge.boards.catalog import Board
from spikeforge.core.config import CoreConfig

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")

#: share of the logic a build may use: placers need slack (iCE40 packing fails close to 100 %)
LOGIC_HEADROOM = {"ice40": 0.97, "ecp5": 0.90, "xc7": 0.85}


class CapacityError(ValueError):
    """The network does not fit the board; the message names the limit and the ways out."""


# ---- the memories of a core ----------------------------------------------------------------------
@dataclass
class CoreMemory:
    name: str
    depth: int
    width: int

    @property
    def bits(self) -> int:
        return self.depth * self.width


_memory_cache: dict[CoreConfig, list[CoreMemory]] = {}


def memory_key(config: CoreConfig) -> str:
    """The name of ``config``'s memory list in the stores below (the hardware version is separate)."""
    import hashlib

    return hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _stored_memories(config: CoreConfig) -> list[CoreMemory] | None:
    """``config``'s memories as elaborated before by this hardware version: in the shipped
    calibration's table (its builds' cores) or in the local cache (every other core)."""
    from spikeforge.boards.toolchain import design_fingerprint

    key, fingerprint = memory_key(config), design_fingerprint()
    shipped = load_calibration()
    rows = shipped.get("memories", {}).get(key) if shipped.get("fingerprint") == fingerprint else None
    if rows is None:
        try:
            rows = json.loads((_memory_store(fingerprint) / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None
    return [CoreMemory(str(name), int(depth), int(width)) for name, depth, width in rows]


def _memory_store(fingerprint: str) -> Path:
    from spikeforge.boards.toolchain import cache_home

    return cache_home() / "capacity" / f"memories-{fingerprint}"


def elaborated_memories(config: CoreConfig) -> list[CoreMemory]:
    """Every memory the neuron core for ``config`` instantiates, from its elaborated RTL (0.1-0.3 s)."""
    from amaranth.hdl import Fragment
    from amaranth.hdl._mem import MemoryInstance

    from spikeforge.boards.interim_link import neuron_core_class

    found = []

    def walk(fragment):
        for sub, name, *_ in fragment.subfragments:
            if isinstance(sub, MemoryInstance):
                data = sub._data
                found.append(CoreMemory(str(name), int(data.depth), int(data.shape.size
                                        if hasattr(data.shape, "size") else data.shape.width)))
            else:
                walk(sub)

    walk(Fragment.get(neuron_core_class()(config), None))
    return found


def memory_table(configs) -> dict[str, list[list]]:
    """{memory_key: [[name, depth, width], ...]} of ``configs``: what the shipped calibration stores for
    its builds, so a fresh machine fits the logic model without elaborating each of them."""
    return {memory_key(c): [[m.name, m.depth, m.width] for m in core_memories(c)] for c in configs}


def core_memories(config: CoreConfig) -> list[CoreMemory]:
    """Every memory the neuron core for ``config`` instantiates. Elaborates the RTL once per config
    and hardware version: the result is kept in memory and in the cache folder (the logic model
    needs the memories of every calibration build, and fits on each estimate)."""
    if config in _memory_cache:
        return _memory_cache[config]
    found = _stored_memories(config)
    if found is None:
        from spikeforge.boards.toolchain import design_fingerprint
        from spikeforge.file_lock import atomic_write

        found = elaborated_memories(config)
        store = _memory_store(design_fingerprint())
        try:
            store.mkdir(parents=True, exist_ok=True)   # parallel test workers share the store
            atomic_write(store / f"{memory_key(config)}.json", json.dumps([[m.name, m.depth, m.width] for m in found]))
        except OSError:
            pass   # a read-only cache only costs the elaboration next time
    _memory_cache[config] = found
    return found


# ---- placing memories ----------------------------------------------------------------------------
@dataclass
class Placement:
    name: str
    depth: int
    width: int
    kind: str      # spram | bram | lutram | logic
    tiles: float   # SPRAM tiles for spram, block RAM tiles (the board's tile) for bram

    def to_dict(self) -> dict:
        return asdict(self)


def _tiles(depth: int, width: int, modes) -> int:
    """Tiles of a memory in the best single aspect ratio of a block RAM."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in modes)


def _packed_tiles(depth: int, width: int, row_bits: int, rows: int) -> int:
    """Tiles when the width is split into 16-bit columns and power-of-two slices, each slice packing
    ``row_bits // slice`` words per row (what Yosys' memory mapper does for iCE40 RAM)."""
    parts = [row_bits] * (width // row_bits)
    rest = width % row_bits
    parts += [1 << b for b in range(rest.bit_length()) if rest >> b & 1]
    return sum(math.ceil(math.ceil(depth / (row_bits // p)) / rows) for p in parts)


ICE40_EBR_MODES = ((256, 16), (512, 8), (1024, 4), (2048, 2))
ECP5_EBR_MODES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
XC7_RAMB18_MODES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
XC7_RAMB36_MODES = ((32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72))
#: Yosys' costs: an EBR ~65 (64 plus emulation), logic (flip-flops) 1 per bit
ICE40_EBR_COST = 65

#: The top level of runtime bitstreams that speak the spikeforge protocol (docs/protocol.md).
LINK_TOP = "spikeforge.hdl.link.LinkTop"
#: The protocol link's own logic (without its core), in the family's logic units: LINK_LOGIC_BASE +
#: LINK_LOGIC_PER_LINE * (N + A): the link keeps N-bit spike and A-bit input bitmaps with their
#: multiplexers. iCE40, measured with Yosys 0.70 / nextpnr-ice40 (docs/bitstreams.md, "The protocol
#: link"): the link with a 16-neuron, 8-input core is 7,562 logic cells, the same core behind the
#: interim bridge 3,498; the slope is Yosys' LUT count of the link around a 256-neuron, 256-input core
#: (5,766 LUT4 in the controller against 2,883 for 16 / 8). ECP5 maps to LUT4 like iCE40 (measured:
#: 8,168 LUT4 for link and 16-neuron core, less than this estimate); the 7 series' LUT6 take about
#: two thirds.
LINK_LOGIC_BASE = {"ice40": 3900, "ecp5": 3900, "xc7": 2600}
LINK_LOGIC_PER_LINE = {"ice40": 5.9, "ecp5": 5.9, "xc7": 4.0}


#: The bus bridge (``spikeforge.hdl.bus_bridge.BusBridge``): a constant amount of logic beyond the
#: interim bridge the calibration builds use (CRC-16 checker and generator, parser, reply sender), and
#: its receive FIFO (one 512 x 8 block RAM). Measured: docs/bus-bridge.md, "Size".
BRIDGE_TOP = "spikeforge.hdl.bus_bridge.BusBridge"
BRIDGE_LOGIC = {"ice40": 450, "ecp5": 450, "xc7": 300}


def bridge_memories(config: CoreConfig) -> list[CoreMemory]:
    """The bus bridge's own memories (its receive FIFO) at the board flow's parameters."""
    from spikeforge.hdl.bus_bridge import BusBridge

    top = BusBridge([config])
    top._MustUse__silence = True  # described, never elaborated
    return [CoreMemory(name, depth, width) for name, depth, width in top.own_memories()]


def link_memories(config: CoreConfig) -> list[CoreMemory]:
    """The protocol link's own memories around one core of ``config``, at the parameters the board flow
    builds it with (``LinkTop(configs, clk_freq, baud)``: its defaults)."""
    from spikeforge.hdl.link import LinkTop

    top = LinkTop([config])
    top._MustUse__silence = True  # described, never elaborated
    return [CoreMemory(name, depth, width) for name, depth, width in top.own_memories()]


def link_logic(config: CoreConfig, family: str) -> int:
    """Logic units of the protocol link around one core of ``config``: the logic model's share of the
    link (LINK_LOGIC_* where no build with the link calibrates it)."""
    return logic_model(family).top_logic(config, "link")


def place_link_memory(mem: CoreMemory, family: str) -> Placement:
    """Like place_memory; Yosys turns the link's small ROMs (IDENTIFY reply, RESET script) into logic on
    iCE40 (measured), so they take no block RAM there."""
    if family == "ice40" and mem.name.endswith("_rom"):
        return Placement(mem.name, mem.depth, mem.width, "logic", 0)
    return place_memory(mem, family)


def ice40_ebr_tiles(depth: int, width: int) -> int:
    return min(_tiles(depth, width, ICE40_EBR_MODES), _packed_tiles(depth, width, 16, 256))


def ice40_spram_tiles(depth: int, width: int) -> int:
    return _packed_tiles(depth, width, 16, 16384)


def place_memory(mem: CoreMemory, family: str) -> Placement:
    """Where a memory of the core goes. iCE40: the weights always in SPRAM (the flow marks that memory
    ``ram_style = "huge"``: SPRAM is otherwise unused, and it leaves the 4 Kbit EBR to the rest);
    other memories in EBR unless flip-flops are cheaper (Yosys: one unit per bit, ~65 per EBR).
    ECP5: every memory in DP16KD. 7 series: Vivado's habit, small memories in LUT RAM."""
    d, w = mem.depth, mem.width
    if family == "ice40":
        if mem.name == "weights":
            return Placement(mem.name, d, w, "spram", ice40_spram_tiles(d, w))
        ebr = ice40_ebr_tiles(d, w)
        if mem.bits < ebr * ICE40_EBR_COST:
            return Placement(mem.name, d, w, "logic", 0)
        return Placement(mem.name, d, w, "bram", ebr)
    if family == "ecp5":
        # Yosys puts every memory of the core in DP16KD, even one-word ones (measured: no LUT RAM)
        return Placement(mem.name, d, w, "bram", _tiles(d, w, ECP5_EBR_MODES))
    if family == "xc7":
        if d <= 64 or mem.bits <= 1024:
            return Placement(mem.name, d, w, "lutram", 0)
        # in RAMB36 units: the cheaper of RAMB18 halves and whole RAMB36
        return Placement(mem.name, d, w, "bram",
                         min(_tiles(d, w, XC7_RAMB18_MODES) / 2, _tiles(d, w, XC7_RAMB36_MODES)))
    raise ValueError(f"unknown FPGA family {family!r}")


def rom_tiles(words16: int, family: str) -> float:
    """Block RAM tiles of a 16-bit wide ROM of ``words16`` words (the standalone boot ROM)."""
    if words16 <= 0:
        return 0
    return place_memory(CoreMemory("boot_rom", words16, 16), family).tiles


# ---- DSPs ------------------------------------------------------------------------------------------
def dsp_count(config: CoreConfig, family: str) -> int:
    """Multipliers of the neuron pipeline: membrane (3), current decays (2), adaptation, post trace and
    pre trace decays. 16-bit Q1.15 coefficients times state operands; operands wider than the DSP's
    port take a second block."""
    port = {"ice40": 16, "ecp5": 18, "xc7": 25}[family]
    operands = [config.v_bits + 1, config.i_bits, config.i_bits, config.i_bits, config.i_bits]
    if config.adaptive_threshold:
        operands.append(config.adapt_bits)
    if config.stdp:
        operands += [config.trace_bits, config.trace_bits]
    return sum(math.ceil((bits - 1) / port) if bits > port else 1 for bits in operands)


# ---- logic -----------------------------------------------------------------------------------------
#: The top levels the logic model knows, by the end of their qualified name: the interim bridge (the
#: core's own cost, the baseline), the bus bridge, the protocol link, and the standalone top.
TOP_KINDS = {"InterimUartLink": "interim", "BusBridge": "bridge", "LinkTop": "link", "standalone": "standalone"}

FEATURES = ("one", "stdp", "adaptive", "delay_bits", "extra_lanes", "lane_bits", "stdp_lanes", "weight_bits",
            "weight_addr_bits", "weight_tiles", "neuron_bits", "current_inputs", "inputs", "kbits_in_logic",
            "standalone", "bridge", "link", "link_lines")


def top_kind(top: str | None, standalone: bool = False) -> str | None:
    """"interim", "bridge", "link" or "standalone" for a top level's (qualified) name; None = the core
    with the interim bridge (what ``estimate(top=None)`` means); None for a top the model does not know."""
    if standalone:
        return "standalone"
    if top is None:
        return "interim"
    return TOP_KINDS.get(str(top).rsplit(".", 1)[-1])


def features(config: CoreConfig, top: str = "interim", family: str = "ice40") -> np.ndarray:
    """What the logic grows with: the core's features; its extra lanes, counted alone, times the
    synapse width (each lane has its own weight path: 8-bit lanes are cheap, 13-bit STDP lanes are
    not) and with STDP (each lane updates its synapse); the weight width; address widths; the tiles of
    the weight memory (tens: their read multiplexers are logic, ~183 block RAMs for a 432-neuron ECP5
    core); the memories small enough to become flip-flops or LUT RAM (in Kbit) -- and the top level
    around the core (``top`` is a ``top_kind``): the bus bridge and standalone top add a constant, the
    protocol link a constant plus its spike and input bitmaps (N + A lines)."""
    words = config.n_sources * config.n_neurons // config.lanes
    placed = [(m, place_memory(m, family)) for m in core_memories(config)]
    in_logic = sum(m.bits for m, p in placed if p.kind in ("logic", "lutram"))
    weight_tiles = sum(p.tiles for m, p in placed if m.name == "weights" and p.kind in ("bram", "spram"))
    synapse_bits = config.weight_bits + int(config.stdp)
    extra_lanes = config.lanes - 1
    link = top == "link"
    return np.array([
        1.0, float(config.stdp), float(config.adaptive_threshold), float(config.delay_bits),
        float(extra_lanes), float(extra_lanes * synapse_bits), float(extra_lanes * config.stdp),
        float(config.weight_bits), math.log2(max(2, words)), weight_tiles / 10,
        math.log2(max(2, config.n_neurons)), float(config.n_current_inputs > 0), float(config.n_inputs > 0),
        in_logic / 1024, float(top == "standalone"), float(top == "bridge"), float(link),
        float(config.n_neurons + config.n_inputs) if link else 0.0,
    ])


#: Starting coefficients per family (logic units per feature), used where calibration data is thin:
#: every direction no build has explored keeps these (e.g. the protocol link on the iCE40, which no
#: calibration build can hold). The top levels' priors are their measured sizes (docs/bitstreams.md,
#: docs/bus-bridge.md): the protocol link LINK_LOGIC_BASE + LINK_LOGIC_PER_LINE (N + A), the bus
#: bridge BRIDGE_LOGIC.
PRIOR = {
    "ice40": dict(one=3500, stdp=900, adaptive=250, delay_bits=80, extra_lanes=100, lane_bits=20, stdp_lanes=250,
                  weight_bits=20, weight_addr_bits=30, weight_tiles=0, neuron_bits=25, current_inputs=80, inputs=80,
                  kbits_in_logic=1400, standalone=450),
    "ecp5": dict(one=3500, stdp=1000, adaptive=250, delay_bits=80, extra_lanes=100, lane_bits=25, stdp_lanes=250,
                 weight_bits=20, weight_addr_bits=30, weight_tiles=0, neuron_bits=25, current_inputs=80, inputs=80,
                 kbits_in_logic=300, standalone=450),
    "xc7": dict(one=2400, stdp=700, adaptive=180, delay_bits=60, extra_lanes=70, lane_bits=18, stdp_lanes=180,
                weight_bits=15, weight_addr_bits=20, weight_tiles=0, neuron_bits=18, current_inputs=60, inputs=60,
                kbits_in_logic=150, standalone=350),
}
for _family, _prior in PRIOR.items():
    _prior.update(bridge=BRIDGE_LOGIC[_family], link=LINK_LOGIC_BASE[_family],
                  link_lines=LINK_LOGIC_PER_LINE[_family])


@dataclass
class LogicModel:
    family: str
    coefficients: dict[str, float]
    samples: int
    source: str

    def predict(self, config: CoreConfig, top: str = "interim") -> int:
        """Logic units of ``config`` inside the top level ``top`` (a ``top_kind``)."""
        x = features(config, top, self.family)
        return int(round(float(np.dot(x, [self.coefficients[f] for f in FEATURES]))))

    def top_logic(self, config: CoreConfig, top: str) -> int:
        """The top level's own share of ``predict(config, top)``."""
        return self.predict(config, top) - self.predict(config, "interim")


def load_calibration(path: Path = CALIBRATION_FILE) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {"samples": []}


LOGIC_CELL = {"ice40": "ICESTORM_LC", "ecp5": "TRELLIS_COMB"}


def sample_from_build(design: dict, utilisation: dict) -> dict | None:
    """A calibration sample from a build's design.json and nextpnr utilisation. The model is one
    core inside one of the top levels it knows (TOP_KINDS), so builds of several cores
    (``design["cores"]`` > 1, benchmarks/bench_boards.py's K-core tops) and builds with other tops
    (the blimp's standalone controller) are not samples: their count would be taken for one core's."""
    family = design.get("family")
    cell = LOGIC_CELL.get(family)
    if cell is None or cell not in utilisation or "config" not in design or design.get("cores", 1) != 1:
        return None
    standalone = design.get("mode") == "standalone"
    top = design.get("top", design.get("mode"))
    if top_kind(top, standalone) is None:
        return None
    return {"family": family, "board": design.get("board"), "config": design["config"],
            "standalone": standalone, "top": top, "luts": int(utilisation[cell][0]),
            "fingerprint": design.get("fingerprint")}


def cached_samples(cache_root: Path | None = None) -> list[dict]:
    """Calibration samples from every build in the bitstream cache: each real build refines the
    estimate of the next (only builds of the current hardware sources count)."""
    from spikeforge.boards.build import bitstream_cache_root
    from spikeforge.boards.toolchain import design_fingerprint

    root = Path(cache_root) if cache_root else bitstream_cache_root()
    fingerprint = design_fingerprint()
    out = []
    # result.json: finished builds; failed.json: builds nextpnr could not place (their size counts too)
    for result in sorted(list(root.glob("*/result.json")) + list(root.glob("*/failed.json"))):
        try:
            stamp = result.stat().st_mtime_ns
            if _build_samples.get(result, (None,))[0] != stamp:
                design = json.loads((result.parent / "design.json").read_text())
                util = json.loads(result.read_text())["utilisation"]
                _build_samples[result] = (stamp, sample_from_build(design, util))
        except (OSError, ValueError, KeyError):
            continue
        sample = _build_samples[result][1]
        if sample and sample["fingerprint"] == fingerprint:
            out.append(sample)
    return out


#: each cached build's sample (or None), by its result file, with that file's mtime: every estimate
#: collects the cache's builds, and an explore sweep or a choose_core loop makes many estimates
_build_samples: dict[Path, tuple[int, dict | None]] = {}


def _sample_key(sample: dict) -> str:
    """The same build in the shipped calibration and in the local cache (the calibration is made from a cache)."""
    return json.dumps([sample["config"], sample.get("top"), sample["luts"], sample.get("fingerprint")], sort_keys=True)


def calibration_samples(family: str) -> tuple[list[dict], str]:
    """The samples the logic model is fitted to, and where they come from: builds of the current
    hardware in the shipped calibration (boards/calibration.json) and in the local bitstream cache."""
    from spikeforge.boards.toolchain import design_fingerprint

    fingerprint = design_fingerprint()
    shipped = [s for s in load_calibration().get("samples", []) if s.get("family") == family]
    current = [s for s in shipped if s.get("fingerprint") == fingerprint]
    known = {_sample_key(s) for s in current}
    local = [s for s in cached_samples() if s["family"] == family and _sample_key(s) not in known]
    if current or local:
        return current + local, (f"{len(current)} calibration build(s) of this hardware version"
                                 f" + {len(local)} other cached build(s)" + (tools_note() if current else ""))
    if shipped:
        return shipped, f"{len(shipped)} calibration build(s) of an older hardware version (re-calibrate)"
    return [], "prior (no calibration builds)"


@functools.lru_cache(maxsize=1)
def tools_note() -> str:
    """What to add to the model's source line when the installed tools are not the calibration's
    (its cell counts come from its Yosys and nextpnr; constraints.txt pins them): which differ and
    where the pins are. Empty when they agree."""
    from spikeforge.boards.toolchain import tool_versions

    installed = tool_versions()
    differ = [f"{dist} {installed[dist]} (calibrated with {version})"
              for dist, version in load_calibration().get("tools", {}).items()
              if installed.get(dist, "missing") not in (version, "missing")]
    if not differ:
        return ""
    return ("; other tools than the calibration's: " + ", ".join(differ)
            + " -- estimates may be off; the spikeforge repository's constraints.txt pins the calibrated ones")


def logic_model(family: str, calibration: dict | None = None) -> LogicModel:
    """The logic model of a family: the prior, pulled toward real builds by ridge regression. Every
    build of the family counts, whatever its top level (the top is a feature), so builds with the bus
    bridge also teach the model the core's own logic, and the other way round. ``calibration`` (a dict
    with "samples") replaces the automatic sample collection."""
    if calibration is None:
        samples, source = calibration_samples(family)
    else:
        samples = [s for s in calibration.get("samples", []) if s.get("family") == family]
        source = f"{len(samples)} given calibration build(s)"
    samples = [s for s in samples if _sample_top(s) is not None]
    key = json.dumps([family, source, [_sample_key(s) for s in samples]])
    if key not in _model_cache:
        _model_cache[key] = _fit(family, samples, source)
    return _model_cache[key]


#: fitted models by their samples: an explore sweep or a choose_core loop estimates many configs
_model_cache: dict[str, LogicModel] = {}


def _fit(family: str, samples: list[dict], source: str) -> LogicModel:
    prior = np.array([PRIOR[family][f] for f in FEATURES])
    if not samples:
        return LogicModel(family, dict(PRIOR[family]), 0, source)
    X = np.array([features(CoreConfig.from_dict(s["config"]), _sample_top(s), family) for s in samples])
    y = np.array([float(s["luts"]) for s in samples])
    # ridge toward the prior: minimise |X b - y|^2 + lam |b - prior|^2. A tiny lam lets the data win
    # wherever it says something and keeps the prior in the directions no build has explored.
    XtX = X.T @ X
    lam = 1e-6 * max(1.0, float(np.trace(XtX)))
    A = XtX + lam * np.eye(len(FEATURES))
    b = np.linalg.solve(A, X.T @ y + lam * prior)
    return LogicModel(family, dict(zip(FEATURES, map(float, b))), len(samples), source)


def _sample_top(sample: dict) -> str | None:
    return top_kind(sample.get("top"), sample.get("standalone", False))


def cross_validate(family: str, calibration: dict | None = None) -> list[dict]:
    """Leave-one-out check of the logic model: every build predicted by the model fitted to the others
    (one row per distinct core and top level: repeated builds of one design are one row)."""
    samples = (calibration_samples(family)[0] if calibration is None else
               [s for s in calibration.get("samples", []) if s.get("family") == family])
    keyed = [(json.dumps([s["config"], _sample_top(s)], sort_keys=True), s) for s in samples
             if _sample_top(s) is not None]
    rows = []
    for key, s in dict(keyed).items():
        model = logic_model(family, {"samples": [t for k, t in keyed if k != key]})
        predicted = model.predict(CoreConfig.from_dict(s["config"]), _sample_top(s))
        rows.append({"config": s["config"], "top": _sample_top(s), "measured": s["luts"], "predicted": predicted,
                     "error": (predicted - s["luts"]) / s["luts"]})
    return rows


def calibration_builds(calibration: dict | None = None) -> list[tuple[str, str, dict]]:
    """(board, top, config) of every runtime build in the calibration, once each: what to rebuild
    after a hardware or tool change (``benchmarks/bench_boards.py --rebuild-calibration``). ``top`` is
    the runtime top's name for ``boards.top.design_factory`` (link, bridge, interim). Standalone builds
    are left out: they are made from a network's ROM (``spikeforge compile --standalone``)."""
    calibration = load_calibration() if calibration is None else calibration
    builds = {}
    for s in calibration.get("samples", []):
        top = _sample_top(s)
        if top in (None, "standalone"):
            continue
        builds.setdefault(json.dumps([s["board"], top, s["config"]], sort_keys=True), (s["board"], top, s["config"]))
    return list(builds.values())


def error_summary(rows: list[dict]) -> dict:
    """``cross_validate``'s rows in three numbers: {"designs", "mean_error", "worst_error"} (of |error|)."""
    errors = np.abs([r["error"] for r in rows])
    return {"designs": len(rows), "mean_error": float(errors.mean()), "worst_error": float(errors.max())}


# ---- the estimate ----------------------------------------------------------------------------------
@dataclass
class Limit:
    name: str       # logic | block RAM | SPRAM | DSP
    needed: float
    available: float
    unit: str

    @property
    def fits(self) -> bool:
        return self.needed <= self.available

    def to_dict(self) -> dict:
        return {"name": self.name, "needed": self.needed, "available": self.available, "unit": self.unit,
                "fits": self.fits}


@dataclass
class Estimate:
    board: str
    config: CoreConfig
    standalone: bool
    luts: int
    dsps: int
    bram_tiles: float
    spram_tiles: int
    rom_tiles: float
    memories: list[Placement] = field(default_factory=list)
    limits: list[Limit] = field(default_factory=list)
    model: str = ""

    @property
    def fits(self) -> bool:
        return all(limit.fits for limit in self.limits)

    @property
    def failed(self) -> list[Limit]:
        return [limit for limit in self.limits if not limit.fits]

    def to_dict(self) -> dict:
        return {"luts": self.luts, "dsps": self.dsps, "bram_tiles": self.bram_tiles,
                "spram_tiles": self.spram_tiles, "rom_tiles": self.rom_tiles, "fits": self.fits,
                "limits": [l.to_dict() for l in self.limits], "logic_model": self.model,
                "memories": [p.to_dict() for p in self.memories]}


LOGIC_UNIT = {"ice40": "logic cells", "ecp5": "LUT4", "xc7": "LUT6"}
BRAM_UNIT = {"ice40": "4 Kbit EBR", "ecp5": "18 Kbit DP16KD", "xc7": "36 Kbit RAMB36"}


# ---- Yosys' own count ------------------------------------------------------------------------------
CENSUS_CELLS = {
    "ice40": {"bram": ("SB_RAM40_4K",), "spram": ("SB_SPRAM256KA",), "dsp": ("SB_MAC16",)},
    "ecp5": {"bram": ("DP16KD",), "spram": (), "dsp": ("MULT18X18D",)},
}
CENSUS_SCRIPT = {"ice40": "synth_ice40 -spram -dsp -top spikeforge_core -run begin:map_ffram",
                 "ecp5": "synth_ecp5 -top spikeforge_core -run begin:map_ffram"}


def census(config: CoreConfig, family: str, *, cache_root: Path | None = None) -> dict | None:
    """Block RAM, SPRAM and multipliers of the core exactly as Yosys maps them for ``family`` (the
    synthesis script up to memory mapping, a few seconds), cached per config and hardware version.
    None for families the open tools do not build (7 series)."""
    if family not in CENSUS_SCRIPT:
        return None
    import hashlib

    from amaranth.back import rtlil

    from spikeforge.file_lock import locked
    from spikeforge.boards.interim_link import neuron_core_class
    from spikeforge.boards.logs import parse_yosys_stat, read
    from spikeforge.boards.netlist import prepare_for_synthesis
    from spikeforge.boards.toolchain import (
        cache_home, design_fingerprint, run_tool, tool_environment, tool_versions,
    )

    key = hashlib.sha256(json.dumps([config.to_dict(), family, design_fingerprint(), tool_versions()],
                                    sort_keys=True).encode()).hexdigest()[:16]
    root = (cache_root or cache_home() / "capacity") / f"{family}-{key}"
    result = root / "census.json"
    with locked(root.parent / f".{family}-{key}.lock"):
        if result.exists():
            return json.loads(result.read_text())
        root.mkdir(parents=True, exist_ok=True)
        core = neuron_core_class()(config)
        (root / "core.il").write_text(prepare_for_synthesis(rtlil.convert(core, name="spikeforge_core"), family))
        (root / "census.ys").write_text(f"read_rtlil core.il\n{CENSUS_SCRIPT[family]}\ntee -o stat.txt stat\n")
        run_tool(["yosys", "-q", "-l", "census.log", "census.ys"], cwd=root, log=root / "census.stdout.log",
                 env=tool_environment(), what="memory census (yosys)")
        cells = parse_yosys_stat(read(root / "stat.txt"))
        counts = {kind: sum(cells.get(c, 0) for c in names) for kind, names in CENSUS_CELLS[family].items()}
        result.write_text(json.dumps(counts))
        (root / "core.il").unlink()
        return counts


#: the standalone top's own memories: the spike event FIFO (64 x 13 bits)
STANDALONE_FIFO = CoreMemory("events", 64, 13)


def estimate(config: CoreConfig, board: Board, *, standalone: bool = False, rom_words: int = 0,
             calibration: dict | None = None, exact: bool = True, top: str | None = None) -> Estimate:
    """What ``config`` needs on ``board``. ``exact``: memories and multipliers from Yosys' census
    (iCE40, ECP5); otherwise (and on the 7 series) from the placement rules above."""
    fam = board.family
    res = board.resources
    placements = [place_memory(mem, fam) for mem in core_memories(config)]
    bram = sum(p.tiles for p in placements if p.kind == "bram")
    spram = int(sum(p.tiles for p in placements if p.kind == "spram"))
    dsps = dsp_count(config, fam)
    counted = census(config, fam) if exact else None
    if counted is not None:
        bram, spram, dsps = counted["bram"], counted["spram"], counted["dsp"]
    rom = rom_tiles(rom_words, fam) + place_memory(STANDALONE_FIFO, fam).tiles if standalone else 0
    kind = top_kind(top, standalone)
    if kind is None:
        raise ValueError(f"estimate(top={top!r}): the logic model knows the top levels "
                         f"{', '.join(TOP_KINDS)} (or None: the core with the interim bridge)")
    model = logic_model(fam, calibration)
    luts = model.predict(config, kind)
    source = model.source
    if kind == "link":
        link = [place_link_memory(mem, fam) for mem in link_memories(config)]
        placements += link
        bram += sum(p.tiles for p in link if p.kind == "bram")
    if kind == "bridge":
        own = [place_memory(mem, fam) for mem in bridge_memories(config)]
        placements += own
        bram += sum(p.tiles for p in own if p.kind == "bram")
    limits = [
        Limit("logic", luts, int(res.luts * LOGIC_HEADROOM[fam]), LOGIC_UNIT[fam]),
        Limit("block RAM", bram + rom, res.bram_tiles, BRAM_UNIT[fam]),
        Limit("DSP", dsps, res.dsps, "multipliers"),
    ]
    if fam == "ice40":
        limits.insert(2, Limit("SPRAM", spram, res.spram_tiles, "256 Kbit SPRAM"))
    return Estimate(board.name, config, standalone, luts, dsps, bram, spram, rom, placements, limits,
                    source + ("; memories and DSPs counted by Yosys" if counted else
                              "; memories and DSPs from the placement rules"))


def model_error(family: str) -> dict | None:
    """The logic model's leave-one-out error on the shipped calibration (``error_summary``, stored by
    ``benchmarks/bench_boards.py --calibrate``), or None."""
    return load_calibration().get("cross_validation", {}).get(family)


def describe_failure(est: Estimate, board: Board, network_summary: str) -> str:
    """The message for a network that does not fit: which limit, by how much, and what to do -- and,
    when only the logic estimate is over and by less than the model's own error, that it may fit."""
    parts = []
    for limit in est.failed:
        parts.append(f"{limit.name}: needs {limit.needed:g} {limit.unit}, the {board.part} has "
                     f"{limit.available:g}" + (" usable" if limit.name == "logic" else ""))
    bigger = {"ice40": "ulx3s-85f or cmod-a7-35t", "ecp5": "a larger ECP5 board", "xc7": "a larger Artix-7 board"}
    message = (f"{network_summary} does not fit the {board.title} ({board.part}) even as the smallest core "
               f"{_config_summary(est.config)}: " + "; ".join(parts)
               + f". Use a bigger board (--board {bigger[board.family]}), fewer neurons or synapses "
               "(fewer inputs, narrower --weight-bits, no STDP or delays), or simulate it with --backend spinnaker.")
    error = model_error(board.family)
    only_logic = [limit.name for limit in est.failed] == ["logic"]
    if error and only_logic and est.luts <= board.resources.luts * (1 + error["worst_error"]):
        message += (f" The logic estimate ({est.luts:,}) is within the logic model's error of the part's "
                    f"{board.resources.luts:,} (leave-one-out over {error['designs']} builds: "
                    f"{100 * error['mean_error']:.1f} % on average, {100 * error['worst_error']:.0f} % at worst), "
                    "so it may fit: --force builds it and place and route decides.")
    return message


def _config_summary(c: CoreConfig) -> str:
    feats = [f for f, on in (("STDP", c.stdp), ("adaptive threshold", c.adaptive_threshold),
                             (f"delays up to {c.max_delay}", c.max_delay > 1)) if on]
    return (f"(N={c.n_neurons}, A={c.n_inputs}, {c.weight_bits}-bit weights, lanes={c.lanes}"
            + (", " + ", ".join(feats) if feats else "") + ")")


def preferred_lanes(synapse_bits: int, board: Board, n_neurons: int) -> list[int]:
    """Lanes to try, best first: the most synapses that fill one word of the weight memory, then fewer
    (fewer lanes = less logic). Lanes must divide N, which the compiler rounds up to a multiple."""
    best = 1
    for lanes in (1, 2, 4, 8, 16):
        if lanes * synapse_bits <= board.weight_memory_width and lanes <= max(1, n_neurons):
            best = lanes
    return [p for p in (16, 8, 4, 2, 1) if p <= best]
