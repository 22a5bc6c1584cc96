"""A cocotb simulation run in a thread of this process and connected back to it over a Unix socket.

Host-side objects that drive a simulator interactively -- the link byte device behind ``spikeforge
board emulate --rtl`` (host/rtl_device.py) and the blimp demo's step-by-step RTL runner
(demos/blimp/runners.py) -- start the simulator through cocotb's runner in a thread; its test module
connects to ``path`` and the two sides exchange messages. This class owns the scratch folder, the
socket, the thread and their shutdown; the message formats stay with their users.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable


class SimulationSocket:
    """``work``: a scratch folder for the simulation's files; ``path``: the socket its test module
    connects to. ``start(run)`` runs ``run()`` (the cocotb runner's test call) in a thread and waits for
    the connection; ``error`` holds what ``run`` raised (SystemExit from the runner too)."""

    def __init__(self, prefix: str, what: str):
        self.what = what
        self._dir = tempfile.TemporaryDirectory(prefix=prefix)
        self.work = Path(self._dir.name)
        self.path = str(self.work / "bridge.sock")
        self.error: BaseException | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self, run: Callable[[], None], timeout: float, log_tail: Callable[[], str] | None = None) -> None:
        """Start ``run`` and accept its connection; a simulation that ends or stays silent for
        ``timeout`` s raises a RuntimeError with its error (and ``log_tail()``), never a hang."""
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(self.path)
        server.listen(1)
        server.settimeout(0.5)

        def simulate():
            try:
                run()
            except BaseException as exc:  # reported by start() and recv()
                self.error = exc

        self._thread = threading.Thread(target=simulate, name=self.what, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        try:
            while self._sock is None:  # until the bridge connects, the simulation ends or time runs out
                try:
                    self._sock, _ = server.accept()
                except socket.timeout:
                    if not self._thread.is_alive() or time.monotonic() > deadline:
                        self._thread.join(timeout=5)
                        tail = f"; its log ends:\n{log_tail()}" if log_tail else ""
                        self._dir.cleanup()
                        raise RuntimeError(f"the {self.what} did not start "
                                           f"({self.error or 'no connection'}){tail}") from None
        finally:
            server.close()
        self._sock.settimeout(timeout)

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def recv(self, n: int) -> bytes:
        """Exactly ``n`` bytes; ConnectionError (with the simulation's error) if it ended first."""
        data = bytearray()
        while len(data) < n:
            chunk = self._sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError(f"the {self.what} ended ({self.error})")
            data += chunk
        return bytes(data)

    def close(self, quit_message: bytes = b"Q", join_timeout: float = 60.0) -> None:
        """Ask the simulation to end, wait for its thread, remove the scratch folder (idempotent)."""
        if self._sock is None:
            return
        try:
            self._sock.sendall(quit_message)
        except OSError:
            pass
        self._sock.close()
        self._sock = None
        self._thread.join(timeout=join_timeout)
        self._dir.cleanup()
