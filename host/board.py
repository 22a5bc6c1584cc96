"""Board: the host driver of the spikeforge UART link (docs/protocol.md).

``Board(port)`` opens any pyserial port or URL (``/dev/ttyUSB0``, a pty of ``spikeforge board
emulate``, ``virtual://`` for an in-process virtual board, ``loop://``) or takes an open serial-like
object, identifies the board and then loads CoreImages, runs steps and reads state back::

    with Board("/dev/ttyUSB0") as board:
        board.load(compiled.image)                 # block writes, read back, compare
        record = board.run(1000, inputs)           # CoreRecord: spikes (1000, N)
        result = board.run_network(compiled, 1000) # the golden backend's SimResult, from the board

Robustness is the point of this module. Every wait has a timeout; damaged frames are retried a
bounded number of times (WRITE/READ/INJECT are idempotent and pipelined within the board's window;
RUN names its start step, so a retried RUN never runs twice); spikes lost on the way back are fetched
again (RESEND); NACKs become exceptions that say what the board refused and why; a vanished port is
a BoardConnectionError, never a hang.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, OrderedDict, deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import serial
from serial.serialutil import SerialException, SerialTimeoutException

from spikeforge.core import fixedpoint as fx
from spikeforge.core import protocol as P
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import STATE_FIELDS, CoreImage
from spikeforge.core.memory_map import (
    NEURON_STATE_STRIDE, PROFILE_STRIDE, ControlReg, NeuronStateField, Region, from_word, image_from_words,
    unpack_synapses,
)
from spikeforge.core.protocol import Err, Op
from spikeforge.host import transfer
from spikeforge.sim.golden import CoreRecord

serial.protocol_handler_packages.append("spikeforge.host")  # virtual:// (host/protocol_virtual.py)

#: Variables Board.run can record (read back over the link after every step).
RECORDABLE = ("v", "ie", "ii", "refrac_count", "adapt", "threshold", "x_trace", "y_trace", "weights")
_STATE_FIELD = {"v": NeuronStateField.V, "ie": NeuronStateField.IE, "ii": NeuronStateField.II,
                "refrac_count": NeuronStateField.REFRAC_COUNT, "adapt": NeuronStateField.ADAPT,
                "y_trace": NeuronStateField.Y_TRACE}
_SIGNED_STATE = {"v", "ie", "ii"}
_SENTINEL = object()  # context of the PING sent behind the last command of a pipeline
_READ_POLL = 0.02  # seconds one serial read blocks at most (the driver's own deadlines decide)


# ---- errors ----------------------------------------------------------------------------------
class BoardError(RuntimeError):
    """Anything that went wrong talking to a board; the message says what and what to do."""


class BoardConnectionError(BoardError):
    """The port cannot be opened, or it went away (unplugged, emulator stopped)."""


class BoardTimeoutError(BoardError):
    """The board did not answer within the timeout (after the allowed retries)."""


class BoardNackError(BoardError):
    """The board refused a command (NACK); nothing changed on the board."""

    def __init__(self, message: str, op: int, error: int, detail: int):
        super().__init__(message)
        self.op, self.error, self.detail = op, error, detail


class BoardMismatchError(BoardError):
    """The board's protocol version or CoreConfig is not what the host or the network needs."""


class LoadVerifyError(BoardError):
    """What the board holds after a load differs from the image written."""


class LinkError(BoardError):
    """Frames kept arriving damaged or lost beyond the retry limit, or the board broke the protocol."""


@dataclass
class _Pending:
    """An idempotent command in a pipeline: what to send, how often it was sent, what went wrong last."""

    op: int
    core: int
    payload: bytes
    ctx: object
    tries: int = 0
    problem: str = ""


@dataclass(frozen=True)
class SpikeEvent:
    """One step of one core in a free run."""

    core: int
    step: int
    spikes: np.ndarray  # (N,) bool
    flags: int = 0


