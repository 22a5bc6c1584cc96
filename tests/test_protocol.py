"""The link protocol's codec (spikeforge/core/protocol.py): CRCs, frames, every payload, docs/protocol.md.

Property tests with hypothesis: every frame type round-trips, any single damaged byte is detected,
garbage between frames never hides a frame. The CRCs are checked against amaranth's own software
model, which is what the RTL link will compute.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikeforge.core import protocol as P
from spikeforge.core.config import CoreConfig
from spikeforge.core.memory_map import Region, image_reads
from spikeforge.core.protocol import Err, Op, ProtocolError
from spikeforge.core.random_image import random_config
from spikeforge.host import protocol_doc

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

payloads = st.binary(min_size=0, max_size=P.MAX_PAYLOAD)
bytes_ = st.integers(0, 255)


# ---- CRCs --------------------------------------------------------------------------------------
def _params(a):  # amaranth's Algorithm has no __eq__
    return (a.crc_width, a.polynomial, a.initial_crc, a.reflect_input, a.reflect_output, a.xor_output)


def test_crc_parameters_are_the_amaranth_catalogue_entries():
    from amaranth.lib.crc import catalog

    crc8, crc32 = P.amaranth_crc_algorithms()
    assert _params(crc32) == _params(getattr(catalog, P.CRC32_CATALOG_NAME))
    assert _params(crc8) == _params(getattr(catalog, P.CRC8_CATALOG_NAME))
    assert crc32(data_width=8).residue() == P.CRC32_RESIDUE and crc8(data_width=8).residue() == P.CRC8_RESIDUE
    # the catalogue check values
    assert P.crc32(b"123456789") == 0xCBF43926
    assert P.crc8(b"123456789") == 0xF4


@FAST
@given(st.binary(max_size=2000))
def test_python_crcs_equal_amaranths_software_model(data):
    crc8, crc32 = (a(data_width=8) for a in P.amaranth_crc_algorithms())
    assert P.crc32(data) == crc32.compute(data)
    assert P.crc8(data) == crc8.compute(data)


def _processor_matches(algorithm, data: bytes) -> bool:
    """Feed ``data`` to a byte-wide amaranth.lib.crc.Processor in simulation; its match_detected."""
    from amaranth.lib import crc
    from amaranth.sim import Simulator

    dut = crc.Processor(algorithm(data_width=8))
    seen = {}

    async def bench(ctx):
        for k, byte in enumerate(data):
            ctx.set(dut.start, int(k == 0))
            ctx.set(dut.valid, 1)
            ctx.set(dut.data, byte)
            await ctx.tick()
        ctx.set(dut.valid, 0)
        seen["match"] = ctx.get(dut.match_detected)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return bool(seen["match"])


def test_the_hardware_check_accepts_our_frames_and_rejects_damaged_ones():
    """What the RTL receiver does: every byte after the sync through a Processor, match_detected."""
    crc8, crc32 = P.amaranth_crc_algorithms()
    frame = P.encode_frame(Op.WRITE, 1, 200, P.encode_write(Region.SYNAPSE, 9, [3, 0xFFFF_FFFF, 7]))
    assert _processor_matches(crc32, frame[2:])
    assert _processor_matches(crc8, frame[2:P.HEADER_BYTES])
    damaged = bytearray(frame)
    damaged[12] ^= 0x04
    assert not _processor_matches(crc32, bytes(damaged[2:]))
    damaged = bytearray(frame)
    damaged[5] ^= 0x01  # the length
    assert not _processor_matches(crc8, bytes(damaged[2:P.HEADER_BYTES]))


@FAST
@given(st.binary(max_size=300))
def test_crc_appended_lsb_first_leaves_the_residue(data):
    crc8, crc32 = (a(data_width=8) for a in P.amaranth_crc_algorithms())
    # compute() returns the register after the output transform: CRC-32's well-known magic 0x2144DF1C
    # for the residue 0xDEBB20E3 (match_detected tests the register itself, see the Processor test)
    assert crc32.compute(data + P.crc32(data).to_bytes(4, "little")) == 0x2144DF1C
    assert crc8.compute(data + bytes((P.crc8(data),))) == P.CRC8_RESIDUE


# ---- frames ------------------------------------------------------------------------------------
frames = st.builds(P.Frame, st.integers(0, 255), st.integers(0, 255), st.integers(0, 255),
                   st.binary(max_size=300))


@FAST
@given(frames)
def test_frame_round_trip(frame):
    wire = frame.encode()
    assert len(wire) == P.FRAME_OVERHEAD + len(frame.payload)
    assert wire[:2] == P.SYNC
    assert P.FrameDecoder().feed(wire) == [frame]


@FAST
@given(frames, st.data())
def test_frame_split_anywhere_still_decodes(frame, data):
    wire = frame.encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=5)))
    decoder = P.FrameDecoder()
    out = []
    for a, b in zip([0, *cuts], [*cuts, len(wire)]):
        out += decoder.feed(wire[a:b])
    assert out == [frame]


@FAST
@given(frames, st.data())
def test_any_single_damaged_byte_is_detected(frame, data):
    wire = bytearray(frame.encode())
    pos = data.draw(st.integers(0, len(wire) - 1))
    wire[pos] ^= data.draw(st.integers(1, 255))
    for rescan in (True, False):
        items = P.FrameDecoder(rescan=rescan).feed(bytes(wire))
        assert not [i for i in items if isinstance(i, P.Frame)], f"damaged byte {pos} not detected"


def test_every_byte_of_every_doc_example_is_protected():
    """Exhaustive: each position of each example frame, damaged with several patterns."""
    for ex in protocol_doc.examples():
        wire = ex.frame
        for pos in range(len(wire)):
            for flip in (0x01, 0x80, 0xFF, 0x5A):
                damaged = bytearray(wire)
                damaged[pos] ^= flip
                items = P.FrameDecoder().feed(bytes(damaged))
                assert not [i for i in items if isinstance(i, P.Frame)], (ex.title, pos, flip)


def test_damaged_payload_is_reported_with_its_header():
    frame = P.Frame(Op.WRITE, 2, 77, P.encode_write(Region.SYNAPSE, 5, [1, 2]))
    wire = bytearray(frame.encode())
    wire[P.HEADER_BYTES + 3] ^= 0x10
    items = P.FrameDecoder().feed(bytes(wire))
    assert items == [P.BadFrame(Err.BAD_CRC, Op.WRITE, 2, 77, 0)]


def test_oversized_length_is_refused_after_the_header():
    head = bytes((Op.WRITE, 0, 9)) + (P.MAX_PAYLOAD + 1).to_bytes(2, "little")
    wire = P.SYNC + head + bytes((P.crc8(head),))
    decoder = P.FrameDecoder()
    assert decoder.feed(wire) == [P.BadFrame(Err.TOO_LONG, Op.WRITE, 0, 9, P.MAX_PAYLOAD)]
    # and the decoder is hunting again: the next frame comes through
    good = P.Frame(Op.PING, 0, 10, b"x")
    assert decoder.feed(good.encode()) == [good]


garbage_without_sync = st.binary(max_size=60).map(lambda b: bytes(x for x in b if x != 0xA5))


@FAST
@given(st.lists(st.tuples(garbage_without_sync, frames), min_size=1, max_size=6), garbage_without_sync)
def test_garbage_between_frames_is_skipped(pairs, tail):
    wire = b"".join(g + f.encode() for g, f in pairs) + tail
    for rescan in (True, False):
        decoder = P.FrameDecoder(rescan=rescan)
        assert decoder.feed(wire) == [f for _, f in pairs]
        assert decoder.garbage_bytes == sum(len(g) for g, _ in pairs) + len(tail)


@FAST
@given(st.lists(st.tuples(st.binary(max_size=60), frames), min_size=1, max_size=5))
def test_arbitrary_garbage_never_hides_a_frame_from_the_host(pairs):
    """Garbage may even hold a sync and a header that passes the CRC-8 by chance; the host's decoder
    (rescan) still finds every real frame once the bytes a false header claimed have arrived."""
    wire = b"".join(g + f.encode() for g, f in pairs) + bytes(P.MAX_PAYLOAD + P.FRAME_OVERHEAD)
    got = [i for i in P.FrameDecoder(rescan=True).feed(wire) if isinstance(i, P.Frame)]
    want = [f for _, f in pairs]
    it = iter(got)
    assert all(any(g == w for g in it) for w in want), "a real frame was lost in the garbage"


def test_a_frame_that_lost_a_byte_does_not_take_the_next_one_down_on_the_host():
    first, second = P.Frame(Op.WRITE, 0, 1, bytes(40)), P.Frame(Op.PING, 0, 2, b"ok")
    short = first.encode()[:20] + first.encode()[21:]
    items = P.FrameDecoder(rescan=True).feed(short + second.encode() + bytes(64))
    assert second in items
    assert P.BadFrame(Err.BAD_CRC, Op.WRITE, 0, 1, 0) in items


def test_encode_frame_refuses_what_does_not_fit():
    with pytest.raises(ProtocolError) as exc:
        P.encode_frame(Op.PING, 0, 0, bytes(P.MAX_PAYLOAD + 1))
    assert exc.value.error == Err.BAD_LENGTH
    with pytest.raises(ProtocolError):
        P.encode_frame(Op.PING, 256, 0)


# ---- payloads: every frame type round-trips -----------------------------------------------------
regions = st.sampled_from(list(Region))
addresses = st.integers(0, (1 << 24) - 1)
word_lists = st.lists(st.integers(0, 0xFFFF_FFFF), min_size=1, max_size=P.MAX_WORDS)


@FAST
@given(regions, addresses, word_lists)
def test_write_and_read_reply_round_trip(region, address, words):
    payload = P.encode_write(region, address, words)
    assert len(payload) == 4 + 4 * len(words)
    r, a, w = P.decode_write(payload)
    assert (r, a, w.tolist()) == (region, address, words)
    assert P.decode_read_reply(P.encode_read_reply(region, address, words))[2].tolist() == words
    assert P.decode_write_ack(P.encode_write_ack(region, address, len(words))) == (region, address, len(words))


@FAST
@given(regions, addresses, st.integers(1, P.MAX_WORDS))
def test_read_round_trip(region, address, count):
    assert P.decode_read(P.encode_read(region, address, count)) == (region, address, count)


def test_write_and_read_limits():
    with pytest.raises(ProtocolError):
        P.encode_write(Region.SYNAPSE, 0, list(range(P.MAX_WORDS + 1)))
    with pytest.raises(ProtocolError):
        P.encode_write(Region.SYNAPSE, 1 << 24, [1])
    with pytest.raises(ProtocolError):
        P.encode_read(Region.SYNAPSE, 0, 0)
    with pytest.raises(ProtocolError) as exc:
        P.decode_write(bytes(7))
    assert exc.value.error == Err.BAD_LENGTH
    # signed words go out as two's complement
    assert P.decode_write(P.encode_write(0, 0, [-1]))[2].tolist() == [0xFFFF_FFFF]


@FAST
@given(st.integers(0, 0xFFFF_FFFF), st.lists(st.lists(st.integers(0, 4095), max_size=20), min_size=1, max_size=10))
def test_inject_round_trip(step, per_step):
    payload = P.encode_inject(step, per_step)
    assert len(payload) == P.inject_size([np.array(s) for s in per_step])
    s, got = P.decode_inject(payload)
    assert s == step and [g.tolist() for g in got] == per_step


@FAST
@given(st.integers(1, 300), st.integers(1, 6), st.integers(0, 0xFFFF_FFFF), st.data())
def test_inject_bitmap_round_trip(a, steps, step, data):
    masks = np.array(data.draw(st.lists(st.lists(st.booleans(), min_size=a, max_size=a), min_size=steps,
                                        max_size=steps)), dtype=bool)
    payload = P.encode_inject_bitmap(step, masks)
    assert len(payload) == 4 + steps * P.bitmap_bytes(a)
    s, got = P.decode_inject_bitmap(payload, a)
    assert s == step and np.array_equal(got, masks)


@FAST
@given(st.integers(0, 0xFFFF_FFFF), st.integers(0, 100), st.integers(1, 20), st.integers(1, 5), st.data())
def test_currents_round_trip(step, first, count, steps, data):
    values = np.array(data.draw(st.lists(st.integers(-(1 << 31), (1 << 31) - 1), min_size=count * steps,
                                         max_size=count * steps))).reshape(steps, count)
    s, f, got = P.decode_currents(P.encode_currents(step, first, values))
    assert (s, f) == (step, first) and np.array_equal(got, values)


@FAST
@given(st.integers(0, 0xFFFF_FFFF), st.integers(0, 0xFFFF_FFFF), st.integers(0, 0xFFFF_FFFF))
def test_run_freerun_step_round_trip(a, b, c):
    assert P.decode_run(P.encode_run(a, b)) == (a, b)
    assert P.decode_freerun(P.encode_freerun(a, b, c)) == (a, b, c)
    assert P.decode_step(P.encode_step(a)) == a


@FAST
@given(st.integers(1, 4096), st.integers(0, 0xFFFF_FFFF), st.integers(0, 3), st.data())
def test_spikes_round_trip_in_the_smaller_format(n, step, flags, data):
    density = data.draw(st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    mask = rng.random(n) < density
    payload = P.encode_spikes(step, mask, flags)
    indices = 2 * int(mask.sum()) <= P.bitmap_bytes(n)
    assert len(payload) == 6 + (2 * int(mask.sum()) if indices else P.bitmap_bytes(n))
    assert payload[4] == (P.SpikeFormat.INDICES if indices else P.SpikeFormat.BITMAP)
    s, f, got = P.decode_spikes(payload, n)
    assert (s, f) == (step, flags) and np.array_equal(got, mask)


def test_spikes_decoder_refuses_nonsense():
    with pytest.raises(ProtocolError):
        P.decode_spikes(P.encode_step(1) + bytes((0, 0)) + (20).to_bytes(2, "little"), 16)  # index >= N
    with pytest.raises(ProtocolError):
        P.decode_spikes(P.encode_step(1) + bytes((1, 0)) + bytes(3), 16)  # bitmap of the wrong size
    with pytest.raises(ProtocolError):
        P.decode_spikes(P.encode_step(1) + bytes((7, 0)), 16)  # unknown format


@FAST
@given(st.sampled_from(list(Op)), st.sampled_from(list(Err)), st.integers(0, 0xFFFF_FFFF))
def test_nack_round_trip_and_text(op, err, detail):
    assert P.decode_nack(P.encode_nack(op, err, detail)) == (op, err, detail)
    text = P.describe_nack(op, err, detail)
    assert op.name in text and err.name in text and str(detail) in text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=P.MAX_CORES), st.text("abcxyz-_", max_size=32))
def test_board_info_round_trip(seeds, name):
    cores = tuple(random_config(s) for s in seeds)
    info = P.BoardInfo(cores=cores, name=name, window=3, clock_hz=48_000_000, baud=3_000_000, max_words=128,
                       slots=32, flags=P.BoardFlag.EMULATOR)
    assert P.BoardInfo.decode(info.encode()) == info


def test_config_record_holds_every_coreconfig_field():
    names = {n for n, _ in P.CONFIG_RECORD_FIELDS} - {"features", "config_hash"} | set(P.FEATURE_BITS)
    assert names == set(CoreConfig().to_dict())
    big = CoreConfig(n_neurons=4096, n_inputs=4096, n_current_inputs=4096, weight_bits=16, lanes=16,
                     max_delay=64, stdp=True, adaptive_threshold=True, n_profiles=64, v_bits=32, i_bits=32,
                     refrac_bits=16, adapt_bits=32, trace_bits=24, trace_frac=23)
    assert P.decode_config(P.encode_config(big)) == big


def test_config_record_with_a_wrong_hash_is_refused():
    rec = bytearray(P.encode_config(CoreConfig()))
    rec[-1] ^= 1
    with pytest.raises(ProtocolError, match="fields this spikeforge does not know"):
        P.decode_config(bytes(rec))


def test_board_info_of_another_major_version_decodes_to_just_the_version():
    info = P.BoardInfo(cores=(CoreConfig(),))
    payload = bytearray(info.encode())
    payload[0] = 2
    decoded = P.BoardInfo.decode(bytes(payload))
    assert decoded.version == (2, 0) and decoded.cores == ()


# ---- memory map: the link's address checks cover what image_reads uses -----------------------
@pytest.mark.parametrize("seed", range(12))
def test_region_sizes_hold_every_image_address(seed):
    config = random_config(seed)
    top: dict[int, int] = {}
    for region, address in image_reads(config):
        top[region] = max(top.get(region, -1), address)
        assert address < P.region_size(config, region), (Region(region).name, address)
    for region, highest in top.items():
        assert P.region_size(config, region) - highest <= 16  # sizes are tight (gaps only inside strides)
    P.check_access(config, Region.CONTROL, 1, 2, write=True)  # STEP, LEARNING are writable
    with pytest.raises(ProtocolError) as exc:
        P.check_access(config, Region.CONTROL, 0, 1, write=True)
    assert exc.value.error == Err.READ_ONLY
    with pytest.raises(ProtocolError) as exc:
        P.check_access(config, 10, 0, 1, write=False)
    assert exc.value.error == Err.BAD_REGION


# ---- the doc ------------------------------------------------------------------------------------
def test_doc_examples_are_generated_from_the_codec():
    assert protocol_doc.section(DOC) == protocol_doc.render().strip("\n"), (
        "docs/protocol.md examples are stale: run python -m spikeforge.host.protocol_doc docs/protocol.md")


def test_doc_examples_cover_every_frame_type_and_decode():
    seen = set()
    for ex in protocol_doc.examples():
        assert b"".join(b for b, _ in ex.fields) == ex.payload, ex.title
        (frame,) = P.FrameDecoder().feed(ex.frame)
        assert (frame.opcode, frame.core, frame.seq, frame.payload) == (ex.opcode, ex.core, ex.seq, ex.payload)
        seen.add(ex.opcode)
    commands = {op for op in Op if op < Op.ACK}
    assert commands <= seen, f"no example of {commands - seen}"
    assert {Op.SPIKES, Op.NACK} <= seen
    assert {P.ack(op) for op in (Op.PING, Op.IDENTIFY, Op.WRITE, Op.READ, Op.RUN, Op.FREERUN, Op.STOP,
                                 Op.RESEND, Op.INJECT)} <= seen


def test_a_frame_ending_in_the_first_sync_byte_leaves_nothing_behind():
    frame = P.Frame(254, 254, 239, b"\xae")  # its CRC-32 ends in A5
    assert frame.encode()[-1] == P.SYNC[0]
    decoder = P.FrameDecoder()
    assert decoder.feed(frame.encode()) == [frame]
    assert decoder.garbage_bytes == 0 and not decoder.buffer
    assert decoder.feed(frame.encode()) == [frame]
