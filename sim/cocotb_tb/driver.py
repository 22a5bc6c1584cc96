"""The driver: everything the testbench puts *into* the core (hdl/INTERFACE.md, "Protocol").

- :class:`BusMaster` -- bus_req / bus_resp transactions: load a CoreImage, write CURRENT_IN, read
  words back. One request in flight at a time, one response per request, in order.
- :class:`CoreDriver` -- clock, reset, the per-step input (CURRENT_IN words, spike_in indices) and
  the ``start`` pulse.

Timing discipline (the same for every coroutine here, so they compose): a coroutine is entered and
left right after a rising clock edge, where signals may be written. To see whether a handshake
completes at the *next* edge it waits for ``ReadOnly`` (all values of the cycle settled) and samples
``valid & ready``. This is race-free on Icarus and Verilator alike. Where nothing happens for a while
(waiting for a response or for ``ready``), it waits for the signal's edge instead of counting clock
cycles, so a multi-cycle bus latency costs a few Python wake-ups, not one per cycle.

With ``stress=True`` (RtlCase.backpressure) the driver inserts random idle cycles before every
request and index, delays taking responses, and pulses a spurious ``start`` while a bus request is
in flight (the core must ignore it; a step run by mistake shows up as a state mismatch).
"""

from __future__ import annotations

import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, ReadOnly, RisingEdge, Timer

from spikeforge.core.memory_map import ControlReg, Region, to_word
from spikeforge.sim.cocotb_tb.ports import ADDR_SHIFT, REGION_SHIFT, CorePorts, Stream, pack_request
from spikeforge.sim.cocotb_tb.tb_top import PLAYER_DEPTH


#: A handshake the core does not complete within this many cycles is a hang, not a slow core.
HANDSHAKE_TIMEOUT_CYCLES = 20_000


class HandshakeTimeout(RuntimeError):
    """The core never raised ready/valid on a stream."""


async def _wait_high(clk, signal, period_ns: int = 10):
    """Return in ReadOnly of the first cycle in which ``signal`` is settled high.

    Called right after a clock edge (writes allowed). Sleeps on the signal's rising edge instead of
    polling every cycle."""
    await ReadOnly()
    if int(signal.value):
        return
    limit = Timer(HANDSHAKE_TIMEOUT_CYCLES * period_ns, unit="ns")
    while not int(signal.value):
        fired = await First(RisingEdge(signal), limit)
        if fired is limit:
            raise HandshakeTimeout(
                f"{signal._name} stayed low for {HANDSHAKE_TIMEOUT_CYCLES} cycles"  # noqa: SLF001
            )
        await ReadOnly()


async def send(clk, stream: Stream, payload: int):
    """Offer ``payload`` on a stream until the core takes it; return after the transfer edge."""
    stream.payload.value = payload
    stream.valid.value = 1
    await _wait_high(clk, stream.ready)
    await RisingEdge(clk)  # the transfer happens at this edge
    stream.valid.value = 0


async def receive(clk, stream: Stream) -> int:
    """Take the next item of an output stream (ready held high); return after the transfer edge."""
    await _wait_high(clk, stream.valid)
    data = as_int(stream.payload, stream.payload._name)  # noqa: SLF001
    await RisingEdge(clk)
    return data


class BusMaster:
    """The core's load/read bus: one request in flight at a time (hdl/INTERFACE.md, "Bus")."""

    def __init__(self, ports: CorePorts, *, stress: bool = False, rng: random.Random | None = None,
                 player: "BurstPlayer | None" = None):
        self.p = ports
        self.player = player
        self.stress = stress
        self.rng = rng or random.Random(0)
        self.transactions = 0
        self.spurious_starts = 0
        ports.bus_req.valid.value = 0
        ports.bus_req.payload.value = 0
        ports.bus_resp.ready.value = 1

    async def transact(self, write: bool, region: int, addr: int, data: int = 0) -> int:
        p, clk = self.p, self.p.clk
        if self.stress:
            p.bus_resp.ready.value = 0  # hold the response back for a while
            if self.rng.random() < 0.3:
                await ClockCycles(clk, self.rng.randint(1, 3))
        await send(clk, p.bus_req, pack_request(write, region, addr, data))
        if self.stress:
            if self.rng.random() < 0.2:
                # a start while a request is in flight must be ignored
                p.start.value = 1
                await RisingEdge(clk)
                p.start.value = 0
                self.spurious_starts += 1
            await ClockCycles(clk, self.rng.randint(0, 4))
            p.bus_resp.ready.value = 1
        word = await receive(clk, p.bus_resp)
        self.transactions += 1
        return word

    async def write(self, region: int, addr: int, data: int) -> None:
        await self.transact(True, region, addr, to_word(data))

    async def read(self, region: int, addr: int) -> int:
        return await self.transact(False, region, addr)

    async def write_words(self, writes) -> int:
        writes = list(writes)
        if self.player is not None and len(writes) >= BURST_MIN:
            await self.player.run([pack_request(True, r, a, to_word(w)) for r, a, w in writes])
        else:
            for region, addr, word in writes:
                await self.write(region, addr, word)
        return len(writes)

    async def read_words(self, addresses) -> list[int]:
        addresses = list(addresses)
        if self.player is not None and len(addresses) >= BURST_MIN:
            return await self.player.run([pack_request(False, r, a) for r, a in addresses])
        return [await self.read(region, addr) for region, addr in addresses]


#: Lists of at least this many transactions go through the burst player (when there is one).
BURST_MIN = 8


class UndefinedValue(RuntimeError):
    """The core drove X or Z where a defined value is required."""


