"""Co-design exploration: ``spikeforge explore NET --board B --sweep weight_bits=4,6,8 lanes=1,2,4``.

The question a user of a co-design toolchain has is "for my network and my task, which core on which
board, and what do I give up?". The sweep answers it with one row per core choice (a point: values of
the CoreConfig width fields the compiler takes, ``compiler.fit.WIDTH_FIELDS``):

1. compile the network for the point (the task's compile: the blimp controller keeps its voltage
   window, a place module its trained CoreConfig);
2. quality: the task's metric (explore_quality.py), measured once per point without ``lanes`` since
   lanes never change the dynamics;
3. timestep latency: the network's own activity on the golden model fed to the cycle model
   (boards/activity.py), at the board's clock;
4. resources on every board of the catalogue (boards/capacity.py: Yosys' memory census for the chosen
   board, the placement rules for the others) and whether the core fits each; for the chosen board,
   *measured* numbers when there are any: with ``--build`` a real synthesis + place and route
   (boards/flow.py, cached by design), without it a build of the same core already in the bitstream
   cache. Every number says where it came from (``*_source`` columns, ``~`` in the Markdown table).

Rows are appended to DIR/explore.csv as each point finishes, so an interrupted sweep resumes: a rerun
with the same network, task and board skips the points already in the file. DIR/explore.md and
DIR/explore.png (quality against logic and against latency, Pareto fronts, which points fit which
board; compiler/pareto.py) are written from the rows at the end.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from spikeforge.compiler.compile import CompiledNetwork
from spikeforge.compiler.errors import CompileError
from spikeforge.compiler.explore_quality import ExploreError, QualityTask, make_task
from spikeforge.compiler.fit import WIDTH_FIELDS
from spikeforge.compiler.network import Network
from spikeforge.core.config import CoreConfig, CoreConfigError

CSV_NAME, MD_NAME, PNG_NAME = "explore.csv", "explore.md", "explore.png"

#: the keys ``--sweep`` takes: CoreConfig's width fields (sizes and features follow from the network)
SWEEP_KEYS = WIDTH_FIELDS
#: ``--build`` drives the board flow, whose options choose these two only (boards/flow.BoardOptions)
BUILD_KEYS = ("weight_bits", "lanes")

#: columns before and after the sweep keys (the sweep keys sit between them)
HEAD_COLUMNS = ["run", "network", "task", "board", "point"]
TAIL_COLUMNS = [
    "status", "config_hash", "n_neurons", "n_inputs", "quality_metric", "quality", "quality_detail",
    "luts", "ffs", "bram", "spram", "dsp", "over_limits", "resources_source", "fmax_mhz", "fmax_source", "clock_mhz",
    "cycles_mean", "cycles_max", "latency_us", "seconds",
]


# ---- the sweep -----------------------------------------------------------------------------------
#: the other field a value is checked with on its own: the most permissive partner, so that only the
#: point's combination (checked when it compiles) can reject trace_bits=4 with trace_frac=2
_LOOSE = {"trace_bits": {"trace_frac": 0}, "trace_frac": {"trace_bits": 24}}


def parse_sweep(items: Sequence[str] | str) -> dict[str, list[int]]:
    """``["weight_bits=4,6,8", "lanes=1,2"]`` (or one string of them) -> {key: [values]}.

    Every value is checked against CoreConfig's own limits on its own (the combination is checked
    when the point compiles), so a value the core cannot have fails before the sweep starts."""
    if isinstance(items, str):
        items = [items]
    tokens = [t for item in items for t in str(item).split()]
    if not tokens:
        raise ExploreError("--sweep is empty: give KEY=V1,V2,... (e.g. --sweep weight_bits=4,6,8 lanes=1,2,4)")
    sweep: dict[str, list[int]] = {}
    for token in tokens:
        key, eq, text = token.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ExploreError(f"--sweep item {token!r}: expected KEY=V1,V2,... (e.g. weight_bits=4,6,8)")
        if key not in SWEEP_KEYS:
            near = difflib.get_close_matches(key, SWEEP_KEYS, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise ExploreError(f"--sweep key {key!r} is not a core width{hint}; sweepable keys: "
                               f"{', '.join(SWEEP_KEYS)}")
        if key in sweep:
            raise ExploreError(f"--sweep key {key!r} is given twice; list all its values once: {key}=A,B,C")
        values = []
        for part in text.split(","):
            part = part.strip()
            if not part:
                raise ExploreError(f"--sweep {token!r}: an empty value; separate values by single commas")
            try:
                value = int(part)
            except ValueError:
                raise ExploreError(f"--sweep {key}={part!r}: values must be whole numbers") from None
            try:
                CoreConfig(**{**_LOOSE.get(key, {}), key: value})
            except CoreConfigError as exc:
                raise ExploreError(f"--sweep {key}={value}: the core does not support it ({exc})") from None
            if value in values:
                raise ExploreError(f"--sweep {key}: value {value} is listed twice")
            values.append(value)
        sweep[key] = values
    return sweep


def sweep_points(sweep: dict[str, list[int]]) -> list[dict[str, int]]:
    """Every combination, the first key varying slowest."""
    keys = list(sweep)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(sweep[k] for k in keys))]


def point_label(point: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in point.items())


# ---- options and rows ----------------------------------------------------------------------------
@dataclass
class ExploreOptions:
    board: str = "icebreaker"
    task: str | None = None
    build: bool = False            # real synthesis + place and route for the chosen board
    census: bool = True            # Yosys' memory census for the chosen board (10-20 s per new core, cached);
    #                                off: the placement rules, instant but they can miss block RAM by 2x
    steps: int = 1000              # spike agreement: steps of golden and float runs
    seed: int = 0                  # seed of the network's Poisson sources
    activity_steps: int = 200      # golden-model steps behind the latency figure
    fresh: bool = False            # ignore (and replace) the rows of an earlier sweep in the folder
    top: str = "auto"              # the host link around the core: auto | link | interim (boards/top.py)


def run_id(source: str, task: str, board: str, options: ExploreOptions) -> str:
    """What makes two sweeps comparable: network (content hash), task, board, mode, steps and seeds."""
    text = json.dumps([source, task, board, options.build, options.census, options.top, options.steps, options.seed,
                       options.activity_steps])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def network_source_hash(path: Path | None, network: Network) -> str:
    """A hash of the network's file (and its side files are named inside it), or of its name."""
    if path is not None and Path(path).is_file():
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    return f"builtin:{network.name}"


