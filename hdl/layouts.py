"""Bit layouts shared by the core, its testbenches and the board tops: bus payloads, memory words.

The memory words are shaped by the CoreConfig; a field that belongs to a feature that is off is not
in the layout at all (no memory bit is spent on it).
"""

from __future__ import annotations

import math

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from spikeforge.core import fixedpoint as fx
from spikeforge.core.config import CoreConfig

#: One bus request: Amaranth flattens it to a 61-bit vector, ``write`` at bit 0.
BUS_REQUEST = data.StructLayout({"write": 1, "region": 4, "addr": 24, "data": 32})
#: One bus response.
BUS_RESPONSE = data.StructLayout({"data": 32})


def index_bits(count: int) -> int:
    """Bits of an index 0 .. count-1 (at least 1, so that ports never have zero width)."""
    return max(1, math.ceil(math.log2(count))) if count > 1 else 1


def early_profile_layout(c: CoreConfig) -> data.StructLayout:
    """Profile fields the neuron pipeline needs at its multiply stage (read first)."""
    fields = {
        "c_vdecay": unsigned(fx.COEF_BITS), "c_ie": unsigned(fx.COEF_BITS), "c_ii": unsigned(fx.COEF_BITS),
        "c_edecay": unsigned(fx.COEF_BITS), "c_idecay": unsigned(fx.COEF_BITS),
        "v_rest": signed(c.v_bits),
    }
    if c.adaptive_threshold:
        fields["c_adecay"] = unsigned(fx.COEF_BITS)
    return data.StructLayout(fields)


def mid_profile_layout(c: CoreConfig) -> data.StructLayout:
    """Profile fields of the membrane's constant term v_rest + bias (+ u), read at stage 5: reading
    them late is cheaper than delaying the sum (v_rest is also in the early table, for v - v_rest)."""
    return data.StructLayout({"v_rest": signed(c.v_bits), "bias": signed(c.v_bits)})


def late_profile_layout(c: CoreConfig) -> data.StructLayout:
    """Profile fields needed only at the threshold stage (read later, so they need no delay line)."""
    fields = {
        "v_reset": signed(c.v_bits), "v_thresh": signed(c.v_bits),
        "refrac": unsigned(c.refrac_bits), "reset_subtract": unsigned(1),
    }
    if c.adaptive_threshold:
        fields["a_inc"] = unsigned(c.adapt_bits)
    return data.StructLayout(fields)


def neuron_state_layout(c: CoreConfig) -> data.StructLayout:
    """One neuron's word in the state memory (the profile index rides along: one read per neuron)."""
    fields = {"v": signed(c.v_bits), "refrac": unsigned(c.refrac_bits)}
    if c.adaptive_threshold:
        fields["adapt"] = unsigned(c.adapt_bits)
    if c.profile_bits:
        fields["pidx"] = unsigned(c.profile_bits)
    return data.StructLayout(fields)


def neuron_currents_layout(c: CoreConfig) -> data.StructLayout:
    """One neuron's synaptic currents: a memory of their own, because the pipeline finishes them
    three stages before the membrane and writing them early saves those stages' registers."""
    return data.StructLayout({"ie": signed(c.i_bits), "ii": signed(c.i_bits)})


def synapse_layout(c: CoreConfig) -> data.StructLayout:
    """One synapse inside a weight-memory word (a word holds ``lanes`` of them, lane 0 at bit 0)."""
    fields = {"weight": signed(c.weight_bits)}
    if c.stdp:
        fields["plastic"] = unsigned(1)
    if c.delay_bits:
        fields["delay"] = unsigned(c.delay_bits)  # delay - 1
    return data.StructLayout(fields)
