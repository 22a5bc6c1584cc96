"""The emulated wire between host and virtual board: seeded byte faults and baud-rate pacing.

``LinkFaults`` drops or corrupts bytes at set rates with a seeded generator, independently per
direction, so a fault test is reproducible. ``WirePacer`` holds bytes back until an 8N1 UART at
``baud`` would have delivered them (10 bit times per byte), so throughput measured through the
emulator is throughput at that line rate.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LinkFaults:
    """Damage bytes on the wire: each byte is dropped with ``drop_rate``, else corrupted (XORed with
    a random non-zero byte) with ``corrupt_rate``. ``mute``: drop everything (a board that stopped
    answering). Counters say what was done."""

    drop_rate: float = 0.0
    corrupt_rate: float = 0.0
    seed: int = 0
    mute: bool = False
    dropped: int = 0
    corrupted: int = 0
    _rng: np.random.Generator = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self):
        for name in ("drop_rate", "corrupt_rate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} = {value}: expected a probability 0 <= p < 1")
        self._rng = np.random.default_rng(self.seed)

    @property
    def active(self) -> bool:
        return self.mute or self.drop_rate > 0 or self.corrupt_rate > 0

    def apply(self, data: bytes) -> bytes:
        if not data or not self.active:
            return data
        with self._lock:
            if self.mute:
                self.dropped += len(data)
                return b""
            arr = np.frombuffer(data, dtype=np.uint8).copy()
            draw = self._rng.random(arr.size)
            drop = draw < self.drop_rate
            corrupt = ~drop & (draw < self.drop_rate + self.corrupt_rate)
            if corrupt.any():
                arr[corrupt] ^= self._rng.integers(1, 256, int(corrupt.sum()), dtype=np.uint8)
            self.dropped += int(drop.sum())
            self.corrupted += int(corrupt.sum())
            return arr[~drop].tobytes()

    def split(self) -> tuple["LinkFaults", "LinkFaults"]:
        """Two independent fault streams (host -> board, board -> host) with these rates."""
        seeds = np.random.SeedSequence(self.seed).spawn(2)
        return tuple(LinkFaults(self.drop_rate, self.corrupt_rate, int(s.generate_state(1)[0]), self.mute)
                     for s in seeds)


class WirePacer:
    """Holds bytes back until a UART of ``baud`` (8N1, 10 bit times per byte) would have delivered them.

    ``wait(n, queued)`` sleeps until ``n`` more bytes have crossed the wire. ``queued``: the bytes were
    already waiting when the previous ones were done (the line never went idle), so their wire time
    follows on from the previous bytes'; otherwise the line was idle and it starts now. ``baud=None``
    or 0: no pacing."""

    def __init__(self, baud: int | None):
        self.byte_time = 10.0 / baud if baud else 0.0
        self._free_at = 0.0

    def deliver_at(self, n: int, queued: bool = False) -> float:
        now = time.perf_counter()
        start = self._free_at if queued else max(self._free_at, now)
        self._free_at = start + n * self.byte_time
        return self._free_at

    def wait(self, n: int, queued: bool = False) -> None:
        if not self.byte_time:
            return
        delay = self.deliver_at(n, queued) - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
