# amaranth: UnusedElaboratable=no
"""The generated Verilog: ports as hdl/INTERFACE.md lists them, mutations, features that are off."""

from __future__ import annotations

import re

import pytest
from amaranth.back import rtlil

from spikeforge.core.config import CoreConfig
from spikeforge.hdl import MUTATIONS, NeuronCore, generate_verilog
from spikeforge.sim.cycle_model import bandwidth_bound, predict_cycles, synaptic_events

SMALL = CoreConfig(n_neurons=8, n_inputs=8, lanes=2, max_delay=4, stdp=True, adaptive_threshold=True,
                   n_current_inputs=2, n_profiles=4)


def _ports(verilog: str, name: str = "spikeforge_core") -> dict[str, tuple[str, int]]:
    body = verilog[verilog.index(f"module {name}("):]
    body = body[: body.index("endmodule")]
    ports = {}
    for direction, width, port in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", body, re.M):
        ports[port] = (direction, int(width) + 1 if width else 1)
    return ports


def test_ports_match_interface_doc():
    ports = _ports(generate_verilog(SMALL))
    assert ports == {
        "clk": ("input", 1), "rst": ("input", 1),
        "bus_req__valid": ("input", 1), "bus_req__ready": ("output", 1), "bus_req__payload": ("input", 61),
        "bus_resp__valid": ("output", 1), "bus_resp__ready": ("input", 1), "bus_resp__payload": ("output", 32),
        "spike_in__valid": ("input", 1), "spike_in__ready": ("output", 1), "spike_in__payload": ("input", 3),
        "start": ("input", 1), "busy": ("output", 1), "done": ("output", 1),
        "spike_out__valid": ("output", 1), "spike_out__ready": ("input", 1), "spike_out__payload": ("output", 3),
    }


def test_no_inputs_means_no_spike_in_port():
    ports = _ports(generate_verilog(CoreConfig(n_neurons=4, n_inputs=0, n_profiles=1)))
    assert not any(p.startswith("spike_in") for p in ports)


def _rtlil(config, mutation=None):
    return rtlil.convert(NeuronCore(config, mutation=mutation), emit_src=False)


def test_features_off_generate_no_memory():
    plain = _rtlil(CoreConfig(n_neurons=8, n_inputs=4, lanes=2, n_profiles=2))
    for name in ("x_trace", "y_trace", "group_list", "current_in"):
        assert name not in plain, f"{name} memory exists although its feature is off"
    assert "x_trace" in _rtlil(SMALL)


def test_mutations_change_the_design_and_none_is_correct():
    base = _rtlil(SMALL)
    assert _rtlil(SMALL, mutation=None) == base
    for mutation in MUTATIONS:
        assert _rtlil(SMALL, mutation=mutation) != base, mutation


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown mutation 'nope'"):
        NeuronCore(SMALL, mutation="nope")
    with pytest.raises(TypeError, match="expected a CoreConfig"):
        NeuronCore({"n_neurons": 4})


def test_cycle_model_within_goal_of_bound():
    """N = 256, A = 256, P = 8 at 5 % activity: within 1.25x of the bandwidth bound."""
    c = CoreConfig(n_neurons=256, n_inputs=256, lanes=8)
    rows = round(0.05 * c.n_sources)
    cycles = predict_cycles(c, n_spiking_sources=rows, n_post_spikes=round(0.05 * 256))
    bound = bandwidth_bound(c, synaptic_events(c, rows))
    assert bound <= cycles <= 1.25 * bound
