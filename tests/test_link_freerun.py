"""FREERUN and STOP in the RTL link (hdl/link.py) against the golden-model virtual board.

The simulated LinkTop reports a 12 MHz clock, so one microsecond is 12 simulated cycles and a period
of a few hundred microseconds is a few thousand cycles: short enough to simulate, long enough for a
step and its SPIKES frame (the UART runs at 4 clocks per bit here). The virtual board runs its free
run in real time with a long period, so it is never late; both must send the same frames.
"""

import pathlib
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from link_wire import Wire, normal_frame  # noqa: E402

from spikeforge.core import protocol as P
from spikeforge.core.config import CoreConfig
from spikeforge.core.protocol import Err, Op
from spikeforge.core.random_image import random_image
from spikeforge.host.rtl_device import RtlLinkDevice
from spikeforge.host.transfer import image_write_blocks
from spikeforge.host.virtual_board import VirtualBoard

CONFIG = CoreConfig(n_neurons=4, n_inputs=4, n_current_inputs=2, n_profiles=2, max_delay=2)
SLOTS, MAX_WORDS = 8, 32
CLK = 12_000_000
CYCLES_PER_US = CLK // 1_000_000




def advance(device: RtlLinkDevice, cycles: int) -> None:
    """Let the simulated board run ``cycles`` clocks with nothing on its receive line."""
    device._time += cycles * 1e-6  # the simulation clock period is 1 us (RtlLinkDevice)
    device._sim.run_until(device._time)
    if device._out:
        out = bytes(device._out)
        device._out.clear()
        device._send(out)



def _normal(frame):
    return normal_frame(frame, CONFIG.n_neurons)


def _not_late(normal):
    """A normalised frame with the LATE flag of a SPIKES frame cleared."""
    opcode, core, seq, payload = normal
    if opcode == Op.SPIKES:
        step, flags, spikes = payload
        payload = (step, flags & ~P.SpikeFlag.LATE, spikes)
    return opcode, core, seq, payload


def _load(wire, image):
    for r, a, w in image_write_blocks(image, MAX_WORDS):
        (reply,) = wire.send(Op.WRITE, 0, P.encode_write(r, a, w))
        assert reply.opcode == P.ack(Op.WRITE)


def _inputs(wire):
    """Inputs and analog inputs for steps 0 .. 5 (so the run's spikes are not trivial)."""
    frames = [
        (Op.INJECT, 0, P.encode_inject(0, [[0, 1, 2, 3], [1], [0, 3], [], [2], [0, 1]])),
        (Op.CURRENTS, 0, P.encode_currents(0, 0, np.array([[3000, -200], [0, 5000], [700, 0]]))),
    ]
    return [[_normal(f) for f in wire.raw(wire.frame(*f))] for f in frames]


@pytest.fixture(scope="module")
def image():
    img = random_image(CONFIG, 11)
    img.step = 0
    img.learning = False
    return img


def _rtl():
    return Wire(RtlLinkDevice([CONFIG], slots=SLOTS, max_words=MAX_WORDS, divisor=4, clk_freq=CLK))


def _run_until_frames(wire, count, limit):
    """Advance until ``count`` frames arrived; returns (frames, cycle of each frame's arrival)."""
    frames, cycles = [], []
    spent = 0
    while len(frames) < count and spent < limit:
        advance(wire.device, 16)
        spent += 16
        got = wire.collect()
        frames += got
        cycles += [wire.device.cycles] * len(got)
    return frames, cycles


def test_freerun_of_n_steps_sends_the_same_frames_as_the_virtual_board(image):
    rtl = _rtl()
    gold = Wire(VirtualBoard([CONFIG], slots=SLOTS, max_words=MAX_WORDS, window=2, engine="golden"))
    _load(rtl, image)
    _load(gold, image)
    assert _inputs(rtl) == _inputs(gold)

    steps, period_us = 6, 300
    frame = rtl.frame(Op.FREERUN, P.ALL_CORES, P.encode_freerun(0, period_us, steps))
    gold_frame = P.encode_frame(Op.FREERUN, P.ALL_CORES, rtl.seq, P.encode_freerun(0, 20_000, steps))  # never late
    got = rtl.raw(frame)
    more, cycles = _run_until_frames(rtl, steps + 1 - len(got), 20 * period_us * CYCLES_PER_US)
    got += more
    want = gold.raw(gold_frame)
    deadline = time.monotonic() + 10
    while gold.device.free_running and time.monotonic() < deadline:
        time.sleep(0.01)
    want += gold.collect()
    # the RTL keeps its 300 us period (no LATE flag); the virtual board's LATE flag depends on how
    # promptly the host schedules its free-run thread (a loaded test machine can be late by 20 ms)
    assert [_normal(f) for f in got] == [_not_late(_normal(f)) for f in want]
    assert got[0].opcode == P.ack(Op.FREERUN) and P.decode_step(got[0].payload) == 0
    assert any(_normal(f)[3][2] for f in got[1:]), "the run should make some spikes"

    # the period is kept to the clock: the SPIKES frames of later steps arrive one period apart
    gaps = np.diff(cycles[-4:])
    assert np.all(np.abs(gaps - period_us * CYCLES_PER_US) <= 16), gaps
    # ran by itself to the end: no more frames, not free-running, commands accepted again
    advance(rtl.device, 3 * period_us * CYCLES_PER_US)
    assert rtl.collect() == []
    info = P.BoardInfo.decode(rtl.send(Op.IDENTIFY)[0].payload)
    assert not info.flags & P.BoardFlag.FREE_RUNNING
    (ack,) = rtl.send(Op.RUN, 0, P.encode_run(steps, 1))[-1:]
    assert ack.opcode == P.ack(Op.RUN)
    (resend,) = rtl.send(Op.RESEND, 0, P.encode_step(2))
    (gold_resend,) = gold.send(Op.RESEND, 0, P.encode_step(2))
    assert _normal(resend)[3] == _normal(gold_resend)[3]


