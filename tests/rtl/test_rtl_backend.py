"""The rtl backend (sim/rtl_backend.py) gives the same SimResult as the golden backend."""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge.compiler.network import (
    STDP, LIFParameters, Network, PoissonSource, Population, Projection, SpikeSource, ThresholdAdaptation,
)
from spikeforge.sim import golden_backend, rtl_backend

RECORD = ("v", "ie", "ii", "threshold", "adapt", "refrac_count")


def mixed_network() -> Network:
    """Every mechanism at once, small enough for a quick RTL run: Poisson and timed inputs, delays up
    to 4 steps, excitation and inhibition, a recurrent connection, STDP, an adaptive threshold with
    subtract reset, and an analog-input population."""
    rng = np.random.default_rng(4)
    net = Network(dt=1.0, name="rtl_mixed")
    net.add(PoissonSource("noise", 6, rate=80.0, seed=3))
    net.add(SpikeSource("volley", 2, [[3.0, 20.0, 33.0], [5.0, 21.0]]))
    adapt = LIFParameters(tau_refrac=2.0, tau_m=10.0, reset="subtract_threshold", v_reset=-60.0,
                          threshold_adaptation=ThresholdAdaptation(increment=2.0, tau=30.0))
    net.add(Population("exc", 5, adapt))
    net.add(Population("inh", 2, LIFParameters(tau_refrac=1.0, tau_m=8.0, tau_syn_I=4.0)))
    net.add(Population("analog", 2, LIFParameters(tau_refrac=3.0), current_input=True))
    rule = STDP(tau_plus=15.0, tau_minus=20.0, A_plus=0.05, A_minus=0.04, w_min=0.0, w_max=2.0)
    net.add(Projection("noise", "exc", weights=rng.uniform(0.5, 1.8, (6, 5)), plasticity=rule, label="learn"))
    net.add(Projection("volley", "exc", weights=np.full((2, 5), 2.5),
                       delays=rng.integers(1, 5, (2, 5)).astype(float)))
    net.add(Projection("exc", "inh", weights=np.full((5, 2), 1.5), delays=2.0))
    net.add(Projection("inh", "exc", weights=np.full((2, 5), 1.0), receptor="inhibitory"))
    net.add(Projection("analog", "exc", weights=np.full((2, 5), 0.8), delays=3.0))
    return net


def assert_same_result(a, b):
    assert a.steps == b.steps and a.dt == b.dt
    assert a.spikes.keys() == b.spikes.keys()
    for label in a.spikes:
        np.testing.assert_array_equal(a.spikes[label], b.spikes[label], err_msg=f"spikes of {label}")
    assert a.variables.keys() == b.variables.keys()
    for label in a.variables:
        assert a.variables[label].keys() == b.variables[label].keys()
        for var in a.variables[label]:
            np.testing.assert_array_equal(a.variables[label][var], b.variables[label][var],
                                          err_msg=f"{label}.{var}")
    assert a.weights.keys() == b.weights.keys()
    for name in a.weights:
        np.testing.assert_array_equal(a.weights[name], b.weights[name], err_msg=f"weights {name}")


@pytest.mark.rtl
def test_rtl_backend_matches_golden_backend(rtl_simulator, tmp_path):
    net = mixed_network()
    steps = 60
    currents = {"analog": np.tile([[1.2, 0.0]], (steps, 1)) + np.linspace(0, 0.8, steps)[:, None]}
    golden = golden_backend.simulate(net, steps, seed=7, record=RECORD, currents=currents)
    rtl = rtl_backend.simulate(net, steps, seed=7, record=RECORD, currents=currents, simulator=rtl_simulator)
    assert rtl.backend == "rtl"
    assert sum(int(s.sum()) for s in golden.spikes.values()) > 10, "the network must be active"
    assert golden.weights and not np.array_equal(golden.weights["learn"], net.projections[0].weights)
    assert_same_result(golden, rtl)
    assert len(rtl.meta["cycles"]) == steps and min(rtl.meta["cycles"]) > 0


@pytest.mark.rtl
def test_rtl_backend_writes_a_vcd_and_verifies_every_step(rtl_simulator, tmp_path):
    net = Network(dt=1.0, name="vcd")
    net.add(SpikeSource("in", 1, [[2.0, 4.0]]))
    net.add(Population("out", 2, LIFParameters(tau_refrac=1.0)))
    net.add(Projection("in", "out", weights=np.array([[30.0, 0.0]])))
    vcd = tmp_path / "run.vcd"
    result = rtl_backend.simulate(net, 8, simulator=rtl_simulator, vcd=vcd, verify=True)
    assert result.spikes["out"][:, 0].any()
    text = vcd.read_text(errors="replace")
    assert text.lstrip().startswith("$") and "$enddefinitions" in text
    for signal in ("spike_out__valid", "bus_req__valid", "busy", "done"):
        assert signal in text, f"{signal} missing from the VCD"
    assert result.meta["vcd"] == str(vcd.resolve())


def test_rtl_backend_rejects_bad_arguments():
    net = Network(dt=1.0)
    net.add(Population("p", 1))
    with pytest.raises(rtl_backend.RtlBackendError, match="steps"):
        rtl_backend.simulate(net, -1)
    with pytest.raises(rtl_backend.RtlBackendError, match="simulator"):
        rtl_backend.simulate(net, 5, simulator="modelsim")
    with pytest.raises(golden_backend.GoldenBackendError, match="record"):
        rtl_backend.simulate(net, 5, record=("voltage",))
