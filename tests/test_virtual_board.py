"""The virtual board at the frame level: what it answers, what it refuses, and that a refused command
changes nothing (memories, input slots, spike history, step)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from spikeforge.core import protocol as P
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage
from spikeforge.core.memory_map import MAGIC, ControlReg, Region, image_writes
from spikeforge.core.protocol import Err, Op
from spikeforge.core.random_image import random_image, random_inputs
from spikeforge.host.virtual_board import VirtualBoard
from spikeforge.sim import golden

CONFIG = CoreConfig(n_neurons=24, n_inputs=10, stdp=True, adaptive_threshold=True, max_delay=3,
                    n_current_inputs=3, n_profiles=4)


class Wire:
    """Frames to a VirtualBoard and the frames it answers."""

    def __init__(self, board: VirtualBoard):
        self.board = board
        self.out = bytearray()
        board.attach(self.out.extend)
        self.seq = 0

    def raw(self, data: bytes) -> list:
        self.out.clear()
        self.board.feed(data)
        return P.FrameDecoder().feed(bytes(self.out))

    def send(self, op, core=0, payload=b"") -> list[P.Frame]:
        self.seq = (self.seq + 1) & 0xFF
        return self.raw(P.encode_frame(op, core, self.seq, payload))

    def answers(self, op, core=0, payload=b"") -> list[P.Frame]:
        """The replies to this command (a free run's SPIKES of an earlier command are left out)."""
        return [f for f in self.send(op, core, payload) if f.seq == self.seq]

    def ack(self, op, core=0, payload=b"") -> bytes:
        frames = self.answers(op, core, payload)
        assert frames[-1].opcode == P.ack(op), _explain(frames[-1])
        return frames[-1].payload

    def nack(self, op, core=0, payload=b"") -> tuple[int, int]:
        frames = self.answers(op, core, payload)
        assert len(frames) == 1 and frames[0].opcode == Op.NACK, frames
        nop, err, detail = P.decode_nack(frames[0].payload)
        assert nop == op
        return Err(err), detail


def _explain(frame):
    if frame.opcode == Op.NACK:
        return P.describe_nack(*P.decode_nack(frame.payload))
    return frame


def loaded_board(seed=0, cores=1, **options):
    images = []
    for k in range(cores):
        img = random_image(CONFIG, seed + k)
        img.step = 5
        images.append(img)
    return VirtualBoard(images, **options), images


def snapshot(board: VirtualBoard):
    """Everything a command could change."""
    return [(link.memory.image.copy(), {k: v.copy() for k, v in link.inputs.items()},
             {k: v.copy() for k, v in link.currents.items()}, dict(link.history)) for link in board.links]


def assert_unchanged(before, board):
    after = snapshot(board)
    for (img0, in0, cur0, hist0), (img1, in1, cur1, hist1) in zip(before, after):
        assert img0.differences(img1) == []
        assert in0.keys() == in1.keys() and all(np.array_equal(in0[k], in1[k]) for k in in0)
        assert cur0.keys() == cur1.keys() and all(np.array_equal(cur0[k], cur1[k]) for k in cur0)
        assert hist0.keys() == hist1.keys()


# ---- identity and memory --------------------------------------------------------------------------
def test_identify_and_ping():
    board, _ = loaded_board(cores=2, slots=7, window=3)
    wire = Wire(board)
    info = P.BoardInfo.decode(wire.ack(Op.IDENTIFY))
    assert info.cores == (CONFIG, CONFIG) and info.slots == 7 and info.window == 3
    assert info.flags & P.BoardFlag.EMULATOR and info.version == P.PROTOCOL_VERSION
    assert wire.ack(Op.PING, 0, b"\x00\xa5\x5a\xff") == b"\x00\xa5\x5a\xff"


def test_writes_of_a_whole_image_read_back_exactly():
    image = random_image(CONFIG, 3, extreme=True)
    board = VirtualBoard(CONFIG)
    wire = Wire(board)
    for region, address, word in image_writes(image):
        wire.ack(Op.WRITE, 0, P.encode_write(region, address, [word]))
    assert board.image(0).differences(image) == []
    assert P.decode_read_reply(wire.ack(Op.READ, 0, P.encode_read(Region.CONTROL, 0, 5)))[2].tolist()[:3] == \
        [MAGIC, image.step, int(image.learning)]


def test_words_keep_only_the_bits_of_their_field():
    board = VirtualBoard(CoreConfig(n_neurons=4, n_inputs=2, weight_bits=8, v_bits=12))
    wire = Wire(board)
    wire.ack(Op.WRITE, 0, P.encode_write(Region.SYNAPSE, 0, [200, 0x0001_0005]))  # weight 200 > 127; plastic w/o stdp
    wire.ack(Op.WRITE, 0, P.encode_write(Region.NEURON_STATE, 0, [0x0000_0FFF]))  # v = 4095 in 12 bits = -1
    img = board.image(0)
    assert img.weights[0, 0] == 200 - 256 and img.weights[0, 1] == 5 and not img.plastic[0, 1]
    assert img.v[0] == -1
    back = P.decode_read_reply(wire.ack(Op.READ, 0, P.encode_read(Region.NEURON_STATE, 0, 8)))[2]
    assert back.tolist() == [0xFFFF_FFFF] + [0] * 7  # v sign-extended, unused fields read 0


# ---- refused commands change nothing ---------------------------------------------------------
REFUSALS = [
    ("unknown opcode", 0x7A, 0, b"", Err.UNKNOWN_OPCODE),
    ("no such core", Op.WRITE, 3, P.encode_write(Region.SYNAPSE, 0, [1]), Err.BAD_CORE),
    ("ALL on WRITE", Op.WRITE, P.ALL_CORES, P.encode_write(Region.SYNAPSE, 0, [1]), Err.BAD_CORE),
    ("no such region", Op.WRITE, 0, P.encode_write(11, 0, [1]), Err.BAD_REGION),
    ("past the region", Op.WRITE, 0, P.encode_write(Region.SYNAPSE, 34 * 24 - 1, [1, 2]), Err.BAD_ADDRESS),
    ("read past the region", Op.READ, 0, P.encode_read(Region.RING, 3 * 2 * 24 - 1, 2), Err.BAD_ADDRESS),
    ("read-only register", Op.WRITE, 0, P.encode_write(Region.CONTROL, 0, [1, 2]), Err.READ_ONLY),
    ("write length", Op.WRITE, 0, bytes(6), Err.BAD_LENGTH),
    ("read of 0 words", Op.READ, 0, P.encode_write_ack(Region.SYNAPSE, 0, 0), Err.BAD_VALUE),
    ("input index >= A", Op.INJECT, 0, P.encode_inject(5, [[1, 10]]), Err.BAD_VALUE),
    ("input for a past step", Op.INJECT, 0, P.encode_inject(4, [[1]]), Err.BAD_STEP),
    ("input beyond the window", Op.INJECT, 0, P.encode_inject(5, [[1]] * 9), Err.BAD_STEP),
    ("bitmap length", Op.INJECT_BITMAP, 0, P.encode_step(5) + bytes(3), Err.BAD_LENGTH),
    ("current beyond K", Op.CURRENTS, 0, P.encode_currents(5, 2, np.array([[1, 2]])), Err.BAD_ADDRESS),
    ("current beyond v_bits", Op.CURRENTS, 0, P.encode_currents(5, 0, np.array([[1 << 15]])), Err.BAD_VALUE),
    ("RUN from the wrong step", Op.RUN, 0, P.encode_run(4, 3), Err.BAD_STEP),
    ("RUN length", Op.RUN, 0, P.encode_step(5), Err.BAD_LENGTH),
    ("FREERUN too fast", Op.FREERUN, 0, P.encode_freerun(5, 10, 0), Err.BAD_VALUE),
    ("RESEND of a step not held", Op.RESEND, 0, P.encode_step(2), Err.BAD_STEP),
    ("LEARNING 2", Op.LEARNING, 0, P.encode_flag(2), Err.BAD_VALUE),
    ("RESET mode 9", Op.RESET, 0, P.encode_flag(9), Err.BAD_VALUE),
]


@pytest.mark.parametrize("name, op, core, payload, error", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_refused_command_changes_nothing(name, op, core, payload, error):
    board, _ = loaded_board(slots=8)
    wire = Wire(board)
    wire.ack(Op.INJECT, 0, P.encode_inject(5, [[2], [3]]))  # something in the slots that must survive
    wire.ack(Op.CURRENTS, 0, P.encode_currents(6, 0, np.array([[1, 2, 3]])))
    before = snapshot(board)
    err, _ = wire.nack(op, core, payload)
    assert err == error
    assert_unchanged(before, board)


def test_a_frame_with_a_damaged_payload_is_nacked_and_not_executed():
    board, images = loaded_board()
    wire = Wire(board)
    before = snapshot(board)
    frame = bytearray(P.encode_frame(Op.WRITE, 0, 9, P.encode_write(Region.SYNAPSE, 0, [7] * 16)))
    frame[20] ^= 0x40
    (reply,) = wire.raw(bytes(frame))
    assert reply.opcode == Op.NACK and reply.seq == 9 and P.decode_nack(reply.payload)[1] == Err.BAD_CRC
    assert_unchanged(before, board)
    frame[7] ^= 1  # a damaged header is not even answered
    assert wire.raw(bytes(frame)) == []
    assert_unchanged(before, board)


def test_invalid_memory_is_refused_at_run():
    board = VirtualBoard(CoreConfig(n_neurons=4, n_inputs=2, n_profiles=3))
    wire = Wire(board)
    wire.ack(Op.WRITE, 0, P.encode_write(Region.NEURON_PROFILE, 0, [3]))  # profile 3 of 3 fits 2 bits
    err, _ = wire.nack(Op.RUN, 0, P.encode_run(0, 1))
    assert err == Err.BAD_VALUE and "neuron_profile" in board.last_error


# ---- running --------------------------------------------------------------------------------------
def run_frames(wire, core, start, steps, n):
    """RUN and collect the SPIKES per core -> {core: (steps, n)}, checking the ACK comes last."""
    frames = wire.send(Op.RUN, core, P.encode_run(start, steps))
    assert frames[-1].opcode == P.ack(Op.RUN) and P.decode_step(frames[-1].payload) == start + steps
    out: dict[int, list] = {}
    for f in frames[:-1]:
        assert f.opcode == Op.SPIKES and f.seq == wire.seq
        step, _, mask = P.decode_spikes(f.payload, n)
        out.setdefault(f.core, []).append((step, mask))
    return {k: np.array([m for _, m in sorted(v, key=lambda x: x[0])]) for k, v in out.items()}, frames[:-1]


@pytest.mark.parametrize("engine", ["golden", "fast"])
def test_run_with_injected_inputs_is_the_golden_model(engine):
    board, (image,) = loaded_board(seed=4, slots=32, engine=engine)
    wire = Wire(board)
    steps = 30
    spikes, currents = random_inputs(CONFIG, steps, 9, rate=0.3)
    per_step = [np.flatnonzero(s) for s in spikes]
    wire.ack(Op.INJECT, 0, P.encode_inject(5, per_step[:20]))
    wire.ack(Op.INJECT, 0, P.encode_inject(5, per_step[:20]))  # repeated: harmless (OR)
    wire.ack(Op.INJECT_BITMAP, 0, P.encode_inject_bitmap(25, spikes[20:]))
    wire.ack(Op.CURRENTS, 0, P.encode_currents(5, 0, currents[:15]))
    wire.ack(Op.CURRENTS, 0, P.encode_currents(20, 1, currents[15:, 1:]))
    wire.ack(Op.CURRENTS, 0, P.encode_currents(20, 0, currents[15:, :1]))
    got, frames = run_frames(wire, 0, 5, steps, CONFIG.n_neurons)
    final, rec = golden.run(image, spikes, currents=currents)
    np.testing.assert_array_equal(got[0], rec.spikes)
    assert board.image(0).differences(final) == []
    assert [P.decode_spikes(f.payload, 24)[0] for f in frames] == list(range(5, 5 + steps))


def test_a_retried_run_never_runs_twice():
    board, _ = loaded_board()
    wire = Wire(board)
    run_frames(wire, 0, 5, 4, CONFIG.n_neurons)
    after = snapshot(board)
    err, detail = wire.nack(Op.RUN, 0, P.encode_run(5, 4))
    assert err == Err.BAD_STEP and detail == 9  # "it ran already: the core is at start + steps"
    assert_unchanged(after, board)


def test_inputs_are_consumed_and_spikes_kept_for_resend():
    board, _ = loaded_board(slots=4)
    wire = Wire(board)
    wire.ack(Op.INJECT, 0, P.encode_inject(5, [[1, 2, 3]] * 3))
    got, _ = run_frames(wire, 0, 5, 6, CONFIG.n_neurons)
    assert board.links[0].inputs == {}
    for step in range(7, 11):  # the last `slots` steps are held
        s, _, mask = P.decode_spikes(wire.ack(Op.RESEND, 0, P.encode_step(step)), 24)
        assert s == step and np.array_equal(mask, got[0][step - 5])
    err, detail = wire.nack(Op.RESEND, 0, P.encode_step(6))
    assert err == Err.BAD_STEP and detail == 7
    # writing STEP discards held spikes and injected inputs
    wire.ack(Op.INJECT, 0, P.encode_inject(11, [[4]]))
    wire.ack(Op.WRITE, 0, P.encode_write(Region.CONTROL, ControlReg.STEP, [11]))
    assert board.links[0].inputs == {} and board.links[0].history == {}


def test_lock_step_run_of_all_cores_streams_core_by_core():
    board, images = loaded_board(cores=3)
    wire = Wire(board)
    got, frames = run_frames(wire, P.ALL_CORES, 5, 5, CONFIG.n_neurons)
    assert [f.core for f in frames] == [0, 1, 2] * 5
    for k, image in enumerate(images):
        final, rec = golden.run(image, steps=5)
        np.testing.assert_array_equal(got[k], rec.spikes)
        assert board.image(k).differences(final) == []
    err, detail = wire.nack(Op.RUN, P.ALL_CORES, P.encode_run(5, 1))
    assert err == Err.BAD_STEP and detail == 10


def test_learning_and_reset():
    board, (image,) = loaded_board()
    wire = Wire(board)
    wire.ack(Op.LEARNING, P.ALL_CORES, P.encode_flag(0))
    assert not board.image(0).learning
    wire.ack(Op.RESET, 0, P.encode_flag(P.ResetMode.STATE))
    img = board.image(0)
    assert img.step == 0 and not img.v.any() and not img.ring.any() and not img.x_trace.any()
    np.testing.assert_array_equal(img.weights, image.weights)
    wire.ack(Op.RESET, 0, P.encode_flag(P.ResetMode.BLANK))
    assert board.image(0) == CoreImage.blank(CONFIG)


def test_free_run_streams_in_real_time_and_refuses_bus_commands():
    board, (image,) = loaded_board(slots=64)
    wire = Wire(board)
    frames = wire.send(Op.FREERUN, 0, P.encode_freerun(5, 2000, 0))
    assert frames[0].opcode == P.ack(Op.FREERUN) and P.decode_step(frames[0].payload) == 5
    assert board.free_running
    for op, payload in ((Op.WRITE, P.encode_write(Region.SYNAPSE, 0, [1])), (Op.RUN, P.encode_run(5, 1)),
                        (Op.READ, P.encode_read(Region.SYNAPSE, 0, 1)), (Op.RESET, P.encode_flag(0))):
        assert wire.nack(op, 0, payload)[0] == Err.BUSY
    wire.ack(Op.PING, 0, b"still here")
    deadline = time.monotonic() + 5
    while board.links[0].step < 8 and time.monotonic() < deadline:  # let a few steps run
        time.sleep(0.005)
    stop = P.decode_step(wire.ack(Op.STOP, 0))
    assert not board.free_running and stop > 5
    final, rec = golden.run(image, steps=stop - 5)
    assert board.image(0).differences(final) == []


def test_free_run_with_a_step_count_stops_by_itself():
    board, (image,) = loaded_board()
    out = bytearray()
    board.attach(out.extend)
    board.feed(P.encode_frame(Op.FREERUN, 0, 1, P.encode_freerun(5, 500, 12)))
    deadline = time.monotonic() + 5
    while board.free_running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not board.free_running
    frames = P.FrameDecoder().feed(bytes(out))
    steps = [P.decode_spikes(f.payload, 24)[0] for f in frames if f.opcode == Op.SPIKES]
    assert steps == list(range(5, 17))
    final, _ = golden.run(image, steps=12)
    assert board.image(0).differences(final) == []
