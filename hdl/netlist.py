"""Read/write collisions the neuron core does not care about, made visible to Yosys in RTLIL.

The core marks its memories with the attribute ``no_rw_check`` where its schedule never uses what a
read returns in the clock that writes the same word (docs/core-rtl.md, "Read/write collisions").
Yosys's Verilog frontend turns that attribute into don't-care collisions on the memory's read ports,
but Amaranth's RTLIL backend writes every ``$memrd_v2`` cell with ``COLLISION_X_MASK`` = 0 ("a
read in the writing clock returns the old word"), and Yosys then emulates read-first behaviour on
every iCE40 EBR and ECP5 DP16KD: each write is delayed by a register and each read gets an address
comparator and a bypass multiplexer. :func:`collisions_dont_care` sets the mask of the read ports of
the marked memories to all ones, which is what the attribute means, so the RTLIL flow (board
bitstreams) gets the same netlist as the Verilog one. Simulation is unaffected: the simulators read
Amaranth's design, where the old word is returned.
"""

from __future__ import annotations

import re

__all__ = ["collisions_dont_care"]

_MODULE = re.compile(r"^module [^\n]*\n.*?^end\n", re.M | re.S)
_MARKED_MEMORY = re.compile(r"^  attribute \\no_rw_check 1\n(?:  attribute [^\n]*\n)*  memory [^\n]* (\S+)$", re.M)
_MEMRD = re.compile(r"^  cell \$memrd_v2 [^\n]*\n(?:    [^\n]*\n)*?  end\n", re.M)
_MEMID = re.compile(r'^    parameter \\MEMID "(.*)"$', re.M)
_MASK = re.compile(r"^(    parameter \\COLLISION_X_MASK )(\d+)'([01]+)$", re.M)


def collisions_dont_care(rtlil: str) -> str:
    """``rtlil`` with every read port of a ``no_rw_check`` memory marked collision-don't-care."""
    def module(match: re.Match) -> str:
        text = match.group(0)
        marked = set(_MARKED_MEMORY.findall(text))
        if not marked:
            return text

        def read_port(cell: re.Match) -> str:
            body = cell.group(0)
            memid = _MEMID.search(body)
            # MEMID is an RTLIL string: the memory's name with its backslash escaped
            if memid is None or memid.group(1).replace("\\\\", "\\") not in marked:
                return body
            return _MASK.sub(lambda m: f"{m.group(1)}{m.group(2)}'{'1' * int(m.group(2))}", body)

        return _MEMRD.sub(read_port, text)

    return _MODULE.sub(module, rtlil)
