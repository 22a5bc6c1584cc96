"""The virtual board: the UART link protocol (spikeforge/core/protocol.py) served by golden-model cores.

``VirtualBoard`` is a *byte device*: ``feed(bytes)`` takes what the host sent, and every reply goes
out through the ``send`` callback given to ``attach``. It knows nothing about ptys, threads or
pacing -- ``spikeforge.host.emulator`` serves a byte device on a pseudo-terminal,
``spikeforge.host.loopback`` connects one in-process. Any object with the same three methods
(``attach``, ``feed``, ``close``) can stand in for it: that is the hook for serving the
cocotb-simulated RTL link with the same emulator and the same tests.

Behind the link each core is a ``CoreMemory`` (a CoreImage with the bus's storage widths) run by the
golden model, so a run on the virtual board is bit-exact with ``sim/golden.py`` by construction. After
a damaged frame it hunts for the next sync from the byte after the damaged frame's sync, as a board
with a receive ring buffer does (docs/protocol.md, section 2); ``rescan=False`` models the cheapest
hardware instead, which hunts behind the bytes the damaged header claimed and so may lose the next
frame too -- the host copes with both, and the fault tests run both.

Rules it enforces (docs/protocol.md): every command is checked completely before anything changes,
so a NACKed command changes nothing; RUN/FREERUN start only when every addressed core is at the
start step they name (a retried RUN never runs twice); inputs are taken for steps
``step .. step + slots - 1`` and the spikes of the last ``slots`` steps can be sent again (RESEND).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from spikeforge.core import fixedpoint as fx
from spikeforge.core import protocol as P
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage, CoreImageError
from spikeforge.core.memory_map import ControlReg, Region
from spikeforge.core.protocol import Err, Op, ProtocolError
from spikeforge.host.core_memory import CoreMemory
from spikeforge.sim.golden import GoldenCore

Send = Callable[[bytes], None]


def _engine(name: str):
    """``advance(core, inputs, currents) -> spikes``: run a GoldenCore in place for len(inputs) steps."""
    if name in ("auto", "fast"):
        try:
            from spikeforge.sim import golden_fast

            return lambda core, inputs, currents: golden_fast.run_core(core, inputs, currents=currents,
                                                                       parallel=False).spikes
        except ImportError:
            if name == "fast":
                raise
    if name in ("auto", "golden"):
        return lambda core, inputs, currents: core.run(inputs, currents=currents).spikes
    raise ValueError(f"engine = {name!r}: choose auto, fast (numba kernel) or golden (NumPy reference)")


@dataclass
class StepSlots:
    """What the link keeps per core besides the core itself: inputs of coming steps, recent spikes."""

    inputs: dict[int, np.ndarray] = field(default_factory=dict, kw_only=True)  # step -> (A,) bool
    currents: dict[int, np.ndarray] = field(default_factory=dict, kw_only=True)  # step -> (K,) int64
    history: OrderedDict = field(default_factory=OrderedDict, kw_only=True)  # step -> (N,) bool

    def clear_steps(self) -> None:
        self.inputs.clear()
        self.currents.clear()
        self.history.clear()


@dataclass
class CoreLink(StepSlots):
    """The link-side state of one core (StepSlots) and the operations the protocol needs from the
    core. This one runs a golden model in this process; ``spikeforge.host.bridged_board.RemoteCoreLink``
    does the same with a core on a board.

    While the core runs, its state lives in a GoldenCore (``engine``), built once from the memory and
    kept between RUNs; the memory's CoreImage is brought up to date only when the bus reads or writes
    it (``image()``), and a write drops the GoldenCore (``for_write()``)."""

    memory: CoreMemory
    advance_engine: Callable = None  # (GoldenCore, inputs, currents) -> spikes
    engine: GoldenCore | None = None
    stale: bool = False  # the memory's image lags the engine

    @property
    def config(self) -> CoreConfig:
        return self.memory.config

    def image(self) -> CoreImage:
        if self.stale:
            self.memory.image = self.engine.images()
            self.stale = False
        return self.memory.image

    def for_write(self) -> CoreMemory:
        self.image()
        self.engine = None
        return self.memory

    def running(self) -> GoldenCore:
        """The GoldenCore to step (raises CoreImageError when the memory holds no valid image)."""
        if self.engine is None:
            self.engine = GoldenCore(self.image())
        return self.engine

    @property
    def step(self) -> int:
        return int(self.engine.step_count[0]) if self.stale else int(self.memory.image.step)

    # ---- what the protocol asks of a core ----------------------------------------------------------
    def validate(self) -> None:
        """Raise CoreImageError unless the core holds a runnable image."""
        self.running()

    def write(self, region: int, address: int, words: np.ndarray) -> None:
        self.for_write().write(region, address, words)

    def read(self, region: int, address: int, count: int) -> np.ndarray:
        self.image()
        return self.memory.read(region, address, count, current_slot=self.currents.get(self.step))

    def advance(self, inputs: np.ndarray, currents: np.ndarray | None) -> np.ndarray:
        """Run len(inputs) steps; (steps, N) bool spikes."""
        spikes = self.advance_engine(self.running(), inputs, currents)
        self.stale = True
        return spikes

    def step_once(self, inputs: np.ndarray, currents: np.ndarray | None) -> np.ndarray:
        spikes = self.running().step(inputs, currents)[0]
        self.stale = True
        return spikes

    def set_learning(self, on: bool) -> None:
        self.for_write().image.learning = bool(on)

    def reset(self, mode: int) -> None:
        memory = self.for_write()
        if mode == P.ResetMode.STATE:
            memory.reset_state()
        else:
            memory.reset_blank()


@dataclass
class _FreeRun:
    cores: list[int]
    seq: int
    period: float
    steps: int
    t0: float
    wake: threading.Event = field(default_factory=threading.Event)


class VirtualBoard:
    """K golden-model cores behind the UART link protocol.

    ``cores``: CoreConfigs (blank memories) or CoreImages (preloaded memories, copied).
    ``slots``: steps of input buffered ahead and of spikes kept for RESEND. ``window``: commands the
    host may have outstanding. ``engine``: ``auto`` (numba kernel when available), ``fast``, ``golden``.
    """

    def __init__(
        self,
        cores: CoreConfig | CoreImage | Sequence[CoreConfig | CoreImage],
        *,
        name: str = "virtual",
        slots: int = 64,
        window: int = 4,
        max_words: int = P.MAX_WORDS,
        baud: int = 1_000_000,
        engine: str = "auto",
        rescan: bool = True,
        min_period_us: int = 100,
        log: Callable[[str], None] | None = None,
    ):
        if isinstance(cores, (CoreConfig, CoreImage)):
            cores = [cores]
        cores = list(cores)
        if not 1 <= len(cores) <= P.MAX_CORES:
            raise ValueError(f"a virtual board has 1 .. {P.MAX_CORES} cores, got {len(cores)}")
        if not 1 <= slots <= 0xFFFF:
            raise ValueError(f"slots = {slots}: expected 1 .. 65535")
        if not 1 <= max_words <= P.MAX_WORDS:
            raise ValueError(f"max_words = {max_words}: expected 1 .. {P.MAX_WORDS}")
        if not 1 <= window <= 0xFF:
            raise ValueError(f"window = {window}: expected 1 .. 255")
        images = [c.copy().validate() if isinstance(c, CoreImage) else CoreImage.blank(c) for c in cores]
        self._advance = _engine(engine)
        self.links = [CoreLink(CoreMemory(img), self._advance) for img in images]
        self.name = name
        self.slots = slots
        self.window = window
        self.max_words = max_words
        self.baud = baud
        self.min_period_us = min_period_us
        self.decoder = P.FrameDecoder(rescan=rescan)
        self.log = log
        self.stats: Counter = Counter()
        self.last_error = ""
        self._send: Send | None = None
        self._lock = threading.RLock()
        self._free: _FreeRun | None = None
        self._handlers = {
            Op.PING: self._ping, Op.IDENTIFY: self._identify, Op.WRITE: self._write, Op.READ: self._read,
            Op.INJECT: self._inject, Op.INJECT_BITMAP: self._inject_bitmap, Op.CURRENTS: self._currents,
            Op.RUN: self._run, Op.FREERUN: self._freerun, Op.STOP: self._stop, Op.RESEND: self._resend,
            Op.LEARNING: self._learning, Op.RESET: self._reset,
        }

    # ---- the byte-device interface ------------------------------------------------------------
    def attach(self, send: Send) -> None:
        """Where replies go: ``send(bytes)`` (called from feed() and from the free-run thread)."""
        self._send = send

    def feed(self, data: bytes) -> None:
        """Bytes from the host: decode, execute, answer."""
        with self._lock:
            for item in self.decoder.feed(data):
                if isinstance(item, P.BadFrame):
                    self.stats[f"bad_{item.error.name.lower()}"] += 1
                    if item.opcode < Op.ACK:
                        self._reply(item.seq, item.core, Op.NACK, P.encode_nack(item.opcode, item.error, item.detail))
                elif item.opcode < Op.ACK:  # replies (e.g. our own bytes looped back) are not answered
                    self._execute(item)

    def close(self) -> None:
        with self._lock:
            if self._free is not None:
                self._finish_free_run()

    # ---- inspection (tests, emulator) ----------------------------------------------------------
    @property
    def configs(self) -> list[CoreConfig]:
        return [link.config for link in self.links]

    def image(self, core: int = 0) -> CoreImage:
        """A copy of the current memory of ``core``."""
        with self._lock:
            return self.links[core].image().copy()

    @property
    def free_running(self) -> bool:
        return self._free is not None

    def info(self) -> P.BoardInfo:
        return P.BoardInfo(
            cores=tuple(self.configs), name=self.name, window=self.window, clock_hz=0, baud=self.baud,
            max_words=self.max_words, slots=self.slots,
            flags=P.BoardFlag.EMULATOR | (P.BoardFlag.FREE_RUNNING if self._free else 0),
        )

    # ---- dispatch --------------------------------------------------------------------------------
    def _reply(self, seq: int, core: int, opcode: int, payload: bytes = b"") -> None:
        if self._send is not None:
            self._send(P.encode_frame(opcode, core, seq, payload))

    def _execute(self, frame: P.Frame) -> None:
        self.stats["frames"] += 1
        try:
            handler = self._handlers.get(frame.opcode)
            if handler is None:
                raise ProtocolError(Err.UNKNOWN_OPCODE, 0, f"opcode 0x{frame.opcode:02X} is not a command")
            if self._free is not None and frame.opcode not in P.ALLOWED_WHILE_RUNNING:
                raise ProtocolError(Err.BUSY, self._step_of(self._free.cores[0]),
                                    f"{Op(frame.opcode).name} while free-running")
            payload = handler(frame, self._cores(frame))
        except ProtocolError as exc:
            self.stats[f"nack_{exc.error.name.lower()}"] += 1
            self.last_error = str(exc)
            if self.log:
                self.log(f"NACK seq {frame.seq}: {exc}")
            self._reply(frame.seq, frame.core, Op.NACK, P.encode_nack(frame.opcode, exc.error, exc.detail))
            return
        if payload is not None:
            self._reply(frame.seq, frame.core, P.ack(frame.opcode), payload)

    def _cores(self, frame: P.Frame) -> list[int]:
        n = len(self.links)
        if frame.opcode in (Op.PING, Op.IDENTIFY):
            return []
        if frame.core == P.ALL_CORES:
            if frame.opcode in P.BROADCAST_OK:
                return list(range(n))
            raise ProtocolError(Err.BAD_CORE, n, f"{Op(frame.opcode).name} needs one core, not ALL_CORES")
        if frame.core >= n:
            raise ProtocolError(Err.BAD_CORE, n, f"core {frame.core} does not exist ({n} cores)")
        return [frame.core]

    def _step_of(self, core: int) -> int:
        """The step core ``core`` runs next (the window of INJECT starts there)."""
        return self.links[core].step

    def _check_window(self, core: int, first: int, count: int) -> None:
        cur = self._step_of(core)
        if first < cur or first + count > cur + self.slots:
            raise ProtocolError(Err.BAD_STEP, cur,
                                f"inputs for steps {first} .. {first + count - 1}: core {core} takes steps "
                                f"{cur} .. {cur + self.slots - 1}")

    def _validated(self, cores: list[int]) -> None:
        """Build (or keep) each core's GoldenCore; NACK BAD_VALUE when a memory holds no valid image."""
        for k in cores:
            try:
                self.links[k].validate()
            except CoreImageError as exc:
                raise ProtocolError(Err.BAD_VALUE, 0, f"core {k} holds an invalid image: {exc}") from None

    # ---- commands --------------------------------------------------------------------------------
    def _ping(self, frame, cores):
        return frame.payload

    def _identify(self, frame, cores):
        return self.info().encode()

    def _write(self, frame, cores):
        (k,) = cores
        region, address, words = P.decode_write(frame.payload)
        if words.size > self.max_words:
            raise ProtocolError(Err.BAD_LENGTH, 4 + 4 * self.max_words,
                                f"WRITE of {words.size} words; this board takes {self.max_words} per frame")
        link = self.links[k]
        link.memory.check(region, address, words.size, write=True)
        slot = None
        if region == Region.CURRENT_IN:  # the analog input slot of the coming step: not core memory
            slot = link.currents.setdefault(self._step_of(k), np.zeros(link.memory.config.n_current_inputs, np.int64))
            link.memory.write(region, address, words, current_slot=slot)
        else:
            link.write(region, address, words)
        if region == Region.CONTROL and address <= ControlReg.STEP < address + words.size:
            link.clear_steps()
        return P.encode_write_ack(region, address, words.size)

    def _read(self, frame, cores):
        (k,) = cores
        region, address, count = P.decode_read(frame.payload)
        if not 1 <= count <= self.max_words:
            raise ProtocolError(Err.BAD_VALUE, self.max_words, f"READ of {count} words: 1 .. {self.max_words}")
        link = self.links[k]
        link.memory.check(region, address, count, write=False)
        words = link.read(region, address, count)
        return P.encode_read_reply(region, address, words)

    def _inject(self, frame, cores):
        (k,) = cores
        step, per_step = P.decode_inject(frame.payload)
        a = self.links[k].config.n_inputs
        for indices in per_step:
            if indices.size and indices.max() >= a:
                raise ProtocolError(Err.BAD_VALUE, a, f"input index {int(indices.max())} >= A = {a}")
        self._check_window(k, step, len(per_step))
        link = self.links[k]
        for j, indices in enumerate(per_step):
            if indices.size:
                link.inputs.setdefault(step + j, np.zeros(a, dtype=bool))[indices] = True
        return b""

    def _inject_bitmap(self, frame, cores):
        (k,) = cores
        a = self.links[k].config.n_inputs
        step, masks = P.decode_inject_bitmap(frame.payload, a)
        self._check_window(k, step, masks.shape[0])
        link = self.links[k]
        for j, mask in enumerate(masks):
            if mask.any():
                link.inputs.setdefault(step + j, np.zeros(a, dtype=bool))[:] |= mask
        return b""

    def _currents(self, frame, cores):
        (k,) = cores
        c = self.links[k].config
        step, first, values = P.decode_currents(frame.payload)
        count = values.shape[1]
        if first + count > c.n_current_inputs:
            raise ProtocolError(Err.BAD_ADDRESS, c.n_current_inputs,
                                f"current inputs {first} .. {first + count - 1}: the core has K = {c.n_current_inputs}")
        lo, hi = fx.smin(c.v_bits), fx.smax(c.v_bits)
        if values.min() < lo or values.max() > hi:
            raise ProtocolError(Err.BAD_VALUE, hi, f"analog input outside {lo} .. {hi} (signed v_bits)")
        self._check_window(k, step, values.shape[0])
        link = self.links[k]
        for j, row in enumerate(values):
            link.currents.setdefault(step + j, np.zeros(c.n_current_inputs, np.int64))[first:first + count] = row
        return b""

    def _check_start(self, cores: list[int], start: int) -> None:
        for k in cores:
            cur = self._step_of(k)
            if cur != start:
                raise ProtocolError(Err.BAD_STEP, cur, f"core {k} is at step {cur}, not at step {start}")
        self._validated(cores)

    def _take_inputs(self, k: int, first: int, count: int):
        """Inputs (count, A) and analog inputs (count, K) or None of steps first.., removed from the slots."""
        link = self.links[k]
        c = link.config
        inputs = np.zeros((count, c.n_inputs), dtype=bool)
        currents = np.zeros((count, c.n_current_inputs), dtype=np.int64) if c.n_current_inputs else None
        for j in range(count):
            mask = link.inputs.pop(first + j, None)
            if mask is not None:
                inputs[j] = mask
            u = link.currents.pop(first + j, None)
            if u is not None and currents is not None:
                currents[j] = u
        return inputs, currents

    def _remember(self, k: int, step: int, spikes: np.ndarray) -> None:
        history = self.links[k].history
        history[step] = spikes
        while len(history) > self.slots:
            history.popitem(last=False)

    def _run(self, frame, cores):
        start, steps = P.decode_run(frame.payload)
        self._check_start(cores, start)
        done, chunk = 0, 16
        while done < steps:
            m = min(chunk, steps - done)
            t0 = time.perf_counter()
            rasters = []
            for k in cores:
                link = self.links[k]
                inputs, currents = self._take_inputs(k, start + done, m)
                rasters.append(link.advance(inputs, currents))
            for j in range(m):
                for k, raster in zip(cores, rasters):
                    self._remember(k, start + done + j, raster[j])
                    self._reply(frame.seq, k, Op.SPIKES, P.encode_spikes(start + done + j, raster[j]))
            done += m
            # stream early, then compute in chunks of about 50 ms
            chunk = min(4096, chunk * 2) if time.perf_counter() - t0 < 0.05 else max(1, chunk // 2)
        self.stats["steps"] += steps
        return P.encode_step(start + steps)

    def _freerun(self, frame, cores):
        start, period_us, steps = P.decode_freerun(frame.payload)
        if period_us < self.min_period_us:
            raise ProtocolError(Err.BAD_VALUE, self.min_period_us,
                                f"period {period_us} us is below this board's {self.min_period_us} us")
        self._check_start(cores, start)
        run = _FreeRun(cores=cores, seq=frame.seq, period=period_us * 1e-6, steps=steps, t0=time.perf_counter())
        self._free = run
        self._reply(frame.seq, frame.core, P.ack(Op.FREERUN), P.encode_step(start))
        threading.Thread(target=self._free_loop, args=(run,), name="virtual-board-freerun", daemon=True).start()
        return None

    def _free_loop(self, run: _FreeRun) -> None:
        done = 0
        while True:
            target = run.t0 + done * run.period
            delay = target - time.perf_counter()
            if delay > 0 and run.wake.wait(delay):
                return
            with self._lock:
                if self._free is not run:
                    return
                late = time.perf_counter() - target > run.period
                for k in run.cores:
                    link = self.links[k]
                    step = link.step
                    inputs, currents = self._take_inputs(k, step, 1)
                    spikes = link.step_once(inputs, currents)
                    self._remember(k, step, spikes)
                    flags = P.SpikeFlag.LATE if late else 0
                    self._reply(run.seq, k, Op.SPIKES, P.encode_spikes(step, spikes, flags))
                done += 1
                self.stats["steps"] += 1
                if run.steps and done >= run.steps:
                    self._finish_free_run()
                    return

    def _finish_free_run(self) -> None:
        run = self._free
        self._free = None
        run.wake.set()

    def _stop(self, frame, cores):
        if self._free is not None:
            self._finish_free_run()
        return P.encode_step(self._step_of(cores[0]))

    def _resend(self, frame, cores):
        (k,) = cores
        step = P.decode_step(frame.payload)
        history = self.links[k].history
        if step not in history:
            oldest = next(iter(history), self._step_of(k))
            raise ProtocolError(Err.BAD_STEP, oldest, f"spikes of step {step} are not held (oldest held: {oldest})")
        return P.encode_spikes(step, history[step])

    def _learning(self, frame, cores):
        on = P.decode_flag(frame.payload, "LEARNING")
        if on > 1:
            raise ProtocolError(Err.BAD_VALUE, 1, f"LEARNING {on}: expected 0 (off) or 1 (on)")
        for k in cores:
            self.links[k].set_learning(bool(on))
        return b""

    def _reset(self, frame, cores):
        mode = P.decode_flag(frame.payload, "RESET")
        if mode not in P.ResetMode._value2member_map_:
            raise ProtocolError(Err.BAD_VALUE, max(P.ResetMode), f"RESET mode {mode}: 0 (state) or 1 (blank)")
        for k in cores:
            link = self.links[k]
            link.reset(mode)
            link.clear_steps()
        return b""
