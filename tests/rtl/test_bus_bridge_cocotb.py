"""The real host driver (``Board``) through ``bridge://``: the board protocol served on the host
(host/bridged_board.py) with the core behind the bus bridge's *Verilog* under cocotb + Verilator --
the Verilog an iCEBreaker bitstream is built from. The network must come back exactly as the golden
model runs it: spikes of every step, learned weights, membrane state; RESET and LEARNING act on the
core; a wrong CoreConfig and damaged bytes on the line are handled as documented."""

import pathlib
import sys

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from spikeforge.core import bridge_protocol as B
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage
from spikeforge.core.memory_map import Region
from spikeforge.core.random_image import random_image
from spikeforge.host.board import Board
from spikeforge.host.bridge_link import BridgeError, BridgeLink
from spikeforge.host.bridged_board import BridgedBoard
from spikeforge.host.cli_board import board_app
from spikeforge.host.loopback import DeviceSerial
from spikeforge.host.protocol_bridge import simulated_bridge_port
from spikeforge.host.wire import LinkFaults
from spikeforge.sim.golden import GoldenCore

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from learning_case import CONFIG, assert_run_is_golden, learning_case  # noqa: E402


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bridge") / "core.yaml"
    path.write_text(yaml.safe_dump(CONFIG.to_dict()))
    return path


def test_board_through_the_bridge_verilog_is_exactly_the_golden_model(config_file):
    case = image, inputs, currents, _, want_image = learning_case(8)
    with Board(f"bridge://verilator?config={config_file}&timeout=60", timeout=60.0, retries=1) as board:
        assert board.config(0) == CONFIG and board.info.name == "bus-bridge"
        board.load(image, verify=True)
        record = board.run(len(inputs), inputs, currents)
        back = board.read_image(0)
        # RESET STATE: dynamic state and STEP to zero, weights and parameters kept
        board.reset(0)
        after_reset = board.read_image(0)
        board.reset(0, blank=True)
        blank = board.read_image(0)
    assert_run_is_golden(case, record, back)
    np.testing.assert_array_equal(after_reset.weights, want_image.weights)
    assert after_reset.step == 0 and not after_reset.v.any() and not after_reset.x_trace.any()
    expected_blank = CoreImage.blank(CONFIG)
    np.testing.assert_array_equal(blank.weights, expected_blank.weights)
    np.testing.assert_array_equal(blank.profiles["v_thresh"], expected_blank.profiles["v_thresh"])


def test_commands_damaged_on_the_way_to_the_board_are_resent_and_change_nothing_twice():
    """0.5 % of the bytes to the board are corrupted: every damaged command is NAKed (or times out),
    resent, nothing runs twice, and the run is still exactly the golden model's."""
    image, inputs, currents, want, want_image = learning_case(steps=10)
    line = simulated_bridge_port(CONFIG, "verilator")
    line.faults_out = LinkFaults(corrupt_rate=0.005, seed=4)
    bridge = BridgeLink(line, timeout=1.0, retries=20)  # the simulation answers within feed()
    device = BridgedBoard(bridge, CONFIG)
    with Board(DeviceSerial(device, own_device=True), timeout=60.0, retries=1) as board:
        board.load(image, verify=True)
        record = board.run(len(inputs), inputs, currents)
        weights = board.read_weights(0)
    np.testing.assert_array_equal(record.spikes, want)
    np.testing.assert_array_equal(weights, want_image.weights)
    assert bridge.stats["naks"] > 0 and bridge.stats["resent"] >= bridge.stats["naks"]


def test_a_build_for_another_core_config_is_refused_with_the_fix():
    line = simulated_bridge_port(CONFIG, "verilator")
    bridge = BridgeLink(line, timeout=30.0)
    other = CoreConfig(n_neurons=8, n_inputs=4)
    with pytest.raises(BridgeError, match="CoreConfig hash .*build=DIR"):
        BridgedBoard(bridge, other)
    line.close()


def test_cli_board_commands_work_through_bridge_urls(config_file, tmp_path):
    runner = CliRunner()
    port = f"bridge://verilator?config={config_file}&timeout=60"
    result = runner.invoke(board_app, ["info", "--port", port, "--timeout", "60"])
    assert result.exit_code == 0, result.output
    assert "bus-bridge" in result.output
    bad = runner.invoke(board_app, ["info", "--port", f"bridge://verilator?build={tmp_path}"])
    assert bad.exit_code != 0 and "report.json" in "".join(bad.output.split())  # rich wraps long paths


def test_a_port_without_a_bridge_is_named():
    with pytest.raises(BridgeError, match="no bus bridge answers"):
        BridgeLink(DeviceSerial(_Silent()), timeout=0.05, retries=1)


class _Silent:
    def attach(self, send):
        pass

    def feed(self, data):
        assert B.FLUSH in data or data[:1] == bytes([B.Cmd.HELLO])

    def close(self):
        pass


def test_bridge_reads_and_writes_many_words_pipelined():
    line = simulated_bridge_port(CONFIG, "verilator")
    bridge = BridgeLink(line, timeout=30.0)
    words = np.arange(CONFIG.n_sources * CONFIG.n_neurons, dtype=np.int64) * 3 % 200
    bridge.write(Region.SYNAPSE, 0, words)
    back = bridge.read(Region.SYNAPSE, 0, words.size)
    np.testing.assert_array_equal(back & 0xFFFF, words)
    assert bridge.stats["resent"] == 0
    line.close()


def test_free_run_through_the_bridge_is_the_golden_model(config_file):
    """FREERUN is served by the host engine too: one bridge step per period, streamed as SPIKES."""
    image = random_image(CONFIG, 7)  # a seed whose core spikes (6 spikes in 8 steps) without input
    steps = 8
    golden = GoldenCore(image.copy())
    want = golden.run(np.zeros((steps, CONFIG.n_inputs), bool), currents=np.zeros((steps, 1), np.int64)).spikes
    with Board(f"bridge://verilator?config={config_file}&timeout=60", timeout=60.0, retries=1) as board:
        board.load(image, verify=False)
        with board.free_run(0.02, steps=steps) as run:
            rasters = run.collect()
        assert board.read_step(0) == image.step + steps
    assert want.any()
    np.testing.assert_array_equal(rasters[0], want)
