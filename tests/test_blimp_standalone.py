"""The standalone blimp controller: integer encoder/decoder (fixed_point.py), its logic
(standalone_top.py, boot_loader.py) and the board in closed loop against the golden model."""

import json

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikeforge.boards import boot_rom as br
from spikeforge.demos.blimp import metrics, snn
from spikeforge.demos.blimp.cli import CONTROLLER_FILE
from spikeforge.demos.blimp.closed_loop import run_closed_loop
from spikeforge.demos.blimp.evaluation import eval_scenario
from spikeforge.demos.blimp.fixed_point import FixedPointController, FixedPointIO
from spikeforge.demos.blimp.runners import GoldenRunner
from spikeforge.demos.blimp.snn_controller import SNNController


@pytest.fixture(scope="module")
def shipped():
    return snn.Controller.load(CONTROLLER_FILE)


def test_integer_encoder_is_the_float_encoder_rounded(shipped):
    io = FixedPointIO.of(shipped)
    e = np.array([-32767, -20000, -1500, -10, -1, 0, 1, 7, 333, 1500, 20000, 32767])
    ref = SNNController(shipped, GoldenRunner(shipped.image(), e.size)).currents(e * 1e-3)
    assert np.abs(io.encode(e) - ref).max() <= 1
    assert (io.encode(e) != 0).any()
    np.testing.assert_array_equal(io.error_word([0.0004, -0.0016, 40.0, -40.0]), [0, -2, 32767, -32767])


def test_integer_controller_flies_like_the_float_one(shipped):
    sc = eval_scenario(4)
    sc.setpoint = sc.setpoint[:, :1200]
    flt = run_closed_loop(SNNController(shipped, GoldenRunner(shipped.image(), 4)), sc)
    fix = run_closed_loop(FixedPointController(shipped, GoldenRunner(shipped.image(), 4)), sc)
    a, b = metrics.summarise(flt.altitude, flt.setpoint), metrics.summarise(fix.altitude, fix.setpoint)
    assert abs(b["rmse_m"] / a["rmse_m"] - 1) < 0.02
    assert b["steady_state_error_m"] < 0.03
    assert np.abs(fix.command).max() <= 3.3


def test_serial_multiplier_is_exact():
    from spikeforge.demos.blimp.standalone_top import SerialMultiplier

    dut = SerialMultiplier(18, 27)
    rng = np.random.default_rng(0)
    cases = [(-(1 << 17), -(1 << 26)), ((1 << 17) - 1, (1 << 26) - 1), (-(1 << 17), (1 << 26) - 1), (0, 5), (-1, -1)]
    cases += [(int(a), int(b)) for a, b in zip(rng.integers(-(1 << 17), 1 << 17, 20), rng.integers(-(1 << 26), 1 << 26, 20))]
    got = []

    async def bench(ctx):
        for a, b in cases:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            cycles = 0
            while not ctx.get(dut.done):
                await ctx.tick()
                cycles += 1
            got.append((ctx.get(dut.p), cycles))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert [p for p, _ in got] == [a * b for a, b in cases]
    assert {c for _, c in got} == {18}


def test_boot_loader_flags_a_rom_without_magic(shipped):
    from spikeforge.boards.boot_loader import BootLoader

    dut = BootLoader(shipped.config(), br.random_words(256, 3), 256)
    seen = {}

    async def bench(ctx):
        await ctx.tick().repeat(10)
        seen.update(error=ctx.get(dut.error), booted=ctx.get(dut.booted), valid=ctx.get(dut.req_valid))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == {"error": 1, "booted": 0, "valid": 0}


def test_top_refuses_a_mismatched_controller(shipped):
    from spikeforge.demos.blimp.standalone_top import BlimpControllerTop

    io = FixedPointIO.of(shipped)
    io.gain = io.gain[:3]
    with pytest.raises(ValueError, match="does not match the core"):
        BlimpControllerTop(shipped.config(), [br.MAGIC], 256, io, 12e6)


@pytest.mark.rtl
def test_standalone_board_flies_like_the_golden_model(shipped):
    """The board's Verilog boots the controller from its ROM and flies 1.5 s: every error frame it
    receives and every command it sends equal the integer controller on the golden model's."""
    from spikeforge.demos.blimp.standalone import check_against_golden

    sc = eval_scenario(1)
    sc.setpoint = sc.setpoint[:, :15]
    res = check_against_golden(shipped, sc)
    assert res["error"] is None, res["error"]
    assert res["ticks_flown"] == 15 and res["max_abs_command"] > 0
    assert res["identical"], f"the board left the golden trajectory at tick {res['first_difference']}"
    assert 0 < res["tick_cycles_max"] < 5000


@pytest.mark.rtl
@pytest.mark.slow
def test_cli_standalone_builds_the_icebreaker_bitstream(tmp_path):
    """Place and route of the controller for the iCEBreaker (~6 min; cached by the flow after)."""
    import typer
    from typer.testing import CliRunner

    from spikeforge.demos.blimp.cli import blimp_command

    app = typer.Typer()
    app.command()(blimp_command)
    res = CliRunner().invoke(app, ["--standalone", "--board", "icebreaker", "-o", str(tmp_path), "--seconds", "0.5"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "standalone_check.json").read_text())["identical"] is True
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "ok" and report["timing"]["met"] is True and report["board"]["name"] == "icebreaker"
    assert report["resources"]["luts"]["used"] <= report["resources"]["luts"]["available"]
    assert (tmp_path / "top.bin").stat().st_size > 100_000