def test_freerun_until_stop_busy_identify_inject_and_late(image):
    rtl = _rtl()
    _load(rtl, image)
    # refused: wrong step, a period below the minimum (1 us) is impossible to send, wrong length
    (nack,) = rtl.send(Op.FREERUN, 0, P.encode_freerun(5, 300))
    assert P.decode_nack(nack.payload) == (Op.FREERUN, Err.BAD_STEP, 0)
    (nack,) = rtl.send(Op.FREERUN, 0, P.encode_freerun(0, 0))
    assert P.decode_nack(nack.payload) == (Op.FREERUN, Err.BAD_VALUE, 1)

    period_us = 400
    ack, *spikes = rtl.send(Op.FREERUN, 0, P.encode_freerun(0, period_us, 0))
    free_seq = rtl.seq
    assert ack.opcode == P.ack(Op.FREERUN)
    spikes += _run_until_frames(rtl, 2 - len(spikes), 10 * period_us * CYCLES_PER_US)[0]
    assert [(f.opcode, f.seq) for f in spikes] == [(Op.SPIKES, free_seq)] * 2
    assert [P.decode_spikes(f.payload, 4)[:2] for f in spikes] == [(0, 0), (1, 0)]  # not late

    # while free-running: BUSY for what changes the core, the rest is served
    replies = rtl.send(Op.WRITE, 0, P.encode_write(2, 0, [1]))
    nacks = [f for f in replies if f.opcode == Op.NACK]
    assert len(nacks) == 1
    op, err, detail = P.decode_nack(nacks[0].payload)
    assert (op, err) == (Op.WRITE, Err.BUSY) and detail >= 2
    replies = rtl.send(Op.IDENTIFY)
    (info,) = [P.BoardInfo.decode(f.payload) for f in replies if f.opcode == P.ack(Op.IDENTIFY)]
    assert info.flags & P.BoardFlag.FREE_RUNNING
    replies = rtl.send(Op.INJECT, 0, P.encode_inject(40, [[1]]))  # far ahead of the window: BAD_STEP
    (nack,) = [f for f in replies if f.opcode == Op.NACK]
    assert P.decode_nack(nack.payload)[1] == Err.BAD_STEP
    (nack,) = [f for f in rtl.send(Op.FREERUN, 0, P.encode_freerun(0, 500)) if f.opcode == Op.NACK]
    assert P.decode_nack(nack.payload)[1] == Err.BUSY

    # STOP: its ACK comes after the last SPIKES frame and names the next step
    replies = rtl.send(Op.STOP, P.ALL_CORES)
    assert replies[-1].opcode == P.ack(Op.STOP)
    last = [P.decode_spikes(f.payload, 4)[0] for f in replies if f.opcode == Op.SPIKES]
    next_step = P.decode_step(replies[-1].payload)
    assert next_step >= 3 and (not last or last[-1] == next_step - 1)
    advance(rtl.device, 3 * period_us * CYCLES_PER_US)
    assert rtl.collect() == []
    (stop,) = rtl.send(Op.STOP, 0)  # STOP when nothing runs: the step, harmless
    assert P.decode_step(stop.payload) == next_step

    # a period the board cannot keep (1 us): every step starts more than one period late
    ack, *late = rtl.send(Op.FREERUN, 0, P.encode_freerun(next_step, 1, 3))
    assert ack.opcode == P.ack(Op.FREERUN)
    late += _run_until_frames(rtl, 3 - len(late), 20_000)[0]
    assert [P.decode_spikes(f.payload, 4)[:2] for f in late] == [
        (next_step + i, P.SpikeFlag.LATE) for i in range(3)]
