"""compile(): automatic configs, placement, fit errors, profile grouping, unused neurons."""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge.compiler import CompiledNetwork, FitError, compile
from spikeforge.compiler.network import (
    STDP, LIFParameters, Network, Population, PoissonSource, Projection, SpikeSource, ThresholdAdaptation,
)
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage
from spikeforge.sim import golden


def feature_network() -> Network:
    """Every feature: sources, current input, delays, inhibition, STDP, adaptation, heterogeneity."""
    net = Network(dt=1.0, name="features")
    net.add(SpikeSource("spikes", 3, [[2.0], [4.0, 9.0], []]))
    net.add(PoissonSource("noise", 5, rate=20.0, seed=3))
    net.add(Population("hidden", 6, LIFParameters(v_thresh=np.array([-50.0, -50.0, -51.0, -50.0, -52.0, -51.0]),
                                                   tau_refrac=2.0)))
    net.add(Population("adapt", 2, LIFParameters(threshold_adaptation=ThresholdAdaptation(0.1, 100.0))))
    net.add(Population("drive", 3, current_input=True))
    net.add(Projection("spikes", "hidden", weights=np.full((3, 6), 0.4), delays=3.0))
    net.add(Projection("noise", "hidden", weights=np.full((5, 6), 0.2), plasticity=STDP(w_max=0.5)))
    net.add(Projection("hidden", "adapt", weights=np.full((6, 2), 0.3), receptor="inhibitory", delays=2.0))
    net.add(Projection("drive", "hidden", connections=np.array([[0, 0, 0.25, 5.0], [2, 5, 0.5, 1.0]])))
    return net


# ---- automatic config and placement ---------------------------------------------------------------
def test_automatic_config_is_the_smallest_that_holds_the_network():
    c = compile(feature_network())
    assert isinstance(c, CompiledNetwork) and isinstance(c.image, CoreImage)
    cfg = c.config
    assert cfg.n_neurons == 11 and cfg.n_inputs == 8 and cfg.n_current_inputs == 3
    assert cfg.max_delay == 5 and cfg.stdp and cfg.adaptive_threshold
    assert cfg.weight_bits == 8
    # hidden has 3 distinct thresholds; adapt and drive each one profile
    assert cfg.n_profiles == 5
    assert c.image.config is cfg
    c.image.validate()


def test_lanes_round_the_neuron_count_up_and_plain_networks_get_no_features():
    net = Network()
    net.add(Population("a", 5))
    c = compile(net, lanes=4, weight_bits=6)
    assert c.config.n_neurons == 8 and c.config.lanes == 4 and c.config.weight_bits == 6
    assert not c.config.stdp and not c.config.adaptive_threshold
    assert c.config.max_delay == 1 and c.config.n_inputs == 0 and c.config.n_current_inputs == 0


def test_placement_puts_current_input_populations_first():
    c = compile(feature_network())
    m = c.mapping
    assert m.neurons["drive"] == range(0, 3)
    assert m.neurons["hidden"] == range(3, 9)
    assert m.neurons["adapt"] == range(9, 11)
    assert m.inputs == {"spikes": range(0, 3), "noise": range(3, 8)}
    # neuron rows follow the A input rows
    assert m.rows_of("hidden") == range(8 + 3, 8 + 9)
    p = m.projections["hidden->adapt"]
    assert p.rows == range(11, 17) and p.cols == range(9, 11) and p.sign == -1 and not p.plastic
    assert m.projections["noise->hidden"].plastic
    # the image holds each projection where the mapping says
    w = c.image.weights
    assert (w[11:17, 9:11] < 0).all()
    assert (w[0:3, 3:9] > 0).all() and (c.image.delays[0:3, 3:9] == 3).all()
    assert w[8 + 0, 3 + 0] > 0 and c.image.delays[8, 3] == 5 and w[8 + 2, 3 + 5] > 0
    assert np.count_nonzero(w[8:11]) == 2
    assert c.image.plastic[3:8, 3:9].all() and c.image.plastic.sum() == 30
    d = m.to_dict()
    assert d["neurons"]["drive"] == [0, 3] and d["projections"]["hidden->adapt"]["sign"] == -1


def test_given_config_larger_than_network():
    cfg = CoreConfig(n_neurons=32, n_inputs=16, max_delay=8, stdp=True, adaptive_threshold=True,
                     n_current_inputs=4, n_profiles=16)
    c = compile(feature_network(), cfg)
    assert c.config == cfg
    assert c.mapping.rows_of("hidden") == range(16 + 3, 16 + 9)
    assert (c.image.weights[16 + 3:16 + 9, 9:11] < 0).all()


