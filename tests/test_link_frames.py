"""The RTL link (hdl/link.py LinkTop), byte for byte through its UART: in the Amaranth simulator and as
generated Verilog under cocotb + Verilator (every test runs on both).

Differential: the same frames go to the RTL and to the golden-model virtual board (the behavioural
reference, host/virtual_board.py); every reply must be the same frame (SPIKES compared as spike sets,
because the RTL always sends bitmaps). Plus the receiver's robustness: garbage, truncated frames and
damaged CRCs change nothing and the link recovers.
"""

import pathlib
import struct
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from link_wire import Wire, normal_frame  # noqa: E402

from spikeforge.core import protocol as P
from spikeforge.core.config import CoreConfig
from spikeforge.core.memory_map import ControlReg, Region
from spikeforge.core.protocol import Err, Op
from spikeforge.core.random_image import random_image
from spikeforge.host.rtl_device import CocotbLinkDevice, RtlLinkDevice
from spikeforge.host.transfer import image_write_blocks
from spikeforge.host.virtual_board import VirtualBoard

CONFIG = CoreConfig(n_neurons=4, n_inputs=4, n_current_inputs=2, n_profiles=2, max_delay=2, stdp=True,
                    adaptive_threshold=True)
SLOTS, MAX_WORDS = 8, 32





def _normal(frame):
    return normal_frame(frame, CONFIG.n_neurons)


@pytest.fixture(scope="module", params=["amaranth", "cocotb-verilator"])
def rtl(request):
    """The RTL link in the Amaranth simulator, and its generated Verilog under cocotb + Verilator."""
    if request.param == "amaranth":
        device = RtlLinkDevice([CONFIG], slots=SLOTS, max_words=MAX_WORDS, divisor=4)
    else:
        device = CocotbLinkDevice([CONFIG], slots=SLOTS, max_words=MAX_WORDS, divisor=4, simulator="verilator")
        request.addfinalizer(device.close)
    return Wire(device)


def _golden():
    return Wire(VirtualBoard([CONFIG], slots=SLOTS, max_words=MAX_WORDS, window=2, engine="golden"))


def _load_frames(image):
    """WRITE frames (of at most MAX_WORDS words of one region) that load ``image``."""
    return [(Op.WRITE, 0, P.encode_write(r, a, w)) for r, a, w in image_write_blocks(image, MAX_WORDS)]


def test_identify_ping_and_unknown_opcodes(rtl):
    (reply,) = rtl.send(Op.IDENTIFY)
    info = P.BoardInfo.decode(reply.payload)
    assert reply.opcode == P.ack(Op.IDENTIFY)
    assert info.cores == (CONFIG,) and info.slots == SLOTS and info.max_words == MAX_WORDS
    assert rtl.send(Op.PING, 0, b"spikeforge")[0].payload == b"spikeforge"
    assert rtl.send(Op.PING, 0, b"")[0].payload == b""
    (nack,) = rtl.send(0x7E)
    assert nack.opcode == Op.NACK and P.decode_nack(nack.payload) == (0x7E, Err.UNKNOWN_OPCODE, 0)
    # FREERUN is checked like every command (tests/test_link_freerun.py runs it)
    (nack,) = rtl.send(Op.FREERUN, 0, P.encode_freerun(0, 1000)[:8])
    assert P.decode_nack(nack.payload) == (Op.FREERUN, Err.BAD_LENGTH, 12)
    assert rtl.send(P.ack(Op.PING), 0, b"x") == []  # replies (a loopback) are ignored
    (nack,) = rtl.send(Op.PING, 0, bytes(4 + 4 * MAX_WORDS + 1))
    assert P.decode_nack(nack.payload) == (Op.PING, Err.BAD_LENGTH, 4 + 4 * MAX_WORDS)