# ---- the driver ------------------------------------------------------------------------------
class Board:
    """A spikeforge board on a serial port (see the module docstring).

    ``timeout``: seconds without any answer before a command is retried (``retries`` times) and then
    given up. ``progress``: show progress bars for long transfers (None = when stderr is a terminal).
    ``stop_free_run``: stop a free run left running by an earlier session when connecting.
    """

    def __init__(self, port, baud: int = 1_000_000, timeout: float = 2.0, *, retries: int = 5,
                 progress: bool | None = None, stop_free_run: bool = True):
        if timeout <= 0:
            raise ValueError(f"timeout = {timeout}: expected seconds > 0")
        if retries < 0:
            raise ValueError(f"retries = {retries}: expected >= 0")
        self.baud = int(baud)
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.progress = sys.stderr.isatty() if progress is None else bool(progress)
        if isinstance(port, str):
            self.port = port
            try:
                self._serial = serial.serial_for_url(port, baudrate=self.baud, timeout=_READ_POLL,
                                                     write_timeout=self.timeout)
            except (SerialException, OSError, ValueError) as exc:
                raise BoardConnectionError(
                    f"cannot open {port!r}: {exc}. Give the board's serial port (e.g. /dev/ttyUSB0), "
                    "bridge:///dev/ttyUSB0?build=DIR for a bitstream with the bus bridge (docs/bus-bridge.md), the "
                    "path `spikeforge board emulate` printed, or virtual:// for an in-process virtual board"
                ) from None
        else:
            self.port = str(getattr(port, "port", None) or type(port).__name__)
            self._serial = port
        self._decoder = P.FrameDecoder(rescan=True)
        self._inbox: deque = deque()
        self._seq = 0
        self._free: "FreeRun | None" = None
        self.stats: Counter = Counter()
        self.info: P.BoardInfo | None = None
        self._frame_words = 1  # words per WRITE/READ frame now: adapts between 1 and info.max_words
        self._exposed = 0.0  # bytes of recent command/reply exchanges (decaying sum) ...
        self._failed = 0.0  # ... and how many of those exchanges failed: the line's damage rate
        try:
            self._serial.reset_input_buffer()
            self.info = self.identify()
            if stop_free_run and self.info.flags & P.BoardFlag.FREE_RUNNING:
                self.stop()
        except BaseException:
            self.close()
            raise

    # ---- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except (SerialException, OSError):
                pass
            self._serial = None

    def __enter__(self) -> "Board":
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._free is not None:
                self._free.stop()
        except BoardError:
            if exc[0] is None:
                raise
        finally:
            self.close()

    def __repr__(self) -> str:
        name = self.info.name if self.info else "?"
        return f"Board({self.port!r}, {name}, {len(self.info.cores) if self.info else '?'} cores)"

    # ---- bytes ---------------------------------------------------------------------------------
    def _port_gone(self, exc: Exception) -> BoardConnectionError:
        return BoardConnectionError(
            f"lost the connection to the board on {self.port}: {exc}. The board was unplugged, reset or the "
            "emulator stopped; reconnect and load the image again"
        )

    def _write(self, data: bytes) -> None:
        if self._serial is None:
            raise BoardConnectionError(f"the board on {self.port} is closed")
        try:
            self._serial.write(data)
        except SerialTimeoutException:
            raise BoardTimeoutError(
                f"the board on {self.port} stopped taking bytes for {self.timeout:g} s (its receive buffer is "
                "full and it does not read): it hangs or waits for flow control; reset it"
            ) from None
        except (SerialException, OSError) as exc:
            raise self._port_gone(exc) from None
        self.stats["tx_bytes"] += len(data)

    def _send(self, op: int, core: int, payload: bytes = b"") -> int:
        self._seq = (self._seq + 1) & 0xFF
        self._write(P.encode_frame(op, core, self._seq, payload))
        self.stats["commands"] += 1
        return self._seq

    def _poll(self, deadline: float):
        """The next decoded item (Frame or BadFrame) or None once ``deadline`` (monotonic) passes."""
        while True:
            if self._inbox:
                return self._inbox.popleft()
            if time.monotonic() >= deadline:
                return None
            if self._serial is None:
                raise BoardConnectionError(f"the board on {self.port} is closed")
            try:
                waiting = self._serial.in_waiting
                data = self._serial.read(waiting if waiting else 1)
            except (SerialException, OSError) as exc:
                raise self._port_gone(exc) from None
            if not data:
                continue
            self.stats["rx_bytes"] += len(data)
            for item in self._decoder.feed(data):
                if isinstance(item, P.Frame) and item.opcode < Op.ACK:
                    self.stats["echoed_commands"] += 1  # our own command came back: a loopback port
                    continue
                self._inbox.append(item)

    def _stray(self, item) -> None:
        """A frame that answers nothing we wait for: free-run spikes, or a late reply to a retried command."""
        if isinstance(item, P.Frame) and self._free is not None and item.seq in self._free.seqs \
                and item.opcode == Op.SPIKES:
            self._free._queue.append(item)
        else:
            self.stats["stray_frames"] += 1

    def _timeout_message(self, what: str, tries: int) -> str:
        head = f"no reply from the board on {self.port} within {self.timeout:g} s to {what} ({tries} tries). "
        if self.stats["echoed_commands"]:
            return head + ("The port sends our own commands back: it is a loopback (loop:// or a jumper on "
                           "RX/TX), not a spikeforge board.")
        if not self.stats["rx_bytes"]:
            return head + (f"Nothing at all has been received: is the board powered and programmed with a "
                           f"spikeforge bitstream, the port right and {self.baud} baud the board's rate?")
        return head + "The board answered before and stopped: it may have been reset, unplugged or hung."

    def _nack(self, payload: bytes, what: str) -> BoardNackError:
        op, error, detail = P.decode_nack(payload)
        text = P.describe_error(error, detail)
        hint = {
            Err.BUSY: " Stop the free run first (board.stop()).",
            Err.UNKNOWN_OPCODE: " The board's protocol version lacks this command; update its bitstream.",
            Err.BAD_STEP: " The core is not at the step the host expected (detail = its step).",
        }.get(error, "")
        return BoardNackError(f"the board on {self.port} refused {what}: {text}.{hint}", op, error, detail)

    # ---- one command, retried ------------------------------------------------------------------
    def _command(self, op: int, core: int = 0, payload: bytes = b"", *, what: str | None = None) -> bytes:
        """Send one command and return its ACK payload; idempotent commands are retried."""
        what = what or Op(op).name
        tries = 0
        while True:
            tries += 1
            seq = self._send(op, core, payload)
            deadline = time.monotonic() + self.timeout
            problem = None
            while problem is None:
                item = self._poll(deadline)
                if item is None:
                    problem = "timeout"
                elif isinstance(item, P.BadFrame):
                    self.stats["damaged_replies"] += 1
                    if item.seq == seq:
                        problem = "damaged reply"
                elif item.seq != seq:
                    self._stray(item)
                elif item.opcode == P.ack(op):
                    return item.payload
                elif item.opcode == Op.NACK:
                    if P.decode_nack(item.payload)[1] in P.RETRYABLE:
                        problem = "damaged command"
                    else:
                        raise self._nack(item.payload, what)
                else:
                    self._stray(item)
            self.stats[problem.replace(" ", "_")] += 1
            if op not in P.IDEMPOTENT or tries > self.retries:
                if problem == "timeout":
                    raise BoardTimeoutError(self._timeout_message(what, tries))
                raise LinkError(f"{what} to the board on {self.port} failed {tries} times ({problem}); "
                                "the link is too noisy: check the cable, lower the baud rate")
            self.stats["retries"] += 1

    # ---- many idempotent commands, pipelined ---------------------------------------------------
    def _pipeline(self, requests: Iterable[tuple[int, int, bytes, object]],
                  on_reply: Callable[[object, bytes], None],
                  split: Callable[[_Pending], list[_Pending] | None] | None = None) -> None:
        """Send idempotent commands ``(op, core, payload, context)`` keeping up to the board's window
        outstanding; ``on_reply(context, ack_payload)`` for each ACK. The board answers in order, so
        a reply to a later command means the earlier unanswered ones were lost: they are resent.

        Giving up: after ``3 retries`` loss events in a row without one answered command (the link
        makes no progress), after ``retries`` timeouts in a row without any frame (the board is
        silent), or when one command failed ``4 (retries + 1)`` times. On a noisy line long frames
        rarely arrive whole, so the frame size follows the measured damage rate (``_observe``):
        ``split(entry)`` cuts a lost block command into frames of the new size, and the block
        generators read ``self._frame_words`` for the frames they have yet to make."""
        window = max(1, self.info.window if self.info else 1)
        pending: OrderedDict[int, _Pending] = OrderedDict()
        resend: deque[_Pending] = deque()
        source = iter(requests)
        exhausted = False
        sentinel = False  # a PING is outstanding behind the last command
        streak = 0  # loss events since the last answered command
        silent = 0  # timeouts in a row
        deadline = time.monotonic() + self.timeout

        def give_up(entry: _Pending, tries: int) -> BoardError:
            what = f"{Op(entry.op).name} {_describe(entry.ctx)}"
            if entry.problem == "timeout":
                return BoardTimeoutError(self._timeout_message(what, tries))
            return LinkError(f"{what} to the board on {self.port} failed {tries} times in a row (last: "
                             f"{entry.problem}); the link is too noisy: check the cable, lower the baud rate")

        def lose(entries: list[_Pending], problem: str) -> None:
            """One loss event: resend these commands (in frames of the current size)."""
            nonlocal streak
            entries = [e for e in entries if e.ctx is not _SENTINEL]
            if not entries:
                return
            streak += 1
            size = self._frame_words
            for entry in entries:
                entry.problem = problem
                self.stats[problem.replace(" ", "_")] += 1
                pieces = None
                if problem != "timeout":  # damage, not silence: shorter frames get through more often
                    self._observe(_exchange_bytes(entry), ok=False)
                    pieces = split(entry) if split is not None else None
                for piece in pieces or ():
                    piece.problem = problem
                resend.extend(pieces or [entry])
            if self._frame_words < size:
                streak = 0  # shorter frames from now on: give them their own tries (bounded: sizes only halve so often)
            if streak > 3 * self.retries:
                raise give_up(entries[0], streak)

        while True:
            while len(pending) < window:
                if exhausted and not resend and pending and not sentinel:
                    # Nothing left to send: a PING behind the last command. Its reply shows that every
                    # command before it was answered or lost, without waiting for a timeout.
                    pending[self._send(Op.PING, 0, b"")] = _Pending(Op.PING, 0, b"", _SENTINEL)
                    sentinel = True
                    continue
                if resend:
                    entry = resend.popleft()
                elif not exhausted:
                    try:
                        entry = _Pending(*next(source))
                    except StopIteration:
                        exhausted = True
                        continue
                else:
                    break
                if entry.tries >= 4 * (self.retries + 1):
                    raise give_up(entry, entry.tries)
                if entry.tries:
                    self.stats["retries"] += 1
                entry.tries += 1
                pending[self._send(entry.op, entry.core, entry.payload)] = entry
            if not any(e.ctx is not _SENTINEL for e in pending.values()) and exhausted and not resend:
                return  # everything answered (a sentinel may still be on its way: a stray later)
            item = self._poll(deadline)
            if item is None:
                silent += 1
                waiting = list(pending.values())
                pending.clear()
                sentinel = False
                deadline = time.monotonic() + self.timeout
                if silent > self.retries:
                    first = next(e for e in waiting if e.ctx is not _SENTINEL)
                    first.problem = "timeout"
                    raise give_up(first, silent)
                lose(waiting, "timeout")
                continue
            silent = 0
            if isinstance(item, P.BadFrame):
                self.stats["damaged_replies"] += 1
                if item.seq in pending:  # its reply (and the missing ones before it) damaged: resend
                    gone = []
                    for seq in list(pending):
                        gone.append(pending.pop(seq))
                        if seq == item.seq:
                            break
                    sentinel = any(e.ctx is _SENTINEL for e in pending.values())
                    lose(gone, "damaged reply")
                continue
            if item.seq not in pending:
                self._stray(item)
                continue
            deadline = time.monotonic() + self.timeout
            gone = []
            for seq in list(pending):
                if seq == item.seq:
                    break
                gone.append(pending.pop(seq))
            entry = pending.pop(item.seq)
            sentinel = any(e.ctx is _SENTINEL for e in pending.values())
            lose(gone, "lost reply")
            if entry.ctx is _SENTINEL:
                continue
            if item.opcode == P.ack(entry.op):
                on_reply(entry.ctx, item.payload)
                self._observe(_exchange_bytes(entry), ok=True)
                streak = 0
            elif item.opcode == Op.NACK:
                if P.decode_nack(item.payload)[1] in P.RETRYABLE:
                    lose([entry], "damaged command")
                else:
                    raise self._nack(item.payload, f"{Op(entry.op).name} {_describe(entry.ctx)}")
            else:
                raise LinkError(f"the board on {self.port} answered {Op(entry.op).name} with opcode "
                                f"0x{item.opcode:02X}: it does not follow the protocol")

    def _observe(self, nbytes: int, ok: bool) -> None:
        """Track the line's damage rate q (failed exchanges per byte, over the last ~50 exchanges) and
        set the frame size that moves the most data per second at that rate: with O bytes of overhead
        per exchange, n payload bytes arrive with probability (1-q)^(n+O), so n/(n+O) (1-q)^(n+O) is
        largest at n = (sqrt(O^2 + 4 O / q) - O) / 2 (and is max_words on a clean line)."""
        self._exposed = 0.98 * self._exposed + nbytes
        self._failed = 0.98 * self._failed + (0.0 if ok else 1.0)
        q = self._failed / self._exposed if self._exposed else 0.0
        top = self.info.max_words if self.info else P.MAX_WORDS
        if q <= 0:
            self._frame_words = top
            return
        o = 2 * P.FRAME_OVERHEAD + 8  # a command and its reply
        n = (np.sqrt(o * o + 4 * o / q) - o) / 2
        self._frame_words = int(min(top, max(1, n // 4)))

    @contextmanager
    def _progress(self, total: int, description: str):
        """``advance(n)`` for a progress bar over ``total`` words (nothing when progress is off)."""
        if not self.progress or total < 4096:
            yield lambda n: None
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} words"),
                      TransferSpeedColumn(), TimeRemainingColumn(), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)

    # ---- identity ------------------------------------------------------------------------------
    def identify(self) -> P.BoardInfo:
        """Ask the board what it is; refuse another protocol major version."""
        info = P.BoardInfo.decode(self._command(Op.IDENTIFY, 0, what="IDENTIFY"))
        if info.version[0] != P.PROTOCOL_VERSION[0]:
            raise BoardMismatchError(
                f"the board on {self.port} speaks link protocol {info.version[0]}.{info.version[1]}, this "
                f"spikeforge speaks {P.PROTOCOL_VERSION[0]}.{P.PROTOCOL_VERSION[1]}: update spikeforge or "
                "program the board with a bitstream built by this version"
            )
        self.info = info
        self._frame_words = info.max_words
        return info

    @property
    def n_cores(self) -> int:
        return len(self.info.cores)

    def config(self, core: int = 0) -> CoreConfig:
        self._check_core(core)
        return self.info.cores[core]

    def _check_core(self, core: int) -> None:
        if not isinstance(core, (int, np.integer)) or not 0 <= core < len(self.info.cores):
            raise BoardMismatchError(
                f"core {core!r}: the board on {self.port} has {len(self.info.cores)} core(s), 0 .. {len(self.info.cores) - 1}"
            )

    def check_config(self, config: CoreConfig, core: int = 0) -> None:
        """Raise BoardMismatchError unless core ``core`` has exactly ``config``, naming the differences."""
        have = self.config(core)
        if have == config:
            return
        diff = [f for f in config.to_dict() if getattr(have, f) != getattr(config, f)]
        board = ", ".join(f"{f}={getattr(have, f)!r}" for f in diff)
        need = ", ".join(f"{f}={getattr(config, f)!r}" for f in diff)
        raise BoardMismatchError(
            f"core {core} of the board on {self.port} has {board}; the network needs {need}. Compile for the "
            f"board's core (spikeforge.compiler.compile(network, config=board.config({core}))) or build and "
            "program a bitstream for the network's CoreConfig"
        )

    def ping(self, data: bytes = b"") -> float:
        """Round-trip time (s) of an ECHO of ``data``; raises if the echo comes back different."""
        t0 = time.perf_counter()
        back = self._command(Op.PING, 0, bytes(data), what="PING")
        if back != bytes(data):
            raise LinkError(f"PING to the board on {self.port} came back different")
        return time.perf_counter() - t0

    @property
    def max_payload(self) -> int:
        return 4 + 4 * self.info.max_words

    # ---- memory --------------------------------------------------------------------------------
    def write_words(self, region: int, address: int, words, core: int = 0) -> None:
        """Write 32-bit ``words`` from ``address`` of ``region`` (split into frames, pipelined)."""
        self._check_core(core)
        words = np.asarray(words, dtype=np.int64).reshape(-1)
        m = self.info.max_words
        blocks = ((int(region), int(address) + k, words[k:k + m]) for k in range(0, words.size, m))
        self._write_blocks(core, blocks, words.size, "writing")

    def _write_blocks(self, core: int, blocks, total: int, description: str) -> None:
        with self._progress(total, f"{description} core {core}") as advance:
            def check(ctx, payload):
                if P.decode_write_ack(payload) != ctx:
                    raise LinkError(f"the board acknowledged {P.decode_write_ack(payload)} for WRITE {ctx}")
                advance(ctx[2])

            def frames():
                for region, address, words in blocks:
                    k = 0
                    while k < len(words):
                        m = self._frame_words
                        piece = words[k:k + m]
                        yield Op.WRITE, core, P.encode_write(region, address + k, piece), (region, address + k, len(piece))
                        k += m

            def split(entry: _Pending):
                region, address, count = entry.ctx
                m = self._frame_words
                if count <= m:
                    return None
                words = P.decode_write(entry.payload)[2]
                return [_Pending(Op.WRITE, core, P.encode_write(region, address + a, words[a:a + m]),
                                 (region, address + a, len(words[a:a + m]))) for a in range(0, count, m)]

            self._pipeline(frames(), check, split)

    def read_words(self, region: int, address: int, count: int, core: int = 0) -> np.ndarray:
        """``count`` 32-bit words from ``address`` of ``region`` (uint32)."""
        self._check_core(core)
        m = self.info.max_words
        out = np.zeros(int(count), dtype=np.uint32)
        blocks = [(int(region), int(address) + k, min(m, count - k)) for k in range(0, int(count), m)]

        def store(ctx, words):
            out[ctx[1] - address:ctx[1] - address + ctx[2]] = words

        self._read_blocks(core, blocks, store, "reading")
        return out

    def _read_blocks(self, core, blocks, store, description: str) -> None:
        blocks = list(blocks)
        with self._progress(sum(b[2] for b in blocks), f"{description} core {core}") as advance:
            def check(ctx, payload):
                region, address, words = P.decode_read_reply(payload)
                if (region, address, words.size) != ctx:
                    raise LinkError(f"the board answered READ {ctx} with {(region, address, words.size)}")
                store(ctx, words)
                advance(ctx[2])

            def frames():
                for region, address, count in blocks:
                    k = 0
                    while k < count:
                        m = min(self._frame_words, count - k)
                        yield Op.READ, core, P.encode_read(region, address + k, m), (region, address + k, m)
                        k += m

            def split(entry: _Pending):
                region, address, count = entry.ctx
                m = self._frame_words
                if count <= m:
                    return None
                return [_Pending(Op.READ, core, P.encode_read(region, address + a, min(m, count - a)),
                                 (region, address + a, min(m, count - a))) for a in range(0, count, m)]

            self._pipeline(frames(), check, split)

    def read_step(self, core: int = 0) -> int:
        return int(self.read_words(Region.CONTROL, ControlReg.STEP, 1, core)[0])

    def load(self, image: CoreImage, core: int = 0, *, verify: bool = True, state: bool = True) -> None:
        """Write ``image`` into core ``core``; with ``verify``, read everything back and compare.

        ``state=False`` writes only parameters and synapses (the dynamic state stays as it is)."""
        if not isinstance(image, CoreImage):
            raise TypeError(f"load takes a CoreImage, got {type(image).__name__}")
        image.validate()
        self.check_config(image.config, core)
        blocks = transfer.image_write_blocks(image, self.info.max_words, state=state)
        self._write_blocks(core, blocks, transfer.image_word_count(image.config, state=state), "loading")
        if verify:
            back = self.read_image(core, state=state)
            expected = image
            if not state:  # only parameters and synapses were written: compare those
                expected = image.copy()
                for name in STATE_FIELDS:
                    setattr(expected, name, getattr(back, name))
                expected.step, expected.learning = back.step, back.learning
            problem = transfer.first_difference(expected, back)
            if problem:
                raise LoadVerifyError(
                    f"verify after loading core {core} of the board on {self.port} failed: {problem}. The board "
                    "did not keep what was written; check that its bitstream matches the CoreConfig"
                )

    def read_image(self, core: int = 0, *, state: bool = True) -> CoreImage:
        """Everything core ``core`` holds, as a CoreImage (``state=False``: parameters and synapses)."""
        config = self.config(core)
        words: dict[tuple[int, int], int] = {}

        def store(ctx, block):
            region, address = ctx[0], ctx[1]
            for k, w in enumerate(block.tolist()):
                words[(region, address + k)] = w

        self._read_blocks(core, transfer.image_read_blocks(config, self.info.max_words, state=state), store, "reading")
        return image_from_words(config, words)

    def read_weights(self, core: int = 0) -> np.ndarray:
        """The (A+N, N) signed weight matrix of core ``core``."""
        c = self.config(core)
        w, _, _ = unpack_synapses(self.read_words(Region.SYNAPSE, 0, c.n_sources * c.n_neurons, core))
        return w.reshape(c.n_sources, c.n_neurons)

    # ---- control -------------------------------------------------------------------------------
    def learning(self, on: bool, core: int = P.ALL_CORES) -> None:
        """STDP weight updates on or off (all cores by default)."""
        if core != P.ALL_CORES:
            self._check_core(core)
        self._command(Op.LEARNING, core, P.encode_flag(bool(on)), what=f"LEARNING {'on' if on else 'off'}")

    def reset(self, core: int = P.ALL_CORES, *, blank: bool = False, to: CoreImage | None = None) -> None:
        """Dynamic state and step counter to 0 (``blank``: the whole core to a blank image); ``to``:
        then write the dynamic state of that image (e.g. the compiled initial state)."""
        if core != P.ALL_CORES:
            self._check_core(core)
        mode = P.ResetMode.BLANK if blank else P.ResetMode.STATE
        self._command(Op.RESET, core, P.encode_flag(mode), what=f"RESET {mode.name}")
        if to is not None:
            cores = range(self.n_cores) if core == P.ALL_CORES else [core]
            for k in cores:
                self.check_config(to.config, k)
                self._write_blocks(k, transfer.state_write_blocks(to, self.info.max_words),
                                   0, "resetting")

    def stop(self) -> int:
        """Stop a free run (harmless when none runs); returns the next step of core 0."""
        if self._free is not None:
            return self._free.stop()
        return P.decode_step(self._command(Op.STOP, P.ALL_CORES, what="STOP"))

    # ---- running -------------------------------------------------------------------------------
    def _check_inputs(self, config: CoreConfig, steps, inputs, currents, core: int):
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"steps = {steps!r}: expected a whole number of steps >= 0")
        a, k = config.n_inputs, config.n_current_inputs
        if inputs is None:
            inputs = np.zeros((steps, a), dtype=bool)
        inputs = np.asarray(inputs)
        if inputs.shape != (steps, a):
            raise ValueError(f"inputs for core {core} have shape {inputs.shape}, expected (steps, A) = ({steps}, {a})")
        if inputs.dtype != bool and not np.isin(inputs, (0, 1)).all():
            raise ValueError("inputs must hold spikes as 0/1 or booleans")
        if currents is not None and np.asarray(currents).size:
            if not k:
                raise ValueError(f"currents given, but core {core} has n_current_inputs = 0")
            currents = np.asarray(currents)
            if currents.shape != (steps, k):
                raise ValueError(f"currents for core {core} have shape {currents.shape}, expected ({steps}, {k})")
            if currents.dtype.kind not in "iu":
                if currents.dtype.kind != "f" or not np.array_equal(currents, np.round(currents)):
                    raise ValueError("currents must hold integers (core units); the compiler converts nA")
            currents = currents.astype(np.int64)
            lo, hi = fx.smin(config.v_bits), fx.smax(config.v_bits)
            if currents.min() < lo or currents.max() > hi:
                raise ValueError(f"currents: a value is outside {lo} .. {hi} (signed v_bits = {config.v_bits})")
        else:
            currents = None
        return inputs.astype(bool), currents

    def _sync_step(self, core: int) -> int:
        """The step core ``core`` runs next. Writing it back clears the board's input slots and spike
        history, so nothing injected by an interrupted earlier session can leak into this run."""
        step = self.read_step(core)
        self.write_words(Region.CONTROL, ControlReg.STEP, [step], core)
        return step

    def _send_inputs(self, core: int, first: int, inputs: np.ndarray, currents: np.ndarray | None) -> None:
        limit = 4 + 4 * self._frame_words  # smaller frames while the line is noisy
        frames = transfer.inject_frames(first, inputs, limit)
        if currents is not None:
            frames += [(Op.CURRENTS, p) for p in transfer.currents_frames(first, currents, limit)]
        self._pipeline(((op, core, payload, f"for steps from {first}") for op, payload in frames),
                       lambda ctx, payload: None)

    def _run_chunk(self, cores: list[int], core_field: int, start: int, steps: int) -> dict[int, np.ndarray]:
        """RUN ``steps`` steps from ``start``; collect every SPIKES frame (RESEND the lost ones)."""
        n = {k: self.info.cores[k].n_neurons for k in cores}
        got: dict[int, dict[int, np.ndarray]] = {k: {} for k in cores}
        seqs: set[int] = set()
        tries = 0
        what = f"RUN of steps {start} .. {start + steps - 1}"

        sentinels: set[int] = set()

        def send():
            nonlocal tries
            tries += 1
            seqs.add(self._send(Op.RUN, core_field, P.encode_run(start, steps)))
            sentinels.clear()  # only the PING behind the latest RUN counts
            if self.info.window >= 2:  # a PING behind the RUN: its reply says the RUN's ACK went missing
                sentinels.add(self._send(Op.PING, 0, b""))

        send()
        deadline = time.monotonic() + self.timeout
        while True:
            item = self._poll(deadline)
            if item is None or (isinstance(item, P.Frame) and item.seq in sentinels):
                # No ACK of the RUN: the RUN, or its ACK, was lost. Sending it again is safe -- a board
                # that ran it refuses it (BAD_STEP at start + steps).
                self.stats["timeout" if item is None else "lost_reply"] += 1
                if tries > self.retries:
                    raise BoardTimeoutError(self._timeout_message(what, tries))
                self.stats["retries"] += 1
                send()
                deadline = time.monotonic() + self.timeout
                continue
            if isinstance(item, P.BadFrame):
                self.stats["damaged_replies"] += 1
                continue
            if item.seq not in seqs:
                self._stray(item)
                continue
            if item.opcode == Op.SPIKES:
                if item.core in got:
                    step, _, mask = P.decode_spikes(item.payload, n[item.core])
                    if start <= step < start + steps:
                        got[item.core][step] = mask
                deadline = time.monotonic() + self.timeout
            elif item.opcode == P.ack(Op.RUN):
                if P.decode_step(item.payload) != start + steps:
                    raise LinkError(f"{what}: the board reports step {P.decode_step(item.payload)} after it")
                break
            elif item.opcode == Op.NACK:
                _, error, detail = P.decode_nack(item.payload)
                if error == Err.BAD_STEP and detail == start + steps and tries > 1:
                    break  # the RUN we retried had already run: its spikes are in `got` or RESENDable
                if error in P.RETRYABLE and tries <= self.retries:
                    self.stats["damaged_command"] += 1
                    self.stats["retries"] += 1
                    send()
                    deadline = time.monotonic() + self.timeout
                    continue
                raise self._nack(item.payload, what)
        missing = [(k, s) for k in cores for s in range(start, start + steps) if s not in got[k]]
        if missing:
            self.stats["resent_steps"] += len(missing)

            def keep(ctx, payload):
                k, s = ctx
                step, _, mask = P.decode_spikes(payload, n[k])
                if step != s:
                    raise LinkError(f"RESEND of step {s} answered with step {step}")
                got[k][s] = mask

            try:
                self._pipeline(((Op.RESEND, k, P.encode_step(s), (k, s)) for k, s in missing), keep)
            except BoardNackError as exc:
                raise LinkError(
                    f"spikes of {len(missing)} step(s) of {what} were lost on the wire and the board no longer "
                    f"holds them ({exc}); rerun from a reloaded image"
                ) from None
        return {k: np.array([got[k][s] for s in range(start, start + steps)], dtype=bool).reshape(steps, n[k])
                for k in cores}

    def run(self, steps: int, inputs=None, currents=None, *, core: int = 0, record: Sequence[str] = ()) -> CoreRecord:
        """Run core ``core`` for ``steps`` steps with input spikes ``inputs`` (steps, A) and analog inputs
        ``currents`` (steps, K) in core units; return a CoreRecord with spikes (steps, N).

        ``record``: variables read back after every step (v, ie, ii, refrac_count, adapt, threshold,
        x_trace, y_trace, weights) -- exact, but one round trip per step."""
        self._check_core(core)
        config = self.config(core)
        record = _check_record(record, config)
        inputs, currents = self._check_inputs(config, steps, inputs, currents, core)
        start = self._sync_step(core)
        recorder = _Recorder(self, core, record, steps) if record else None
        chunk = 1 if record else max(1, self.info.slots)
        spikes = np.zeros((steps, config.n_neurons), dtype=bool)
        with self._progress(steps if steps >= 4096 else 0, f"running core {core}") as advance:
            for s0 in range(0, steps, chunk):
                m = min(chunk, steps - s0)
                self._send_inputs(core, start + s0, inputs[s0:s0 + m], None if currents is None else currents[s0:s0 + m])
                spikes[s0:s0 + m] = self._run_chunk([core], core, start + s0, m)[core]
                if recorder:
                    recorder.after_step(s0)
                advance(m)
        return CoreRecord(spikes=spikes, variables=recorder.variables if recorder else {})

    def run_cores(self, steps: int, inputs: Sequence | None = None, currents: Sequence | None = None) -> list[CoreRecord]:
        """Run every core of the board in lock-step; ``inputs[k]``, ``currents[k]`` of core k."""
        cores = list(range(self.n_cores))
        inputs = list(inputs) if inputs is not None else [None] * len(cores)
        currents = list(currents) if currents is not None else [None] * len(cores)
        if len(inputs) != len(cores) or len(currents) != len(cores):
            raise ValueError(f"give inputs and currents for each of the {len(cores)} cores")
        checked = [self._check_inputs(self.config(k), steps, inputs[k], currents[k], k) for k in cores]
        starts = [self._sync_step(k) for k in cores]
        if len(set(starts)) > 1:
            raise BoardMismatchError(f"the cores are at different steps {starts}; lock-step runs need one step "
                                     "(load the images with the same step or reset the board)")
        start = starts[0]
        chunk = max(1, self.info.slots)
        spikes = [np.zeros((steps, self.config(k).n_neurons), dtype=bool) for k in cores]
        for s0 in range(0, steps, chunk):
            m = min(chunk, steps - s0)
            for k in cores:
                x, u = checked[k]
                self._send_inputs(k, start + s0, x[s0:s0 + m], None if u is None else u[s0:s0 + m])
            result = self._run_chunk(cores, P.ALL_CORES, start + s0, m)
            for k in cores:
                spikes[k][s0:s0 + m] = result[k]
        return [CoreRecord(spikes=s) for s in spikes]

    def run_network(self, compiled, steps: int, seed: int | None = None, *, currents=None, record=(),
                    core: int = 0, verify: bool = True):
        """Load ``compiled`` (a CompiledNetwork), run it ``steps`` steps and read the result back: the
        same SimResult the golden backend gives (spikes, recorded variables, learned weights)."""
        from spikeforge.sim import golden_backend

        record = golden_backend._check_record(record)
        self.load(compiled.image, core, verify=verify)
        inputs = compiled.input_raster(steps, seed)
        u = compiled.core_currents(golden_backend._normalise_currents(compiled.network, currents, steps), steps)
        rec = self.run(steps, inputs, u, core=core, record=record)
        final = self.read_image(core)
        return golden_backend.record_to_result(
            compiled, rec, "board", final_image=final,
            meta={"seed": seed, "port": self.port, "board": self.info.name, "core": core},
        )

    def free_run(self, period: float, steps: int = 0, core: int = P.ALL_CORES) -> "FreeRun":
        """Start running in real time, one step every ``period`` seconds (``steps`` = 0: until stopped).
        Iterate the returned FreeRun for SpikeEvents; inject inputs on the fly; stop() it (or leave the
        ``with`` block)."""
        if self._free is not None:
            raise BoardError("a free run is already running on this board; stop it first")
        cores = list(range(self.n_cores)) if core == P.ALL_CORES else [core]
        for k in cores:
            self._check_core(k)
        period_us = int(round(period * 1e6))
        if not 1 <= period_us < 1 << 32:
            raise ValueError(f"period = {period} s: expected 1 microsecond .. 4294 s")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 0 <= steps < 1 << 32:
            raise ValueError(f"steps = {steps!r}: expected a whole number >= 0 (0 = until stopped)")
        starts = [self._sync_step(k) for k in cores]
        if len(set(starts)) > 1:
            raise BoardMismatchError(f"the cores are at different steps {starts}; a free run needs one step")
        start = starts[0]
        payload = P.encode_freerun(start, period_us, int(steps))
        seqs: list[int] = []
        for tries in range(1, self.retries + 2):
            seqs.append(self._send(Op.FREERUN, core, payload))
            deadline = time.monotonic() + self.timeout
            while (item := self._poll(deadline)) is not None:
                if isinstance(item, P.BadFrame):
                    continue
                if item.seq not in seqs:
                    self._stray(item)
                    continue
                if item.opcode == Op.NACK:
                    _, error, _ = P.decode_nack(item.payload)
                    if error in P.RETRYABLE:
                        break
                    if not (error == Err.BUSY and tries > 1):  # BUSY on a retry: our first FREERUN runs
                        raise self._nack(item.payload, "FREERUN")
                elif item.opcode == Op.SPIKES:  # the ACK was lost, the run is on
                    self._inbox.appendleft(item)
                self._free = FreeRun(self, cores, seqs, start, int(steps), period)
                return self._free
            self.stats["retries"] += 1
        raise BoardTimeoutError(self._timeout_message("FREERUN", self.retries + 1))


