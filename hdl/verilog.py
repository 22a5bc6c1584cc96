"""Verilog of the neuron core: what the cocotb testbench simulates and the bitstream flow synthesizes."""

from __future__ import annotations

import re

from amaranth.back import verilog

from spikeforge.core.config import CoreConfig
from spikeforge.hdl.core import NeuronCore


def generate_verilog(config: CoreConfig, *, mutation: str | None = None, name: str = "spikeforge_core",
                     spram: bool = False) -> str:
    """One Verilog module ``name`` for ``config`` (ports: hdl/INTERFACE.md).

    ``mutation`` (one of ``spikeforge.hdl.MUTATIONS``) builds a deliberately wrong core for the
    verification suite's mutation check; ``None`` builds the correct one.

    ``spram=True`` (for iCE40 synthesis) leaves the weight memory without an initial value: Amaranth
    gives every memory an all-zero ``initial`` block, and yosys maps only memories without one to
    SB_SPRAM256KA (SPRAM cannot be initialised). In simulation that memory then starts undefined
    until the host loads it, so testbenches use the default.
    """
    core = NeuronCore(config, mutation=mutation)
    text = verilog.convert(core, name=name, emit_src=False)
    if spram:
        text, count = _WEIGHTS_INIT.subn(r"\1", text)
        if count != 1:
            raise RuntimeError("generate_verilog(spram=True): the weight memory's initial block was not "
                               "found in the Verilog (Amaranth's output format changed?)")
    return text


_WEIGHTS_INIT = re.compile(
    r"(  reg \[\d+:0\] weights \[\d+:0\];\n)  initial begin\n(?:    weights\[\d+\] = [^\n]*\n)+  end\n")
