"""The host end of the bus bridge: bus reads and writes, and timesteps, over a serial port.

``BridgeLink(port)`` speaks ``spikeforge.core.bridge_protocol`` to a ``spikeforge.hdl.bus_bridge``
bitstream (or its simulation). It pipelines: it keeps up to ``window_bytes`` of commands in the
bridge's receive buffer, so a load streams bus writes at the line rate and a run sends the next steps'
spikes while a step computes. On a NAK it knows exactly which commands ran (the bridge halts at the
NAK), sends FLUSH + HELLO and resends from the failed command; a damaged or missing reply to a bus
command is resent the same way. The one thing it cannot repeat is a step whose reply was damaged on
its way back (the step ran): ``BridgeError`` names that step.

``spikeforge.host.bridged_board`` puts the full board protocol on top of this class.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from spikeforge.core import bridge_protocol as B
from spikeforge.core.memory_map import ControlReg, Region
from spikeforge.host.board import BoardError


class BridgeError(BoardError):
    """The bus bridge failed in a way a retry cannot mend (no answer, wrong version, a lost step).
    A BoardError, so ``Board`` passes it on and the CLI prints it as the board's problem."""


@dataclass
class _Command:
    frame: bytes
    kind: str                      # "bus" | "step"
    spikes: list = field(default_factory=list)   # a step's output (neuron indices)
    data: int = 0                  # a bus reply's data


class _ReplyDamaged(Exception):
    pass


class _Failure(Exception):
    """Command ``index`` of a pipeline failed: ``nak`` (the bridge refused it and halted) or a reply
    lost or damaged; ``step_ran``: a step whose reply began, so it ran."""

    def __init__(self, index: int, problem: str, *, nak: bool = False, step_ran: bool = False):
        super().__init__(problem)
        self.index, self.nak, self.step_ran = index, nak, step_ran


