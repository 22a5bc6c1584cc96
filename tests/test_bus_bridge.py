"""The bus bridge (spikeforge.hdl.bus_bridge, spikeforge.core.bridge_protocol, host/bridge_link.py):
the RTL's bytes are exactly the protocol module's frames, damaged commands change nothing, and the
host recovers from every failure it can and names the one it cannot.

The RTL here runs in Amaranth's simulator on a 4-neuron core as it comes out of reset (every memory
zero, so every neuron is at its threshold of 0 and fires in the first step: a step's reply carries
spikes); tests/rtl/test_bus_bridge_cocotb.py runs whole
networks through the bridge's Verilog with the real host driver."""

import numpy as np
import pytest

from spikeforge.core import bridge_protocol as B
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage
from spikeforge.core.memory_map import MAGIC, ControlReg, Region
from spikeforge.hdl.bus_bridge import BusBridge
from spikeforge.host.bridge_link import BridgeError, BridgeLink
from spikeforge.host.rtl_device import SimulatedUartDevice
from spikeforge.sim.golden import GoldenCore

CONFIG = CoreConfig(n_neurons=4, n_inputs=4)
DIVISOR = 4


# ---- the protocol module ------------------------------------------------------------------------
def test_frames_end_in_a_crc_whose_residue_is_zero():
    for frame in (B.encode_hello(), B.encode_bus(True, Region.SYNAPSE, 1234, 0xDEADBEEF), B.encode_spike(7),
                  B.encode_run(3), B.encode_bus_reply(5), B.encode_step_reply([1, 9]), B.encode_nak(1, 2)):
        assert B.crc16(frame) == 0
        damaged = bytearray(frame)
        damaged[1] ^= 0x10
        assert B.crc16(bytes(damaged)) != 0


def test_bus_request_word_layout_matches_the_core_interface():
    word = B.bus_request_word(True, Region.NEURON_STATE, 0x123, 0xCAFEF00D)
    assert word & 1 == 1 and (word >> 1) & 0xF == Region.NEURON_STATE
    assert (word >> 5) & 0xFFFFFF == 0x123 and word >> 29 == 0xCAFEF00D
    with pytest.raises(ValueError, match="address"):
        B.bus_request_word(False, 0, 1 << 24)
    with pytest.raises(ValueError, match="spike count"):
        B.encode_run(1 << 16)


def test_the_amaranth_crc_is_the_python_crc():
    from amaranth.lib import crc

    params = B.amaranth_crc_algorithm()(data_width=8)
    for data in (b"", b"\x01", b"spikeforge", bytes(range(40))):
        assert params.compute(data) == B.crc16(data)


# ---- the RTL, byte for byte ------------------------------------------------------------------------
@pytest.fixture
def rtl():
    device = SimulatedUartDevice(BusBridge(CONFIG, divisor=DIVISOR), DIVISOR)
    out = bytearray()
    device.attach(out.extend)

    def exchange(data: bytes) -> bytes:
        out.clear()
        device.feed(data)
        return bytes(out)

    return exchange


def test_rtl_answers_hello_bus_and_step_with_the_protocol_modules_frames(rtl):
    assert rtl(B.encode_hello()) == B.encode_hello_reply(DIVISOR)
    assert rtl(B.encode_bus(False, Region.CONTROL, ControlReg.MAGIC)) == B.encode_bus_reply(MAGIC)
    assert rtl(B.encode_bus(True, Region.CONTROL, ControlReg.LEARNING, 1)) == B.encode_bus_reply(0)
    assert rtl(B.encode_bus(False, Region.CONTROL, ControlReg.LEARNING)) == B.encode_bus_reply(1)
    power_on = CoreImage.blank(CONFIG)   # the core's memories out of reset: every field 0
    for values in power_on.profiles.values():
        values[...] = 0
    power_on.learning = True
    want = np.flatnonzero(GoldenCore(power_on).step(np.array([[0, 1, 0, 0]], bool))[0])
    assert want.size, "the power-on core's first step must spike, else the reply check proves little"
    assert rtl(B.encode_spike(1) + B.encode_run(1)) == B.encode_step_reply(want)
    assert rtl(B.encode_bus(False, Region.CONTROL, ControlReg.STEP)) == B.encode_bus_reply(1)


def test_rtl_drops_a_damaged_frame_naks_it_and_halts_until_hello(rtl):
    write = bytearray(B.encode_bus(True, Region.CONTROL, ControlReg.STEP, 77))
    write[4] ^= 0x01
    assert rtl(bytes(write)) == B.encode_nak(B.Nak.BAD_CRC, B.Cmd.BUS)
    # halted: even intact commands are dropped, silently
    assert rtl(B.encode_bus(False, Region.CONTROL, ControlReg.STEP)) == b""
    assert rtl(B.encode_spike(0) + B.encode_run(1)) == b""
    assert rtl(B.FLUSH + B.encode_hello()) == B.encode_hello_reply(DIVISOR)
    # nothing of it happened: STEP was not written and no step ran
    assert rtl(B.encode_bus(False, Region.CONTROL, ControlReg.STEP)) == B.encode_bus_reply(0)


