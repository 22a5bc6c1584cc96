"""pyserial URL handler ``virtual://``: a port whose far end is an in-process virtual board.

``Board("virtual://?cores=2&config=cores.yaml")`` (or ``spikeforge board info --port virtual://``)
needs no pty and no second process. Options, as in ``spikeforge board emulate``: ``cores``,
``config`` (JSON/YAML CoreConfig file), ``network`` (network file whose CoreConfig to use), ``slots``,
``drop``, ``corrupt``, ``seed`` (wire faults). pyserial finds this module by its name
(``protocol_<scheme>``) because spikeforge.host.board adds this package to
``serial.protocol_handler_packages``.
"""

from __future__ import annotations

import urllib.parse

from serial.serialutil import SerialException

from spikeforge.host.emulator import EmulatorError, build_virtual_board
from spikeforge.host.loopback import DeviceSerial
from spikeforge.host.wire import LinkFaults

_OPTIONS = {"cores": int, "config": str, "network": str, "slots": int, "drop": float, "corrupt": float, "seed": int}


def query_options(url: str, query: str, spec: dict) -> dict:
    """The ``?key=value&...`` options of ``url``, each converted by ``spec[key]``; SerialException
    naming an unknown option or a value of the wrong type (the last of repeated keys counts)."""
    options = {}
    for key, values in urllib.parse.parse_qs(query, keep_blank_values=True).items():
        if key not in spec:
            raise SerialException(f"{url}: unknown option {key!r}; options: {', '.join(spec)}")
        try:
            options[key] = spec[key](values[-1])
        except ValueError:
            raise SerialException(f"{url}: option {key}={values[-1]!r} is not a {spec[key].__name__}") from None
    return options


def parse_url(url: str) -> dict:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "virtual":
        raise SerialException(f"expected a virtual://[?option=value&...] URL, got {url!r}")
    return query_options(url, parts.query, _OPTIONS)


class Serial(DeviceSerial):
    """What ``serial.serial_for_url("virtual://...")`` returns: pyserial sets ``port`` to the URL and
    calls ``open``, which builds the virtual board the URL describes."""

    def _make_device(self):
        options = parse_url(self.port)
        faults = None
        if "drop" in options or "corrupt" in options:
            faults = LinkFaults(options.pop("drop", 0.0), options.pop("corrupt", 0.0), options.pop("seed", 0))
        options.pop("seed", None)
        try:
            return build_virtual_board(**options), faults
        except (EmulatorError, ValueError) as exc:
            raise SerialException(f"{self.port}: {exc}") from None