class BridgeLink:
    """A bus bridge on ``port`` (an open pyserial-like object: write, read(n) with a timeout).

    ``timeout``: seconds without a byte before a reply counts as lost (a command whose first byte was
    damaged into a non-opcode gets no NAK: the bridge waits for the rest, and only the timeout ends
    it). ``retries``: resends of one command before ``BridgeError``. ``window_bytes``: command bytes
    kept in flight (below the bridge's 512-byte receive FIFO); after a failure the window halves, after
    a clean burst it doubles back."""

    def __init__(self, port, *, timeout: float = 1.0, retries: int = 8, window_bytes: int = 448):
        if not 16 <= window_bytes <= 4096:
            raise ValueError(f"window_bytes = {window_bytes}: expected 16 .. 4096 (the bridge buffers 512)")
        self.port = port
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.window_bytes = int(window_bytes)
        self._window = self.window_bytes  # halves after a failure, doubles back after a clean burst
        self._rx = bytearray()
        self.stats = {"commands": 0, "resent": 0, "naks": 0, "damaged_replies": 0, "bytes_out": 0, "bytes_in": 0}
        self.divisor = self.hello()

    # ---- bytes --------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        self.port.write(data)
        self.stats["bytes_out"] += len(data)

    def _take(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or TimeoutError after ``timeout`` seconds without progress."""
        deadline = time.monotonic() + self.timeout
        while len(self._rx) < n:
            chunk = self.port.read(max(1, n - len(self._rx)))
            if chunk:
                self._rx += chunk
                self.stats["bytes_in"] += len(chunk)
                deadline = time.monotonic() + self.timeout
            elif time.monotonic() > deadline:
                raise TimeoutError
        out = bytes(self._rx[:n])
        del self._rx[:n]
        return out

    def _drain(self, quiet: float = 0.05) -> None:
        """Drop whatever arrives until the line has been quiet for ``quiet`` seconds."""
        self._rx.clear()
        end = time.monotonic() + quiet
        while time.monotonic() < end:
            if self.port.read(256):
                end = time.monotonic() + quiet

    def _reply(self) -> tuple[int, bytes, bytes]:
        """(opcode, payload, raw bytes) of the next reply; _ReplyDamaged on a bad CRC or opcode."""
        op = self._take(1)[0]
        if op not in B.REPLY_PAYLOAD:
            raise _ReplyDamaged(f"byte 0x{op:02X} is not a reply opcode")
        payload = self._take(B.REPLY_PAYLOAD[op])
        raw = bytes([op]) + payload
        if op != B.Reply.SPIKE_OUT:
            raw += self._take(B.CRC_BYTES)
        return op, payload, raw

    def hello(self) -> int:
        """FLUSH + HELLO until the bridge answers (clears a halt); returns its UART clock divisor."""
        for _ in range(self.retries + 1):
            self._write(B.FLUSH + B.encode_hello())
            try:
                while True:
                    op, payload, raw = self._reply()
                    if op == B.Reply.HELLO_REPLY and B.crc16(raw) == 0:
                        version, divisor = payload[0], struct.unpack("<H", payload[1:3])[0]
                        if version != B.VERSION:
                            raise BridgeError(f"the bus bridge speaks version {version}; this host speaks "
                                              f"{B.VERSION}: rebuild the bitstream with this spikeforge")
                        return divisor
            except (TimeoutError, _ReplyDamaged):
                self._drain()
        raise BridgeError(f"no bus bridge answers on {getattr(self.port, 'port', self.port)!s} "
                          f"(HELLO sent {self.retries + 1} times, {self.timeout:g} s each): is the board "
                          "programmed with a bus-bridge bitstream (report.json link: bus bridge) and the "
                          "port and baud rate right?")

    # ---- the pipeline ---------------------------------------------------------------------------
    def _execute(self, commands: list[_Command], step_of=None) -> None:
        """Send ``commands`` pipelined and fill in their replies; on a failure resend from the failed
        command. ``step_of(i)``: the core step command i (a step) runs, to tell after a timeout whether
        it ran (the core's STEP register then says)."""
        done, tries, stuck_at = 0, 0, -1
        while done < len(commands):
            try:
                done = self._pipeline(commands, done)
                self._window = min(self.window_bytes, self._window * 2)
            except _Failure as failure:
                if failure.nak:
                    self.stats["naks"] += 1
                else:
                    self.stats["damaged_replies"] += 1
                # a damaged line: fewer bytes in flight, so a resend is less likely to be hit again
                self._window = max(32, self._window // 2)
                tries = tries + 1 if failure.index == stuck_at else 1  # resends of the same command
                stuck_at = failure.index
                if tries > self.retries:
                    raise BridgeError(f"the bus bridge did not complete a command after {self.retries} resends "
                                      f"(last problem: {failure})") from None
                self.stats["resent"] += 1
                self._drain()
                self.hello()
                command = commands[failure.index]
                ran = failure.step_ran
                if command.kind == "step" and not failure.nak and not ran and step_of is not None:
                    ran = int(self.read(Region.CONTROL, ControlReg.STEP, 1)[0]) != step_of(failure.index)
                if command.kind == "step" and ran:
                    raise BridgeError("the reply of a timestep was lost or damaged on its way to the host: "
                                      "the step ran but its spikes are unknown. Reset the core and run again; "
                                      "if it recurs, lower the baud rate or check the cable") from None
                done = failure.index

    def _pipeline(self, commands: list[_Command], first: int) -> int:
        """Send from ``first`` on, keeping at most window_bytes in flight; returns len(commands)."""
        sent: deque = deque()
        in_flight = 0
        nxt = first
        while sent or nxt < len(commands):
            while nxt < len(commands) and (not sent or in_flight + len(commands[nxt].frame) <= self._window):
                self._write(commands[nxt].frame)
                sent.append(nxt)
                in_flight += len(commands[nxt].frame)
                nxt += 1
            index = sent.popleft()
            try:
                self._receive(commands[index])
            except _Failure as failure:
                failure.index = index
                raise
            except TimeoutError:
                raise _Failure(index, "no reply within the timeout") from None
            in_flight -= len(commands[index].frame)
            self.stats["commands"] += 1
        return len(commands)

    def _receive(self, command: _Command) -> None:
        try:
            op, payload, raw = self._reply()
        except _ReplyDamaged as exc:
            raise _Failure(0, str(exc)) from None
        if op == B.Reply.NAK:
            if B.crc16(raw):
                raise _Failure(0, "a NAK with a bad CRC")
            reason, value = payload[0], struct.unpack("<H", payload[1:3])[0]
            name = B.Nak(reason).name if reason in B.Nak._value2member_map_ else str(reason)
            raise _Failure(0, f"NAK {name} ({value})", nak=True)
        if command.kind == "bus":
            if op != B.Reply.BUS_REPLY or B.crc16(raw):
                raise _Failure(0, f"a damaged bus reply (opcode 0x{op:02X})")
            command.data = struct.unpack("<I", payload)[0]
            return
        span, spikes = bytearray(), []
        while op == B.Reply.SPIKE_OUT:   # a step's SPIKE_OUT* DONE carry one CRC over all of it
            span += raw
            spikes.append(struct.unpack("<H", payload)[0])
            try:
                op, payload, raw = self._reply()
            except (TimeoutError, _ReplyDamaged):
                raise _Failure(0, "a step's spikes stopped arriving", step_ran=True) from None
        span += raw
        if op != B.Reply.DONE or B.crc16(span) or struct.unpack("<H", payload)[0] != len(spikes):
            raise _Failure(0, "a step's spikes arrived damaged", step_ran=op == B.Reply.DONE or bool(spikes))
        command.spikes = spikes

    # ---- public operations -----------------------------------------------------------------------
    @staticmethod
    def _writes(region: int, address: int, words) -> list[_Command]:
        return [_Command(B.encode_bus(True, region, address + i, int(w)), "bus")
                for i, w in enumerate(np.asarray(words, dtype=np.int64).ravel())]

    def write(self, region: int, address: int, words) -> None:
        """Bus writes of ``words`` (uint32) to ``address`` ... of ``region``."""
        self._execute(self._writes(region, address, words))

    def read(self, region: int, address: int, count: int) -> np.ndarray:
        """``count`` words from ``address`` ... of ``region`` as uint32."""
        commands = [_Command(B.encode_bus(False, region, address + i), "bus") for i in range(count)]
        self._execute(commands)
        return np.array([c.data for c in commands], dtype=np.uint32)

    def run(self, inputs, current_writes=None, first_step: int | None = None) -> list[list[int]]:
        """Run one step per entry of ``inputs`` (each a sequence of input indices); returns each step's
        spiking neurons. ``current_writes``: per step, a list of (region, address, words) bus writes to
        make just before it (the analog inputs of that step), or None. ``first_step``: the core's step
        before the first (lets a timeout be told apart from a lost reply; see _execute)."""
        commands, steps = [], {}
        for j, indices in enumerate(inputs):
            if current_writes is not None and current_writes[j]:
                for region, address, words in current_writes[j]:
                    commands += self._writes(region, address, words)
            indices = [int(i) for i in indices]
            if len(indices) > B.MAX_SPIKE_COUNT:
                raise ValueError(f"{len(indices)} input spikes in one step: the bridge counts at most "
                                 f"{B.MAX_SPIKE_COUNT}")
            frame = b"".join(B.encode_spike(i) for i in indices) + B.encode_run(len(indices))
            steps[len(commands)] = j
            commands.append(_Command(frame, "step"))
        step_of = None if first_step is None else (lambda i: (first_step + steps[i]) & 0xFFFF_FFFF)
        self._execute(commands, step_of)
        return [c.spikes for c in commands if c.kind == "step"]

