"""The UART link protocol between a host and a spikeforge board: every constant and the frame codec.

One module shared by the host driver (``spikeforge.host``), the virtual board and the RTL link
(``spikeforge.hdl``), so the three cannot disagree. docs/protocol.md describes the same protocol
byte by byte, with examples generated from this code (tests/test_protocol.py checks them).

Designed to be cheap in hardware: a byte-oriented receiver with a fixed 8-byte header, every length
bounded by a constant (the payload buffer of the RTL is ``MAX_PAYLOAD`` bytes), little-endian fields,
and two catalogue CRCs that ``amaranth.lib.crc`` builds directly:

- a CRC-8 (SMBus) over the header lets the receiver trust the length and the sequence number
  before the payload arrives, so a corrupted frame is answered with a NACK naming its sequence
  number instead of leaving the host to time out;
- a CRC-32 (ISO-HDLC, the Ethernet/zlib CRC) over header and payload protects the whole frame.

Why CRC-32 and not CRC-16: on a line that drops bytes, a frame that lost a byte is checked against
bytes shifted out of place, and any 16-bit check then passes by chance once in 65,536 damaged frames.
Fault tests at 0.4 % damaged bytes met such false accepts within a dozen runs; with 32 bits they are
65,536 times rarer, for 2 more bytes per frame and a wider XOR tree in the FPGA.

Appended CRCs leave a constant in a receiver's CRC register (the residue), so a receiver feeds
*every* byte after the sync through its CRC units and checks for the residue: ``match_detected`` of
``amaranth.lib.crc.Processor``. The CRC-32 is reflected and goes out least significant byte first,
like every other field.

Frame (both directions)::

    offset  size  field
    0       2     sync: A5 5A
    2       1     opcode
    3       1     core id (0xFF: all cores)
    4       1     sequence number, echoed by every reply to the command
    5       2     payload length L, little-endian, 0 .. MAX_PAYLOAD
    7       1     header CRC-8 over bytes 2..6
    8       L     payload
    8+L     4     CRC-32 over bytes 2 .. 7+L, least significant byte first

Idempotency: a retried WRITE, READ, INJECT, ... is harmless; RUN and FREERUN carry the step number
they start at and the board refuses them (NACK BAD_STEP, detail = its current step) when a core is
not at that step, so a retried RUN never runs twice.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from spikeforge.core.config import CoreConfig
from spikeforge.core.memory_map import (
    NEURON_STATE_STRIDE, PROFILE_STRIDE, ControlReg, Region, config_hash_word,
)

# ---- version and framing -----------------------------------------------------------------------
PROTOCOL_VERSION = (1, 0)  # (major, minor): a host refuses a board with another major version

SYNC = b"\xA5\x5A"
HEADER_BYTES = 8  # sync (2), opcode, core, seq, length (2), header CRC
CRC_BYTES = 4
FRAME_OVERHEAD = HEADER_BYTES + CRC_BYTES

MAX_WORDS = 256  # words per WRITE / READ frame (a board may advertise fewer in IDENTIFY)
MAX_PAYLOAD = 4 + 4 * MAX_WORDS  # the largest payload of any frame (WRITE of MAX_WORDS words)
MAX_CORES = 32
ALL_CORES = 0xFF  # core id addressing every core (RUN, FREERUN, STOP, LEARNING, RESET)
NAME_BYTES = 32  # longest board name in IDENTIFY
ADDRESS_BYTES = 3  # addresses are 24 bits (memory_map.ADDR_BITS)
NEXT_STEP = 0xFFFF  # INJECT entry: the following indices are for the next step

# ---- CRCs: parameters that amaranth.lib.crc.Algorithm is built from ----------------------------
CRC32_CATALOG_NAME = "CRC32_ISO_HDLC"  # the Ethernet / zlib / PKZIP CRC-32
CRC32_WIDTH = 32
CRC32_POLYNOMIAL = 0x04C11DB7
CRC32_INITIAL = 0xFFFF_FFFF
CRC32_REFLECT_INPUT = True
CRC32_REFLECT_OUTPUT = True
CRC32_XOR_OUTPUT = 0xFFFF_FFFF
CRC32_RESIDUE = 0xDEBB_20E3  # register value after data + its CRC (LSB first): what match_detected tests

CRC8_CATALOG_NAME = "CRC8_SMBUS"
CRC8_WIDTH = 8
CRC8_POLYNOMIAL = 0x07
CRC8_INITIAL = 0x00
CRC8_REFLECT_INPUT = False
CRC8_REFLECT_OUTPUT = False
CRC8_XOR_OUTPUT = 0x00
CRC8_RESIDUE = 0x00


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC of ``data`` (zlib's, at C speed)."""
    return zlib.crc32(data)