@pytest.mark.slow  # ~1.5-2.5 min in the Amaranth simulator
def test_same_replies_as_the_golden_board(rtl):
    """Load, refused commands of every kind, inputs, a lock-step run, RESEND, LEARNING, RESET."""
    gold = _golden()
    image = random_image(CONFIG, 7)
    image.step = 3
    c = CONFIG
    script = _load_frames(image) + [
        (Op.READ, 0, P.encode_read(Region.SYNAPSE, 0, 32)),
        (Op.READ, 0, P.encode_read(Region.CONTROL, 0, 3)),  # LAST_CYCLES differs: hardware
        (Op.WRITE, 0, P.encode_write(Region.SYNAPSE, 31, [1, 2])),          # BAD_ADDRESS
        (Op.WRITE, 0, bytes((10, 0, 0, 0)) + bytes(4)),                      # BAD_REGION
        (Op.WRITE, 0, P.encode_write(Region.CONTROL, 2, [0, 0, 0])),         # READ_ONLY (3)
        (Op.WRITE, 0, bytes(7)),                                             # BAD_LENGTH
        (Op.WRITE, 1, P.encode_write(Region.SYNAPSE, 0, [1])),               # BAD_CORE
        (Op.WRITE, P.ALL_CORES, P.encode_write(Region.SYNAPSE, 0, [1])),     # BAD_CORE (ALL)
        (Op.READ, 0, bytes((8, 0, 0, 0, 0, 0))),                      # BAD_VALUE
        (Op.READ, 0, P.encode_read(Region.X_TRACE, 5, 4)),                   # BAD_ADDRESS
        (Op.READ, 0, b"\x00"),                                               # BAD_LENGTH
        (Op.INJECT, 0, P.encode_inject(3, [[0, 2], [], [3]])),
        (Op.INJECT, 0, P.encode_inject(3, [[1], [4]])),                      # BAD_VALUE, nothing taken
        (Op.INJECT, 0, P.encode_inject(2, [[1]])),                           # BAD_STEP (past)
        (Op.INJECT, 0, P.encode_inject(3 + SLOTS, [[1]])),                   # BAD_STEP (beyond)
        (Op.INJECT_BITMAP, 0, P.encode_inject_bitmap(4, [[1, 1, 0, 0], [0, 0, 0, 1]])),
        (Op.INJECT_BITMAP, 0, struct.pack("<I", 4)),                         # BAD_LENGTH
        (Op.CURRENTS, 0, P.encode_currents(3, 0, np.array([[300, -200], [0, 5000], [77, 0]]))),
        (Op.CURRENTS, 0, P.encode_currents(3, 1, np.array([[1, 2]]))),       # BAD_ADDRESS
        (Op.CURRENTS, 0, P.encode_currents(3, 0, np.array([[1 << 20, 0]]))), # BAD_VALUE
        (Op.WRITE, 0, P.encode_write(Region.CURRENT_IN, 1, [123])),
        (Op.READ, 0, P.encode_read(Region.CURRENT_IN, 0, 2)),
        (Op.RUN, 0, P.encode_run(4, 2)),                                     # BAD_STEP
        (Op.RUN, 0, P.encode_run(3, 5)),
        (Op.RUN, 0, P.encode_run(3, 5)),                                     # a retried RUN never runs twice
        (Op.RUN, P.ALL_CORES, P.encode_run(8, 1)),
        (Op.RESEND, 0, P.encode_step(5)),
        (Op.RESEND, 0, P.encode_step(9)),                                    # BAD_STEP
        (Op.READ, 0, P.encode_read(Region.NEURON_STATE, 0, 32)),
        (Op.READ, 0, P.encode_read(Region.SYNAPSE, 0, 32)),
        (Op.READ, 0, P.encode_read(Region.X_TRACE, 0, 8)),  # every injected input shows in its trace
        (Op.LEARNING, P.ALL_CORES, P.encode_flag(0)),
        (Op.LEARNING, 0, P.encode_flag(2)),                                  # BAD_VALUE
        (Op.READ, 0, P.encode_read(Region.CONTROL, 0, 3)),  # LAST_CYCLES differs: hardware
        (Op.STOP, P.ALL_CORES, b""),
        (Op.RESET, 0, P.encode_flag(0)),
        (Op.READ, 0, P.encode_read(Region.NEURON_STATE, 0, 32)),
        (Op.READ, 0, P.encode_read(Region.PROFILE, 0, 32)),
        (Op.RESEND, 0, P.encode_step(5)),                                    # history cleared
        (Op.RESET, 0, P.encode_flag(3)),                                     # BAD_VALUE
        (Op.WRITE, 0, P.encode_write(Region.CONTROL, ControlReg.STEP, [20])),
        (Op.RUN, 0, P.encode_run(20, 1)),
        (Op.RESET, P.ALL_CORES, P.encode_flag(1)),
        (Op.READ, 0, P.encode_read(Region.PROFILE, 0, 32)),
        (Op.READ, 0, P.encode_read(Region.CONTROL, 0, 3)),  # LAST_CYCLES differs: hardware
    ]
    for op, core, payload in script:
        frame = rtl.frame(op, core, payload)
        got = [_normal(f) for f in rtl.raw(frame)]
        want = [_normal(f) for f in gold.raw(frame)]
        assert got == want, f"item {script.index((op, core, payload))}: {Op(op).name} core {core} payload {payload.hex()}"
    assert len(script) > 40


