"""``spikeforge demo blimp --standalone``: the controller as a bitstream that needs no host computer.

Why not the generic ``spikeforge compile --standalone`` (boards/flow.py + boards/standalone.py):
that top replays a fixed input-spike stimulus from its boot ROM. The blimp controller's inputs are
the error-dependent currents of its 24 encoders and its output is a command decoded from spikes, so
a standalone controller must (a) take the error from outside every tick and (b) do the host's
encoding and decoding itself. ``standalone_top.BlimpControllerTop`` does both in integer logic
(``fixed_point``), booting the image from the same boot-ROM format through
``boards/boot_loader.BootLoader`` (the loader StandaloneTop uses too).
(The generic flow also cannot compile this network at all: it compiles without the controller's
fixed scaling, ``snn.compile_options()``, and the automatic scaling does not fit; and
``boot_rom.encode`` refuses current-input cores.)

This module: the boot ROM of a controller, the closed-loop simulation of the board (Amaranth's
simulator, UART bit by bit) against the golden model, and the bitstream build through the flow's
build layer (``boards/build.build_bitstream``: PLL, board top, Yosys/nextpnr, cache).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from spikeforge.boards import boot_rom as br
from spikeforge.demos.blimp import snn
from spikeforge.demos.blimp.closed_loop import run_closed_loop
from spikeforge.demos.blimp.fixed_point import CMD_FRAC, FixedPointController, FixedPointIO
from spikeforge.demos.blimp.plant import DT
from spikeforge.demos.blimp.runners import GoldenRunner
from spikeforge.demos.blimp.scenarios import Scenario
from spikeforge.demos.blimp.standalone_top import BlimpControllerTop

TOPLEVEL = "blimp_controller"


def controller_rom(controller: snn.Controller) -> tuple[list[int], int]:
    """The boot ROM words of ``controller``'s image and the ROM depth a bitstream is built with."""
    words = br.encode_header(0, 1) + br.encode_image(controller.image())
    return words, br.rom_depth(len(words))


def controller_top(controller: snn.Controller, clk_freq: float, baud: int = 1_000_000,
                   divisor: int | None = None) -> BlimpControllerTop:
    words, depth = controller_rom(controller)
    return BlimpControllerTop(controller.config(), words, depth, FixedPointIO.of(controller), clk_freq, baud,
                              divisor=divisor)


def golden_reference(controller: snn.Controller, scenario: Scenario):
    """The standalone board's arithmetic on the golden model: (trajectory, [(error word, command word)])."""
    ctrl = FixedPointController(controller, GoldenRunner(controller.image(), scenario.batch))
    tr = run_closed_loop(ctrl, scenario)
    return tr, ctrl.words


