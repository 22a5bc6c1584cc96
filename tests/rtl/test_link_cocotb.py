"""The real host driver against the LinkTop *Verilog* under cocotb + Verilator, byte for byte through
the RTL UART (host/rtl_device.py CocotbLinkDevice, sim/cocotb_tb/link_bridge.py): the network must come
back exactly as the golden model runs it -- spikes of every step, learned weights, membrane state.
And ``spikeforge board emulate --rtl`` serves that device on a real pseudo-terminal.

(The Amaranth-simulator device of tests/rtl/test_link_cosim.py checks the same at ~3,000 clocks/s;
this one is fast enough for the default suite. Icarus does not run the link yet: docs/link-rtl.md.)
"""

import pathlib
import subprocess
import sys

import numpy as np
import yaml
from typer.testing import CliRunner

from spikeforge.core.random_image import random_image, random_inputs
from spikeforge.host.board import Board
from spikeforge.host.cli_board import board_app
from spikeforge.host.loopback import DeviceSerial
from spikeforge.host.rtl_device import CocotbLinkDevice
from spikeforge.sim.golden import GoldenCore

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from learning_case import CONFIG, assert_run_is_golden, learning_case  # noqa: E402


def test_board_on_the_verilog_link_is_exactly_the_golden_model():
    steps = 6
    case = image, inputs, currents, _, _ = learning_case(steps)

    device = CocotbLinkDevice([CONFIG], slots=4, max_words=32, divisor=4, simulator="verilator", timeout=600)
    with Board(DeviceSerial(device, own_device=True), timeout=60.0, retries=1) as board:
        assert board.config(0) == CONFIG
        board.load(image, verify=True)
        record = board.run(steps, inputs, currents)
        back = board.read_image(0)
    assert_run_is_golden(case, record, back)


def test_emulate_rtl_serves_the_verilog_link_on_a_pty(tmp_path):
    """`spikeforge board emulate --rtl` on a real pseudo-terminal: the CLI identifies it, and the Board
    driver opening the pty like a USB serial port loads a learning network, runs it and reads it back
    exactly as the golden model runs it."""
    cfg = tmp_path / "cores.yaml"
    cfg.write_text(yaml.safe_dump([CONFIG.to_dict()]))
    proc = subprocess.Popen([sys.executable, "-m", "spikeforge.host.cli_board", "emulate", "--rtl", "--config",
                             str(cfg), "--slots", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("port: /dev/"), first + proc.stderr.read() if proc.poll() is not None else first
        port = first.split(" ", 1)[1].strip()
        result = CliRunner().invoke(board_app, ["info", "--port", port, "--timeout", "60"])
        assert result.exit_code == 0, result.output
        assert "1 core(s)" in result.output and "rtl-cocotb" in result.output
        assert "emulator" not in result.output  # the RTL does not claim to be the golden emulator

        image = random_image(CONFIG, 2)
        image.learning = True
        inputs, currents = random_inputs(CONFIG, 4, 5, rate=0.4)
        golden = GoldenCore(image.copy())
        want = golden.run(inputs, currents=currents).spikes
        with Board(port, timeout=60.0) as board:
            board.load(image, verify=True)
            record = board.run(4, inputs, currents)
            back = board.read_image(0)
        np.testing.assert_array_equal(record.spikes, want)
        np.testing.assert_array_equal(back.weights, golden.images().weights)
        np.testing.assert_array_equal(back.v, golden.images().v)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_emulate_rtl_and_device_are_one_choice():
    result = CliRunner().invoke(board_app, ["emulate", "--rtl", "--device", "golden2"])
    assert result.exit_code == 2 and "--rtl" in result.output
