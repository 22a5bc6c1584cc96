"""The blimp controller in closed loop on the generated Verilog of the core (cocotb, one core step per
control tick): commands, altitudes and spikes identical to the golden model's, bit for bit."""

import json

import numpy as np
import pytest

from spikeforge.demos.blimp import snn
from spikeforge.demos.blimp.cli import CONTROLLER_FILE
from spikeforge.demos.blimp.evaluation import rtl_closed_loop
from spikeforge.demos.blimp.runners import RtlRunner
from spikeforge.demos.blimp.scenarios import make_scenario

pytestmark = pytest.mark.rtl


def test_shipped_controller_flies_identically_on_the_rtl():
    c = snn.Controller.load(CONTROLLER_FILE)
    sc = make_scenario(11, batch=1, n_steps=1, step_seconds=1.5)  # a setpoint step after 1.5 s
    res = rtl_closed_loop(c, seconds=3.0, scenario=sc)
    assert res["steps"] == 30
    assert res["spikes_total"] > 0 and res["max_abs_command"] > 0, "nothing happened: the check would prove nothing"
    assert res["identical"], f"the RTL closed loop left the golden model's trajectory at tick {res['first_difference']}"
    assert res["commands_identical"] and res["altitudes_identical"] and res["spikes_identical"]
    assert 0 < res["cycles_per_step_max"] < 5000


def test_rtl_runner_steps_like_the_golden_model_and_says_what_is_wrong():
    from spikeforge.demos.blimp.runners import GoldenRunner

    c = snn.Controller.load(CONTROLLER_FILE)
    image = c.image()
    gold = GoldenRunner(image)
    rng = np.random.default_rng(3)
    with RtlRunner(image, verify=False) as rtl:  # the closed-loop test above verifies the load
        for _ in range(4):  # arbitrary (not closed-loop) inputs, including the input clip's extremes
            u = rng.integers(-2000, 2000, size=(1, image.config.n_current_inputs))
            np.testing.assert_array_equal(rtl.step(u), gold.step(u))
        with pytest.raises(ValueError, match="analog inputs"):
            rtl.step(np.zeros(3, dtype=np.int64))
        assert len(rtl.cycles) == 4
    with pytest.raises(ValueError, match="simulator"):
        RtlRunner(image, simulator="modelsim")


def test_cli_rtl_backend(tmp_path):
    import typer
    from typer.testing import CliRunner

    from spikeforge.demos.blimp.cli import blimp_command

    app = typer.Typer()
    app.command()(blimp_command)
    res = CliRunner().invoke(app, ["--out", str(tmp_path), "--runs", "1", "--backend", "rtl", "--seconds", "1"])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["backend"] == "rtl"
    assert m["rtl"]["identical"] is True and m["rtl"]["steps"] == 10


@pytest.mark.slow
def test_a_minute_of_flight_with_setpoint_steps_on_the_rtl():
    c = snn.Controller.load(CONTROLLER_FILE)
    sc = make_scenario(5, batch=1, n_steps=3, step_seconds=15.0, buoyancy_range=(-0.5, -0.2))
    res = rtl_closed_loop(c, seconds=60.0, scenario=sc)
    assert res["steps"] == 600 and res["max_abs_command"] > 0.5
    assert res["identical"], f"the RTL closed loop left the golden model's trajectory at tick {res['first_difference']}"