def simulate_board(controller: snn.Controller, scenario: Scenario, divisor: int = 4, simulator: str = "icarus",
                   boot_cycles_max: int = 2_000_000, tick_cycles_max: int = 50_000) -> dict:
    """Fly run 0 of ``scenario`` with the standalone board: the generated Verilog of
    ``BlimpControllerTop`` (the same the bitstream is built from, with the boot ROM) under cocotb, the
    closed loop in the test module ``standalone_tb``. ``divisor``: UART clocks per bit in simulation.
    Returns altitude, command, error_words, command_words, tick_cycles (arrays), boot_cycles, error."""
    import hashlib
    import tempfile

    from amaranth.back import verilog

    from spikeforge.file_lock import locked
    from spikeforge.sim.cocotb_tb.runner import (
        SIMULATORS, VERILATOR_BUILD_ARGS, RtlRunError, _runner, _tail, cache_root, icarus_compatible,
        simulator_available,
    )

    if simulator not in SIMULATORS:
        raise ValueError(f"simulator = {simulator!r}: choose one of {', '.join(SIMULATORS)}")
    reason = simulator_available(simulator)
    if reason:
        raise RtlRunError(reason)
    sc = scenario.take(0)
    top = controller_top(controller, clk_freq=divisor * 1e6, baud=1_000_000, divisor=divisor)
    text = verilog.convert(top, name=TOPLEVEL, emit_src=False)
    if simulator == "icarus":
        text, _ = icarus_compatible(text)
    key = hashlib.sha256((text + simulator).encode()).hexdigest()[:16]
    build_dir = cache_root() / "blimp-standalone" / f"{simulator}-{key}"
    with locked(build_dir.parent / f".{simulator}-{key}.lock"):
        if not (build_dir / "build.ok").exists():
            build_dir.mkdir(parents=True, exist_ok=True)
            source = build_dir / f"{TOPLEVEL}.v"
            source.write_text(text)
            log = build_dir / "build.log"
            try:
                _runner(simulator, False).build(
                    sources=[source], hdl_toplevel=TOPLEVEL, build_dir=build_dir, always=True,
                    timescale=("1ns", "1ps"), log_file=log,
                    build_args=list(VERILATOR_BUILD_ARGS) if simulator == "verilator" else [])
            except (SystemExit, Exception) as exc:
                raise RtlRunError(f"{simulator} build of the standalone controller failed ({exc!r}); log: {log}\n"
                                  f"{_tail(log)}") from None
            (build_dir / "build.ok").write_text(key)
    with tempfile.TemporaryDirectory(prefix="spikeforge-blimp-board-") as tmp:
        tmp = Path(tmp)
        job = {"divisor": divisor, "setpoint": sc.setpoint[0].tolist(), "h0": float(sc.h0[0]),
               "buoyancy": float(sc.buoyancy[0]), "seed": int(sc.seed), "run_id": int(sc.run_ids[0]),
               "boot_cycles_max": boot_cycles_max, "tick_cycles_max": tick_cycles_max, "output": str(tmp / "out.npz")}
        (tmp / "job.json").write_text(json.dumps(job))
        log = tmp / "sim.log"
        try:
            _runner(simulator, False).test(
                test_module="spikeforge.demos.blimp.standalone_tb", hdl_toplevel=TOPLEVEL, hdl_toplevel_lang="verilog",
                build_dir=build_dir, test_dir=tmp, log_file=log, plusargs=[f"+blimp_job={tmp / 'job.json'}"],
                timescale=("1ns", "1ps") if simulator == "icarus" else None, results_xml=str(tmp / "results.xml"))
        except (SystemExit, Exception) as exc:
            raise RtlRunError(f"the standalone controller simulation failed ({exc!r})\n{_tail(log)}") from None
        if not (tmp / "out.npz").exists():
            raise RtlRunError(f"the standalone controller simulation wrote no result\n{_tail(log)}")
        with np.load(tmp / "out.npz") as data:
            out = {k: data[k] for k in data.files}
    out["boot_cycles"] = int(out["boot_cycles"])
    out["error"] = str(out["error"]) or None
    return out


def check_against_golden(controller: snn.Controller, scenario: Scenario, divisor: int = 4,
                         simulator: str = "icarus") -> dict:
    """Simulate the board on run 0 of ``scenario`` and compare it with ``golden_reference``: the summary
    (``identical`` = the same error words, command words and altitudes, bit for bit)."""
    sc = scenario.take(0)
    t0 = time.perf_counter()
    gold, words = golden_reference(controller, sc)
    board = simulate_board(controller, sc, divisor, simulator)
    gold_e = [int(e[0]) for e, _ in words]
    gold_c = [int(c[0]) for _, c in words]
    n = len(board["command_words"])
    first = next((t for t in range(n) if (int(board["error_words"][t]), int(board["command_words"][t]))
                  != (gold_e[t], gold_c[t])), None)
    identical = (board["error"] is None and n == sc.ticks and first is None
                 and np.array_equal(board["altitude"], gold.altitude[0]))
    return {"identical": bool(identical), "ticks": sc.ticks, "ticks_flown": n, "first_difference": first,
            "error": board["error"], "boot_cycles": board["boot_cycles"],
            "tick_cycles_max": int(board["tick_cycles"].max()) if n else None,
            "max_abs_command": float(np.abs(board["command"]).max()) if n else 0.0,
            "wall_seconds": time.perf_counter() - t0, "sim_wall_seconds": board["wall"].tolist(), "divisor": divisor, "simulator": simulator,
            "flight_seconds": sc.ticks * DT}


