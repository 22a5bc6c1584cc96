"""Board (the host driver) against the virtual board, in-process and over a real pseudo-terminal.

The standard is exactness: a network run on the (virtual) board gives the golden backend's SimResult
-- every spike, every learned weight -- and a loaded image reads back field for field. Errors are
clear and bounded in time: a port that does not answer, answers with our own bytes, or vanishes.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from spikeforge.compiler import compile
from spikeforge.compiler.netfile import load_network
from spikeforge.compiler.network import LIFParameters, Network, PoissonSource, Population, Projection
from spikeforge.core import protocol as P
from spikeforge.core.config import CoreConfig
from spikeforge.core.memory_map import Region
from spikeforge.core.random_image import random_config, random_image, random_inputs
from spikeforge.host.board import (
    Board, BoardConnectionError, BoardMismatchError, BoardNackError, BoardTimeoutError, LoadVerifyError,
)
from spikeforge.host.emulator import PtyEmulator
from spikeforge.host.loopback import connect
from spikeforge.host.virtual_board import VirtualBoard
from spikeforge.sim import golden
from spikeforge.sim.golden_backend import simulate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TRANSPORTS = ["in-process", "pty"]


@contextmanager
def board_on(transport: str, device: VirtualBoard, **options):
    """A Board connected to ``device`` in-process or through a PtyEmulator."""
    options.setdefault("timeout", 1.0)
    if transport == "in-process":
        with Board(connect(device), **options) as board:
            yield board
    else:
        with PtyEmulator(device) as emulator, Board(emulator.port, **options) as board:
            yield board


@pytest.fixture(scope="module")
def compiled_examples():
    return {name: compile(load_network(EXAMPLES / f"{name}.yaml"), warn=False)
            for name in ("stdp_pair", "recurrent", "delays", "adaptive", "balanced")}


def assert_same_result(got, want):
    assert got.spikes.keys() == want.spikes.keys()
    for label in want.spikes:
        np.testing.assert_array_equal(got.spikes[label], want.spikes[label], err_msg=label)
    assert got.weights.keys() == want.weights.keys()
    for name in want.weights:
        np.testing.assert_array_equal(got.weights[name], want.weights[name], err_msg=name)
    for label, variables in want.variables.items():
        for var, value in variables.items():
            np.testing.assert_array_equal(got.variables[label][var], value, err_msg=f"{label}.{var}")


# ---- identity ------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_identify(transport):
    configs = [CoreConfig(n_neurons=16, n_inputs=4), CoreConfig(n_neurons=8, n_inputs=0, stdp=True)]
    with board_on(transport, VirtualBoard(configs, slots=12)) as board:
        assert board.info.cores == tuple(configs) and board.n_cores == 2
        assert board.info.slots == 12 and board.info.version == P.PROTOCOL_VERSION
        assert board.config(1) == configs[1]
        assert board.ping(b"abc") < 1.0
        board.check_config(configs[0], 0)


def test_a_config_mismatch_names_every_differing_field():
    with board_on("in-process", VirtualBoard(CoreConfig(n_neurons=16, n_inputs=4))) as board:
        with pytest.raises(BoardMismatchError) as exc:
            board.check_config(CoreConfig(n_neurons=32, n_inputs=4, stdp=True))
        text = str(exc.value)
        assert "n_neurons=16" in text and "n_neurons=32" in text and "stdp=False" in text and "stdp=True" in text
        assert "n_inputs" not in text and "compile(network, config=board.config(0))" in text
        with pytest.raises(BoardMismatchError, match="1 core"):
            board.config(1)
        with pytest.raises(BoardMismatchError):  # load checks it too
            board.load(CoreImage_blank(CoreConfig(n_neurons=32, n_inputs=4)))


def CoreImage_blank(config):
    from spikeforge.core.image import CoreImage

    return CoreImage.blank(config)


class _OtherVersionBoard(VirtualBoard):
    def info(self):
        info = super().info()
        return P.BoardInfo(**{**info.__dict__, "version": (2, 3)})


def test_another_protocol_version_is_refused_clearly():
    with pytest.raises(BoardMismatchError, match=r"speaks link protocol 2\.3.*this spikeforge speaks 1\.0"):
        Board(connect(_OtherVersionBoard(CoreConfig(n_neurons=4, n_inputs=1))))


# ---- load and read back -------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_load_reads_back_every_field(seed):
    config = random_config(seed)
    image = random_image(config, seed, extreme=seed % 2 == 1)
    device = VirtualBoard(config, max_words=[256, 7, 64][seed % 3])
    with board_on("in-process", device) as board:
        board.load(image)  # verify=True compares every field
        assert board.read_image().differences(image) == []
        assert device.image(0).differences(image) == []
        np.testing.assert_array_equal(board.read_weights(), image.weights)


def test_load_over_a_pty_with_a_big_image():
    config = CoreConfig(n_neurons=128, n_inputs=128, stdp=True, max_delay=4)
    image = random_image(config, 11)
    device = VirtualBoard(config)
    with board_on("pty", device) as board:
        board.load(image)
        assert device.image(0).differences(image) == []


def test_load_without_state_keeps_the_state():
    config = CoreConfig(n_neurons=12, n_inputs=5, stdp=True)
    first, second = random_image(config, 1), random_image(config, 2)
    device = VirtualBoard(first)
    with board_on("in-process", device) as board:
        board.load(second, state=False)
        now = device.image(0)
        np.testing.assert_array_equal(now.weights, second.weights)
        np.testing.assert_array_equal(now.v, first.v)
        assert now.step == first.step


def test_verify_names_the_first_field_that_reads_back_wrong(monkeypatch):
    config = CoreConfig(n_neurons=8, n_inputs=4)
    image = random_image(config, 5)
    device = VirtualBoard(config)
    memory = device.links[0].memory
    real_write = memory.write

    def flaky_write(region, address, words, current_slot=None):  # a board that loses one synapse word
        words = np.array(words)
        if region == Region.SYNAPSE and address <= 13 < address + len(words):
            words[13 - address] ^= 1
        real_write(region, address, words, current_slot)

    monkeypatch.setattr(memory, "write", flaky_write)
    with board_on("in-process", device) as board:
        with pytest.raises(LoadVerifyError, match=r"weights\[1, 5\] reads back"):
            board.load(image)


# ---- running networks -------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("name", ["stdp_pair", "recurrent", "delays"])
def test_run_network_is_exactly_the_golden_backend(compiled_examples, transport, name):
    compiled = compiled_examples[name]
    device = VirtualBoard(compiled.config, slots=16)
    with board_on(transport, device) as board:
        got = board.run_network(compiled, 300, seed=4)
    want = simulate(compiled.network, 300, seed=4, compiled=compiled)
    assert_same_result(got, want)
    assert got.backend == "board" and got.meta["port"]
    final, _ = golden.run(compiled.image, compiled.input_raster(300, 4))
    assert device.image(0).differences(final) == []
    if name == "stdp_pair":  # the plastic weight really moved
        assert not np.array_equal(got.weights["learned"], compiled.projection_weights(compiled.image)["learned"])


def test_run_network_with_currents_and_recorded_variables():
    net = Network(dt=0.5)
    net.add(PoissonSource("noise", 6, rate=80.0, seed=3))
    net.add(Population("driven", 3, LIFParameters(tau_refrac=2.0), current_input=True))
    net.add(Population("out", 5, LIFParameters(tau_m=15.0)))
    net.add(Projection("noise", "out", weights=np.full((6, 5), 0.8), label="n2o"))
    net.add(Projection("driven", "out", weights=np.full((3, 5), 1.5), label="d2o"))
    compiled = compile(net, warn=False)
    steps = 120
    currents = {"driven": np.linspace(0.0, 3.0, steps * 3).reshape(steps, 3)}
    with board_on("in-process", VirtualBoard(compiled.config, slots=8)) as board:
        got = board.run_network(compiled, steps, seed=1, currents=currents, record=("v", "ie", "threshold"))
    want = simulate(net, steps, seed=1, compiled=compiled, currents=currents, record=("v", "ie", "threshold"))
    assert_same_result(got, want)
    assert want.spikes["out"].any() and want.spikes["driven"].any()


def test_adaptive_threshold_is_recorded_exactly(compiled_examples):
    compiled = compiled_examples["adaptive"]
    with board_on("in-process", VirtualBoard(compiled.config)) as board:
        got = board.run_network(compiled, 80, record=("threshold", "adapt", "refrac_count"))
    want = simulate(compiled.network, 80, compiled=compiled, record=("threshold", "adapt", "refrac_count"))
    assert_same_result(got, want)


def test_run_longer_than_the_slots_with_inputs_and_currents():
    config = CoreConfig(n_neurons=40, n_inputs=30, n_current_inputs=5, stdp=True, max_delay=5)
    image = random_image(config, 8)
    spikes, currents = random_inputs(config, 75, 8, rate=0.4)
    with board_on("in-process", VirtualBoard(image, slots=8, max_words=32)) as board:
        rec = board.run(75, spikes, currents)
        final = board.read_image()
    want_final, want = golden.run(image, spikes, currents=currents)
    np.testing.assert_array_equal(rec.spikes, want.spikes)
    assert final.differences(want_final) == []


def test_run_cores_in_lock_step():
    configs = [CoreConfig(n_neurons=20, n_inputs=6), CoreConfig(n_neurons=9, n_inputs=3, stdp=True)]
    images = [random_image(c, k) for k, c in enumerate(configs)]
    for img in images:
        img.step = 3
    inputs = [random_inputs(c, 40, k)[0] for k, c in enumerate(configs)]
    device = VirtualBoard(configs, slots=16)
    with board_on("pty", device) as board:
        for k, img in enumerate(images):
            board.load(img, k)
        records = board.run_cores(40, inputs)
    for k, img in enumerate(images):
        final, want = golden.run(img, inputs[k])
        np.testing.assert_array_equal(records[k].spikes, want.spikes)
        assert device.image(k).differences(final) == []


def test_learning_off_and_reset(compiled_examples):
    compiled = compiled_examples["stdp_pair"]
    device = VirtualBoard(compiled.config)
    with board_on("in-process", device) as board:
        board.load(compiled.image)
        board.learning(False)
        board.run(200, compiled.input_raster(200))
        np.testing.assert_array_equal(board.read_weights(), compiled.image.weights)
        board.reset(to=compiled.image)
        state = board.read_image()
        for name in ("v", "ie", "ii", "x_trace", "y_trace", "ring"):
            np.testing.assert_array_equal(getattr(state, name), getattr(compiled.image, name), err_msg=name)
        assert state.step == compiled.image.step
        board.reset(blank=True)
        assert board.read_image() == CoreImage_blank(compiled.config)


# ---- free run --------------------------------------------------------------------------------
def test_free_run_of_a_fixed_length_is_the_golden_model():
    config = CoreConfig(n_neurons=16, n_inputs=4)
    images = [random_image(config, 20 + k) for k in range(2)]
    for img in images:
        img.step = 0
    device = VirtualBoard(images)
    with board_on("pty", device) as board:
        with board.free_run(0.002, steps=25) as run:
            rasters = run.collect()
    for k, img in enumerate(images):
        final, want = golden.run(img, steps=25)
        np.testing.assert_array_equal(rasters[k], want.spikes)
        assert device.image(k).differences(final) == []


def test_free_run_with_inputs_injected_on_the_fly():
    config = CoreConfig(n_neurons=16, n_inputs=8, n_current_inputs=2)
    image = random_image(config, 30)
    device = VirtualBoard(image)
    injected: dict[int, list[int]] = {}
    events = []
    with board_on("in-process", device) as board:
        run = board.free_run(0.004, core=0)
        for event in run:
            events.append(event)
            if len(events) % 3 == 1:
                step = run.inject([len(events) % 8, 7])
                injected.setdefault(step, []).extend([len(events) % 8, 7])
            if len(events) == 30:
                break
        end = run.stop()
        events += list(run)
    steps = [e.step for e in events]
    assert steps == list(range(image.step, end))
    inputs = np.zeros((len(steps), 8), dtype=bool)
    for step, idx in injected.items():
        if step < end:
            inputs[step - image.step, idx] = True
    final, want = golden.run(image, inputs)
    np.testing.assert_array_equal(np.array([e.spikes for e in events]), want.spikes)
    assert device.image(0).differences(final) == []


def test_bus_commands_while_free_running_are_refused_with_a_hint():
    config = CoreConfig(n_neurons=8, n_inputs=2)
    with board_on("in-process", VirtualBoard(config)) as board:
        run = board.free_run(0.005)
        with pytest.raises(BoardNackError, match=r"BUSY.*Stop the free run first"):
            board.read_weights()
        run.stop()
        board.read_weights()  # fine again


# ---- errors ------------------------------------------------------------------------------------
def test_a_nack_is_a_clear_exception_and_changes_nothing():
    config = CoreConfig(n_neurons=8, n_inputs=2)
    image = random_image(config, 1)
    device = VirtualBoard(image)
    with board_on("in-process", device) as board:
        with pytest.raises(BoardNackError, match=r"refused WRITE SYNAPSE\[78 \.\. 80\]: BAD_ADDRESS: .*\(region size in words = 80\)"):
            board.write_words(Region.SYNAPSE, 78, [1, 2, 3])
        with pytest.raises(BoardNackError, match="READ_ONLY"):
            board.write_words(Region.CONTROL, 0, [1])
    assert device.image(0).differences(image) == []


def test_loopback_port_times_out_naming_the_loopback():
    t0 = time.monotonic()
    with pytest.raises(BoardTimeoutError, match="sends our own commands back"):
        Board("loop://", timeout=0.2, retries=2)
    assert time.monotonic() - t0 < 3 * 0.2 + 1.0


def test_a_board_that_stops_answering_is_a_clear_error_within_the_timeout():
    device = VirtualBoard(CoreConfig(n_neurons=8, n_inputs=2))
    port = connect(device)
    board = Board(port, timeout=0.2, retries=2)
    port.faults_in.mute = True
    t0 = time.monotonic()
    with pytest.raises(BoardTimeoutError, match="answered before and stopped"):
        board.read_weights()
    assert time.monotonic() - t0 < 3 * 0.2 + 1.0
    with pytest.raises(BoardTimeoutError):
        board.run(5)


def test_a_vanished_port_is_a_connection_error():
    device = VirtualBoard(CoreConfig(n_neurons=8, n_inputs=2))
    port = connect(device)
    board = Board(port, timeout=0.5)
    port.disconnect()
    with pytest.raises(BoardConnectionError, match="lost the connection"):
        board.read_weights()


def test_a_stopped_emulator_is_an_error_not_a_hang():
    emulator = PtyEmulator(VirtualBoard(CoreConfig(n_neurons=8, n_inputs=2)))
    port = emulator.start()
    board = Board(port, timeout=0.3, retries=1)
    emulator.stop()
    t0 = time.monotonic()
    with pytest.raises((BoardConnectionError, BoardTimeoutError)):
        board.run(10)
    assert time.monotonic() - t0 < 2 * 0.3 + 1.0
    board.close()


def test_a_missing_port_is_a_connection_error():
    with pytest.raises(BoardConnectionError, match="cannot open '/dev/no-such-port'"):
        Board("/dev/no-such-port")


def test_virtual_url_options():
    with Board("virtual://?cores=3&slots=5") as board:
        assert board.n_cores == 3 and board.info.slots == 5
    with pytest.raises(BoardConnectionError, match="unknown option 'colour'"):
        Board("virtual://?colour=red")


def test_a_paced_emulator_moves_bytes_at_the_line_rate():
    baud = 100_000  # 10,000 bytes/s per direction
    with PtyEmulator(VirtualBoard(CoreConfig(n_neurons=8, n_inputs=2)), baud=baud) as emulator:
        with Board(emulator.port, baud=baud, timeout=2.0) as board:
            payload = bytes(range(256)) * 2
            wire = P.FRAME_OVERHEAD + len(payload)  # each way
            seconds = min(board.ping(payload) for _ in range(3))
    assert 2 * wire * 10 / baud <= seconds < 2 * wire * 10 / baud + 0.3  # (slack for a busy machine)