def _crc8_table() -> bytes:
    table = bytearray(256)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ CRC8_POLYNOMIAL) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table[byte] = crc
    return bytes(table)


_CRC8_TABLE = _crc8_table()


def crc8(data: bytes) -> int:
    """CRC-8/SMBus of ``data`` (the header check)."""
    crc = CRC8_INITIAL
    for byte in data:
        crc = _CRC8_TABLE[crc ^ byte]
    return crc ^ CRC8_XOR_OUTPUT


def amaranth_crc_algorithms():
    """The two CRCs as ``amaranth.lib.crc.Algorithm`` objects ``(crc8, crc32)`` for the RTL.

    ``Algorithm(...)(data_width=8)`` gives the Parameters of a byte-wide ``crc.Processor``."""
    from amaranth.lib import crc

    def algorithm(width, poly, init, ref_in, ref_out, xor_out):
        return crc.Algorithm(crc_width=width, polynomial=poly, initial_crc=init,
                             reflect_input=ref_in, reflect_output=ref_out, xor_output=xor_out)

    return (
        algorithm(CRC8_WIDTH, CRC8_POLYNOMIAL, CRC8_INITIAL, CRC8_REFLECT_INPUT, CRC8_REFLECT_OUTPUT,
                  CRC8_XOR_OUTPUT),
        algorithm(CRC32_WIDTH, CRC32_POLYNOMIAL, CRC32_INITIAL, CRC32_REFLECT_INPUT, CRC32_REFLECT_OUTPUT,
                  CRC32_XOR_OUTPUT),
    )


# ---- opcodes and errors ------------------------------------------------------------------------
class Op(enum.IntEnum):
    """Opcodes. Commands (host -> board) are below 0x80; the board answers a command ``op`` with
    ``ACK | op`` (``ack(op)``) or ``NACK``, and streams ``SPIKES`` during RUN and FREERUN."""

    PING = 0x01           # payload echoed
    IDENTIFY = 0x02       # -> BoardInfo
    WRITE = 0x10          # region, address, words
    READ = 0x11           # region, address, count -> region, address, words
    INJECT = 0x20         # input spike indices for coming steps
    INJECT_BITMAP = 0x21  # input spike bitmaps for coming steps
    CURRENTS = 0x22       # analog inputs (CURRENT_IN) for coming steps
    RUN = 0x30            # run n steps in lock-step from a given step; streams SPIKES
    FREERUN = 0x31        # run in real time with a fixed step period; streams SPIKES
    STOP = 0x32           # stop a free run
    RESEND = 0x33         # the SPIKES payload of a recent step again
    LEARNING = 0x40       # STDP updates on/off
    RESET = 0x41          # dynamic state to zero (or the whole core to a blank image)
    ACK = 0x80            # | command opcode
    SPIKES = 0xF0         # board -> host: one step's spikes of one core
    NACK = 0xFE           # board -> host: command rejected, nothing changed


COMMANDS = frozenset(op for op in Op if op < Op.ACK)

#: Commands that are harmless to repeat (a retry after a lost reply changes nothing more).
IDEMPOTENT = frozenset({
    Op.PING, Op.IDENTIFY, Op.WRITE, Op.READ, Op.INJECT, Op.INJECT_BITMAP, Op.CURRENTS, Op.STOP,
    Op.RESEND, Op.LEARNING, Op.RESET,
})
#: Commands a board accepts while it free-runs (the others are answered NACK BUSY).
ALLOWED_WHILE_RUNNING = frozenset({
    Op.PING, Op.IDENTIFY, Op.INJECT, Op.INJECT_BITMAP, Op.CURRENTS, Op.STOP, Op.RESEND,
})
#: Commands that take ALL_CORES as their core id.
BROADCAST_OK = frozenset({Op.PING, Op.IDENTIFY, Op.RUN, Op.FREERUN, Op.STOP, Op.LEARNING, Op.RESET})


def ack(op: int) -> int:
    """The opcode of the ACK of command ``op``."""
    return Op.ACK | int(op)


