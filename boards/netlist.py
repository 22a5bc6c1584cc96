"""What the flow changes in Amaranth's netlist before Yosys sees it, and the synthesis commands.

Zero memory initialisation: Amaranth gives every memory an explicit all-zero init, and Yosys cannot
put an initialised memory in iCE40 SPRAM (it has no initial contents). All-zero inits are removed:
block RAM powers up zero on iCE40, ECP5 and 7 series anyway (nextpnr and Vivado program undefined
init bits as 0), and SPRAM -- the weight memory only -- is written by the host or the boot loader
before it is read. Non-zero inits (the standalone boot ROM) stay.

SPRAM: on the iCE40 the neuron core's weight memory is marked ``ram_style = "huge"``, so Yosys maps
it to SB_SPRAM256KA even where its cost model would pick block RAM; SPRAM has no other user, and the
30 EBR of the UP5K are needed for everything else.
"""

import re

from spikeforge.hdl.netlist import collisions_dont_care

#: synthesis commands per family (the iCE40 flow: SPRAM and DSP inference on)
SYNTH = {"ice40": "synth_ice40 -spram -dsp", "ecp5": "synth_ecp5"}

_MEMINIT = re.compile(r"^(?:  attribute [^\n]*\n)*  cell \$meminit_v2 [^\n]*\n(?:    [^\n]*\n)*?  end\n", re.M)
_MEMINIT_DATA = re.compile(r"connect \\DATA \d+'([01x]+)")


_WEIGHTS_MEMORY = re.compile(r"^(  memory width \d+ size \d+ \\weights)$", re.M)


def weights_in_spram(rtlil: str) -> str:
    """Mark the neuron core's weight memory ``ram_style = "huge"``: Yosys then maps it to iCE40 SPRAM
    even where block RAM would be "cheaper" by its cost model (the EBR are needed for the rest)."""
    return _WEIGHTS_MEMORY.sub(lambda m: '  attribute \\ram_style "huge"\n' + m.group(1), rtlil)


def strip_zero_meminit(rtlil: str) -> str:
    """Remove every ``$meminit_v2`` cell whose data is all zero (see the module docstring)."""
    def keep_unless_zero(match):
        data = _MEMINIT_DATA.search(match.group(0))
        return "" if data and set(data.group(1)) <= {"0"} else match.group(0)
    return _MEMINIT.sub(keep_unless_zero, rtlil)


def prepare_for_synthesis(rtlil: str, family: str) -> str:
    """Amaranth's RTLIL -> the RTLIL Yosys synthesises for ``family``."""
    rtlil = strip_zero_meminit(rtlil)
    rtlil = collisions_dont_care(rtlil)
    if family == "ice40":
        rtlil = weights_in_spram(rtlil)
    return rtlil