# ---- fit errors ---------------------------------------------------------------------------------------
def one_population(size, **params) -> Network:
    net = Network()
    net.add(Population("hidden", size, LIFParameters(**params)))
    return net


def test_too_many_neurons_names_the_population_the_limit_and_the_fix():
    with pytest.raises(FitError, match=r"population 'hidden' needs 300 neurons; the core has 256 \(n_neurons\)"
                                       r"\. Use a bigger core \(CoreConfig\(n_neurons=300\)\), fewer neurons, "
                                       r"or --backend spinnaker"):
        compile(one_population(300), CoreConfig())
    net = one_population(200)
    net.add(Population("other", 100))
    with pytest.raises(FitError, match=r"the network needs 300 neurons \('hidden' 200, 'other' 100\)"):
        compile(net, CoreConfig())


def test_too_many_inputs():
    net = one_population(4)
    net.add(SpikeSource("retina", 300, [[] for _ in range(300)]))
    with pytest.raises(FitError, match=r"source 'retina' needs 300 inputs; the core has 256 \(n_inputs\)"):
        compile(net, CoreConfig())


def test_too_many_profiles():
    net = one_population(17, v_thresh=-50.0 + np.arange(17) * 0.1)
    with pytest.raises(FitError, match=r"17 distinct neuron parameter sets; the core has 16 profiles \(n_profiles\)"):
        compile(net, CoreConfig())
    assert compile(net).config.n_profiles == 17
    with pytest.raises(FitError, match=r"70 distinct neuron parameter sets; a core holds at most 64 profiles"):
        compile(one_population(70, v_thresh=-50.0 + np.arange(70) * 0.1))


def test_silent_profile_counts_when_the_core_has_unused_neurons():
    net = one_population(4, i_offset=np.array([1.0, 1.1, 1.2, 1.3]))  # every profile fires by itself
    with pytest.raises(FitError, match="5 distinct neuron parameter sets .one of them keeps the core's unused"):
        compile(net, CoreConfig(n_neurons=8, n_inputs=0, n_profiles=4))
    assert compile(net, CoreConfig(n_neurons=4, n_inputs=0, n_profiles=4)).config.n_profiles == 4


def test_delay_longer_than_max_delay():
    net = one_population(2)
    net.add(SpikeSource("s", 1, [[1.0]]))
    net.add(Projection("s", "hidden", weights=np.array([[0.5, 0.5]]), delays=12.0))
    with pytest.raises(FitError, match=r"'s->hidden' has a delay of 12 steps; the core holds delays up to 8 steps "
                                       r"\(max_delay\)"):
        compile(net, CoreConfig(max_delay=8))
    net.projections[0].delays = 70.0
    with pytest.raises(FitError, match="delays up to 64 steps"):
        compile(net)


def test_features_the_core_lacks():
    net = one_population(2, threshold_adaptation=ThresholdAdaptation())
    with pytest.raises(FitError, match=r"threshold adaptation but the core has none; "
                                       r"use CoreConfig\(adaptive_threshold=True\)"):
        compile(net, CoreConfig())
    net = one_population(2)
    net.add(SpikeSource("s", 1, [[1.0]]))
    net.add(Projection("s", "hidden", weights=np.array([[0.5, 0.5]]), plasticity=STDP()))
    with pytest.raises(FitError, match=r"'s->hidden' is plastic \(STDP\) but the core has no STDP; "
                                       r"use CoreConfig\(stdp=True\)"):
        compile(net, CoreConfig())
    net = one_population(2, i_offset=0.1)
    net.populations[0].current_input = True
    with pytest.raises(FitError, match=r"need 2 analog inputs; the core has 0 \(n_current_inputs\)"):
        compile(net, CoreConfig())


def test_two_stdp_rules_do_not_fit_one_core():
    net = one_population(2)
    net.add(SpikeSource("a", 1, [[1.0]]))
    net.add(SpikeSource("b", 1, [[1.0]]))
    net.add(Projection("a", "hidden", weights=np.array([[0.5, 0.5]]), plasticity=STDP(tau_plus=20.0)))
    net.add(Projection("b", "hidden", weights=np.array([[0.5, 0.5]]), plasticity=STDP(tau_plus=10.0)))
    with pytest.raises(FitError, match="'a->hidden' and 'b->hidden' use different STDP rules.*one STDP rule"):
        compile(net)


