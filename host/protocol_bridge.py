"""pyserial URL handler ``bridge://``: a board with the bus bridge, served the full protocol by the host.

``Board("bridge:///dev/ttyUSB1?build=out/icebreaker")`` (or ``spikeforge board run NET --port
bridge:///dev/ttyUSB1?build=out/icebreaker``) opens the serial port, finds the bus bridge (HELLO),
checks that the core on the board has the CoreConfig of the build, and from then on speaks the board
protocol exactly like a board with the protocol link (``spikeforge.host.bridged_board``). The path is
the serial device; ``bridge://verilator?...`` instead runs the bridge's Verilog (the Verilog a
bitstream is built from) under cocotb + Verilator, and ``bridge://sim?...`` its Amaranth description in
Amaranth's simulator (slow: tiny cores only) -- the same bytes, for tests and for trying it without a
board.

Options: ``build`` (the directory ``spikeforge compile`` wrote: its report.json names the CoreConfig),
``config`` (a JSON/YAML CoreConfig file) or ``network`` (a network file: the CoreConfig it compiles
to) -- exactly one, or none for ``sim`` with the default config; ``timeout`` (seconds, default 1);
``slots`` (steps of input ahead, default 64).
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import serial
from serial.serialutil import SerialException

from spikeforge.core.config import CoreConfig, CoreConfigError
from spikeforge.host.loopback import DeviceSerial
from spikeforge.host.protocol_virtual import query_options

_OPTIONS = {"build": str, "config": str, "network": str, "timeout": float, "slots": int}
SIM_DIVISOR = 4


def parse_url(url: str) -> tuple[str, dict]:
    """(serial device path or "sim", options) of a bridge:// URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "bridge":
        raise SerialException(f"expected bridge://DEVICE[?option=value&...], got {url!r}")
    device = (parts.netloc + parts.path) or ""
    if not device:
        raise SerialException(f"{url}: no serial device: bridge:///dev/ttyUSB1?build=DIR (or bridge://sim)")
    options = query_options(url, parts.query, _OPTIONS)
    return device, options


def config_of_build(directory: str | Path) -> CoreConfig:
    """The CoreConfig a ``spikeforge compile`` build directory was made for (its report.json)."""
    report = Path(directory) / "report.json"
    if not report.exists():
        raise SerialException(f"{report}: no such file: give the directory `spikeforge compile -o DIR` wrote")
    try:
        data = json.loads(report.read_text())
        return CoreConfig.from_dict(data["core_config"])
    except (ValueError, KeyError, TypeError, CoreConfigError) as exc:
        raise SerialException(f"{report}: no valid core_config ({exc}); rebuild with `spikeforge compile`") from None


def bridge_config(options: dict) -> CoreConfig:
    from spikeforge.host.emulator import EmulatorError, board_configs

    given = [k for k in ("build", "config", "network") if k in options]
    if len(given) > 1:
        raise SerialException(f"give one of build=, config=, network= (got {', '.join(given)})")
    if "build" in options:
        return config_of_build(options["build"])
    try:
        return board_configs(None, options.get("config"), options.get("network"))[0]
    except EmulatorError as exc:
        raise SerialException(str(exc)) from None


SIMULATORS = ("sim", "verilator", "icarus")


def simulated_bridge_port(config: CoreConfig, simulator: str = "verilator") -> DeviceSerial:
    """A serial port whose far end is the bus bridge's RTL around ``config``'s core, simulated:
    ``sim`` = Amaranth's simulator, ``verilator`` / ``icarus`` = its Verilog under cocotb."""
    from spikeforge.host.rtl_device import CocotbLinkDevice, SimulatedUartDevice

    if simulator == "sim":
        from spikeforge.hdl.bus_bridge import BusBridge

        device = SimulatedUartDevice(BusBridge(config, divisor=SIM_DIVISOR), SIM_DIVISOR)
    elif simulator in SIMULATORS:
        device = CocotbLinkDevice([config], divisor=SIM_DIVISOR, simulator=simulator, top="bridge",
                                  name="bridge-cocotb")
    else:
        raise SerialException(f"bridge://{simulator}: not a simulator; choose one of {', '.join(SIMULATORS)} "
                              "or give a serial device path")
    return DeviceSerial(device, own_device=True, url=f"bridge-{simulator}://")


class Serial(DeviceSerial):
    """What ``serial.serial_for_url("bridge://...")`` returns: a port to the host-side protocol engine."""

    def _make_device(self):
        from spikeforge.host.bridge_link import BridgeLink
        from spikeforge.host.bridged_board import BridgedBoard

        device, options = parse_url(self.port)
        config = bridge_config(options)
        if device in SIMULATORS:
            line = simulated_bridge_port(config, device)
        else:
            try:
                line = serial.serial_for_url(device, baudrate=self.baudrate, timeout=0.01)
            except (SerialException, OSError, ValueError) as exc:
                raise SerialException(f"cannot open {device!r}: {exc}") from None
        try:
            bridge = BridgeLink(line, timeout=options.get("timeout", 1.0))
            board = BridgedBoard(bridge, config, slots=options.get("slots", 64), baud=self.baudrate)
        except Exception:
            line.close()
            raise
        return board, None
