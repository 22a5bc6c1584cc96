"""Serve a byte device (the virtual board) on a pseudo-terminal, like a USB-UART board.

``spikeforge board emulate`` runs ``emulate``: it opens a pty (``os.openpty``), prints
``port: /dev/pts/N`` as its first line and serves the link until interrupted; any host program opens
that path with pyserial as if it were a board. ``PtyEmulator`` does the same inside a process (two
threads), for tests and benchmarks.

The wire can be made realistic: ``baud`` paces both directions at an 8N1 UART's byte rate, and
``faults`` drops or corrupts bytes (seeded). The device is anything with ``attach``/``feed``/``close``
(``DEVICES`` maps names to factories): ``golden`` is the VirtualBoard; a cocotb-simulated RTL link
plugs in as another factory with the same interface and gets the pty, pacing and fault injection
for free.
"""

from __future__ import annotations

import os
import queue
import select
import signal
import sys
import threading
import tty
from pathlib import Path
from typing import Callable

from spikeforge.core.config import CoreConfig, CoreConfigError
from spikeforge.host.virtual_board import VirtualBoard
from spikeforge.host.wire import LinkFaults, WirePacer

READ_CHUNK = 256  # bytes per read from the pty: the granularity of the pacing


class EmulatorError(ValueError):
    """Bad emulator options; the message names the option and the fix."""