def test_widths_too_small():
    with pytest.raises(FitError, match=r"tau_refrac needs 20 steps, outside refrac_bits = 4"):
        compile(one_population(1, tau_refrac=20.0), CoreConfig(refrac_bits=4))
    # the automatic config widens the refractory counter instead
    assert compile(one_population(1, tau_refrac=300.0)).config.refrac_bits == 9
    # currents so large that the membrane could not resolve rest from threshold any more
    net = one_population(2)
    net.add(SpikeSource("s", 1, [[1.0]]))
    net.add(Projection("s", "hidden", weights=np.array([[1e6, 1e6]])))
    with pytest.raises(FitError, match=r"fewer than 256 steps between rest and threshold .* more i_bits"):
        compile(net, CoreConfig(i_bits=8))
    # with a given current range, a weight beyond it cannot be stored
    net.projections[0].weights = np.array([[40.0, 1.0]])
    with pytest.raises(FitError, match=r"'s->hidden': weight 40 nA exceeds the synaptic current range"):
        compile(net, current_range=20.0)
    # within it, the voltage window widens (reported) so that the gains still fit Q1.15
    c = compile(net, CoreConfig(i_bits=10))
    assert c.scaling.current_range >= 40.0
    assert any("widened" in r.message for r in c.report.risks)


def test_options_that_contradict_the_config():
    with pytest.raises(ValueError, match="weight_bits = 6 differs from config.weight_bits = 8"):
        compile(one_population(1), CoreConfig(), weight_bits=6)
    with pytest.raises(ValueError, match="set them in the CoreConfig"):
        compile(one_population(1), CoreConfig(), lanes=4)
    with pytest.raises(ValueError, match=r"unknown or size option\(s\) \['n_neurons'\]"):
        compile(one_population(1), n_neurons=4)


def test_an_empty_network_is_an_error():
    with pytest.raises(ValueError, match="no neuron populations"):
        compile(Network())


# ---- profiles -----------------------------------------------------------------------------------------
def test_heterogeneous_parameters_group_into_profiles_in_order_of_first_appearance():
    thresholds = np.array([-50.0, -52.0, -50.0, -48.0, -52.0, -50.0])
    tau_m = np.array([20.0, 20.0, 20.0, 20.0, 20.0, 10.0])
    c = compile(one_population(6, v_thresh=thresholds, tau_m=tau_m))
    prof = c.image.neuron_profile[:6]
    np.testing.assert_array_equal(prof, [0, 1, 0, 2, 1, 3])
    assert c.config.n_profiles == 4
    s = c.scaling
    for k in range(6):
        assert abs(s.v_from_int(c.image.profiles["v_thresh"][prof[k]]) - thresholds[k]) <= s.v_lsb / 2
    assert c.image.profiles["c_vdecay"][3] != c.image.profiles["c_vdecay"][0]


def test_values_closer_than_the_resolution_share_a_profile():
    window = (-80.0, -40.0)  # a fixed window, so the grid does not move with the thresholds
    s = compile(one_population(1), voltage_range=window).scaling
    on_grid = float(s.v_from_int(s.v_to_int(-50.0)))
    eps = s.v_lsb / 10
    c = compile(one_population(3, v_thresh=np.array([on_grid, on_grid + eps, on_grid - eps])), voltage_range=window)
    assert c.config.n_profiles == 1
    row = c.report.parameter("v_thresh", 0)
    assert row.requested_min == pytest.approx(on_grid - eps) and row.requested_max == pytest.approx(on_grid + eps)
    assert row.abs_error == pytest.approx(eps)
    assert compile(one_population(2, v_thresh=np.array([on_grid, on_grid + s.v_lsb])),
                   voltage_range=window).config.n_profiles == 2


# ---- unused neurons -----------------------------------------------------------------------------------
@pytest.mark.parametrize("i_offset", [0.0, 2.0])
def test_unused_neurons_never_spike(i_offset):
    """Neurons beyond the network (config bigger than needed) stay silent whatever the used profiles do."""
    net = one_population(3, i_offset=i_offset, tau_refrac=1.0)
    net.add(SpikeSource("s", 2, [[float(t) for t in range(1, 300, 3)], [5.0]]))
    net.add(Projection("s", "hidden", weights=np.full((2, 3), 2.0)))
    net.add(Projection("hidden", "hidden", weights=np.full((3, 3), 0.5) - 0.5 * np.eye(3)))
    c = compile(net, CoreConfig(n_neurons=16, n_inputs=4, n_profiles=4))
    _, rec = golden.run(c.image, c.input_raster(300))
    assert rec.spikes[:, :3].sum() > 10  # the network itself is active
    assert rec.spikes[:, 3:].sum() == 0
    assert (c.image.weights[:, 3:] == 0).all()
    if i_offset > 0:  # the only used profile fires by itself: a silent profile was added
        assert c.report.profiles == 2
        assert c.image.profiles["v_thresh"][c.image.neuron_profile[5]] == 2 ** 15 - 1
    else:
        assert c.image.neuron_profile[5] == 0
