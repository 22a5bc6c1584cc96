"""The bus-bridge protocol: the smallest reliable UART link to one neuron core (iCE40 boards).

The protocol link (``spikeforge.core.protocol``, ``spikeforge.hdl.link.LinkTop``) runs every command
of docs/protocol.md in the FPGA; at about 4,000 logic cells it does not fit the iCE40 UP5K (5,280)
beside a core. The bus bridge (``spikeforge.hdl.bus_bridge.BusBridge``) moves the protocol to the
host instead -- the way LiteX's UARTBone leaves everything but bus access to host software: the FPGA
only carries the core's own interface (hdl/INTERFACE.md: bus requests, input spikes, a step, output
spikes) over the UART, every frame protected by a CRC-16. On the host,
``spikeforge.host.bridged_board`` serves the full protocol (the virtual board's command engine) with
this core behind it, so ``spikeforge.host.board.Board`` -- and every ``spikeforge board`` command --
works unchanged through ``--port bridge:///dev/ttyUSB1``.

This module holds every constant and the frame codec, shared by the RTL and the host driver.

Host -> board (``op``, payload, CRC-16 of op + payload, most significant byte first)::

    BUS    0x01  8 bytes: the core's 61-bit bus request, little-endian  -> one BUS_REPLY
    SPIKE  0x02  2 bytes: input index for the next step                 -> nothing (counted)
    RUN    0x03  2 bytes: how many SPIKE frames the host sent since the last RUN
                 -> the step's SPIKE_OUT bytes and DONE, or NAK(SPIKE_COUNT) and no step
    HELLO  0x04  no payload                                             -> HELLO_REPLY

Board -> host::

    BUS_REPLY    0x81  4 bytes: read data (0 after a write)        + CRC-16 of the 5 bytes
    SPIKE_OUT    0x82  2 bytes: a neuron that spiked in this step  (no CRC of its own: see DONE)
    DONE         0x83  2 bytes: number of SPIKE_OUT frames sent    + CRC-16 of every byte the step sent
    HELLO_REPLY  0x84  1 byte version, 2 bytes bridge clock divisor + CRC-16
    NAK          0x8F  1 byte reason, 2 bytes value                + CRC-16

Why a rejected command changes nothing: a frame whose CRC is wrong is dropped whole and answered with
NAK(BAD_CRC, opcode byte). A dropped SPIKE frame would leave a step with one input missing, so RUN
carries the number of SPIKE frames the host sent: when the bridge accepted a different number it does
not start the step and answers NAK(SPIKE_COUNT, number accepted). After any NAK the bridge is
*halted*: it drops every frame until an intact HELLO, which clears the halt and the spike count. So
the host may pipeline many commands (bus bursts, step after step) and, on a NAK, knows exactly where
execution stopped: every reply before the NAK belongs to a command that ran, nothing after it ran.
It sends FLUSH + HELLO and resends from the failed command -- a step's spikes all again (a second copy
of an index sets the same bit of the core's input bitmap). Bus writes are idempotent and bus reads
have no side effect, so resending them is safe. What cannot be repeated is a step whose reply was
damaged on its way back (the step ran): the host reports that step as lost.

Bytes that are not an opcode are ignored, so ``FLUSH`` (zeros, longer than any frame) brings a
receiver that lost its place in a frame back to the start of one: a zero-filled frame fails the CRC
(its initial value is 0xFFFF), and the remaining zeros are not opcodes.

Detection strength: CRC-16/IBM-3740 (CCITT-FALSE) has Hamming distance 4 over these frames (at most
11 bytes), so every error of up to 3 bits and every burst of up to 16 bits is caught; a frame shifted
by a lost byte passes by chance once in 65,536 damaged frames. A CRC-32 would cost about 150 more
logic cells on the UP5K, where the bridge exists to save them.
"""

from __future__ import annotations

import binascii
import enum
import struct

#: the version HELLO_REPLY reports; a host refuses a bridge of another version
VERSION = 1

SPIKE_INDEX_BYTES = 2
BUS_REQUEST_BYTES = 8
BUS_REQUEST_BITS = 61
CRC_BYTES = 2
#: bytes that bring the bridge's receiver back to the start of a frame (> the longest frame, 11 bytes)
FLUSH = bytes(16)
#: the largest SPIKE count RUN can carry; ``RESYNC_COUNT`` is never a real count (forces a NAK)
MAX_SPIKE_COUNT = 0xFFFE
RESYNC_COUNT = 0xFFFF


