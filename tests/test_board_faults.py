"""A noisy link: bytes dropped and corrupted at set rates (seeded) in both directions.

With retries the results stay exact -- every spike, every learned weight, every field of the image --
or the user gets a clear error. Never a silently wrong value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spikeforge.compiler import compile
from spikeforge.compiler.netfile import load_network
from spikeforge.core import protocol as P
from spikeforge.core.config import CoreConfig
from spikeforge.core.random_image import random_image, random_inputs
from spikeforge.host.board import Board, BoardError
from spikeforge.host.emulator import PtyEmulator
from spikeforge.host.loopback import connect
from spikeforge.host.virtual_board import VirtualBoard
from spikeforge.host.wire import LinkFaults
from spikeforge.sim import golden
from spikeforge.sim.golden_backend import simulate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def stdp_network():
    return compile(load_network(EXAMPLES / "stdp_pair.yaml"), warn=False)


@pytest.fixture(scope="module")
def recurrent_network():
    return compile(load_network(EXAMPLES / "recurrent.yaml"), warn=False)


def test_fault_injection_is_seeded_and_does_what_it_says():
    data = bytes(range(256)) * 40
    a = LinkFaults(0.01, 0.02, seed=5)
    b = LinkFaults(0.01, 0.02, seed=5)
    out_a, out_b = a.apply(data), b.apply(data)
    assert out_a == out_b and a.dropped == b.dropped and a.corrupted == b.corrupted
    assert len(out_a) == len(data) - a.dropped
    assert 50 < a.dropped < 160 and 130 < a.corrupted < 290  # ~1 % and ~2 % of 10240 bytes
    with pytest.raises(ValueError, match="drop_rate"):
        LinkFaults(drop_rate=1.5)


@pytest.mark.parametrize("rescan", [True, False], ids=["ring-buffer board", "cheapest board"])
@pytest.mark.parametrize("seed", range(3))
def test_stdp_network_on_a_noisy_link_is_exact(stdp_network, seed, rescan):
    compiled = stdp_network
    faults = LinkFaults(drop_rate=0.004, corrupt_rate=0.004, seed=seed)
    port = connect(VirtualBoard(compiled.config, slots=16, rescan=rescan), faults=faults)
    with Board(port, timeout=0.3) as board:
        got = board.run_network(compiled, 400, seed=seed)
        stats = board.stats
    want = simulate(compiled.network, 400, seed=seed, compiled=compiled)
    for label in want.spikes:
        np.testing.assert_array_equal(got.spikes[label], want.spikes[label])
    for name in want.weights:
        np.testing.assert_array_equal(got.weights[name], want.weights[name])
    damaged = port.faults_in.dropped + port.faults_in.corrupted + port.faults_out.dropped + port.faults_out.corrupted
    assert damaged > 0 and stats["retries"] + stats["resent_steps"] > 0  # the faults really struck


@pytest.mark.parametrize("rescan", [True, False], ids=["ring-buffer board", "cheapest board"])
def test_load_and_run_on_a_noisy_pty_are_exact(recurrent_network, rescan):
    compiled = recurrent_network
    device = VirtualBoard(compiled.config, slots=32, rescan=rescan)
    with PtyEmulator(device, faults=LinkFaults(0.003, 0.003, seed=9)) as emulator:
        with Board(emulator.port, timeout=0.3) as board:
            got = board.run_network(compiled, 300, seed=2)
    want = simulate(compiled.network, 300, seed=2, compiled=compiled)
    for label in want.spikes:
        np.testing.assert_array_equal(got.spikes[label], want.spikes[label])
    final, _ = golden.run(compiled.image, compiled.input_raster(300, 2))
    assert device.image(0).differences(final) == []


def test_big_uploads_adapt_their_frame_size_to_the_noise():
    config = CoreConfig(n_neurons=64, n_inputs=64, stdp=True)
    image = random_image(config, 3)
    device = VirtualBoard(config)
    port = connect(device, faults=LinkFaults(0.004, 0.004, seed=1))
    with Board(port, timeout=0.3) as board:
        board.load(image)  # verify reads everything back through the same noise
        assert board._frame_words < board.info.max_words
    assert device.image(0).differences(image) == []


@pytest.mark.parametrize("seed", range(5))
def test_a_hopeless_link_gives_a_clear_error_or_the_exact_result(seed):
    config = CoreConfig(n_neurons=16, n_inputs=8, stdp=True)
    image = random_image(config, seed)
    spikes, _ = random_inputs(config, 60, seed)
    device = VirtualBoard(config, slots=8)
    port = connect(device, faults=LinkFaults(0.03, 0.03, seed=seed))
    want_final, want = golden.run(image, spikes)
    try:
        with Board(port, timeout=0.1, retries=3) as board:
            board.load(image)
            rec = board.run(60, spikes)
            final = board.read_image()
    except BoardError as exc:
        assert str(exc)  # a sentence, not a bare exception
        return
    np.testing.assert_array_equal(rec.spikes, want.spikes)
    assert final.differences(want_final) == []


class _FlakyBoard(VirtualBoard):
    """Answers the first ``count`` commands with opcode ``op`` by NACK ``error`` (nothing executed)."""

    def __init__(self, config, op, error, count):
        super().__init__(config)
        self.flaky = (op, error)
        self.left = count

    def _execute(self, frame):
        if frame.opcode == self.flaky[0] and self.left:
            self.left -= 1
            self._reply(frame.seq, frame.core, P.Op.NACK, P.encode_nack(frame.opcode, self.flaky[1], 0))
            return
        super()._execute(frame)


@pytest.mark.parametrize("error", [P.Err.BAD_CRC, P.Err.TOO_LONG])
def test_damage_nacks_are_retried(error):
    config = CoreConfig(n_neurons=8, n_inputs=3)
    image = random_image(config, 2)
    device = _FlakyBoard(config, P.Op.WRITE, error, count=3)
    with Board(connect(device), timeout=0.3) as board:
        board.load(image)
        assert board.stats["damaged_command"] == 3
    assert device.image(0).differences(image) == []


def test_other_nacks_are_not_retried():
    config = CoreConfig(n_neurons=8, n_inputs=3)
    device = _FlakyBoard(config, P.Op.WRITE, P.Err.BAD_ADDRESS, count=1)
    with Board(connect(device), timeout=0.3) as board:
        with pytest.raises(BoardError, match="BAD_ADDRESS"):
            board.load(random_image(config, 2))
        assert board.stats["retries"] == 0
