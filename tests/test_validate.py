"""validate(): every semantic rule is enforced, and every message names the field path, object and fix."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spikeforge.compiler.network import (
    STDP,
    Connector,
    LIFParameters,
    Network,
    NetworkError,
    PoissonSource,
    Population,
    Projection,
    SpikeSource,
    ThresholdAdaptation,
)
from spikeforge.compiler.validate import NetworkValidationError, validate


def good_network() -> Network:
    net = Network(dt=1.0, name="good")
    net.add(Population("exc", 4, LIFParameters(tau_m=np.array([20.0, 21.0, 22.0, 23.0]))))
    net.add(Population("inh", 2, LIFParameters(reset="subtract_threshold",
                                               threshold_adaptation=ThresholdAdaptation(0.5, math.inf))))
    net.add(PoissonSource("noise", 3, rate=np.array([5.0, 10.0, 1000.0]), seed=2, start=0.0, stop=100.0))
    net.add(SpikeSource("cue", 2, spike_times=[[1.0, 5.0], []]))
    net.add(Projection("noise", "exc", weights=np.full((3, 4), 0.5), delays=2.0, label="n_e"))
    net.add(Projection("exc", "inh", connections=np.array([[0, 0, 0.3, 1.0], [3, 1, 0.2, 4.0]]), label="e_i"))
    net.add(Projection("inh", "exc", weights=np.ones((2, 4)), receptor="inhibitory", label="i_e"))
    net.add(Projection("cue", "exc", connections=np.array([[0, 0, 0.1, 1.0]]), plasticity=STDP(), label="cue_e"))
    return net


def problems(net: Network, source=None) -> str:
    with pytest.raises(NetworkValidationError) as info:
        validate(net, source=source)
    return str(info.value)


def test_good_network_is_returned_unchanged():
    net = good_network()
    assert validate(net) is net


def test_error_is_a_network_error_and_names_the_file():
    net = good_network()
    net.dt = 0.0
    with pytest.raises(NetworkError) as info:
        validate(net, source="nets/demo.yaml")
    assert str(info.value).startswith("nets/demo.yaml: dt")
    assert info.value.source == "nets/demo.yaml"
    assert "fix:" in str(info.value)


def _set_param(pop_index, **params):
    def mutate(net):
        for k, v in params.items():
            setattr(net.populations[pop_index].params, k, v)
    return mutate


# (mutation, substrings that must all appear in the message)
CASES = {
    "tau_m zero": (_set_param(0, tau_m=0.0), ["populations[0].neuron.tau_m", "population 'exc'", "= 0.0 ms", "> 0",
                                               "positive value"]),
    "tau_syn_I per neuron": (_set_param(0, tau_syn_I=np.array([5.0, 5.0, -1.0, 5.0])),
                             ["populations[0].neuron.tau_syn_I[2]", "= -1.0 ms", "> 0"]),
    "tau_syn_E": (_set_param(1, tau_syn_E=-5.0), ["populations[1].neuron.tau_syn_E", "population 'inh'"]),
    "tau_refrac negative": (_set_param(0, tau_refrac=-0.5), ["neuron.tau_refrac", ">= 0", "use 0 ms or more"]),
    "cm zero": (_set_param(0, cm=0.0), ["neuron.cm", "capacitance must be > 0"]),
    "v_reset above v_thresh": (_set_param(0, v_reset=-50.0), ["neuron.v_reset", "v_reset = -50.0 mV",
                                                              "v_thresh = -50.0 mV", "set v_reset below v_thresh"]),
    "v_rest nan": (_set_param(0, v_rest=float("nan")), ["neuron.v_rest", "must be finite"]),
    "per-neuron wrong length": (_set_param(0, v_thresh=np.array([-50.0, -51.0])),
                                ["neuron.v_thresh", "shape (2,)", "4 neurons", "exactly 4 values"]),
    "per-neuron not numbers": (_set_param(0, i_offset="lots"), ["neuron.i_offset", "'lots'", "expected a number (nA)"]),
    "reset mode": (_set_param(0, reset="zero"), ["neuron.reset", "'zero'", "to_v_reset, subtract_threshold"]),
    "adaptation increment": (_set_param(1, threshold_adaptation=ThresholdAdaptation(-1.0, 100.0)),
                             ["threshold_adaptation.increment", ">= 0"]),
    "adaptation tau": (_set_param(1, threshold_adaptation=ThresholdAdaptation(1.0, 0.0)),
                       ["threshold_adaptation.tau", "> 0 (or inf", ".inf"]),
    "size zero": (lambda n: setattr(n.populations[0], "size", 0), ["populations[0].size", ">= 1"]),
    "size float": (lambda n: setattr(n.sources[0], "size", 2.5), ["sources[0].size", "whole number"]),
    "v_init length": (lambda n: setattr(n.populations[0], "v_init", np.zeros(3)), ["populations[0].v_init", "shape (3,)"]),
    "v_init inf": (lambda n: setattr(n.populations[0], "v_init", np.array([0, 0, np.inf, 0])),
                   ["populations[0].v_init[2]", "finite"]),
    "duplicate label": (lambda n: setattr(n.sources[1], "label", "exc"),
                        ["sources[1].label", "'exc' is already the label of populations[0]", "distinct label"]),
    "pre missing": (lambda n: setattr(n.projections[0], "pre", "nosie"),
                    ["projections[0].pre", "'nosie'", "no population or source", "use one of", "'noise'"]),
    "post is a source": (lambda n: setattr(n.projections[1], "post", "cue"),
                         ["projections[1].post", "is a source", "project onto a population"]),
    "post missing": (lambda n: setattr(n.projections[1], "post", "ihn"), ["projections[1].post", "'inh'"]),
    "weights shape": (lambda n: setattr(n.projections[0], "weights", np.ones((4, 3))),
                      ["projections[0].weights", "shape (4, 3)", "expected (pre size, post size) = (3, 4)"]),
    "negative weight": (lambda n: n.projections[2].weights.__setitem__((1, 2), -0.25),
                        ["projections[2].weights[1][2]", "= -0.25 nA", "magnitudes", "receptor 'inhibitory'"]),
    "nan weight": (lambda n: n.projections[2].weights.__setitem__((0, 0), np.nan), ["weights[0][0]", "finite"]),
    "conn index range": (lambda n: n.projections[1].connections.__setitem__((1, 1), 2),
                         ["projections[1].connections[1]", "post index", "out of range", "0 .. 1"]),
    "conn index fraction": (lambda n: n.projections[1].connections.__setitem__((0, 0), 0.5),
                            ["projections[1].connections[0][0]", "whole numbers"]),
    "conn negative weight": (lambda n: n.projections[1].connections.__setitem__((1, 2), -1.0),
                             ["projections[1].connections[1]", "-1.0 nA", "receptor 'inhibitory'"]),
    "conn shape": (lambda n: setattr(n.projections[1], "connections", np.ones((2, 3))),
                   ["projections[1].connections", "shape (2, 3)", "N x 4"]),
    "conn duplicate pair": (lambda n: setattr(n.projections[1], "connections",
                                              np.array([[0, 0, 0.3, 1.0], [1, 1, 0.3, 1.0], [0, 0, 0.2, 2.0]])),
                            ["projections[1].connections", "pre 0 -> post 0", "rows [0, 2]", "one row per"]),
    "delay fraction": (lambda n: setattr(n.projections[0], "delays", 1.5),
                       ["projections[0].delays", "= 1.5 ms", "whole multiples of dt = 1.0 ms", "round"]),
    "delay below dt": (lambda n: setattr(n.projections[0], "delays", 0.0),
                       ["projections[0].delays", "at least one step", ">= 1.0 ms"]),
    "delay matrix": (lambda n: setattr(n.projections[0], "delays", np.array([[1.0] * 4, [1.0] * 4, [1, 2.5, 1, 1]])),
                     ["projections[0].delays[2][1]", "2.5 ms"]),
    "conn delay": (lambda n: n.projections[1].connections.__setitem__((0, 3), 0.5),
                   ["projections[1].connections[0]", "0.5 ms", "at least one step"]),
    "delays shape": (lambda n: setattr(n.projections[0], "delays", np.ones((2, 2))),
                     ["projections[0].delays", "3 x 4 matrix"]),
    "weights and connections": (lambda n: setattr(n.projections[0], "connections", np.zeros((0, 4))),
                                ["projections[0]", "both weights and connections", "exactly one"]),
    "no synapses": (lambda n: setattr(n.projections[0], "weights", None), ["projections[0]", "gives no synapses"]),
    "receptor": (lambda n: setattr(n.projections[0], "receptor", "excite"), ["projections[0].receptor", "excitatory, inhibitory"]),
    "stdp tau": (lambda n: setattr(n.projections[3], "plasticity", STDP(tau_plus=0.0)),
                 ["projections[3].plasticity.stdp.tau_plus", "> 0"]),
    "stdp A": (lambda n: setattr(n.projections[3], "plasticity", STDP(A_minus=-0.1)),
               ["plasticity.stdp.A_minus", ">= 0", "magnitude"]),
    "stdp w_min > w_max": (lambda n: setattr(n.projections[3], "plasticity", STDP(w_min=2.0, w_max=1.0)),
                           ["plasticity.stdp.w_max", "below w_min", "w_min <= w_max"]),
    "stdp w_min negative": (lambda n: setattr(n.projections[3], "plasticity", STDP(w_min=-1.0)),
                            ["plasticity.stdp.w_min", "magnitudes"]),
    "plastic inhibitory": (lambda n: setattr(n.projections[2], "plasticity", STDP()),
                           ["projections[2].plasticity", "inhibitory plasticity is not supported",
                            "make the plastic projection excitatory"]),
    "duplicate pair across projections": (
        lambda n: n.add(Projection("noise", "exc", connections=np.array([[2, 3, 0.1, 1.0]]), label="again")),
        ["projections[4]", "'again'", "projections[0] ('n_e')", "noise[2] -> exc[3]", "one synapse per pair",
         "merge the two projections"]),
    "duplicate projection name": (lambda n: setattr(n.projections[1], "label", "n_e"),
                                  ["projections[1].label", "'n_e' is already used", "distinct label"]),
    "poisson rate negative": (lambda n: setattr(n.sources[0], "rate", -1.0), ["sources[0].poisson.rate", ">= 0"]),
    "poisson rate inf": (lambda n: setattr(n.sources[0], "rate", np.array([1.0, np.inf, 1.0])),
                         ["sources[0].poisson.rate[1]", "finite"]),
    "poisson rate above 1/dt": (lambda n: setattr(n.sources[0], "rate", 2000.0),
                                ["sources[0].poisson.rate", "1000/dt", "more than one spike per step"]),
    "poisson stop before start": (lambda n: setattr(n.sources[0], "start", 100.0),
                                  ["sources[0].poisson.stop", "not after start = 100.0 ms"]),
    "poisson seed": (lambda n: setattr(n.sources[0], "seed", -3), ["sources[0].poisson.seed", "non-negative"]),
    "spike time before dt": (lambda n: setattr(n.sources[1], "spike_times", [[0.5], []]),
                             ["sources[1].spike_times[0]", "0.5 ms", ">= dt = 1.0 ms", "shift the spike times"]),
    "spike time nan": (lambda n: setattr(n.sources[1], "spike_times", [[1.0, np.nan], []]),
                       ["sources[1].spike_times[0][1]", "finite"]),
    "spike times count": (lambda n: setattr(n.sources[1], "spike_times", [[1.0]]),
                          ["sources[1].spike_times", "has 1 lists", "size 2", "exactly 2 lists"]),
    "dt negative": (lambda n: setattr(n, "dt", -1.0), ["dt", "> 0"]),
    "connector weight": (lambda n: setattr(n.projections[0], "connector", Connector("all_to_all", weight=-1.0)),
                         ["projections[0].weight", "-1.0 nA", "receptor 'inhibitory'"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_rule_is_enforced_with_a_clear_message(name):
    mutate, expected = CASES[name]
    net = good_network()
    mutate(net)
    message = problems(net, source="demo.yaml")
    assert message.startswith("demo.yaml: ")
    assert "fix: " in message
    for text in expected:
        assert text in message, f"{text!r} missing from:\n{message}"


def test_all_problems_are_reported_at_once():
    net = good_network()
    net.populations[0].params.tau_m = -1.0
    net.projections[0].delays = 0.3
    net.sources[0].rate = -2.0
    with pytest.raises(NetworkValidationError) as info:
        validate(net)
    paths = [i.path for i in info.value.issues]
    assert paths == ["populations[0].neuron.tau_m", "sources[0].poisson.rate", "projections[0].delays"]
    assert "network 'good' has 3 problems" in str(info.value)


def test_delays_within_relative_tolerance_are_whole_steps():
    net = good_network()
    net.dt = 0.1
    net.sources[0].rate = 5.0
    net.sources[1].spike_times = [[0.1], []]
    net.projections[0].delays = 0.30000000000000004  # 3 * 0.1 in floating point
    validate(net)
    net.projections[0].delays = 0.3 * (1 + 1e-5)
    assert "whole multiples" in problems(net)


def test_delay_matrix_only_checked_where_synapses_exist():
    net = good_network()
    w = np.zeros((3, 4))
    w[0, 0] = 1.0
    net.projections[0].weights = w
    net.projections[0].delays = np.where(w > 0, 2.0, 0.0)  # 0 where no synapse: fine
    validate(net)


def test_plastic_dense_projection_counts_every_pair_as_a_synapse():
    """A dense plastic matrix has a synapse at every pair, so any other projection between the same
    populations overlaps it (the core has one cell per pair)."""
    net = good_network()
    net.projections[1] = Projection("exc", "inh", weights=np.zeros((4, 2)), plasticity=STDP(), label="e_i")
    net.add(Projection("exc", "inh", connections=np.array([[1, 1, 0.5, 1.0]]), label="extra"))
    assert "exc[1] -> inh[1]" in problems(net)


def test_infinite_adaptation_tau_and_empty_connections_are_valid():
    net = good_network()
    net.projections[1].connections = np.zeros((0, 4))
    validate(net)


def test_one_to_one_connector_needs_equal_sizes():
    with pytest.raises(NetworkError, match="one_to_one connects equal-sized groups"):
        Connector("one_to_one", weight=1.0).mask(3, 4)


def test_connector_expansion_is_reproducible_and_keeps_sparsity_when_plastic():
    c = Connector("fixed_probability", weight=0.5, delay=2.0, p=0.3, seed=7, allow_self_connections=False)
    a = c.expand(20, 20, plastic=False, same_population=True)
    b = c.expand(20, 20, plastic=False, same_population=True)
    assert np.array_equal(a["weights"], b["weights"])
    assert not np.diag(a["weights"]).any()
    assert 0.15 < (a["weights"] > 0).mean() < 0.45
    plastic = c.expand(20, 20, plastic=True, same_population=True)
    assert plastic["weights"] is None
    rows = plastic["connections"]
    assert np.array_equal(np.sort(rows[:, 0] * 20 + rows[:, 1]), np.flatnonzero(a["weights"] > 0))
    assert (rows[:, 2] == 0.5).all() and (rows[:, 3] == 2.0).all()
