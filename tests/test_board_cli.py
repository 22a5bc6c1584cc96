"""``spikeforge board ...`` and ``spikeforge run`` (host/cli_board.py), against the virtual board:
in-process (``virtual://``) and through ``spikeforge board emulate`` in a subprocess on a real pty."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import typer
from typer.testing import CliRunner

from spikeforge.compiler import compile
from spikeforge.compiler.netfile import load_network
from spikeforge.core.random_image import random_image
from spikeforge.host.cli_board import board_app, run_command
from spikeforge.sim.golden_backend import simulate
from spikeforge.sim.result import SimResult

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STDP = EXAMPLES / "stdp_pair.yaml"
runner = CliRunner()

# `spikeforge run` is registered by the lead in spikeforge/cli.py; test the same function here
run_app = typer.Typer()
run_app.command()(run_command)


def test_info_lists_every_core():
    result = runner.invoke(board_app, ["info", "--port", "virtual://?cores=2"])
    assert result.exit_code == 0, result.output
    assert "2 core(s)" in result.output and "n_neurons" in result.output and "core 1" in result.output


def test_run_writes_the_golden_backends_result(tmp_path):
    out = tmp_path / "result.npz"
    result = runner.invoke(run_app, [str(STDP), "--port", f"virtual://?network={STDP}", "--steps", "300",
                                     "--seed", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "post" in result.output and out.exists()
    got = SimResult.load(out)
    network = load_network(STDP)
    want = simulate(network, 300, seed=2, compiled=compile(network, warn=False))
    np.testing.assert_array_equal(got.spikes["post"], want.spikes["post"])
    np.testing.assert_array_equal(got.weights["learned"], want.weights["learned"])


def test_run_on_a_board_the_network_does_not_fit_says_why():
    result = runner.invoke(run_app, [str(EXAMPLES / "balanced.yaml"), "--port", "virtual://", "--steps", "10"])
    assert result.exit_code == 2
    assert "error:" in result.output and "max_delay" in result.output and "Traceback" not in result.output


def test_load_and_read_weights(tmp_path):
    config = compile(load_network(STDP), warn=False).config
    image = random_image(config, 4)
    image_path = tmp_path / "image.npz"
    image.save(image_path)
    cfg = tmp_path / "core.json"
    cfg.write_text(json.dumps(config.to_dict()))
    port = f"virtual://?config={cfg}"
    # each command opens its own in-process board: load and read back within one command each
    result = runner.invoke(board_app, ["load", str(image_path), "--port", port])
    assert result.exit_code == 0, result.output
    assert "written and verified" in result.output
    out = tmp_path / "w.npz"
    result = runner.invoke(board_app, ["read-weights", "--port", port, "--net", str(STDP), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with np.load(out) as data:
        assert set(data.files) == {"teach", "learned"}


def test_errors_are_one_paragraph_not_a_traceback():
    result = runner.invoke(board_app, ["info", "--port", "loop://", "--timeout", "0.1"])
    assert result.exit_code == 2 and "loopback" in result.output and "Traceback" not in result.output
    result = runner.invoke(board_app, ["load", "missing.yaml", "--port", "virtual://"])
    assert result.exit_code == 2 and "no such file" in result.output


def test_emulate_prints_its_port_first_and_serves_the_cli(tmp_path):
    cfg = tmp_path / "cores.yaml"
    cfg.write_text("- {n_neurons: 16, n_inputs: 4}\n- {n_neurons: 8, n_inputs: 2, stdp: true}\n")
    proc = subprocess.Popen([sys.executable, "-m", "spikeforge.host.cli_board", "emulate", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("port: /dev/"), first
        port = first.split(" ", 1)[1].strip()
        result = runner.invoke(board_app, ["info", "--port", port])
        assert result.exit_code == 0, result.output
        assert "2 core(s)" in result.output and "emulator" in result.output
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_emulate_serves_the_blimp_controllers_core(monkeypatch):
    """`board emulate --network blimp`: the core `demo blimp --port` loads (docs/blimp.md)."""
    from spikeforge.demos.blimp.cli import CONTROLLER_FILE
    from spikeforge.demos.blimp.snn import Controller
    from spikeforge.host import emulator

    served = {}
    monkeypatch.setattr(emulator, "emulate", lambda device, **options: served.update(
        configs=emulator.board_configs(options["cores"], options["config"], options["network"])))
    result = runner.invoke(board_app, ["emulate", "--network", "blimp"])
    assert result.exit_code == 0, result.output
    assert served["configs"] == [Controller.load(CONTROLLER_FILE).config()]
    result = runner.invoke(board_app, ["emulate", "--network", "blimp", "--config", "x.json"])
    assert result.exit_code == 2 and "not both" in result.output


def test_emulate_refuses_bad_options(tmp_path):
    result = runner.invoke(board_app, ["emulate", "--config", str(tmp_path / "none.json")])
    assert result.exit_code == 2 and "no such config file" in result.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"n_neurons": 16, "colour": "red"}')
    result = runner.invoke(board_app, ["emulate", "--config", str(bad)])
    assert result.exit_code == 2 and "colour" in result.output
