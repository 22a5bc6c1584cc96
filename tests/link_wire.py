"""Test helper shared by the RTL link tests: frames to a byte device (the RTL link in a simulator, or
the virtual board) and its decoded replies, and replies made comparable across the two."""

import numpy as np

from spikeforge.core import protocol as P
from spikeforge.core.protocol import Op


class Wire:
    """Frames to a byte device and its decoded replies."""

    def __init__(self, device):
        self.device = device
        self.out = bytearray()
        device.attach(self.out.extend)
        self.decoder = P.FrameDecoder()
        self.seq = 0

    def raw(self, data: bytes) -> list:
        self.device.feed(bytes(data))
        return self.collect()

    def collect(self) -> list:
        """The frames the device has sent since the last call."""
        frames = self.decoder.feed(bytes(self.out))
        self.out.clear()
        return frames

    def frame(self, op, core=0, payload=b"") -> bytes:
        self.seq = (self.seq + 1) % 256
        return P.encode_frame(op, core, self.seq, payload)

    def send(self, op, core=0, payload=b"") -> list:
        return self.raw(self.frame(op, core, payload))


def normal_frame(frame, n_neurons: int):
    """A reply frame as comparable data: SPIKES payloads decoded to (step, flags, spike indices),
    because the RTL always sends bitmaps where the virtual board may send index lists."""
    if frame.opcode in (Op.SPIKES, P.ack(Op.RESEND)):
        step, flags, mask = P.decode_spikes(frame.payload, n_neurons)
        return frame.opcode, frame.core, frame.seq, (step, flags, tuple(np.flatnonzero(mask)))
    return frame.opcode, frame.core, frame.seq, frame.payload