class FreeRun:
    """A running free run: ``for event in run`` yields SpikeEvents in step order (core by core within a
    step); ``inject`` and ``currents`` feed inputs while it runs; ``stop()`` ends it, after which the
    spikes sent before the stop are still iterated. Spikes lost on the wire are fetched again (RESEND)."""

    def __init__(self, board: Board, cores: list[int], seqs: list[int], start: int, steps: int, period: float):
        self.board = board
        self.cores = cores
        self.seqs = set(seqs)
        self.start = start
        self.steps = steps  # 0: until stopped; set by stop()
        self.period = period
        self._queue: deque = deque()  # SPIKES frames picked up while the board waited for other replies
        self._next = {k: start for k in cores}  # next step to yield, per core
        self._held: dict[tuple[int, int], SpikeEvent] = {}
        self._stopped = False
        self.last_step = start - 1  # the latest step seen from the board

    def __enter__(self) -> "FreeRun":
        return self

    def __exit__(self, *exc) -> None:
        if not self._stopped:
            self.stop()

    def __iter__(self) -> Iterator[SpikeEvent]:
        return self

    def _take(self, item) -> None:
        if item.core not in self._next:
            return
        step, flags, mask = P.decode_spikes(item.payload, self.board.info.cores[item.core].n_neurons)
        self.last_step = max(self.last_step, step)
        if step >= self._next[item.core]:
            self._held[(item.core, step)] = SpikeEvent(item.core, step, mask, flags)

    def __next__(self) -> SpikeEvent:
        board = self.board
        deadline = time.monotonic() + board.timeout + self.period
        while True:
            k = min(self.cores, key=lambda c: (self._next[c], c))
            s = self._next[k]
            if self.steps and s >= self.start + self.steps:
                if not self._stopped:  # a bounded run: the board has stopped by itself
                    self._stopped = True
                    if self.board._free is self:
                        self.board._free = None
                raise StopIteration
            if (k, s) in self._held:
                self._next[k] += 1
                return self._held.pop((k, s))
            if self._queue:
                self._take(self._queue.popleft())
                continue
            if self._stopped or any(c == k and t > s for c, t in self._held):
                self._resend(k, s)  # the step ran, its frame was lost
                continue
            item = board._poll(deadline)
            if item is None:
                try:  # the last frame may have been lost with nothing after it
                    self._resend(k, s)
                    continue
                except BoardNackError:
                    raise BoardTimeoutError(board._timeout_message(f"the free run (waiting for step {s})", 1)) from None
            if isinstance(item, P.Frame) and item.seq in self.seqs and item.opcode == Op.SPIKES:
                self._take(item)
                deadline = time.monotonic() + board.timeout + self.period
            elif not isinstance(item, P.BadFrame) and not (item.seq in self.seqs and item.opcode == P.ack(Op.FREERUN)):
                board._stray(item)

    def _resend(self, core: int, step: int) -> None:
        payload = self.board._command(Op.RESEND, core, P.encode_step(step), what=f"RESEND of step {step}")
        s, flags, mask = P.decode_spikes(payload, self.board.info.cores[core].n_neurons)
        if s != step:
            raise LinkError(f"RESEND of step {step} answered with step {s}")
        self._held[(core, s)] = SpikeEvent(core, s, mask, flags)
        self.board.stats["resent_steps"] += 1

    def inject(self, indices, step: int | None = None, core: int | None = None) -> int:
        """Input spike indices for ``step`` (None: the earliest step the board still takes); returns the
        step they went to."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        return self._feed(core, step, Op.INJECT, lambda s: P.encode_inject(s, [indices]))

    def currents(self, values, step: int | None = None, core: int | None = None, first: int = 0) -> int:
        """Analog inputs (core units) of current inputs ``first`` .. for ``step``; returns the step."""
        values = np.asarray(values, dtype=np.int64).reshape(-1)
        return self._feed(core, step, Op.CURRENTS, lambda s: P.encode_currents(s, first, values))

    def _feed(self, core: int | None, step: int | None, op: int, payload) -> int:
        core = self.cores[0] if core is None else core
        s = self.last_step + 2 if step is None else int(step)
        for _ in range(3 if step is None else 1):
            try:
                self.board._command(op, core, payload(s), what=f"{Op(op).name} for step {s}")
                return s
            except BoardNackError as exc:
                if step is None and exc.error == Err.BAD_STEP:
                    s = exc.detail + 1  # the board moved on: the next step it can still take
                    continue
                raise
        raise BoardNackError(f"the board ran ahead of {Op(op).name} three times; give an explicit later step",
                             op, Err.BAD_STEP, s)

    def stop(self) -> int:
        """Stop the run and return the next step; the spikes sent before can still be iterated."""
        if self._stopped:
            return self.start + self.steps
        step = P.decode_step(self.board._command(Op.STOP, P.ALL_CORES, what="STOP"))
        self._stopped = True
        self.board._free = None
        self.steps = step - self.start
        return step

    def collect(self) -> dict[int, np.ndarray]:
        """Every remaining event until the run ends, as a (steps, N) raster per core."""
        rows: dict[int, list[np.ndarray]] = {k: [] for k in self.cores}
        for event in self:
            rows[event.core].append(event.spikes)
        return {k: np.array(v, dtype=bool).reshape(len(v), self.board.info.cores[k].n_neurons)
                for k, v in rows.items()}


# ---- recording over the link -------------------------------------------------------------------
def _check_record(record, config: CoreConfig) -> tuple[str, ...]:
    record = (record,) if isinstance(record, str) else tuple(record)
    for name in record:
        if name not in RECORDABLE:
            raise ValueError(f"cannot record {name!r} on a board; recordable: {', '.join(RECORDABLE)}")
        if name in ("x_trace", "y_trace") and not config.stdp:
            raise ValueError(f"cannot record {name!r}: the core has no STDP traces (stdp = False)")
    if len(set(record)) != len(record):
        raise ValueError(f"record names a variable twice: {record}")
    return record


class _Recorder:
    """Reads the recorded variables back after every step (and reconstructs the threshold of the step
    from the adaptation before it, as phase 3 of docs/core-spec.md computes it)."""

    def __init__(self, board: Board, core: int, names: tuple[str, ...], steps: int):
        self.board, self.core, self.names = board, core, names
        c = self.config = board.config(core)
        self.variables = {}
        for name in names:
            shape = (c.n_sources, c.n_neurons) if name == "weights" else \
                (c.n_sources,) if name == "x_trace" else (c.n_neurons,)
            self.variables[name] = np.zeros((steps, *shape), dtype=np.int64)
        self.need_state = any(n in _STATE_FIELD or n == "threshold" for n in names)
        if "threshold" in names:
            words = board.read_words(Region.PROFILE, 0, c.n_profiles * PROFILE_STRIDE, core).astype(np.int64)
            profiles = words.reshape(c.n_profiles, PROFILE_STRIDE)
            from spikeforge.core.image import PROFILE_FIELDS

            p = board.read_words(Region.NEURON_PROFILE, 0, c.n_neurons, core).astype(np.int64)
            col = lambda name: profiles[:, PROFILE_FIELDS.index(name)]
            self.v_thresh = np.array([from_word(int(x), True) for x in col("v_thresh")])[p]
            self.c_adecay = col("c_adecay")[p]
            self.prev_adapt = self._state()[:, NeuronStateField.ADAPT] if c.adaptive_threshold else None

    def _state(self) -> np.ndarray:
        c = self.config
        return self.board.read_words(Region.NEURON_STATE, 0, c.n_neurons * NEURON_STATE_STRIDE, self.core) \
            .astype(np.int64).reshape(c.n_neurons, NEURON_STATE_STRIDE)

    def after_step(self, t: int) -> None:
        c = self.config
        state = self._state() if self.need_state else None
        for name in self.names:
            if name in _STATE_FIELD:
                col = state[:, _STATE_FIELD[name]]
                self.variables[name][t] = np.where(col >= 1 << 31, col - (1 << 32), col) if name in _SIGNED_STATE else col
            elif name == "threshold":
                theta = self.v_thresh.copy()
                if c.adaptive_threshold:
                    theta += fx.usat(fx.rtz(self.c_adecay * self.prev_adapt, fx.COEF_FRAC), c.adapt_bits)
                    self.prev_adapt = state[:, NeuronStateField.ADAPT]
                self.variables[name][t] = theta
            elif name == "x_trace":
                self.variables[name][t] = self.board.read_words(Region.X_TRACE, 0, c.n_sources, self.core)
            elif name == "weights":
                self.variables[name][t] = self.board.read_weights(self.core)


def _exchange_bytes(entry: _Pending) -> int:
    """Bytes on the wire for a command and its reply (READ replies carry the words)."""
    reply = 6 + (4 * P.decode_read(entry.payload)[2] if entry.op == Op.READ else 0)
    return 2 * P.FRAME_OVERHEAD + len(entry.payload) + reply


def _describe(ctx) -> str:
    if isinstance(ctx, tuple) and len(ctx) == 3 and isinstance(ctx[0], int):
        region, address, count = ctx
        try:
            name = Region(region).name
        except ValueError:
            name = f"region {region}"
        return f"{name}[{address} .. {address + count - 1}]"
    return str(ctx)