def test_rtl_refuses_a_run_whose_spike_count_differs_and_runs_no_step(rtl):
    damaged_spike = bytearray(B.encode_spike(2))
    damaged_spike[2] ^= 0x80
    reply = rtl(B.encode_spike(1) + bytes(damaged_spike) + B.encode_run(2))
    assert reply == B.encode_nak(B.Nak.BAD_CRC, B.Cmd.SPIKE)  # the RUN behind it was dropped (halted)
    assert rtl(B.encode_hello()) == B.encode_hello_reply(DIVISOR)
    assert rtl(B.encode_run(5)) == B.encode_nak(B.Nak.SPIKE_COUNT, 0)
    assert rtl(B.encode_hello() + B.encode_bus(False, Region.CONTROL, ControlReg.STEP)) == (
        B.encode_hello_reply(DIVISOR) + B.encode_bus_reply(0))


def test_flush_brings_a_receiver_that_lost_its_place_back(rtl):
    truncated = B.encode_bus(False, Region.CONTROL, ControlReg.MAGIC)[:5]
    reply = rtl(truncated + B.FLUSH + B.encode_hello())
    assert reply == B.encode_nak(B.Nak.BAD_CRC, B.Cmd.BUS) + B.encode_hello_reply(DIVISOR)


def test_bridge_refuses_more_than_one_core_and_odd_fifo_sizes():
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the refused constructors leave half-made, unused designs
        with pytest.raises(ValueError, match="exactly one core"):
            BusBridge([CONFIG, CONFIG])
        with pytest.raises(ValueError, match="power of two"):
            BusBridge(CONFIG, fifo_depth=100)
        gc.collect()


# ---- the host end against scripted ports -------------------------------------------------------------
class ScriptedPort:
    """A port whose replies are scripted per written command frame (``respond(frame) -> bytes``)."""

    def __init__(self, respond):
        self.respond = respond
        self.buffer = bytearray()
        self.written = []
        self.port = "scripted"

    def write(self, data):
        data = bytes(data).lstrip(b"\x00")  # FLUSH
        while data:
            size = 1 + B.COMMAND_PAYLOAD[B.Cmd(data[0])] + B.CRC_BYTES
            frame, data = data[:size], data[size:]
            self.written.append(frame)
            self.buffer += self.respond(frame)

    def read(self, n=1):
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    def close(self):
        pass


def test_bridge_link_resends_after_a_nak_and_gets_the_data():
    naks = {"left": 1}

    def respond(frame):
        if frame[0] == B.Cmd.HELLO:
            return B.encode_hello_reply(4)
        if frame[0] == B.Cmd.BUS and naks["left"]:
            naks["left"] -= 1
            return B.encode_nak(B.Nak.BAD_CRC, B.Cmd.BUS)
        return B.encode_bus_reply(0x1234)

    link = BridgeLink(ScriptedPort(respond), timeout=0.05)
    np.testing.assert_array_equal(link.read(Region.CONTROL, 0, 3), [0x1234] * 3)
    assert link.stats["naks"] == 1 and link.stats["resent"] == 1


def test_bridge_link_names_a_step_whose_reply_was_damaged():
    def respond(frame):
        if frame[0] == B.Cmd.HELLO:
            return B.encode_hello_reply(4)
        if frame[0] == B.Cmd.RUN:
            reply = bytearray(B.encode_step_reply([2]))
            reply[1] ^= 0x01  # SPIKE_OUT of neuron 3 instead of 2: the DONE CRC disagrees
            return bytes(reply)
        return b""

    link = BridgeLink(ScriptedPort(respond), timeout=0.05)
    with pytest.raises(BridgeError, match="step ran but its spikes are unknown"):
        link.run([[0]])


def test_bridge_link_says_when_no_bridge_answers():
    with pytest.raises(BridgeError, match="no bus bridge answers"):
        BridgeLink(ScriptedPort(lambda frame: b""), timeout=0.02, retries=1)


def test_bridge_link_refuses_another_protocol_version():
    def respond(frame):
        return B.with_crc(bytes([B.Reply.HELLO_REPLY, B.VERSION + 1, 4, 0]))

    with pytest.raises(BridgeError, match="version"):
        BridgeLink(ScriptedPort(respond), timeout=0.02)


def test_bridge_urls_name_their_device_and_refuse_unknown_options(tmp_path):
    from serial.serialutil import SerialException

    from spikeforge.host.protocol_bridge import bridge_config, config_of_build, parse_url

    assert parse_url("bridge:///dev/ttyUSB1?build=out/ice&timeout=2") == ("/dev/ttyUSB1",
                                                                         {"build": "out/ice", "timeout": 2.0})
    assert parse_url("bridge://verilator?config=c.yaml")[0] == "verilator"
    with pytest.raises(SerialException, match="unknown option 'bild'"):
        parse_url("bridge:///dev/ttyUSB1?bild=out")
    with pytest.raises(SerialException, match="no serial device"):
        parse_url("bridge://?build=out")
    with pytest.raises(SerialException, match="one of build=, config=, network="):
        bridge_config({"build": "a", "config": "b"})
    (tmp_path / "report.json").write_text('{"core_config": ' + __import__("json").dumps(CONFIG.to_dict()) + "}")
    assert config_of_build(tmp_path) == CONFIG