def board_configs(cores: int | None = None, config: Path | str | None = None,
                  network: Path | str | None = None) -> list[CoreConfig]:
    """The CoreConfig of each core: given (a CoreConfig or a list of them), from a JSON/YAML file (one
    mapping of CoreConfig fields, or a list of them, one per core), from a network file (the config it
    compiles to), or the default config; ``cores`` repeats a single config K times."""
    if config is not None and network is not None:
        raise EmulatorError("give --config or --network, not both")
    if isinstance(config, CoreConfig) or (isinstance(config, list) and all(isinstance(c, CoreConfig) for c in config)):
        configs = [config] if isinstance(config, CoreConfig) else list(config)
    elif config is not None:
        import yaml

        path = Path(config)
        if not path.exists():
            raise EmulatorError(f"{path}: no such config file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise EmulatorError(f"{path}: not valid JSON/YAML: {exc}") from None
        items = data if isinstance(data, list) else [data]
        configs = []
        for k, item in enumerate(items):
            if not isinstance(item, dict):
                raise EmulatorError(f"{path}: core {k} is {type(item).__name__}, expected a mapping of CoreConfig fields")
            try:
                configs.append(CoreConfig.from_dict(item))
            except (CoreConfigError, TypeError) as exc:
                raise EmulatorError(f"{path}: core {k}: {exc}") from None
    elif network is not None:
        from spikeforge.compiler import compile as compile_network
        from spikeforge.compiler.loaders import load_any

        path = Path(network)
        if not path.exists():
            raise EmulatorError(f"{path}: no such network file")
        configs = [compile_network(load_any(path), warn=False).config]   # .yaml/.json, a PyNN script, .nir
    else:
        configs = [CoreConfig()]
    if cores is not None:
        if cores < 1:
            raise EmulatorError(f"--cores {cores}: a board has at least one core")
        if len(configs) == 1:
            configs = configs * cores
        elif len(configs) != cores:
            raise EmulatorError(f"--cores {cores}, but the config file lists {len(configs)} cores")
    return configs


def build_virtual_board(cores: int | None = None, config=None, network=None, **options) -> VirtualBoard:
    return VirtualBoard(board_configs(cores, config, network), **options)


#: Byte devices the emulator can serve, by name. A cocotb-simulated RTL link registers here as "rtl".
DEVICES: dict[str, Callable[..., object]] = {"golden": build_virtual_board}
DEVICES["rtl"] = lambda **options: __import__("spikeforge.host.rtl_device", fromlist=["_"]).build_rtl_device(**options)


class PtyEmulator:
    """Serve ``device`` on a new pseudo-terminal. ``start()`` returns the port path to open."""

    def __init__(self, device, *, baud: int | None = None, faults: LinkFaults | None = None):
        self.device = device
        self.baud = baud
        self.faults = faults
        self.faults_in, self.faults_out = faults.split() if faults is not None else (LinkFaults(), LinkFaults())
        self.port: str | None = None
        self._tx: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.bytes_in = 0
        self.bytes_out = 0

    def start(self) -> str:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing: bytes pass unchanged
        self.port = os.ttyname(self._slave)
        self.device.attach(self._tx.put)
        for target, name in ((self._rx_loop, "pty-rx"), (self._tx_loop, "pty-tx")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self.port

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._tx.put(None)
        for thread in self._threads:
            thread.join(timeout=2.0)
        self.device.close()
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "PtyEmulator":
        if self.port is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _rx_loop(self) -> None:
        pacer = WirePacer(self.baud)
        while not self._stop.is_set():
            queued = bool(select.select([self._master], [], [], 0)[0])  # bytes waited while we were busy
            if not queued and not select.select([self._master], [], [], 0.1)[0]:
                continue
            try:
                data = os.read(self._master, READ_CHUNK)
            except OSError:
                continue
            self.bytes_in += len(data)
            pacer.wait(len(data), queued)
            data = self.faults_in.apply(data)
            if data:
                self.device.feed(data)

    def _tx_loop(self) -> None:
        pacer = WirePacer(self.baud)
        queued = False
        while True:
            data = self._tx.get()
            if data is None:
                return
            data = self.faults_out.apply(data)
            for k in range(0, len(data), READ_CHUNK):
                piece = data[k:k + READ_CHUNK]
                pacer.wait(len(piece), queued or k > 0)
                view = memoryview(piece)
                while view:
                    if self._stop.is_set():
                        return
                    try:
                        written = os.write(self._master, view)
                    except BlockingIOError:
                        select.select([], [self._master], [], 0.1)
                        continue
                    except OSError:
                        return
                    view = view[written:]
                    self.bytes_out += written
            queued = not self._tx.empty()  # more was waiting: the line stays busy


def emulate(device_name: str = "golden", *, pace_baud: int | None = None, faults: LinkFaults | None = None,
            out=sys.stdout, **device_options) -> None:
    """Serve a device on a pty until SIGINT/SIGTERM. The first line printed is ``port: <path>``.
    ``pace_baud``: deliver bytes no faster than a UART at this rate (None: as fast as possible)."""
    factory = DEVICES.get(device_name)
    if factory is None:
        raise EmulatorError(f"unknown device {device_name!r}; available: {', '.join(DEVICES)}")
    device = factory(**device_options)
    if hasattr(device, "log") and device.log is None:  # say on stderr why a command was refused
        device.log = lambda message: print(message, file=sys.stderr, flush=True)
    # The device computes in the receiving thread; with Python's default 5 ms GIL switch interval the
    # transmitting thread would wait that long before it sends the first spikes of a RUN.
    sys.setswitchinterval(0.0002)
    emulator = PtyEmulator(device, baud=pace_baud, faults=faults)
    port = emulator.start()
    print(f"port: {port}", file=out, flush=True)
    threading.Thread(target=warm_up, args=(device,), name="engine-warm-up", daemon=True).start()
    describe = getattr(device, "info", None)
    if describe is not None:
        info = describe()
        for k, config in enumerate(info.cores):
            print(f"core {k}: {config}", file=out)
        pacing = f"paced at {pace_baud} baud" if pace_baud else "unpaced"
        print(f"serving {info.name} board, {len(info.cores)} core(s), {pacing}; Ctrl-C to stop", file=out, flush=True)
    stopped = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        emulator.stop()


def warm_up(device) -> None:
    """Run one step of a tiny core through the device's engine, so the numba kernel is compiled (or
    loaded from its cache) before the first RUN, not while the host waits for it."""
    advance = getattr(device, "_advance", None)
    if advance is None:
        return
    import numpy as np

    from spikeforge.core.image import CoreImage
    from spikeforge.sim.golden import GoldenCore

    advance(GoldenCore(CoreImage.blank(CoreConfig(n_neurons=1, n_inputs=1))), np.zeros((1, 1), dtype=bool), None)
