"""cocotb test module: the simulated LinkTop's UART bridged to a host process over a Unix socket.

Runs inside the simulator (started by ``link_build.run_link_bridge``). Messages on the socket:

    host -> sim   b"D" + u32 length + bytes   shift these bytes into uart_rx (8N1, divisor clocks/bit),
                                              then simulate until the link is idle and the line quiet
                  b"Q"                        end the simulation
    sim -> host   b"R" + u32 length + bytes   bytes the RTL sent on uart_tx (as they complete)
                  b"I"                        the link is idle again: every command fed so far is answered

So ``spikeforge.host.rtl_device.CocotbLinkDevice.feed`` is synchronous like the virtual board's, and
the real host driver runs against the RTL byte for byte.
"""

import socket
import struct

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge


MAX_WAIT_CYCLES = 5_000_000  # a RUN of a big core may take long; a link that never gets idle is a bug


def _recv_exact(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("host closed the link socket")
        data += chunk
    return bytes(data)


def _states(dut) -> str:
    """Controller / receiver / sender FSM states, for the not-idle diagnostic."""
    try:
        return (f"controller={dut.fsm_state.value} receiver={dut.receiver.fsm_state.value} "
                f"sender={dut.sender.fsm_state.value} frame_valid={dut.receiver.frame_valid.value} "
                f"fifo_r_rdy={dut.rx_fifo.r_rdy.value} sender_idle={dut.sender.idle.value}")
    except AttributeError:
        return ""


@cocotb.test()
async def link_bridge(dut):
    path = cocotb.plusargs["spikeforge_link_socket"]
    d = int(cocotb.plusargs.get("spikeforge_link_divisor", 4))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.uart_rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 4)

    out = bytearray()
    state = {"receiving": False}

    async def sample_tx():
        while True:
            await FallingEdge(dut.uart_tx)
            state["receiving"] = True
            await ClockCycles(dut.clk, d + d // 2)
            byte = 0
            for i in range(8):
                byte |= int(dut.uart_tx.value) << i
                await ClockCycles(dut.clk, d)
            if int(dut.uart_tx.value):  # stop bit
                out.append(byte)
            await ClockCycles(dut.clk, d // 2)
            state["receiving"] = False

    cocotb.start_soon(sample_tx())

    def flush():
        if out:
            sock.sendall(b"R" + struct.pack("<I", len(out)) + bytes(out))
            out.clear()

    while True:
        kind = _recv_exact(sock, 1)
        if kind == b"Q":
            break
        (n,) = struct.unpack("<I", _recv_exact(sock, 4))
        data = _recv_exact(sock, n)
        for byte in data:
            for level in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                dut.uart_rx.value = level
                await ClockCycles(dut.clk, d)
            if len(out) >= 64:
                flush()
        quiet = waited = 0
        while quiet < 3:
            await ClockCycles(dut.clk, 4 * d)
            waited += 1
            flush()
            busy = state["receiving"] or not dut.idle.value.is_resolvable or not int(dut.idle.value) \
                or not int(dut.uart_tx.value)
            quiet = 0 if busy else quiet + 1
            if waited * 4 * d >= MAX_WAIT_CYCLES:  # never hang: the host times out and reports it
                dut._log.error(f"link still not idle after {MAX_WAIT_CYCLES} cycles: {_states(dut)}")
                break
            if waited % 5000 == 0:
                dut._log.warning(f"link not idle after {waited * 4 * d} cycles: idle={dut.idle.value} "
                                 f"tx={dut.uart_tx.value} receiving={state['receiving']} {_states(dut)}")
        flush()
        sock.sendall(b"I")
    sock.close()
    await RisingEdge(dut.clk)