def describe_request(payload: int) -> str:
    """'read NEURON_STATE[12]' for a packed bus request (error messages)."""
    from spikeforge.core.memory_map import Region

    write = payload & 1
    region = (payload >> REGION_SHIFT) & 0xF
    addr = (payload >> ADDR_SHIFT) & 0xFF_FFFF
    try:
        name = Region(region).name
    except ValueError:
        name = f"region {region}"
    return f"{'write' if write else 'read'} {name}[{addr}]"


def as_int(handle, what: str) -> int:
    """A signal's value as an int, or a clear error if it holds X/Z bits."""
    try:
        return int(handle.value)
    except ValueError:
        raise UndefinedValue(f"{what} is undefined: {handle.value}") from None


class BurstPlayer:
    """Runs a list of bus transactions in the simulator at full speed (see tb_top.py)."""

    def __init__(self, dut, clk, in_path: str, out_path: str, period_ns: int):
        self.dut = dut
        self.clk = clk
        self.in_path = Path(in_path)
        self.out_path = Path(out_path)
        self.period_ns = period_ns
        self.stress = False
        self.transactions = 0
        dut.player_go.value = 0
        dut.player_count.value = 0
        dut.player_stress.value = 0

    async def run(self, requests: list[int]) -> list[int]:
        out: list[int] = []
        for lo in range(0, len(requests), PLAYER_DEPTH):
            out += await self._burst(requests[lo:lo + PLAYER_DEPTH])
        return out

    async def _burst(self, requests: list[int]) -> list[int]:
        dut, clk = self.dut, self.clk
        self.in_path.write_text("".join(f"{r:016x}\n" for r in requests))
        self.out_path.unlink(missing_ok=True)
        dut.player_count.value = len(requests)
        dut.player_stress.value = int(self.stress)
        dut.player_go.value = 1
        await RisingEdge(clk)
        dut.player_go.value = 0
        limit = Timer((len(requests) * 200 + 1000) * self.period_ns, unit="ns")
        fired = await First(RisingEdge(dut.player_done), limit)
        if fired is limit:
            raise HandshakeTimeout(
                f"the bus burst of {len(requests)} transactions did not finish (the core stopped answering)"
            )
        await RisingEdge(clk)
        self.transactions += len(requests)
        lines = [line for line in map(str.strip, self.out_path.read_text().splitlines())
                 if line and not line.startswith(("//", "@"))]
        if len(lines) != len(requests):
            raise RuntimeError(f"burst player returned {len(lines)} responses for {len(requests)} requests")
        words = []
        for req, line in zip(requests, lines):
            try:
                words.append(int(line, 16))
            except ValueError:
                raise UndefinedValue(f"the bus response to {describe_request(req)} has undefined bits: "
                                     f"{line}") from None
        return words


class CoreDriver:
    """Clock, reset and the per-step inputs of the core."""

    def __init__(self, ports: CorePorts, *, period_ns: int = 10, stress: bool = False, seed: int = 0,
                 player: BurstPlayer | None = None):
        self.p = ports
        self.period_ns = period_ns
        self.rng = random.Random(seed)
        self.bus = BusMaster(ports, stress=stress, rng=self.rng, player=player)
        self.stress = stress
        ports.start.value = 0
        ports.spike_out.ready.value = 1
        if ports.spike_in is not None:
            ports.spike_in.valid.value = 0
            ports.spike_in.payload.value = 0

    @property
    def stress(self) -> bool:
        return self._stress

    @stress.setter
    def stress(self, on: bool):
        self._stress = on
        self.bus.stress = on
        if self.bus.player is not None:
            self.bus.player.stress = on

    async def start_clock_and_reset(self, cycles: int = 4):
        cocotb.start_soon(Clock(self.p.clk, self.period_ns, unit="ns").start())
        self.p.rst.value = 1
        await ClockCycles(self.p.clk, cycles)
        self.p.rst.value = 0
        await RisingEdge(self.p.clk)

    async def recover(self):
        """After an exception (possibly raised in a read-only phase): leave the phase, put every
        driven signal back to idle and reset the core, so the next case starts clean."""
        await Timer(1, unit="ns")
        p = self.p
        p.start.value = 0
        p.bus_req.valid.value = 0
        p.bus_resp.ready.value = 1
        p.spike_out.ready.value = 1
        if p.spike_in is not None:
            p.spike_in.valid.value = 0
        await RisingEdge(p.clk)
        await self.reset()

    async def reset(self, cycles: int = 4):
        self.p.rst.value = 1
        await ClockCycles(self.p.clk, cycles)
        self.p.rst.value = 0
        await RisingEdge(self.p.clk)

    async def set_inputs(self, in_spikes, currents) -> None:
        """Stage the inputs of the coming step: CURRENT_IN words (only the non-zero ones -- the core
        clears them after each step, which this relies on and so tests) and the spike_in indices."""
        if currents is not None:
            for k, u in enumerate(currents):
                if int(u) != 0:
                    await self.bus.write(Region.CURRENT_IN, k, int(u))
        indices = [int(i) for i in in_spikes.nonzero()[0]]
        if indices and self.p.spike_in is None:
            raise RuntimeError("input spikes given, but the design has no spike_in port (n_inputs = 0)")
        if self.stress:
            self.rng.shuffle(indices)  # the input bitmap does not care about order
        for i in indices:
            if self.stress and self.rng.random() < 0.3:
                await ClockCycles(self.p.clk, self.rng.randint(1, 3))
            await send(self.p.clk, self.p.spike_in, i)

    async def pulse_start(self) -> None:
        self.p.start.value = 1
        await RisingEdge(self.p.clk)
        self.p.start.value = 0

    async def load_words(self, writes) -> int:
        return await self.bus.write_words(writes)

    async def read_control(self, reg: ControlReg) -> int:
        return await self.bus.read(Region.CONTROL, int(reg))