class Err(enum.IntEnum):
    """NACK error codes. The 32-bit ``detail`` of the NACK says more (see ERROR_DETAIL)."""

    BAD_CRC = 1         # header intact, CRC-32 wrong: the payload was damaged on the wire
    BAD_LENGTH = 2      # payload length impossible for the opcode, or above MAX_PAYLOAD
    UNKNOWN_OPCODE = 3  # not a command of this protocol version
    BAD_CORE = 4        # no such core (or ALL_CORES where one core is needed)
    BAD_REGION = 5      # no such memory region
    BAD_ADDRESS = 6     # address range outside the region
    BAD_VALUE = 7       # a field of the payload is out of range
    BAD_STEP = 8        # step outside the window of the command, or the core is not at that step
    BUSY = 9            # the board free-runs; STOP it first
    READ_ONLY = 10      # write to a read-only register
    TOO_LONG = 11       # header says L > MAX_PAYLOAD: its CRC-8 passed by chance (a host never sends that)


ERROR_TEXT = {
    Err.BAD_CRC: "the frame was damaged on the wire (CRC-32 mismatch)",
    Err.BAD_LENGTH: "the payload length is wrong for this command",
    Err.UNKNOWN_OPCODE: "the board does not know this command",
    Err.BAD_CORE: "there is no such core on the board",
    Err.BAD_REGION: "there is no such memory region",
    Err.BAD_ADDRESS: "the address range is outside the memory region",
    Err.BAD_VALUE: "a value of the command is out of range",
    Err.BAD_STEP: "the step is not the one the board expects",
    Err.BUSY: "the board is free-running",
    Err.READ_ONLY: "the register is read-only",
    Err.TOO_LONG: "the header announced more than MAX_PAYLOAD bytes (damaged on the wire)",
}

ERROR_DETAIL = {
    Err.BAD_CRC: "always 0",
    Err.BAD_LENGTH: "largest or required payload length",
    Err.UNKNOWN_OPCODE: "always 0",
    Err.BAD_CORE: "number of cores",
    Err.BAD_REGION: "number of regions",
    Err.BAD_ADDRESS: "region size in words",
    Err.BAD_VALUE: "limit",
    Err.BAD_STEP: "the core's current step (RESEND: the oldest step held)",
    Err.BUSY: "the core's current step",
    Err.READ_ONLY: "address",
    Err.TOO_LONG: "MAX_PAYLOAD",
}

#: Errors a host retries: they say the frame was damaged, not that the command was wrong.
RETRYABLE = frozenset({Err.BAD_CRC, Err.TOO_LONG})


class ResetMode(enum.IntEnum):
    STATE = 0  # v, ie, ii, refrac_count, adapt, traces, ring and STEP to 0; parameters, weights kept
    BLANK = 1  # the whole core to CoreImage.blank(config)


class SpikeFormat(enum.IntEnum):
    INDICES = 0  # u16 neuron indices, ascending
    BITMAP = 1   # ceil(N/8) bytes, neuron i = bit (i % 8) of byte i // 8


class SpikeFlag(enum.IntFlag):
    LOST = 1  # earlier SPIKES frames of this run were not sent (transmitter busy): RESEND them
    LATE = 2  # FREERUN: this step started after its real-time slot


# ---- errors raised by the codec ----------------------------------------------------------------
class ProtocolError(ValueError):
    """A frame or payload breaks the protocol; ``error`` and ``detail`` are what a NACK would carry."""

    def __init__(self, error: Err, detail: int, message: str):
        super().__init__(message)
        self.error = Err(error)
        self.detail = int(detail)


# ---- frames ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Frame:
    """A decoded frame whose CRCs were right."""

    opcode: int
    core: int
    seq: int
    payload: bytes = b""

    def encode(self) -> bytes:
        return encode_frame(self.opcode, self.core, self.seq, self.payload)


@dataclass(frozen=True)
class BadFrame:
    """A frame with an intact header that was rejected (bad CRC-32 or length): NACK it."""

    error: Err
    opcode: int
    core: int
    seq: int
    detail: int = 0


def encode_frame(opcode: int, core: int, seq: int, payload: bytes = b"") -> bytes:
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(Err.BAD_LENGTH, MAX_PAYLOAD,
                            f"payload of {len(payload)} bytes is above MAX_PAYLOAD = {MAX_PAYLOAD}")
    for name, value in (("opcode", opcode), ("core", core), ("seq", seq)):
        if not 0 <= int(value) <= 0xFF:
            raise ProtocolError(Err.BAD_VALUE, 0xFF, f"frame {name} = {value} does not fit one byte")
    head = struct.pack("<BBBH", opcode, core, seq, len(payload))
    body = head + bytes((crc8(head),)) + payload
    return SYNC + body + crc32(body).to_bytes(CRC_BYTES, "little")