def test_damaged_frames_change_nothing_and_the_link_recovers(rtl):
    rtl.send(Op.WRITE, 0, P.encode_write(Region.ROW_SHIFT, 0, [1, 2, 3]))
    before = rtl.send(Op.READ, 0, P.encode_read(Region.ROW_SHIFT, 0, 8))[0].payload

    good = rtl.frame(Op.WRITE, 0, P.encode_write(Region.ROW_SHIFT, 0, [9, 9, 9]))
    bad_crc = bytearray(good)
    bad_crc[10] ^= 0x40
    replies = rtl.raw(b"\x00\xA5\xA5\x13garbage" + bytes(bad_crc))
    assert [(f.opcode, f.seq) for f in replies] == [(Op.NACK, bad_crc[4])]
    assert P.decode_nack(replies[0].payload) == (Op.WRITE, Err.BAD_CRC, 0)

    bad_header = bytearray(rtl.frame(Op.WRITE, 0, P.encode_write(Region.ROW_SHIFT, 0, [8])))
    bad_header[6] ^= 0x01  # the length: header CRC-8 fails, dropped silently
    assert rtl.raw(bytes(bad_header)) == []

    too_long = bytearray(rtl.frame(Op.PING))
    too_long[5:7] = (P.MAX_PAYLOAD + 1).to_bytes(2, "little")
    too_long[7] = P.crc8(bytes(too_long[2:7]))
    (nack,) = rtl.raw(bytes(too_long[:8]))
    assert P.decode_nack(nack.payload) == (Op.PING, Err.TOO_LONG, P.MAX_PAYLOAD)

    truncated = rtl.frame(Op.WRITE, 0, P.encode_write(Region.ROW_SHIFT, 0, [7, 7]))[:-5]
    after = rtl.frame(Op.PING, 0, b"after")  # swallowed as the truncated frame's tail
    replies = rtl.raw(truncated + after)
    assert [P.decode_nack(f.payload)[1] for f in replies] == [Err.BAD_CRC]

    assert rtl.send(Op.PING, 0, b"alive")[0].payload == b"alive"
    assert rtl.send(Op.READ, 0, P.encode_read(Region.ROW_SHIFT, 0, 8))[0].payload == before


def test_window_of_two_frames_back_to_back(rtl):
    """Two commands sent without waiting: both answered, in order."""
    a = rtl.frame(Op.WRITE, 0, P.encode_write(Region.ROW_SHIFT, 0, list(range(8))))
    b = rtl.frame(Op.READ, 0, P.encode_read(Region.ROW_SHIFT, 0, 8))
    replies = rtl.raw(a + b)
    assert [f.opcode for f in replies] == [P.ack(Op.WRITE), P.ack(Op.READ)]
    assert P.decode_read_reply(replies[1].payload)[2].tolist() == list(range(8))
