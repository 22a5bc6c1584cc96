"""``spikeforge compile NET --board B -o DIR``: a network to a bitstream, with a report a person can read.

1. PLL: the board's oscillator to the requested core clock; the achieved frequency is used from here on.
2. Core: the smallest CoreConfig that holds the network and fits the board (boards/capacity.py),
   lanes chosen to fill one word of the weight memory; or a CapacityError naming the limit.
3. Activity: the network runs on the golden model; the cycle model turns every step into cycles.
4. Bitstream: runtime-loaded (a generic bitstream for the CoreConfig; the network goes over UART) or
   standalone (a boot ROM carries the image and the stimulus). Open tools for iCE40 and ECP5, with
   the placed and routed design cached by CoreConfig; Vivado files for the Artix-7.
5. DIR: top.bin / top.bit, top.v, image.npz, report.json, report.md, logs/ (+ rom.hex standalone).

Timing is checked last: a build that misses the clock writes its reports and then fails, saying by
how much.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

import spikeforge
from spikeforge.boards import boot_rom
from spikeforge.boards.activity import Activity, simulate_activity
from spikeforge.boards.build import BuildError, BuildResult, Progress, build_bitstream, pack
from spikeforge.boards.capacity import (CapacityError, Estimate, describe_failure, estimate, link_logic,
                                        preferred_lanes)
from spikeforge.boards.catalog import Board, get_board
from spikeforge.boards.pll import PllError, PllSolution, solve
from spikeforge.boards.report import resources_from_build, write_reports
from spikeforge.boards.toolchain import run_tool, tool_environment, tool_versions
from spikeforge.boards.top import design_factory, link_name
from spikeforge.compiler.compile import CompiledNetwork, compile as compile_network
from spikeforge.compiler.network import Network
from spikeforge.core.config import CoreConfig

#: files a build writes into DIR (removed first, so a failed build never leaves a stale bitstream)
OUTPUT_FILES = ("top.bin", "top.bit", "top.bin.timing-failed", "top.bit.timing-failed", "top.v", "top.xdc",
                "build.tcl", "run_vivado.sh", "image.npz", "rom.hex", "stimulus.npz", "report.json", "report.md")


class TimingError(BuildError):
    """The routed design misses the requested clock; the message says by how much and what to try."""


@dataclass
class BoardOptions:
    """Everything ``spikeforge compile`` can be told besides the network and the board."""

    standalone: bool = False
    clock_mhz: float | None = None        # None: the board's default core clock
    baud: int = 1_000_000
    top: str = "auto"                     # runtime mode: auto (link, else bridge) | link | bridge | interim
    weight_bits: int | None = None
    lanes: int | None = None
    seed: int = 1                         # nextpnr placement seed
    activity_steps: int = 200             # golden-model steps behind the latency figure
    stimulus_steps: int = 1000            # standalone: input steps in the boot ROM (they loop)
    input_seed: int | None = 0            # seed of the network's Poisson sources (activity, stimulus)
    use_cache: bool = True
    cache_dir: Path | None = None
    vivado: bool | None = None            # Artix-7: None = run Vivado if it is on PATH
    force: bool = False                   # build even if the capacity estimate says it does not fit
    voltage_range: tuple[float, float] | None = None  # mV window of v (default: from the parameters)
    current_range: float | None = None    # nA the current scale is sized for (default: estimated)


@dataclass
class CoreChoice:
    compiled: CompiledNetwork
    estimate: Estimate
    tried: list[Estimate] = field(default_factory=list)
    rom: list[int] | None = None          # standalone: the boot ROM words
    stimulus: np.ndarray | None = None
    top: str | None = None                # runtime: the top level chosen (link | bridge | interim)
    top_note: str = ""                    # why that top (auto: the link did not fit)


@dataclass
class BoardBuild:
    """What ``compile_for_board`` made."""

    out_dir: Path
    board: Board
    compiled: CompiledNetwork
    estimate: Estimate
    report: dict
    bitstream: Path | None
    timing_met: bool | None
    build: BuildResult | None = None


def network_synapses(compiled: CompiledNetwork) -> int:
    return int(sum(p.synapses for p in compiled.report.projections))


def _summary(network: Network, compiled: CompiledNetwork | None = None) -> str:
    syn = f", {network_synapses(compiled):,} synapses" if compiled is not None else ""
    return f"network {network.name!r} ({network.n_neurons:,} neurons, {network.n_source_neurons:,} inputs{syn})"


def bridge_note(board: Board) -> str:
    """Why an ``auto`` build has the bus bridge, and how to connect to it."""
    return (f"the protocol link does not fit beside this core on the {board.title}, so the bitstream has the "
            "bus bridge: connect with --port bridge://DEVICE?build=DIR (docs/bus-bridge.md)")


def choose_core(network: Network, board: Board, options: BoardOptions, step_cycles: int = 0) -> CoreChoice:
    """The smallest CoreConfig for ``network`` that fits ``board``: lanes from the weight memory's
    word width downwards (fewer lanes, less logic), stopping at the first estimate that fits.

    ``options.top == "auto"`` (runtime mode): the protocol link when it fits beside the core, else the
    bus bridge (the host serves the protocol); ``CoreChoice.top`` says which."""
    if not options.standalone and options.top == "auto":
        try:
            choice = choose_core(network, board, replace(options, top="link"), step_cycles)
        except CapacityError as link_failure:
            try:
                choice = choose_core(network, board, replace(options, top="bridge"), step_cycles)
            except CapacityError as bridge_failure:
                raise CapacityError(f"{bridge_failure} (also tried the protocol link: {link_failure})") from None
            choice.top_note = bridge_note(board)
        return choice
    widths = {} if options.weight_bits is None else {"weight_bits": options.weight_bits}
    if options.voltage_range is not None:
        widths["voltage_range"] = tuple(options.voltage_range)
    if options.current_range is not None:
        widths["current_range"] = options.current_range
    first = compile_network(network, lanes=options.lanes or 1, warn=False, **widths)
    if options.lanes:
        candidates = [options.lanes]
    else:
        candidates = preferred_lanes(first.config.synapse_bits, board, first.config.n_neurons)
    tried = []
    stimulus = None
    top = None
    if options.standalone:
        stimulus = first.input_raster(options.stimulus_steps, options.input_seed)
    else:
        top = top_path(options.top)
    for lanes in candidates:
        compiled = first if lanes == first.config.lanes else compile_network(network, lanes=lanes, warn=False, **widths)
        rom = None
        if options.standalone:
            blink = max(1, round(250.0 / network.dt))  # the alive LED toggles about every 1/4 s
            rom = boot_rom.encode(compiled.image, stimulus, step_cycles=step_cycles, blink_steps=blink)
        rom_words = boot_rom.rom_depth(len(rom)) if rom else 0
        # the placement rules first (instant); Yosys' census (seconds) for candidates that may fit
        est = estimate(compiled.config, board, standalone=options.standalone, rom_words=rom_words, exact=False,
                       top=top)
        if est.fits or all(l.name in ("block RAM", "DSP") for l in est.failed):
            est = estimate(compiled.config, board, standalone=options.standalone, rom_words=rom_words, top=top)
        tried.append(est)
        if est.fits:
            return CoreChoice(compiled, est, tried, rom, stimulus, None if options.standalone else options.top)
    smallest = tried[-1]
    if options.force:  # the tools decide; a build that does not fit fails in place and route
        return CoreChoice(compiled, smallest, tried, rom, stimulus)
    message = describe_failure(smallest, board, _summary(network, compiled))
    if top and top.endswith("LinkTop") and any(l.name == "logic" for l in smallest.failed):
        tiny = smallest_link_estimate(board, top)
        if not tiny.fits:
            need = "; ".join(f"{l.name}: needs {l.needed:,.0f} of {l.available:,.0f} {l.unit}" for l in tiny.failed)
            message = (f"{_summary(network, compiled)}: the {board.title} ({board.part}) cannot hold the "
                       f"protocol host link (about {link_logic(tiny.config, board.family):,} logic units on "
                       f"its own) beside any neuron core -- a one-neuron core with the link already exceeds "
                       f"it ({need}), so no runtime-loaded network fits. Options: --standalone (the network "
                       "and its stimulus in a boot ROM: the board runs with no host and streams spikes out "
                       "of its UART); --top bridge (the bus bridge: a few hundred cells, the host serves the "
                       "protocol; --top auto picks it); or a bigger board for the host link (--board "
                       "ulx3s-85f or cmod-a7-35t).")
        else:
            message += (f" The logic includes the host link around the core ({top.rsplit('.', 1)[-1]}); "
                        "--top bridge uses the small bus bridge instead (the host serves the protocol).")
    if options.standalone and any(l.name == "block RAM" for l in smallest.failed):
        message += (f" In standalone mode the boot ROM needs {smallest.rom_tiles:g} block RAM tiles "
                    f"({len(rom):,} words): try fewer --stimulus-steps or build without --standalone.")
    raise CapacityError(message)


def given_core(compiled: CompiledNetwork, board: Board, options: BoardOptions) -> CoreChoice:
    """The core of a network the caller has already compiled, as it is: its CoreConfig (lanes and
    widths) was chosen for a reason this flow cannot see -- a demo module's widths are what its
    learning needs -- so only the runtime top is chosen here (auto: the protocol link if the
    estimate says it fits beside the core, else the bus bridge). The estimate is reported, not
    enforced: place and route decides, and a core that does not fit fails there with the tools'
    numbers."""
    if options.standalone:
        raise ValueError("a network compiled by the caller builds a runtime-loaded bitstream only: "
                         "--standalone needs the flow to choose the core beside its boot ROM")
    top, est = runtime_top(compiled.config, board, options.top)
    note = bridge_note(board) if options.top == "auto" and top == "bridge" else ""
    return CoreChoice(compiled, est, [est], top=top, top_note=note)


def runtime_top(config: CoreConfig, board: Board, top: str, exact: bool = True) -> tuple[str, Estimate]:
    """The runtime top level a given core gets on ``board`` and its estimate: ``top`` itself, or for
    ``auto`` the protocol link if the estimate says it fits beside the core, else the bus bridge."""
    est = estimate(config, board, exact=exact, top=top_path("link" if top == "auto" else top))
    if top != "auto":
        return top, est
    if est.fits:
        return "link", est
    return "bridge", estimate(config, board, exact=exact, top=top_path("bridge"))


def smallest_link_estimate(board: Board, top: str) -> Estimate:
    """The host link ``top`` on ``board`` around the smallest possible core (one neuron, one input):
    when even that does not fit, no network size helps and the error must say so."""
    return estimate(CoreConfig(n_neurons=1, n_inputs=1), board, exact=False, top=top)


def _placeholder_seed(config, depth: int) -> int:
    return int(hashlib.sha256(f"{config.config_hash()}-{depth}".encode()).hexdigest()[:8], 16)


def compile_for_board(network: Network, board: Board | str, out_dir: Path, options: BoardOptions | None = None,
                      progress: Progress | None = None, *, compiled: CompiledNetwork | None = None) -> BoardBuild:
    """Compile ``network`` for ``board`` into ``out_dir`` (see the module docstring). ``compiled``:
    ``network`` already compiled onto a CoreConfig of the caller's choosing, built as it is
    (``given_core``) instead of the smallest core that fits."""
    t_start = time.monotonic()
    if compiled is not None and compiled.network is not network:
        raise ValueError("compiled= must be the compilation of the network given (compiled.network is network)")
    options = options or BoardOptions()
    progress = progress or Progress()
    board = get_board(board)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in OUTPUT_FILES:
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / "logs", ignore_errors=True)

    target_hz = (options.clock_mhz * 1e6) if options.clock_mhz else board.default_clock_hz
    try:
        pll = solve(board.family, board.clock_hz, target_hz)
    except PllError as exc:
        raise BuildError(f"--clock {target_hz / 1e6:g} MHz on the {board.title}: {exc}") from None
    step_cycles = max(1, round(network.dt * 1e-3 * pll.achieved_hz))

    with progress.step(f"choosing the core for the {board.title}"):
        if compiled is not None:
            choice = given_core(compiled, board, options)
        else:
            choice = choose_core(network, board, options, step_cycles)
    if choice.top is not None and choice.top != options.top:
        options = replace(options, top=choice.top)
        progress.note(choice.top_note)
    compiled, est = choice.compiled, choice.estimate
    config = compiled.config
    progress.note(f"core: N={config.n_neurons}, A={config.n_inputs}, lanes={config.lanes}, "
                  f"{config.weight_bits}-bit weights" + (", STDP" if config.stdp else "")
                  + f"; estimate {est.luts:,} logic, {est.bram_tiles + est.rom_tiles:g} BRAM"
                  + (f", {est.spram_tiles} SPRAM" if board.family == "ice40" else ""))
    with progress.step(f"simulating {options.activity_steps} steps on the golden model (activity)"):
        activity = simulate_activity(compiled, options.activity_steps, options.input_seed)

    compiled.image.save(out_dir / "image.npz")
    rom_info = None
    if options.standalone:
        depth = boot_rom.rom_depth(len(choice.rom))
        (out_dir / "rom.hex").write_text(boot_rom.to_hex(choice.rom, depth))
        np.savez_compressed(out_dir / "stimulus.npz", spikes=choice.stimulus)
        rom_info = {"rom_words": len(choice.rom), "rom_depth": depth, "stimulus_steps": options.stimulus_steps,
                    "step_cycles": step_cycles, "step_ms": network.dt}

    build = None
    bitstream = None
    timing = None
    vivado_note = None
    if board.open_toolchain:
        build, bitstream = _open_toolchain(board, pll, compiled, choice, options, out_dir, progress, rom_info)
        timing = _timing(build, pll)
        resources = resources_from_build(board.family, build.utilisation, build.cells, board.resources)
        link = "standalone" if options.standalone else build.extra.get("link", "?")
    else:
        design, link = _design(board, pll, compiled, choice, options, rom_info, placeholder=False)
        with progress.step("writing the Vivado project (top.v, top.xdc, build.tcl)"):
            from spikeforge.boards.vivado import how_to_run, run_vivado, vivado_available, write_vivado_project

            write_vivado_project(board, pll, design, out_dir)
        resources, timing = {}, {"target_mhz": pll.achieved_hz / 1e6, "fmax_mhz": None, "met": None,
                                 "note": "Vivado reports it (reports/timing.rpt)"}
        run = options.vivado if options.vivado is not None else bool(vivado_available())
        if run:
            with progress.step("Vivado: synthesis, place and route, bitstream"):
                viv = run_vivado(out_dir)
            resources = _vivado_resources(viv["utilization"])
            wns = viv["wns_ns"]
            if wns is not None:
                period = 1e9 / pll.achieved_hz
                timing = {"target_mhz": pll.achieved_hz / 1e6, "fmax_mhz": 1e3 / (period - wns),
                          "met": wns >= 0, "slack_mhz": 1e3 / (period - wns) - pll.achieved_hz / 1e6,
                          "wns_ns": wns, "clocks": []}
            bitstream = viv["bitstream"]
            vivado_note = f"ran (exit {viv['returncode']}), log {viv['log']}"
        else:
            vivado_note = how_to_run(out_dir)

    report = _report(network, board, options, compiled, est, choice, pll, activity, timing, resources, build,
                     bitstream, link, rom_info, vivado_note, out_dir, time.monotonic() - t_start)
    met = timing.get("met") if timing else None
    if met is False:
        shortfall = -timing["slack_mhz"]
        report["status"] = "timing_failed"
        report["status_message"] = _timing_message(board, timing, shortfall)
    elif bitstream is None:
        report["status"] = "vivado_not_run"
        report["status_message"] = vivado_note
    write_reports(out_dir, report)
    if met is False:
        if bitstream is not None and Path(bitstream).parent == out_dir:
            Path(bitstream).rename(out_dir / (Path(bitstream).name + ".timing-failed"))
        raise TimingError(report["status_message"] + f" (report: {out_dir / 'report.md'})")
    return BoardBuild(out_dir, board, compiled, est, report, bitstream, met, build)


def _timing_message(board: Board, timing: dict, shortfall: float) -> str:
    fmax, target = timing["fmax_mhz"], timing["target_mhz"]
    return (f"timing not met on the {board.title}: the routed design reaches {fmax:.2f} MHz but the clock is "
            f"{target:.2f} MHz, short by {shortfall:.2f} MHz ({100 * shortfall / target:.1f} %). Build with "
            f"--clock {math.floor(fmax * 0.98 * 10) / 10:g} (MHz), or try another --seed; the bitstream was "
            "kept as top.*.timing-failed and must not be used")


def _design(board, pll, compiled, choice, options, rom_info, placeholder: bool):
    """The design in the middle of the board top and the name of its host link."""
    config = compiled.config
    if options.standalone:
        from spikeforge.boards.standalone import StandaloneTop

        depth = rom_info["rom_depth"]
        words = boot_rom.random_words(depth, _placeholder_seed(config, depth)) if placeholder else choice.rom
        return StandaloneTop(config, words, depth, pll.achieved_hz, options.baud), "standalone"
    factory = design_factory(options.top)
    design = factory([config], pll.achieved_hz, options.baud)
    return design, link_name(design)


def _open_toolchain(board, pll, compiled, choice, options, out_dir, progress, rom_info):
    config = compiled.config
    if options.standalone:
        depth = rom_info["rom_depth"]
        fields = {"mode": "standalone", "config": config.to_dict(), "rom_depth": depth, "baud": options.baud,
                  "placeholder_seed": _placeholder_seed(config, depth)}
    else:
        fields = {"mode": "runtime", "config": config.to_dict(), "baud": options.baud,
                  "top": top_path(options.top)}
    holder = {}

    def make():
        design, link = _design(board, pll, compiled, choice, options, rom_info, placeholder=True)
        holder["link"] = link
        return design

    build = build_bitstream(board, pll, make, fields, seed=options.seed, use_cache=options.use_cache,
                            cache_root=options.cache_dir, progress=progress)
    build.extra.setdefault("link", holder.get("link") or (
        "standalone" if options.standalone else link_name_of_factory(options.top)))
    logs = out_dir / "logs"
    shutil.copytree(build.directory / "logs", logs, dirs_exist_ok=True)
    shutil.copyfile(build.verilog, out_dir / "top.v")
    if not options.standalone:
        bitstream = out_dir / board.bitstream
        shutil.copyfile(build.bitstream, bitstream)
        return build, bitstream
    # standalone: swap the placeholder ROM for this network's ROM in the routed design, then pack
    work = out_dir / "build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    depth = rom_info["rom_depth"]
    (work / "placeholder.hex").write_text(
        boot_rom.to_hex(boot_rom.random_words(depth, _placeholder_seed(config, depth)), depth))
    shutil.copyfile(out_dir / "rom.hex", work / "rom.hex")
    env = tool_environment()
    (work / "logs").mkdir()
    with progress.step("putting the network into the boot ROM (" + ("icebram" if board.family == "ice40" else "ecpbram") + ")"):
        t0 = time.monotonic()
        if board.family == "ice40":
            shutil.copyfile(build.directory / "top.asc", work / "routed.asc")
            run_tool(["icebram", "placeholder.hex", "rom.hex"], cwd=work, log=work / "logs" / "icebram.log",
                     env=env, stdin=work / "routed.asc", stdout=work / "top.asc", what="icebram")
            pack(board, work, env)
        else:
            shutil.copyfile(build.directory / "top.config", work / "routed.config")
            run_tool(["ecpbram", "-i", "routed.config", "-o", "top.config", "-f", "placeholder.hex", "-t", "rom.hex"],
                     cwd=work, log=work / "logs" / "ecpbram.log", env=env, what="ecpbram")
            pack(board, work, env)
        rom_info["rom_method"] = (f"swapped into the cached routed design with "
                                  f"{'icebram' if board.family == 'ice40' else 'ecpbram'} (no new place and route)")
        rom_info["patch_seconds"] = time.monotonic() - t0
    bitstream = out_dir / board.bitstream
    shutil.copyfile(work / board.bitstream, bitstream)
    for log in (work / "logs").iterdir():
        shutil.copyfile(log, logs / log.name)
    shutil.rmtree(work)
    return build, bitstream


def top_path(top: str) -> str:
    """The qualified class name of the runtime top level ``top`` (auto, link, bridge, interim): how
    capacity estimates, calibration samples and bitstream cache keys name it."""
    factory = design_factory(top)
    return f"{factory.__module__}.{factory.__qualname__}"


def link_name_of_factory(top: str) -> str:
    return getattr(design_factory(top), "LINK_NAME", None) or top_path(top)


def _timing(build: BuildResult, pll: PllSolution) -> dict:
    clock = build.design_clock(pll.achieved_hz)
    if clock is None:
        return {"target_mhz": pll.achieved_hz / 1e6, "fmax_mhz": None, "met": None,
                "note": "nextpnr reported no clock", "clocks": []}
    return {"clock": clock["clock"], "target_mhz": clock["target_mhz"], "fmax_mhz": clock["fmax_mhz"],
            "met": all(c["passed"] for c in build.clocks),
            "slack_mhz": clock["fmax_mhz"] - clock["target_mhz"], "clocks": build.clocks,
            "critical_path": (build.extra.get("critical_paths") or {}).get(clock["clock"])}


def _vivado_resources(util: dict) -> dict:
    rows = {"luts": "Slice LUTs", "ffs": "Slice Registers", "bram": "Block RAM Tile", "dsp": "DSPs",
            "io": "Bonded IOB", "pll": "MMCME2_ADV"}
    units = {"luts": "LUT6", "ffs": "flip-flops", "bram": "36 Kbit tiles", "dsp": "DSP48E1", "io": "pins",
             "pll": "MMCM"}
    out = {}
    for key, name in rows.items():
        if name in util:
            used, avail = util[name]
            out[key] = {"used": used, "available": avail, "unit": units[key], "source": f"Vivado {name}"}
    return out


def _report(network, board, options, compiled, est, choice, pll, activity: Activity, timing, resources, build,
            bitstream, link, rom_info, vivado_note, out_dir, seconds) -> dict:
    config = compiled.config
    lat = activity.latency_us(pll.achieved_hz)
    if lat is not None:
        latency = {"cycle_model": True, "steps": activity.steps, "mean_us": lat["mean"], "median_us": lat["median"],
                   "max_us": lat["max"], "mean_cycles": lat["mean_cycles"], "max_cycles": lat["max_cycles"],
                   "clock_hz": pll.achieved_hz, "dt_ms": network.dt,
                   "realtime_factor": (network.dt * 1e3) / lat["mean"] if lat["mean"] else None,
                   "activity": activity.to_dict()}
    else:
        latency = {"cycle_model": False, "steps": activity.steps, "mean_us": None,
                   "note": "the core's cycle model (spikeforge.sim.cycle_model.predict_cycles) is not available "
                           "in this checkout, so no step latency is predicted",
                   "activity": activity.to_dict()}
    est_dict = est.to_dict()
    est_dict["bram_tiles_total"] = est.bram_tiles + est.rom_tiles
    bit_path = Path(bitstream) if bitstream else None
    bit = {"file": bit_path.name if bit_path else None, "cached": bool(build and build.cached),
           "cache_key": build.key if build else None}
    if bit_path and bit_path.exists():
        data = bit_path.read_bytes()
        bit.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    from spikeforge.boards.flash import flash_argv

    flash_cmd = f"spikeforge flash {out_dir} --board {board.name}"
    report = {
        "status": "ok",
        "spikeforge_version": spikeforge.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "network": {"name": network.name, "neurons": network.n_neurons, "inputs": network.n_source_neurons,
                    "synapses": network_synapses(compiled), "dt_ms": network.dt,
                    "populations": {p.label: p.size for p in network.populations}},
        "board": {**board.to_dict()},
        "mode": "standalone" if options.standalone else "runtime",
        "link": link,
        "connect": (None if options.standalone else
                    f"--port bridge://DEVICE?build={out_dir}" if options.top == "bridge" else "--port DEVICE"),
        "link_note": choice.top_note or None,
        "core_config": config.to_dict(),
        "config_hash": config.config_hash(),
        "clock": {"board_hz": board.clock_hz, "requested_hz": pll.requested_hz, "achieved_hz": pll.achieved_hz,
                  "pll": pll.to_dict(), "baud": options.baud},
        "timing": timing,
        "resources": resources,
        "estimate": est_dict,
        "cores_tried": [{"lanes": e.config.lanes, "fits": e.fits, "failed": [l.to_dict() for l in e.failed]}
                        for e in choice.tried],
        "latency": latency,
        "quantisation": compiled.report.to_dict(),
        "bitstream": bit,
        "build_seconds": dict(build.seconds) if build and not build.cached else {},
        "total_seconds": seconds,
        "tools": tool_versions(),
        "standalone": rom_info,
        "vivado": vivado_note,
        "files": sorted({p.name for p in out_dir.iterdir() if p.is_file()} | {"report.json", "report.md"})
        + ["logs/"],
        "flash": flash_cmd + "   # = " + " ".join(flash_argv(board, out_dir / board.bitstream)),
    }
    return report