class FrameDecoder:
    """Bytes in, frames out: hunts for the sync, checks both CRCs, resynchronises after garbage.

    ``feed(data)`` returns the Frames (CRCs right) and BadFrames (header right, frame rejected) that
    the new bytes completed. A bad header is never trusted: the decoder hunts for the next sync.

    ``rescan``: after a rejected frame, look for the next sync *inside* the rejected bytes (the host
    keeps its buffer, so a frame that lost bytes does not take the next frame down with it). A board
    without a buffer does the cheap thing, ``rescan=False``: it skips the bytes the header claimed.
    """

    def __init__(self, *, rescan: bool = True, max_payload: int = MAX_PAYLOAD):
        self.rescan = rescan
        self.max_payload = max_payload
        self.buffer = bytearray()
        self.frames = 0
        self.garbage_bytes = 0
        self.header_errors = 0
        self.crc_errors = 0
        self.length_errors = 0

    def reset(self) -> None:
        self.buffer.clear()

    def feed(self, data: bytes) -> list[Frame | BadFrame]:
        buf = self.buffer
        buf += data
        out: list[Frame | BadFrame] = []
        pos = 0
        while True:
            start = buf.find(SYNC, pos)
            if start < 0:
                # keep a trailing first sync byte (not yet examined): its partner may come next
                keep = len(buf) - 1 if len(buf) > pos and buf[-1] == SYNC[0] else len(buf)
                self.garbage_bytes += keep - pos
                pos = keep
                break
            self.garbage_bytes += start - pos
            pos = start
            if len(buf) - pos < HEADER_BYTES:
                break
            head = bytes(buf[pos + 2:pos + 7])
            if crc8(head) != buf[pos + 7]:
                self.header_errors += 1
                pos += 1 if self.rescan else HEADER_BYTES
                continue
            opcode, core, seq, length = struct.unpack("<BBBH", head)
            if length > self.max_payload:
                self.length_errors += 1
                out.append(BadFrame(Err.TOO_LONG, opcode, core, seq, self.max_payload))
                pos += HEADER_BYTES
                continue
            end = pos + HEADER_BYTES + length + CRC_BYTES
            if len(buf) < end:
                break
            body = bytes(buf[pos + 2:end - CRC_BYTES])
            if crc32(body) != int.from_bytes(buf[end - CRC_BYTES:end], "little"):
                self.crc_errors += 1
                out.append(BadFrame(Err.BAD_CRC, opcode, core, seq, 0))
                pos = pos + HEADER_BYTES if self.rescan else end
                continue
            self.frames += 1
            out.append(Frame(opcode, core, seq, body[HEADER_BYTES - 2:]))
            pos = end
        del buf[:pos]
        return out


# ---- payload helpers ---------------------------------------------------------------------------
def _need(payload: bytes, size: int, what: str, exact: bool = True) -> None:
    if (len(payload) != size) if exact else (len(payload) < size):
        raise ProtocolError(Err.BAD_LENGTH, size,
                            f"{what} payload has {len(payload)} bytes, expected {'' if exact else 'at least '}{size}")


def _u24(value: int, what: str) -> bytes:
    if not 0 <= int(value) < 1 << 24:
        raise ProtocolError(Err.BAD_ADDRESS, 1 << 24, f"{what} = {value} does not fit 24 bits")
    return int(value).to_bytes(3, "little")


