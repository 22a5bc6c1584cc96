"""spikeforge.hdl: the neuron core in Amaranth (bit-exact with sim/golden.py).

- :class:`NeuronCore` - the core as an Amaranth component (ports and protocol: hdl/INTERFACE.md);
- :func:`generate_verilog` - its Verilog, for cocotb and the bitstream flow;
- :data:`MUTATIONS` - deliberate single-line bugs for the verification suite's mutation check.
"""

from spikeforge.hdl.core import MUTATIONS, NeuronCore
from spikeforge.hdl.verilog import generate_verilog

__all__ = ["MUTATIONS", "NeuronCore", "generate_verilog"]
