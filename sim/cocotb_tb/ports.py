"""The core's Verilog ports (hdl/INTERFACE.md) as cocotb handles, and the bus request packing.

Amaranth flattens the ``bus_req`` struct payload into one vector with the fields from bit 0 in the
order write, region(4), addr(24), data(32); the stream members become ``<name>__valid``,
``<name>__ready`` and ``<name>__payload``. A core with ``n_inputs == 0`` has no ``spike_in`` port.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Default Verilog names; a job may override any of them (RtlJob.ports).
DEFAULT_PORTS = {
    "clk": "clk",
    "rst": "rst",
    "bus_req": "bus_req",
    "bus_resp": "bus_resp",
    "spike_in": "spike_in",
    "spike_out": "spike_out",
    "start": "start",
    "busy": "busy",
    "done": "done",
}

REGION_SHIFT = 1
ADDR_SHIFT = 5
DATA_SHIFT = 29


def pack_request(write: bool, region: int, addr: int, data: int = 0) -> int:
    """The ``bus_req__payload`` vector of one request."""
    if not 0 <= region < 16:
        raise ValueError(f"bus region {region} outside 0..15")
    if not 0 <= addr < (1 << 24):
        raise ValueError(f"bus address {addr} outside 24 bits")
    return (int(bool(write)) | (int(region) << REGION_SHIFT) | (int(addr) << ADDR_SHIFT)
            | ((int(data) & 0xFFFF_FFFF) << DATA_SHIFT))


class PortError(RuntimeError):
    """The design under test lacks a port the testbench needs."""


@dataclass
class Stream:
    valid: object
    ready: object
    payload: object


class CorePorts:
    """Handles of every port of the core under test."""

    def __init__(self, dut, names: dict[str, str] | None = None, *, has_spike_in: bool = True):
        names = {**DEFAULT_PORTS, **(names or {})}
        self.dut = dut

        def get(name):
            try:
                return getattr(dut, name)
            except AttributeError:
                have = sorted(h._name for h in dut)  # noqa: SLF001 (cocotb handle names)
                raise PortError(
                    f"the design has no port {name!r} (hdl/INTERFACE.md); its top-level signals: {have}"
                ) from None

        def stream(base):
            return Stream(get(f"{base}__valid"), get(f"{base}__ready"), get(f"{base}__payload"))

        self.clk = get(names["clk"])
        self.rst = get(names["rst"])
        self.bus_req = stream(names["bus_req"])
        self.bus_resp = stream(names["bus_resp"])
        self.spike_in = stream(names["spike_in"]) if has_spike_in else None
        self.spike_out = stream(names["spike_out"])
        self.start = get(names["start"])
        self.busy = get(names["busy"])
        self.done = get(names["done"])