def _words_array(words) -> np.ndarray:
    arr = np.asarray(words)
    if arr.dtype.kind not in "iub":
        raise ProtocolError(Err.BAD_VALUE, 0, f"words must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64).reshape(-1)
    if arr.size and (arr.min() < -(1 << 31) or arr.max() > 0xFFFF_FFFF):
        raise ProtocolError(Err.BAD_VALUE, 0xFFFF_FFFF, "a word does not fit 32 bits")
    return (arr & 0xFFFF_FFFF).astype("<u4")


# WRITE: region u8, address u24, words u32[count] ------------------------------------------------
def encode_write(region: int, address: int, words) -> bytes:
    w = _words_array(words)
    if not 1 <= w.size <= MAX_WORDS:
        raise ProtocolError(Err.BAD_LENGTH, MAX_WORDS, f"WRITE of {w.size} words: 1 .. {MAX_WORDS} per frame")
    return bytes((int(region),)) + _u24(address, "address") + w.tobytes()


def decode_write(payload: bytes) -> tuple[int, int, np.ndarray]:
    if len(payload) < 8 or (len(payload) - 4) % 4:
        raise ProtocolError(Err.BAD_LENGTH, MAX_PAYLOAD,
                            f"WRITE payload has {len(payload)} bytes: expected 4 + 4 x (1 .. {MAX_WORDS}) words")
    return payload[0], int.from_bytes(payload[1:4], "little"), np.frombuffer(payload, "<u4", offset=4).astype(np.uint32)


def encode_write_ack(region: int, address: int, count: int) -> bytes:
    return bytes((int(region),)) + _u24(address, "address") + struct.pack("<H", count)


def decode_write_ack(payload: bytes) -> tuple[int, int, int]:
    _need(payload, 6, "WRITE ACK")
    return payload[0], int.from_bytes(payload[1:4], "little"), struct.unpack_from("<H", payload, 4)[0]


# READ: region u8, address u24, count u16 -> region u8, address u24, words -------------------------
def encode_read(region: int, address: int, count: int) -> bytes:
    if not 1 <= int(count) <= MAX_WORDS:
        raise ProtocolError(Err.BAD_VALUE, MAX_WORDS, f"READ of {count} words: 1 .. {MAX_WORDS} per frame")
    return bytes((int(region),)) + _u24(address, "address") + struct.pack("<H", count)


decode_read = decode_write_ack  # same layout: region, address, count


def decode_read_reply(payload: bytes) -> tuple[int, int, np.ndarray]:
    return decode_write(payload)


encode_read_reply = encode_write


# INJECT: step u32, then u16 entries: input index, or NEXT_STEP -----------------------------------
def encode_inject(step: int, per_step: Sequence[Iterable[int]]) -> bytes:
    """Input spike indices for steps step, step+1, ... (one list per step; empty lists allowed)."""
    entries: list[int] = []
    for k, indices in enumerate(per_step):
        if k:
            entries.append(NEXT_STEP)
        entries.extend(int(i) for i in indices)
    if any(not 0 <= e < NEXT_STEP for e in entries if e != NEXT_STEP):
        raise ProtocolError(Err.BAD_VALUE, NEXT_STEP, "input indices must be 0 .. 65534")
    return struct.pack("<I", step) + np.asarray(entries, dtype="<u2").tobytes()


def decode_inject(payload: bytes) -> tuple[int, list[np.ndarray]]:
    if len(payload) < 4 or len(payload) % 2:
        raise ProtocolError(Err.BAD_LENGTH, MAX_PAYLOAD,
                            f"INJECT payload has {len(payload)} bytes: expected 4 + 2 x entries")
    step = struct.unpack_from("<I", payload)[0]
    entries = np.frombuffer(payload, "<u2", offset=4)
    cuts = np.flatnonzero(entries == NEXT_STEP)
    parts = np.split(entries, cuts)
    per_step = [parts[0].astype(np.int64)] + [p[1:].astype(np.int64) for p in parts[1:]]
    return step, per_step


def inject_size(per_step: Sequence[np.ndarray]) -> int:
    """Payload bytes of encode_inject for these steps."""
    return 4 + 2 * (sum(len(s) for s in per_step) + len(per_step) - 1)


# INJECT_BITMAP: step u32, then one ceil(A/8)-byte bitmap per step ---------------------------------
def bitmap_bytes(size: int) -> int:
    return (int(size) + 7) // 8


def pack_bitmap(mask) -> bytes:
    return np.packbits(np.asarray(mask, dtype=bool), bitorder="little").tobytes()


def unpack_bitmap(data: bytes, size: int) -> np.ndarray:
    """Bits past ``size`` in the last byte are ignored."""
    return np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little", count=size).astype(bool)


def encode_inject_bitmap(step: int, masks) -> bytes:
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 2 or masks.shape[0] < 1 or masks.shape[1] < 1:
        raise ProtocolError(Err.BAD_VALUE, 0, f"INJECT_BITMAP needs (steps >= 1, A >= 1) masks, got {masks.shape}")
    return struct.pack("<I", step) + b"".join(pack_bitmap(m) for m in masks)


def decode_inject_bitmap(payload: bytes, n_inputs: int) -> tuple[int, np.ndarray]:
    nb = bitmap_bytes(n_inputs)
    if nb == 0 or len(payload) < 4 + nb or (len(payload) - 4) % nb:
        raise ProtocolError(Err.BAD_LENGTH, nb,
                            f"INJECT_BITMAP payload has {len(payload)} bytes: expected 4 + k x {nb} "
                            f"(one bitmap of {n_inputs} inputs per step)")
    step = struct.unpack_from("<I", payload)[0]
    k = (len(payload) - 4) // nb
    bits = np.unpackbits(np.frombuffer(payload, np.uint8, offset=4).reshape(k, nb), axis=1, bitorder="little")
    return step, bits[:, :n_inputs].astype(bool)


# CURRENTS: step u32, first u16, count u16, then i32[count] per step ------------------------------
def encode_currents(step: int, first: int, values) -> bytes:
    """Analog inputs (steps, count) of current inputs first .. first+count-1 for steps step, step+1, ..."""
    v = np.asarray(values)
    if v.ndim == 1:
        v = v[None, :]
    if v.ndim != 2 or v.shape[0] < 1 or v.shape[1] < 1:
        raise ProtocolError(Err.BAD_VALUE, 0, f"CURRENTS needs a (steps, count) array, got shape {np.shape(values)}")
    if v.dtype.kind not in "iu" or (v.size and (v.min() < -(1 << 31) or v.max() >= 1 << 31)):
        raise ProtocolError(Err.BAD_VALUE, 0, "CURRENTS values must be 32-bit signed integers")
    return struct.pack("<IHH", step, first, v.shape[1]) + v.astype("<i4").tobytes()


def decode_currents(payload: bytes) -> tuple[int, int, np.ndarray]:
    _need(payload, 12, "CURRENTS", exact=False)
    step, first, count = struct.unpack_from("<IHH", payload)
    rest = len(payload) - 8
    if count == 0 or rest % (4 * count):
        raise ProtocolError(Err.BAD_LENGTH, 4 * max(count, 1),
                            f"CURRENTS payload: {rest} value bytes is not a whole number of steps of "
                            f"{count} 32-bit values")
    values = np.frombuffer(payload, "<i4", offset=8).astype(np.int64).reshape(-1, count)
    return step, first, values


# RUN: start step u32, steps u32 -> ACK: next step u32 -------------------------------------------
def encode_run(start: int, steps: int) -> bytes:
    return struct.pack("<II", start, steps)


def decode_run(payload: bytes) -> tuple[int, int]:
    _need(payload, 8, "RUN")
    return struct.unpack("<II", payload)


def encode_step(step: int) -> bytes:
    """Payload of RESEND and of the ACKs of RUN, FREERUN and STOP: a step number."""
    return struct.pack("<I", step)


def decode_step(payload: bytes) -> int:
    _need(payload, 4, "step")
    return struct.unpack("<I", payload)[0]


# FREERUN: start step u32, period us u32, steps u32 (0 = until STOP) -> ACK: start step -----------
def encode_freerun(start: int, period_us: int, steps: int = 0) -> bytes:
    return struct.pack("<III", start, period_us, steps)


def decode_freerun(payload: bytes) -> tuple[int, int, int]:
    _need(payload, 12, "FREERUN")
    return struct.unpack("<III", payload)


# LEARNING: on u8; RESET: mode u8 ----------------------------------------------------------------
def encode_flag(value: int) -> bytes:
    return bytes((int(value),))


def decode_flag(payload: bytes, what: str) -> int:
    _need(payload, 1, what)
    return payload[0]


# SPIKES (and the ACK of RESEND): step u32, format u8, flags u8, data ----------------------------
def encode_spikes(step: int, spikes, flags: int = 0) -> bytes:
    """One step's spikes (a bool array of the N neurons), in the smaller format: indices when
    2 x count <= ceil(N/8), else the bitmap."""
    mask = np.asarray(spikes, dtype=bool).reshape(-1)
    head = struct.pack("<IBB", step, 0, int(flags))
    if 2 * int(np.count_nonzero(mask)) <= bitmap_bytes(mask.size):
        return head + np.flatnonzero(mask).astype("<u2").tobytes()
    return head[:4] + bytes((SpikeFormat.BITMAP, int(flags))) + pack_bitmap(mask)


def decode_spikes(payload: bytes, n_neurons: int) -> tuple[int, int, np.ndarray]:
    """-> (step, flags, bool array of the N neurons)."""
    _need(payload, 6, "SPIKES", exact=False)
    step = struct.unpack_from("<I", payload)[0]
    fmt, flags = payload[4], payload[5]
    data = payload[6:]
    mask = np.zeros(n_neurons, dtype=bool)
    if fmt == SpikeFormat.INDICES:
        if len(data) % 2:
            raise ProtocolError(Err.BAD_LENGTH, 0, "SPIKES indices: odd number of bytes")
        idx = np.frombuffer(data, "<u2")
        if idx.size and idx.max() >= n_neurons:
            raise ProtocolError(Err.BAD_VALUE, n_neurons,
                                f"SPIKES of step {step}: neuron index {int(idx.max())} >= N = {n_neurons}")
        mask[idx] = True
    elif fmt == SpikeFormat.BITMAP:
        if len(data) != bitmap_bytes(n_neurons):
            raise ProtocolError(Err.BAD_LENGTH, bitmap_bytes(n_neurons),
                                f"SPIKES bitmap of {len(data)} bytes for N = {n_neurons} neurons")
        mask = unpack_bitmap(data, n_neurons)
    else:
        raise ProtocolError(Err.BAD_VALUE, 1, f"SPIKES format {fmt} is neither 0 (indices) nor 1 (bitmap)")
    return step, flags, mask


# NACK: command opcode u8, error u8, detail u32 ----------------------------------------------------
def encode_nack(op: int, error: int, detail: int = 0) -> bytes:
    return struct.pack("<BBI", op, error, detail & 0xFFFF_FFFF)


def decode_nack(payload: bytes) -> tuple[int, int, int]:
    _need(payload, 6, "NACK")
    return struct.unpack("<BBI", payload)


def describe_error(error: int, detail: int) -> str:
    """A phrase for a NACK's error code and detail, e.g. ``BAD_ADDRESS: the address range is outside
    the memory region (region size in words = 80)``."""
    try:
        err = Err(error)
    except ValueError:
        return f"unknown error code {error} (detail {detail})"
    return f"{err.name}: {ERROR_TEXT[err]} ({ERROR_DETAIL[err]} = {detail})"


def describe_nack(op: int, error: int, detail: int) -> str:
    """A sentence for a whole NACK: which command, what went wrong, the detail."""
    try:
        op_name = Op(op).name
    except ValueError:
        op_name = f"opcode 0x{op:02X}"
    return f"{op_name} rejected, {describe_error(error, detail)}"


# ---- IDENTIFY: the board and the CoreConfig of each core ----------------------------------------
#: Every CoreConfig field, in the order of the IDENTIFY core record, with its struct code.
CONFIG_RECORD_FIELDS = (
    ("n_neurons", "H"), ("n_inputs", "H"), ("n_current_inputs", "H"),
    ("weight_bits", "B"), ("lanes", "B"), ("max_delay", "B"), ("features", "B"), ("n_profiles", "B"),
    ("v_bits", "B"), ("i_bits", "B"), ("refrac_bits", "B"), ("adapt_bits", "B"), ("trace_bits", "B"),
    ("trace_frac", "B"), ("config_hash", "I"),
)
CONFIG_RECORD = struct.Struct("<" + "".join(code for _, code in CONFIG_RECORD_FIELDS))
FEATURE_BITS = {"stdp": 0, "adaptive_threshold": 1}  # bit of `features`


def encode_config(config: CoreConfig) -> bytes:
    values = []
    for name, _ in CONFIG_RECORD_FIELDS:
        if name == "features":
            values.append(sum(int(getattr(config, f)) << bit for f, bit in FEATURE_BITS.items()))
        elif name == "config_hash":
            values.append(config_hash_word(config))
        else:
            values.append(getattr(config, name))
    return CONFIG_RECORD.pack(*values)


def decode_config(data: bytes) -> CoreConfig:
    values = dict(zip((name for name, _ in CONFIG_RECORD_FIELDS), CONFIG_RECORD.unpack(data)))
    features = values.pop("features")
    if features >> len(FEATURE_BITS):
        raise ProtocolError(Err.BAD_VALUE, features,
                            f"core record has unknown feature bits 0x{features:02X}: the board is newer "
                            "than this spikeforge; update spikeforge")
    for f, bit in FEATURE_BITS.items():
        values[f] = bool(features >> bit & 1)
    want_hash = values.pop("config_hash")
    config = CoreConfig(**values)
    if config_hash_word(config) != want_hash:
        raise ProtocolError(Err.BAD_VALUE, want_hash,
                            f"core record says config hash 0x{want_hash:08X} but its fields give "
                            f"0x{config_hash_word(config):08X}: the board's CoreConfig has fields this "
                            "spikeforge does not know; update spikeforge or rebuild the bitstream")
    return config


BOARD_HEADER = struct.Struct("<BBBBIIHHBB")  # major, minor, cores, window, clock, baud, max_words, slots, flags, name length


class BoardFlag(enum.IntFlag):
    FREE_RUNNING = 1
    EMULATOR = 2


@dataclass(frozen=True)
class BoardInfo:
    """What IDENTIFY returns.

    ``window``: commands the host may have outstanding (sent, not yet answered).
    ``max_words``: words per WRITE/READ frame this board takes (<= MAX_WORDS).
    ``slots``: steps of input a core buffers ahead (INJECT window) and of spikes it keeps (RESEND).
    ``clock_hz``: the core clock (0 for an emulator); ``baud``: the UART rate the board runs at."""

    cores: tuple[CoreConfig, ...]
    name: str = "board"
    version: tuple[int, int] = PROTOCOL_VERSION
    window: int = 2
    clock_hz: int = 0
    baud: int = 1_000_000
    max_words: int = MAX_WORDS
    slots: int = 16
    flags: int = 0

    def encode(self) -> bytes:
        name = self.name.encode("ascii")
        if len(name) > NAME_BYTES:
            raise ProtocolError(Err.BAD_LENGTH, NAME_BYTES, f"board name {self.name!r} is longer than {NAME_BYTES} bytes")
        if not 1 <= len(self.cores) <= MAX_CORES:
            raise ProtocolError(Err.BAD_VALUE, MAX_CORES, f"{len(self.cores)} cores: 1 .. {MAX_CORES}")
        head = BOARD_HEADER.pack(self.version[0], self.version[1], len(self.cores), self.window, self.clock_hz,
                                 self.baud, self.max_words, self.slots, self.flags, len(name))
        return head + name + b"".join(encode_config(c) for c in self.cores)

    @classmethod
    def decode(cls, payload: bytes) -> "BoardInfo":
        _need(payload, BOARD_HEADER.size, "IDENTIFY reply", exact=False)
        major, minor, n, window, clock, baud, max_words, slots, flags, name_len = BOARD_HEADER.unpack_from(payload)
        if major != PROTOCOL_VERSION[0]:
            # the rest of the layout may differ: report the version and nothing else
            return cls(cores=(), version=(major, minor))
        off = BOARD_HEADER.size
        _need(payload, off + name_len + n * CONFIG_RECORD.size, "IDENTIFY reply")
        name = payload[off:off + name_len].decode("ascii", errors="replace")
        off += name_len
        cores = tuple(decode_config(payload[off + k * CONFIG_RECORD.size:off + (k + 1) * CONFIG_RECORD.size])
                      for k in range(n))
        return cls(cores=cores, name=name, version=(major, minor), window=window, clock_hz=clock, baud=baud,
                   max_words=max_words, slots=slots, flags=flags)


# ---- which addresses exist: the link checks every WRITE/READ against these ---------------------
READ_ONLY_CONTROL = frozenset({ControlReg.MAGIC, ControlReg.LAST_CYCLES, ControlReg.CONFIG_HASH})


def region_size(config: CoreConfig, region: int) -> int:
    """Words of ``region`` on a core of ``config``: valid addresses are 0 .. size-1 (0: the region is
    absent, e.g. STDP without stdp). Addresses inside a region that hold no field (profile fields
    13..15, neuron state fields 6..7) read 0 and ignore writes, as on the core's bus."""
    c = config
    sizes = {
        Region.CONTROL: len(ControlReg),
        Region.PROFILE: c.n_profiles * PROFILE_STRIDE,
        Region.STDP: 6 if c.stdp else 0,
        Region.NEURON_PROFILE: c.n_neurons,
        Region.SYNAPSE: c.n_sources * c.n_neurons,
        Region.ROW_SHIFT: c.n_sources,
        Region.NEURON_STATE: c.n_neurons * NEURON_STATE_STRIDE,
        Region.X_TRACE: c.n_sources if c.stdp else 0,
        Region.RING: c.max_delay * 2 * c.n_neurons,
        Region.CURRENT_IN: c.n_current_inputs,
    }
    return sizes.get(region, 0)


def check_access(config: CoreConfig, region: int, address: int, count: int, write: bool) -> None:
    """Raise ProtocolError (BAD_REGION, BAD_ADDRESS, READ_ONLY) unless the block access is allowed."""
    if region not in Region._value2member_map_:
        raise ProtocolError(Err.BAD_REGION, len(Region), f"region {region} does not exist (0 .. {len(Region) - 1})")
    size = region_size(config, region)
    if address + count > size:
        raise ProtocolError(Err.BAD_ADDRESS, size,
                            f"{Region(region).name}[{address} .. {address + count - 1}] is outside the region "
                            f"of {size} words")
    if write and region == Region.CONTROL:
        for a in range(address, address + count):
            if a in READ_ONLY_CONTROL:
                raise ProtocolError(Err.READ_ONLY, a, f"CONTROL.{ControlReg(a).name} is read-only")


def wire_bytes(payload_bytes: int) -> int:
    """Bytes on the wire for a frame with this payload (8N1: 10 bit times each)."""
    return FRAME_OVERHEAD + payload_bytes

