"""An in-process serial port whose far end is a byte device (a VirtualBoard): no pty, no threads.

``DeviceSerial`` is a ``serial.SerialBase``, so ``Board`` uses it exactly like a real port. Bytes the
host writes go through the (optional) wire faults into ``device.feed`` at once; the device's replies
are buffered for ``read``. The device runs in the caller's thread, so in-process tests are
deterministic; a free-running device answers from its own thread, which the buffer's lock allows.

``disconnect()`` makes every later read and write fail like an unplugged USB adapter.
"""

from __future__ import annotations

import threading
import time

from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from spikeforge.host.wire import LinkFaults


class DeviceSerial(SerialBase):
    """A serial port connected to ``device`` (anything with attach/feed/close) in this process.

    ``faults``: bytes damaged on the wire, independently in each direction (``LinkFaults.split``).
    ``own_device``: close the device when the port closes."""

    def __init__(self, device=None, *, faults: LinkFaults | None = None, own_device: bool = False,
                 url: str = "device://", **kwargs):
        self.device = device
        self.faults = faults
        self.own_device = own_device
        self._rx = bytearray()
        self._cond = threading.Condition()
        self._disconnected = False
        kwargs.setdefault("timeout", 0.05)
        super().__init__(None, **kwargs)
        self._port = url
        if device is not None:
            self.open()

    def _make_device(self):
        """(device, faults) for a port opened by URL; subclasses (protocol_virtual) build one."""
        raise SerialException("DeviceSerial needs a device")

    # ---- SerialBase ------------------------------------------------------------------------
    def open(self):
        if self.is_open:
            raise SerialException("port is already open")
        if self.device is None:
            self.device, self.faults = self._make_device()
            self.own_device = True
        faults = self.faults
        self.faults_out, self.faults_in = faults.split() if faults is not None else (LinkFaults(), LinkFaults())
        self.device.attach(self._from_device)
        self.is_open = True

    def close(self):
        if self.is_open:
            self.is_open = False
            self.device.attach(None)
            if self.own_device:
                self.device.close()
            with self._cond:
                self._cond.notify_all()

    def _reconfigure_port(self):  # nothing to configure in-process
        pass

    def _check(self):
        if not self.is_open:
            raise PortNotOpenError()
        if self._disconnected:
            raise SerialException("device disconnected")

    @property
    def in_waiting(self) -> int:
        self._check()
        return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        self._check()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        with self._cond:
            while len(self._rx) < size and not self._disconnected and self.is_open:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
            self._check()
            data = bytes(self._rx[:size])
            del self._rx[:size]
        return data

    def write(self, data) -> int:
        self._check()
        data = bytes(data)
        self.device.feed(self.faults_out.apply(data))
        return len(data)

    def flush(self):
        self._check()

    def reset_input_buffer(self):
        self._check()
        with self._cond:
            self._rx.clear()

    def reset_output_buffer(self):
        self._check()

    def cancel_read(self):
        with self._cond:
            self._cond.notify_all()

    # ---- the far end -------------------------------------------------------------------------
    def _from_device(self, data: bytes) -> None:
        data = self.faults_in.apply(data)
        if not data:
            return
        with self._cond:
            self._rx += data
            self._cond.notify_all()

    def disconnect(self) -> None:
        """Behave like an unplugged adapter from now on."""
        self._disconnected = True
        with self._cond:
            self._cond.notify_all()


def connect(device, *, faults: LinkFaults | None = None, **kwargs) -> DeviceSerial:
    """A DeviceSerial port to ``device`` (give it to ``Board(port)``)."""
    return DeviceSerial(device, faults=faults, **kwargs)