def build_standalone(controller: snn.Controller, out_dir: Path, board: str = "icebreaker", *,
                     clock_mhz: float | None = None, baud: int = 1_000_000, seed: int = 1, use_cache: bool = True,
                     progress=None) -> dict:
    """Build the standalone controller's bitstream for ``board`` into ``out_dir`` (the flow's build
    layer: PLL, BoardTop, Yosys + nextpnr, the bitstream cache). The ROM and the encoder/decoder
    constants are part of the design (and of the cache key): another controller is another place and
    route. Writes top.bin (or top.bit), top.v, rom.hex, image.npz, controller.json and report.json;
    returns the report. Raises BuildError / TimingError (the message says what to change)."""
    import hashlib
    import shutil

    from spikeforge.boards.build import BuildError, Progress, build_bitstream
    from spikeforge.boards.catalog import get_board
    from spikeforge.boards.pll import PllError, solve
    from spikeforge.boards.report import resources_from_build

    t0 = time.perf_counter()
    b = get_board(board)
    if not b.open_toolchain:
        raise BuildError(f"the {b.title} is built with Vivado; the standalone blimp controller is built with the "
                         "open tools only (iCE40, ECP5 boards)")
    target = clock_mhz * 1e6 if clock_mhz else b.default_clock_hz
    try:
        pll = solve(b.family, b.clock_hz, target)
    except PllError as exc:
        raise BuildError(f"clock {target / 1e6:g} MHz on the {b.title}: {exc}") from None
    config = controller.config()
    words, depth = controller_rom(controller)
    io = FixedPointIO.of(controller)
    consts = json.dumps({k: np.asarray(v).tolist() for k, v in vars(io).items()}, sort_keys=True)
    fields = {"mode": "blimp-standalone-controller", "config": config.to_dict(), "rom_depth": depth, "baud": baud,
              "rom_sha256": hashlib.sha256(json.dumps(words).encode()).hexdigest(),
              "io_sha256": hashlib.sha256(consts.encode()).hexdigest()}

    def make():
        return BlimpControllerTop(config, words, depth, io, pll.achieved_hz, baud)

    build = build_bitstream(b, pll, make, fields, seed=seed, use_cache=use_cache, progress=progress or Progress())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bitstream = out_dir / b.bitstream
    shutil.copyfile(build.bitstream, bitstream)
    shutil.copyfile(build.verilog, out_dir / "top.v")
    (out_dir / "rom.hex").write_text(br.to_hex(words, depth))
    controller.image().save(out_dir / "image.npz")
    controller.save(out_dir / "controller.json")
    clock = build.design_clock(pll.achieved_hz)
    met = all(c["passed"] for c in build.clocks) if build.clocks else None
    report = {
        "status": "ok" if met is not False else "timing_failed",
        "mode": "standalone blimp controller (demos/blimp/standalone_top.py)",
        "board": b.to_dict(), "core_config": config.to_dict(), "neurons": int(config.n_neurons),
        "clock": {"requested_hz": target, "achieved_hz": pll.achieved_hz, "baud": baud},
        "timing": {"fmax_mhz": clock["fmax_mhz"] if clock else None, "target_mhz": pll.achieved_hz / 1e6, "met": met},
        "resources": resources_from_build(b.family, build.utilisation, build.cells, b.resources),
        "rom": {"words": len(words), "depth": depth},
        "uart_protocol": {"in": "A5 e_lo e_hi: signed 16-bit altitude error, 1 mm per LSB",
                          "out": f"5A c_lo c_hi: signed 16-bit motor command, 2^-{CMD_FRAC} per LSB, |c| <= 3.3"},
        "bitstream": {"file": bitstream.name, "cached": bool(build.cached), "cache_key": build.key,
                      "sha256": hashlib.sha256(bitstream.read_bytes()).hexdigest()},
        "build_seconds": dict(build.seconds) if not build.cached else {},
        "total_seconds": time.perf_counter() - t0,
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    if met is False:
        from spikeforge.boards.flow import TimingError

        bitstream.rename(out_dir / (bitstream.name + ".timing-failed"))
        raise TimingError(f"timing not met on the {b.title}: {report['timing']['fmax_mhz']:.2f} MHz reached, "
                          f"{pll.achieved_hz / 1e6:.2f} MHz needed; try clock_mhz lower or another seed")
    return report
