"""Gate-level check: the neuron core as Yosys synthesises it for the iCE40 (the netlist that goes into
the bitstream: SB_LUT4/SB_CARRY/SB_DFF*, SB_RAM40_4K, SB_SPRAM256KA, SB_MAC16), simulated with Yosys'
cell models under Icarus by the verification suite's cocotb testbench (sim/cocotb_tb), against the
golden model for a small compiled network."""

import shutil

import numpy as np
import pytest

from spikeforge.boards.gate_level import ice40_cells_sim, power_up_as_hardware, run_gate_level, spram_model
from spikeforge.compiler import compile as compile_network
from spikeforge.compiler.network import LIFParameters, Network, PoissonSource, Population, Projection

pytestmark = pytest.mark.rtl

needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None,
                                  reason="Icarus Verilog is missing (make setup installs it)")


def tiny_network() -> Network:
    """8 Poisson inputs -> 16 LIF neurons with random recurrence: spikes within a few steps."""
    rng = np.random.default_rng(3)
    net = Network(dt=1.0, name="gate_level")
    net.add(PoissonSource("in", 8, rate=80.0, seed=5))
    net.add(Population("out", 16, LIFParameters(tau_refrac=2.0, tau_syn_E=5.0, tau_m=20.0)))
    net.add(Projection("in", "out", weights=rng.uniform(0.5, 3.0, (8, 16))))
    net.add(Projection("out", "out", weights=rng.uniform(0.0, 1.0, (16, 16)) * (rng.random((16, 16)) < 0.3)))
    return net


def test_power_up_models():
    netlist = ".INIT_0(256'hxxxx),\n.INIT_F(16'hxx)"
    assert power_up_as_hardware(netlist) == ".INIT_0(256'h0000),\n.INIT_F(16'h00)"
    cells = ice40_cells_sim().read_text()
    assert "initial for (i = 0; i <= 16383; i = i + 1) mem[i] = 16'b0;" in spram_model(cells, "zero")
    assert spram_model(cells, "x") == cells
    with pytest.raises(ValueError):
        spram_model(cells, "random")


@needs_icarus
def test_synthesised_ice40_netlist_matches_the_golden_model(tmp_path):
    from spikeforge.sim.cocotb_tb.case import RtlCase

    compiled = compile_network(tiny_network())
    steps = 10
    inputs = compiled.input_raster(steps, 0)
    compiled.image.save(tmp_path / "image.npz")
    np.savez(tmp_path / "inputs.npz", spikes=inputs)
    case = RtlCase(name="gate_level", steps=steps, image_path=str(tmp_path / "image.npz"),
                   inputs_path=str(tmp_path / "inputs.npz"), compare="spikes")
    [result] = run_gate_level(compiled.config, [case])
    assert result.passed, result.summary() + "\n" + "\n".join(result.mismatches[:5])
    assert result.steps_run == steps
    assert result.spikes_total > 0, "the check needs spikes to mean something"