class Cmd(enum.IntEnum):
    BUS = 0x01
    SPIKE = 0x02
    RUN = 0x03
    HELLO = 0x04


class Reply(enum.IntEnum):
    BUS_REPLY = 0x81
    SPIKE_OUT = 0x82
    DONE = 0x83
    HELLO_REPLY = 0x84
    NAK = 0x8F


class Nak(enum.IntEnum):
    BAD_CRC = 1       # value = the opcode of the dropped frame
    SPIKE_COUNT = 2   # value = SPIKE frames the bridge accepted since the last RUN


#: payload bytes after each command opcode (the CRC follows)
COMMAND_PAYLOAD = {Cmd.BUS: BUS_REQUEST_BYTES, Cmd.SPIKE: SPIKE_INDEX_BYTES, Cmd.RUN: 2, Cmd.HELLO: 0}
#: payload bytes after each reply opcode (SPIKE_OUT has no CRC; every other reply ends with one)
REPLY_PAYLOAD = {Reply.BUS_REPLY: 4, Reply.SPIKE_OUT: 2, Reply.DONE: 2, Reply.HELLO_REPLY: 3, Reply.NAK: 3}


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/IBM-3740 (poly 0x1021, init 0xFFFF, not reflected, no final XOR); ``crc`` continues one."""
    return binascii.crc_hqx(bytes(data), crc)


def amaranth_crc_algorithm():
    """The same CRC as an ``amaranth.lib.crc.Algorithm`` (``(data_width=8)`` gives a byte processor)."""
    from amaranth.lib.crc import catalog

    return catalog.CRC16_IBM_3740


def with_crc(frame: bytes) -> bytes:
    """``frame`` followed by its CRC-16, most significant byte first (a receiver's residue is then 0)."""
    return bytes(frame) + crc16(frame).to_bytes(2, "big")


# ---- host -> board ----------------------------------------------------------------------------
def bus_request_word(write: bool, region: int, address: int, data: int = 0) -> int:
    """The core's bus_req payload (hdl/INTERFACE.md): bit 0 write, 4:1 region, 28:5 address, 60:29 data."""
    if not 0 <= region < 16:
        raise ValueError(f"region {region}: expected 0 .. 15")
    if not 0 <= address < 1 << 24:
        raise ValueError(f"address {address}: expected 0 .. {(1 << 24) - 1}")
    return int(bool(write)) | region << 1 | address << 5 | (int(data) & 0xFFFF_FFFF) << 29


def encode_bus(write: bool, region: int, address: int, data: int = 0) -> bytes:
    return with_crc(bytes([Cmd.BUS]) + bus_request_word(write, region, address, data).to_bytes(8, "little"))


def encode_spike(index: int) -> bytes:
    if not 0 <= index < 1 << 16:
        raise ValueError(f"input index {index}: expected 0 .. 65535")
    return with_crc(bytes([Cmd.SPIKE]) + struct.pack("<H", index))


def encode_run(spike_frames: int) -> bytes:
    if not 0 <= spike_frames <= RESYNC_COUNT:
        raise ValueError(f"spike count {spike_frames}: expected 0 .. {MAX_SPIKE_COUNT}")
    return with_crc(bytes([Cmd.RUN]) + struct.pack("<H", spike_frames))


def encode_hello() -> bytes:
    return with_crc(bytes([Cmd.HELLO]))


# ---- board -> host (what the RTL sends; the host decoder and the tests use these) --------------
def encode_bus_reply(data: int) -> bytes:
    return with_crc(bytes([Reply.BUS_REPLY]) + struct.pack("<I", data & 0xFFFF_FFFF))


def encode_step_reply(spiking) -> bytes:
    """SPIKE_OUT of each index in order, then DONE with the count and the CRC over all of it."""
    body = b"".join(bytes([Reply.SPIKE_OUT]) + struct.pack("<H", int(i)) for i in spiking)
    return with_crc(body + bytes([Reply.DONE]) + struct.pack("<H", len(spiking)))


def encode_hello_reply(divisor: int) -> bytes:
    return with_crc(bytes([Reply.HELLO_REPLY, VERSION]) + struct.pack("<H", divisor & 0xFFFF))


def encode_nak(reason: int, value: int) -> bytes:
    return with_crc(bytes([Reply.NAK, reason]) + struct.pack("<H", value & 0xFFFF))
