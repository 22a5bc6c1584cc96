"""The real host driver (host/board.py Board) against the RTL link: LinkTop simulated bit by bit.

Board talks through an in-process serial port (host/loopback.py DeviceSerial) to
host/rtl_device.py RtlLinkDevice, which shifts every byte through the RTL UART of LinkTop (Amaranth
simulator, divisor 4 clocks per bit). The network must come back exactly as the golden model runs
it: the spikes of every step and the learned (STDP) weights.
"""

import pathlib
import sys

import pytest

from spikeforge.host.board import Board
from spikeforge.host.loopback import DeviceSerial
from spikeforge.host.rtl_device import RtlLinkDevice

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from learning_case import CONFIG, assert_run_is_golden, learning_case  # noqa: E402


@pytest.mark.slow  # about 4 minutes: the Amaranth simulator runs ~3k cycles/s
def test_board_loads_runs_and_reads_back_exactly_the_golden_model():
    steps = 6
    case = image, inputs, currents, _, _ = learning_case(steps)

    device = RtlLinkDevice([CONFIG], slots=4, max_words=32, divisor=4)
    with Board(DeviceSerial(device, own_device=True), timeout=30.0, retries=1) as board:
        assert board.config(0) == CONFIG
        board.load(image, verify=True)
        record = board.run(steps, inputs, currents)
        back = board.read_image(0)
    assert_run_is_golden(case, record, back)