def csv_columns(keys: Sequence[str], boards: Sequence[str]) -> list[str]:
    return HEAD_COLUMNS + list(keys) + TAIL_COLUMNS + [f"fits_{b}" for b in boards]


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def append_row(path: Path, columns: list[str], row: dict) -> None:
    """One row, written and flushed at once: an interrupted sweep keeps every finished point."""
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="raise")
        if new:
            writer.writeheader()
        writer.writerow({c: _cell(row.get(c)) for c in columns})
        fh.flush()


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


# ---- resources -----------------------------------------------------------------------------------
def cached_build(config: CoreConfig, board, top: str) -> dict | None:
    """A runtime build of exactly one core of ``config`` with the top level ``top`` (link, bridge,
    interim) for ``board``, of this hardware version, already in the bitstream cache (what an earlier
    ``spikeforge compile`` or ``--build`` placed and routed)."""
    from spikeforge.boards.build import BuildResult, bitstream_cache_root
    from spikeforge.boards.flow import top_path
    from spikeforge.boards.report import resources_from_build
    from spikeforge.boards.toolchain import design_fingerprint

    root = bitstream_cache_root()
    if not root.is_dir():
        return None
    want, want_top = config.to_dict(), top_path(top)
    fingerprint = design_fingerprint()
    for design_file in sorted(root.glob("*/design.json")):
        try:
            design = json.loads(design_file.read_text())
            if (design.get("board") != board.name or design.get("mode") != "runtime"
                    or design.get("fingerprint") != fingerprint or design.get("config") != want
                    or design.get("top") != want_top or design.get("cores", 1) != 1):
                continue
            result = BuildResult.from_json(json.loads((design_file.parent / "result.json").read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a half-written or foreign cache entry is no measurement
        clock = result.design_clock(board.default_clock_hz)
        resources = resources_from_build(board.family, result.utilisation, result.cells, board.resources)
        return {"resources": resources, "fmax_mhz": clock["fmax_mhz"] if clock else None,
                "clock_mhz": clock["target_mhz"] if clock else None, "key": result.key}
    return None


def _used(resources: dict, key: str):
    r = resources.get(key)
    return r["used"] if r else None


@dataclass
class Explorer:
    """Evaluates sweep points of one network for one task and board (module docstring)."""

    network: Network
    task: QualityTask
    options: ExploreOptions
    out_dir: Path
    source: str = ""
    _quality: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        from spikeforge.boards.catalog import BOARDS, get_board
        from spikeforge.boards.top import design_factory

        self.board = get_board(self.options.board)
        design_factory(self.options.top)  # an unknown --top fails before the first point
        self.boards = list(BOARDS.values())
        self.out_dir = Path(self.out_dir)
        self.run = run_id(self.source, self.task.name, self.board.name, self.options)

    # ---- one point ---------------------------------------------------------------------------
    def evaluate(self, point: dict) -> dict:
        t0 = time.perf_counter()
        row = {"run": self.run, "network": self.network.name, "task": self.task.name, "board": self.board.name,
               "point": point_label(point), **point, "quality_metric": self.task.metric}
        try:
            compiled = self.task.compile(self.network, point)
        except (CompileError, CoreConfigError, ValueError) as exc:
            row["status"] = f"invalid: {str(exc).splitlines()[0]}"
            row["seconds"] = time.perf_counter() - t0
            return row
        config = compiled.config
        row.update(config_hash=config.config_hash(), n_neurons=config.n_neurons, n_inputs=config.n_inputs)
        key = self.task.quality_key(point)
        if key not in self._quality:
            self._quality[key] = self.task.measure(compiled, point)
        detail = dict(self._quality[key])
        row["quality"] = detail.pop("quality")
        row["quality_detail"] = detail
        row.update(self._latency_cycles(compiled))
        row.update(self._resources(compiled))
        clock = row.get("clock_mhz")
        if clock and row.get("cycles_mean") is not None:
            row["latency_us"] = row["cycles_mean"] / clock
        row.setdefault("status", "ok")
        row["seconds"] = time.perf_counter() - t0
        return row

    def _latency_cycles(self, compiled: CompiledNetwork) -> dict:
        from spikeforge.boards.activity import simulate_activity

        act = simulate_activity(compiled, self.options.activity_steps, self.options.seed)
        if not act.cycles:
            return {}
        return {"cycles_mean": sum(act.cycles) / len(act.cycles), "cycles_max": max(act.cycles)}

    def _resources(self, compiled: CompiledNetwork) -> dict:
        from spikeforge.boards.flow import runtime_top

        config = compiled.config
        out: dict = {}
        primary = primary_top = None
        for board in self.boards:
            # the chosen board: Yosys' count of its memories (every point alike, so the column compares);
            # the others: the placement rules, enough to say whether the core fits them. The top level
            # as `spikeforge compile` picks it (auto: the link if it fits, else the bus bridge).
            exact = board is self.board and self.options.census and board.open_toolchain
            top, est = runtime_top(config, board, self.options.top, exact=exact)
            out[f"fits_{board.name}"] = est.fits
            if board is self.board:
                primary, primary_top = est, top
        out["over_limits"] = "; ".join(f"{l.name} {l.needed:g} > {l.available:g}" for l in primary.failed)
        out.update(luts=primary.luts, bram=primary.bram_tiles, dsp=primary.dsps,
                   spram=primary.spram_tiles if self.board.family == "ice40" else None,
                   resources_source="estimate", fmax_source="", clock_mhz=self.board.default_clock_hz / 1e6)
        measured = self._build(compiled) if self.options.build else cached_build(config, self.board, primary_top)
        if measured is not None:
            if "error" in measured:
                out["status"] = measured["error"]
                if measured.get("fits") is False:
                    out[f"fits_{self.board.name}"] = False
                    out["over_limits"] = out["over_limits"] or "place and route: does not fit"
            if measured.get("resources"):
                r = measured["resources"]
                if measured.get("fits") is not False:  # placed and routed: it fits, whatever the estimate said
                    out[f"fits_{self.board.name}"] = True
                    out["over_limits"] = ""
                out.update(luts=_used(r, "luts"), ffs=_used(r, "ffs"), bram=_used(r, "bram"), dsp=_used(r, "dsp"),
                           spram=_used(r, "spram"),
                           resources_source="measured" if self.options.build else "measured (cached build)")
            if measured.get("fmax_mhz"):
                out["fmax_mhz"] = measured["fmax_mhz"]
                out["fmax_source"] = "measured" if self.options.build else "measured (cached build)"
            if measured.get("clock_mhz"):
                out["clock_mhz"] = measured["clock_mhz"]
        return out

    def _build(self, compiled: CompiledNetwork) -> dict:
        """Synthesis and place and route of the point on the chosen board (boards/flow.py, cached)."""
        from spikeforge.boards.build import BuildError
        from spikeforge.boards.capacity import CapacityError
        from spikeforge.boards.flow import BoardOptions, TimingError, compile_for_board

        c = compiled.config
        tag = f"{self.board.name}-{c.config_hash()}"
        out_dir = self.out_dir / "builds" / tag
        options = BoardOptions(weight_bits=c.weight_bits, lanes=c.lanes, input_seed=self.options.seed,
                               activity_steps=self.options.activity_steps, top=self.options.top)
        try:
            build = compile_for_board(self.network, self.board, out_dir, options)
        except TimingError as exc:
            report = json.loads((out_dir / "report.json").read_text())
            return {"resources": report.get("resources") or {}, "fmax_mhz": (report.get("timing") or {}).get("fmax_mhz"),
                    "clock_mhz": (report.get("timing") or {}).get("target_mhz"),
                    "error": f"timing missed: {str(exc).splitlines()[0][:200]}"}
        except CapacityError as exc:
            return {"error": f"does not fit: {str(exc).splitlines()[0][:200]}", "fits": False}
        except BuildError as exc:
            text = str(exc).splitlines()[0]
            out = {"error": f"build failed: {text[:200]}"}
            if "does not fit" in text:  # the tools' word on fitting beats the estimate's
                out["fits"] = False
            return out
        timing = build.report.get("timing") or {}
        return {"resources": build.report.get("resources") or {}, "fmax_mhz": timing.get("fmax_mhz"),
                "clock_mhz": timing.get("target_mhz")}


# ---- the sweep -----------------------------------------------------------------------------------
@dataclass
class SweepResult:
    rows: list[dict]          # every point of the sweep, in sweep order
    evaluated: int            # points measured in this run
    skipped: int              # points found done in the CSV
    files: list[Path]


def explore(network: Network, sweep: dict[str, list[int]], out_dir: Path, options: ExploreOptions | None = None,
            *, network_path: Path | None = None, task: QualityTask | None = None,
            on_point: Callable[[int, int, str, bool], None] | None = None) -> SweepResult:
    """Run (or resume) a sweep; write explore.csv row by row, then explore.md and explore.png.

    ``on_point(index, total, label, skipped)`` is called before each point (the CLI's progress bar)."""
    from spikeforge.boards.catalog import BOARDS

    options = options or ExploreOptions()
    task = task or make_task(options.task, steps=options.steps, seed=options.seed)
    if task.sweep_keys is not None and set(sweep) - set(task.sweep_keys):
        raise ExploreError(f"--task {task.name} sweeps {' and '.join(task.sweep_keys)} only; drop "
                           f"{', '.join(sorted(set(sweep) - set(task.sweep_keys)))}")
    if options.build:
        extra = sorted(set(sweep) - set(BUILD_KEYS))
        if extra:
            raise ExploreError(f"--build sweeps {' and '.join(BUILD_KEYS)} only (the board flow's options); "
                               f"drop {', '.join(extra)} or explore them without --build (estimates)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    explorer = Explorer(network, task, options, out_dir, network_source_hash(network_path, network))
    columns = csv_columns(list(sweep), list(BOARDS))
    csv_path = out_dir / CSV_NAME
    if options.fresh and csv_path.exists():
        csv_path.unlink()
    old = read_rows(csv_path)
    if old:
        with open(csv_path, newline="") as fh:
            header = next(csv.reader(fh))
        if header != columns:
            raise ExploreError(
                f"{csv_path} holds a sweep over other keys ({', '.join(k for k in header if k in SWEEP_KEYS)}); "
                "write to another folder (-o) or start over with --fresh")
        foreign = {r["run"] for r in old} - {explorer.run}
        if foreign:
            raise ExploreError(
                f"{csv_path} holds a sweep of another network, task, board or mode (--build, --census, --top, "
                "--steps, --seed); write to another folder (-o) or start over with --fresh")
    done = {r["point"]: r for r in old}
    points = sweep_points(sweep)
    rows, evaluated, skipped = [], 0, 0
    for i, point in enumerate(points):
        label = point_label(point)
        if on_point:
            on_point(i, len(points), label, label in done)
        if label in done:
            rows.append(done[label])
            skipped += 1
            continue
        row = explorer.evaluate(point)
        append_row(csv_path, columns, row)
        rows.append({c: _cell(row.get(c)) for c in columns})
        evaluated += 1
    from spikeforge.compiler import pareto

    rows = [normalise_row(r, list(sweep)) for r in rows]
    md = out_dir / MD_NAME
    md.write_text(pareto.markdown_report(rows, list(sweep), task, explorer.board, list(BOARDS), options,
                                         network.name))
    png = out_dir / PNG_NAME
    pareto.plot(rows, task, explorer.board.name, list(BOARDS), png)
    return SweepResult(rows, evaluated, skipped, [csv_path, md, png])


def normalise_row(row: dict, keys: Sequence[str]) -> dict:
    """A CSV row (strings) with numbers and yes/no turned back into Python values."""
    out = dict(row)
    for k, v in row.items():
        if not isinstance(v, str):
            continue
        if v == "":
            out[k] = None
        elif v in ("yes", "no"):
            out[k] = v == "yes"
        elif k in keys or k in ("n_neurons", "n_inputs", "cycles_max"):
            out[k] = int(float(v))
        elif k in ("quality", "luts", "ffs", "bram", "spram", "dsp", "fmax_mhz", "clock_mhz", "cycles_mean",
                   "latency_us", "seconds"):
            out[k] = float(v)
        elif k == "quality_detail":
            out[k] = json.loads(v)
    return out
