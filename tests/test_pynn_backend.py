"""spikeforge.pynn: ordinary PyNN scripts build the right Network and run on spikeforge's backends."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import spikeforge.pynn as sim
from spikeforge.compiler.sources import network_input_rasters
from spikeforge.pynn import SegmentChangeError, SpiNNakerOnlyCallNote, UnsupportedFeatureError

STDP_KW = dict(tau_plus=20.0, tau_minus=15.0, A_plus=0.02, A_minus=0.025)


def small_network(backend="golden", **setup):
    sim.setup(timestep=1.0, backend=backend, **setup)
    src = sim.Population(4, sim.SpikeSourceArray(spike_times=[[2, 10, 20], [3, 30], [4, 40], [5]]), label="src")
    exc = sim.Population(6, sim.IF_curr_exp(tau_m=10.0, i_offset=0.3, tau_refrac=2.0), label="exc")
    sim.Projection(src, exc, sim.AllToAllConnector(), sim.StaticSynapse(weight=3.0, delay=2.0), label="in")
    return src, exc


# ---- translation ------------------------------------------------------------------------------------
def test_objects_become_the_network_with_pynn_names_units_and_defaults():
    src, exc = small_network()
    exc.initialize(v=-70.0)
    stdp = sim.STDPMechanism(timing_dependence=sim.SpikePairRule(**STDP_KW),
                             weight_dependence=sim.AdditiveWeightDependence(w_min=0.0, w_max=0.8),
                             weight=0.25, delay=3.0)
    sim.Projection(exc, exc, sim.AllToAllConnector(allow_self_connections=False), stdp, label="rec")
    out = sim.Population(5, sim.IF_curr_exp(), label="out")
    sim.Projection(exc[:3], out[2:], sim.OneToOneConnector(), sim.StaticSynapse(weight=-0.5, delay=1.0),
                   receptor_type="inhibitory", label="inh")
    sim.run(10.0)
    net = sim.last_network()
    pop = net.population("exc")
    assert (pop.size, pop.params.tau_m, pop.params.i_offset, pop.params.tau_refrac, pop.v_init) == (6, 10.0, 0.3, 2.0, -70.0)
    assert pop.params.v_thresh == -50.0 and pop.params.cm == 1.0  # PyNN's IF_curr_exp defaults
    assert net.source("src").spike_times == [[2.0, 10.0, 20.0], [3.0, 30.0], [4.0, 40.0], [5.0]]
    by_name = {p.name: p for p in net.projections}
    inp = by_name["in"]
    assert inp.receptor == "excitatory" and inp.plasticity is None
    assert np.all(inp.connections[:, 2] == 3.0) and np.all(inp.connections[:, 3] == 2.0) and len(inp.connections) == 24
    rec = by_name["rec"]
    assert rec.plasticity.tau_minus == 15.0 and rec.plasticity.A_minus == 0.025 and rec.plasticity.w_max == 0.8
    assert len(rec.connections) == 30 and not np.any(rec.connections[:, 0] == rec.connections[:, 1])
    inh = by_name["inh"]
    # a view's indices become the population's; PyNN's negative inhibitory weight becomes a magnitude
    assert inh.receptor == "inhibitory"
    assert inh.connections[:, :3].tolist() == [[0, 2, 0.5], [1, 3, 0.5], [2, 4, 0.5]]


def test_get_data_returns_neo_blocks_with_spikes_and_v_on_the_core_time_grid():
    src, exc = small_network()
    exc.record(["spikes", "v"])
    src.record("spikes")
    sim.run(50.0)
    block = exc.get_data()
    seg = block.segments[0]
    assert len(seg.spiketrains) == 6
    result = sim.last_result()
    for k, train in enumerate(seg.spiketrains):
        expected = (np.flatnonzero(result.spikes["exc"][:, k]) + 1) * 1.0  # step n -> time (n + 1) dt
        assert np.array_equal(np.asarray(train.magnitude), expected)
    assert sum(len(t) for t in seg.spiketrains) > 0
    v = seg.analogsignals[0]
    assert v.name == "v" and v.shape == (51, 6)
    assert np.allclose(np.asarray(v.magnitude)[0], -65.0)  # the initial value at t = 0
    assert np.allclose(np.asarray(v.magnitude)[1:], result.variables["exc"]["v"])
    # the sources' recorded spikes are exactly what the backend was fed
    raster = network_input_rasters(sim.last_network(), 50)["src"]
    src_trains = src.get_data().segments[0].spiketrains
    assert [len(t) for t in src_trains] == raster.sum(axis=0).tolist() == [3, 2, 2, 1]
    counts = exc.get_spike_counts()
    assert sum(counts.values()) == int(result.spikes["exc"].sum())


def test_run_twice_equals_one_long_run_on_the_golden_core():
    _, exc = small_network()
    exc.record("spikes")
    sim.run(25.0)
    sim.run(25.0)
    split = sim.last_result().spikes["exc"].copy()
    _, exc = small_network()
    sim.run(50.0)
    assert np.array_equal(split, sim.last_result().spikes["exc"])
    assert sim.get_current_time() == 50.0


def test_spike_sources_may_change_between_runs_and_only_the_future_changes():
    src, exc = small_network()
    src.record("spikes")
    sim.run(15.0)
    src.set(spike_times=[[8.0, 25.0], [], [], [30.0]])  # 8.0 is in the past: dropped
    sim.run(20.0)
    times = sim.last_network().source("src").spike_times
    assert times == [[2.0, 10.0, 25.0], [3.0], [4.0], [5.0, 30.0]]
    trains = src.get_data().segments[0].spiketrains
    assert [list(np.asarray(t.magnitude)) for t in trains] == [[2.0, 10.0, 25.0], [3.0], [4.0], [5.0, 30.0]]


def test_poisson_sources_are_drawn_on_the_host_reproducibly_and_seeded_like_spynnaker():
    sim.setup(timestep=1.0)
    a = sim.Population(5, sim.SpikeSourcePoisson(rate=80.0), label="a")
    b = sim.Population(5, sim.SpikeSourcePoisson(rate=80.0, start=100.0, duration=50.0), label="b",
                       additional_parameters={"seed": 42})
    exc = sim.Population(2, sim.IF_curr_exp(), label="exc")
    sim.Projection(a, exc, sim.AllToAllConnector(), sim.StaticSynapse(weight=0.1))
    a.record("spikes")
    b.record("spikes")
    sim.run(200.0)
    first = [np.asarray(t.magnitude).tolist() for t in a.get_data().segments[0].spiketrains]
    b_times = np.concatenate([np.asarray(t.magnitude) for t in b.get_data().segments[0].spiketrains])
    assert sum(map(len, first)) > 40
    assert b_times.min() > 100.0 and b_times.max() <= 150.0
    seed_b = sim.last_network().source("b").seed
    sim.setup(timestep=1.0)
    a = sim.Population(5, sim.SpikeSourcePoisson(rate=80.0), label="a")
    b = sim.Population(5, sim.SpikeSourcePoisson(rate=80.0), label="b", additional_parameters={"seed": 42})
    exc = sim.Population(2, sim.IF_curr_exp(), label="exc")
    a.record("spikes")
    sim.run(200.0)
    assert [np.asarray(t.magnitude).tolist() for t in a.get_data().segments[0].spiketrains] == first
    assert sim.last_network().source("b").seed == seed_b


def test_learned_weights_come_back_through_projection_get():
    sim.setup(timestep=1.0)
    times = [[float(t) for t in range(5 + k, 300, 20)] for k in range(5)]
    src = sim.Population(5, sim.SpikeSourceArray(spike_times=times), label="src")
    out = sim.Population(2, sim.IF_curr_exp(tau_refrac=2.0), label="out")
    stdp = sim.STDPMechanism(timing_dependence=sim.SpikePairRule(**STDP_KW),
                             weight_dependence=sim.AdditiveWeightDependence(w_min=0.0, w_max=2.0),
                             weight=1.5, delay=1.0)
    proj = sim.Projection(src, out, sim.AllToAllConnector(), stdp, label="plastic")
    before = proj.get("weight", format="array")
    sim.run(300.0)
    after = proj.get("weight", format="array")
    assert np.all(before == 1.5)
    learned = sim.last_result().weights["plastic"]
    assert np.allclose(after, learned) and not np.allclose(after, before)
    listed = proj.get(["weight", "delay"], format="list")
    assert len(listed) == 10 and all(d == 1.0 for *_, d in listed)
    assert all(np.isclose(w, learned[int(i), int(j)]) for i, j, w, _ in listed)
    sim.reset()  # PyNN: reset returns weights to their initial values
    assert np.all(proj.get("weight", format="array") == 1.5)


def test_changing_a_synapse_mid_segment_is_refused_and_reset_allows_it():
    _, exc = small_network()
    proj = sim.Projection(exc, exc, sim.FixedProbabilityConnector(0.5, rng=sim.NumpyRNG(seed=1)),
                          sim.StaticSynapse(weight=0.2), label="rec")
    sim.run(10.0)
    proj.set(weight=0.3)
    with pytest.raises(SegmentChangeError, match="projection 'rec'.*sim.reset"):
        sim.run(10.0)
    sim.reset()
    sim.run(10.0)
    assert np.all(next(p for p in sim.last_network().projections if p.name == "rec").connections[:, 2] == 0.3)
    exc.set(tau_m=15.0)
    with pytest.raises(SegmentChangeError, match="population 'exc'"):
        sim.run(10.0)


def test_pynn_connectors_make_the_same_synapses_in_the_network():
    sim.setup(timestep=1.0)
    pre = sim.Population(20, sim.SpikeSourcePoisson(rate=10.0), label="pre")
    post = sim.Population(15, sim.IF_curr_exp(), label="post")
    rng = sim.NumpyRNG(seed=3)
    conns = {
        "fp": sim.FixedProbabilityConnector(0.3, rng=rng),
        "fnpre": sim.FixedNumberPreConnector(4, rng=rng),
        "fnpost": sim.FixedNumberPostConnector(3, rng=rng),
        "list": sim.FromListConnector([(0, 1, 0.5, 2.0), (3, 4, 0.25, 3.0)], column_names=["weight", "delay"]),
        "array": sim.ArrayConnector(np.eye(20, 15, dtype=bool)),
        "total": sim.FixedTotalNumberConnector(30, rng=rng),
    }
    # one target population per connector: the core holds one synapse per pair (see the merge test)
    posts = {name: sim.Population(15, sim.IF_curr_exp(), label=f"post_{name}") for name in conns}
    projs = {name: sim.Projection(pre, posts[name], c, sim.StaticSynapse(weight=0.1, delay=1.0), label=name)
             for name, c in conns.items()}
    sim.run(1.0)
    net = {p.name: p for p in sim.last_network().projections}
    for name, proj in projs.items():
        pynn_pairs = sorted((int(i), int(j)) for i, j, _ in proj.get("weight", format="list"))
        ours = sorted((int(i), int(j)) for i, j in net[name].connections[:, :2])
        assert ours == sorted(set(pynn_pairs)), name
    assert net["list"].connections[:, 2:].tolist() == [[0.5, 2.0], [0.25, 3.0]]


def test_repeated_static_synapses_are_summed_and_repeated_plastic_ones_refused():
    sim.setup(timestep=1.0)
    pre = sim.Population(2, sim.SpikeSourceArray(spike_times=[[2.0], [3.0]]), label="pre")
    post = sim.Population(2, sim.IF_curr_exp(), label="post")
    sim.Projection(pre, post, sim.FromListConnector([(0, 0, 0.5, 1.0), (0, 0, 0.25, 1.0), (1, 1, 0.1, 1.0)],
                                                    column_names=["weight", "delay"]), label="dup")
    sim.run(1.0)
    conn = sim.last_network().projections[0].connections
    assert conn[:, :3].tolist() == [[0, 0, 0.75], [1, 1, 0.1]]
    stdp = sim.STDPMechanism(timing_dependence=sim.SpikePairRule(), weight_dependence=sim.AdditiveWeightDependence())
    sim.Projection(pre, post, sim.FromListConnector([(0, 1, 0.5, 1.0), (0, 1, 0.5, 1.0)],
                                                    column_names=["weight", "delay"]), stdp, label="dup_plastic")
    with pytest.raises(UnsupportedFeatureError, match="several plastic synapses.*dup_plastic"):
        sim.run(1.0)


def test_overlapping_static_projections_merge_and_other_overlaps_are_refused():
    sim.setup(timestep=1.0)
    pre = sim.Population(3, sim.SpikeSourceArray(spike_times=[[2.0], [3.0], [4.0]]), label="pre")
    post = sim.Population(3, sim.IF_curr_exp(), label="post")
    sim.Projection(pre, post, sim.OneToOneConnector(), sim.StaticSynapse(weight=0.5), label="a")
    sim.Projection(pre, post, sim.AllToAllConnector(), sim.StaticSynapse(weight=0.25), label="b")
    sim.run(1.0)
    (merged,) = sim.last_network().projections
    assert merged.name == "a+b"
    w = np.zeros((3, 3))
    w[merged.connections[:, 0].astype(int), merged.connections[:, 1].astype(int)] = merged.connections[:, 2]
    assert np.allclose(w, 0.25 + 0.5 * np.eye(3))
    sim.Projection(pre, post, sim.OneToOneConnector(), sim.StaticSynapse(weight=-0.5), receptor_type="inhibitory",
                   label="c")
    with pytest.raises(UnsupportedFeatureError, match="'a\\+b' and 'c'.*receptors differ"):
        sim.reset()
        sim.run(1.0)


def test_assembly_projections_split_by_population():
    sim.setup(timestep=1.0)
    a = sim.Population(2, sim.IF_curr_exp(), label="a")
    b = sim.Population(3, sim.IF_curr_exp(), label="b")
    src = sim.Population(1, sim.SpikeSourceArray(spike_times=[[2.0]]), label="src")
    sim.Projection(src, a + b, sim.AllToAllConnector(), sim.StaticSynapse(weight=1.0), label="fan")
    sim.run(1.0)
    parts = {p.name: p for p in sim.last_network().projections}
    assert set(parts) == {"fan[src->a]", "fan[src->b]"}
    assert parts["fan[src->b]"].post == "b" and parts["fan[src->b]"].connections[:, 1].tolist() == [0, 1, 2]


def test_same_script_on_golden_float_and_nest_backends_agrees():
    counts = {}
    for backend in ("golden", "float", "nest"):
        src, exc = small_network(backend)
        exc.record("spikes")
        sim.run(60.0)
        counts[backend] = sim.last_result().spikes["exc"].sum(axis=0)
    assert counts["float"].tolist() == counts["nest"].tolist()  # float reference = NEST to rounding
    assert np.all(np.abs(counts["golden"] - counts["float"]) <= 1)
    assert counts["float"].sum() > 0


# ---- refusals -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, feature", [
    (lambda: sim.IF_cond_exp(), "IF_cond_exp"),
    (lambda: sim.Izhikevich(), "Izhikevich"),
    (lambda: sim.IF_curr_alpha(), "IF_curr_alpha"),
    (lambda: sim.Population(3, sim.IF_cond_exp, {}), "IF_cond_exp"),
    (lambda: sim.TsodyksMarkramSynapse(U=0.5), "TsodyksMarkramSynapse"),
    (lambda: sim.MultiplicativeWeightDependence(), "MultiplicativeWeightDependence"),
    (lambda: sim.Vogels2011Rule(), "Vogels2011Rule"),
    (lambda: sim.DCSource(amplitude=1.0), "DCSource"),
    (lambda: sim.KernelConnector((3, 3), (3, 3), (1, 1)), "KernelConnector"),
    (lambda: sim.extra_models.IFCurrExpCa2Adaptive(), "extra_models.IFCurrExpCa2Adaptive"),
    (lambda: sim.Population(2, sim.IF_curr_exp()).inject(None), "current injection"),
])
def test_unsupported_features_name_the_feature_and_what_is_supported(make, feature):
    sim.setup(timestep=1.0)
    with pytest.raises(UnsupportedFeatureError) as info:
        make()
    message = str(info.value)
    assert feature in message and "supported" in message


def test_cells_from_another_pynn_backend_are_refused_with_the_fix():
    pytest.importorskip("pyNN.nest")
    import pyNN.nest as nest

    sim.setup(timestep=1.0)
    with pytest.raises(UnsupportedFeatureError, match="use sim.IF_curr_exp from the module"):
        sim.Population(2, nest.IF_curr_exp())


def test_delays_round_to_steps_and_sub_step_delays_are_refused():
    sim.setup(timestep=1.0)
    src = sim.Population(1, sim.SpikeSourceArray(spike_times=[[2.0]]), label="src")
    post = sim.Population(2, sim.IF_curr_exp(), label="post")
    sim.Projection(src, post, sim.FromListConnector([(0, 0, 0.5, 2.4), (0, 1, 0.5, 2.6)],
                                                    column_names=["weight", "delay"]))
    sim.run(1.0)
    assert sim.last_network().projections[0].connections[:, 3].tolist() == [2.0, 3.0]
    sim.setup(timestep=1.0)
    src = sim.Population(1, sim.SpikeSourceArray(spike_times=[[2.0]]), label="src")
    post = sim.Population(1, sim.IF_curr_exp(), label="post")
    sim.Projection(src, post, sim.FromListConnector([(0, 0, 0.5, 0.2)], column_names=["weight", "delay"]))
    with pytest.raises(ValueError, match="shorter than one timestep"):
        sim.run(1.0)


# ---- sPyNNaker scripts run unchanged --------------------------------------------------------------------
SPYNNAKER_STYLE_SCRIPT = '''
import spikeforge.pynn as p   # was: import pyNN.spiNNaker as p

p.setup(timestep=1.0, min_delay=1.0, max_delay=144.0, time_scale_factor=1, n_boards_required=1)
p.set_number_of_neurons_per_core(p.IF_curr_exp, 100)
p.set_number_of_synapse_cores(p.IF_curr_exp, 1)
p.set_allow_delay_extensions(p.IF_curr_exp, True)
n = 50
cell_params = {"cm": 0.25, "i_offset": 0.0, "tau_m": 20.0, "tau_refrac": 2.0, "tau_syn_E": 5.0,
               "tau_syn_I": 5.0, "v_reset": -70.0, "v_rest": -65.0, "v_thresh": -50.0}
noise = p.Population(n, p.SpikeSourcePoisson(rate=20.0), label="noise", additional_parameters={"seed": 7})
exc = p.Population(n, p.IF_curr_exp(**cell_params), label="exc")
inh = p.Population(n // 4, p.IF_curr_exp(**cell_params), label="inh")
exc.set_max_atoms_per_core(32)
p.Projection(noise, exc, p.OneToOneConnector(), p.StaticSynapse(weight=2.0, delay=1.0), receptor_type="excitatory")
p.Projection(exc, inh, p.FixedProbabilityConnector(0.2, rng=p.NumpyRNG(seed=1)),
             p.StaticSynapse(weight=0.5, delay=p.RandomDistribution("uniform", (1.0, 3.0), rng=p.NumpyRNG(seed=2))),
             receptor_type="excitatory")
# sPyNNaker's convention: positive weights on the inhibitory receptor
p.Projection(inh, exc, p.AllToAllConnector(), p.StaticSynapse(weight=0.3, delay=1.0), receptor_type="inhibitory")
exc.record(["spikes", "v"])
p.run(200)
spikes = exc.spinnaker_get_data("spikes")
v = exc.spinnaker_get_data("v")
neo = exc.get_data(variables=["spikes"])
counts = exc.get_spike_counts()
p.end()
'''


def test_a_spynnaker_style_script_runs_unchanged_with_notes_for_spinnaker_only_calls():
    namespace = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(SPYNNAKER_STYLE_SCRIPT, "spynnaker_style.py", "exec"), namespace)
    notes = {str(w.message).split(" is ")[0] for w in caught if issubclass(w.category, SpiNNakerOnlyCallNote)}
    assert {"set_number_of_neurons_per_core", "set_number_of_synapse_cores", "set_allow_delay_extensions",
            "Population.set_max_atoms_per_core", "setup(time_scale_factor=...)"} <= notes
    spikes, v = namespace["spikes"], namespace["v"]
    assert spikes.ndim == 2 and spikes.shape[1] == 2 and len(spikes) == sum(namespace["counts"].values()) > 0
    assert set(np.unique(spikes[:, 0]).astype(int)) <= set(range(50))
    assert v.shape == (50 * 201, 3)
    inh = next(pr for pr in sim.last_network().projections if pr.receptor == "inhibitory")
    assert np.all(inh.connections[:, 2] == 0.3)


def test_isyn_recording_and_sampling_interval():
    src, exc = small_network()
    exc.record(["isyn_exc", "v"], sampling_interval=5.0)
    sim.run(50.0)
    seg = exc.get_data().segments[0]
    signals = {s.name: s for s in seg.analogsignals}
    assert signals["v"].shape == (11, 6) and signals["isyn_exc"].shape == (11, 6)
    full = sim.last_result().variables["exc"]["ie"]
    assert np.allclose(np.asarray(signals["isyn_exc"].magnitude)[1:], full[4::5])
    assert np.asarray(signals["isyn_exc"].magnitude).max() > 0


def test_the_board_backend_runs_the_script_on_a_virtual_board_bit_exactly_like_golden():
    pytest.importorskip("serial")
    from spikeforge.host.board import Board

    def script(**setup):
        sim.setup(timestep=1.0, **setup)
        src = sim.Population(3, sim.SpikeSourceArray(spike_times=[[2, 9], [4], [6, 20]]), label="src")
        exc = sim.Population(5, sim.IF_curr_exp(tau_m=10.0, i_offset=0.4), label="exc")
        sim.Projection(src, exc, sim.AllToAllConnector(), sim.StaticSynapse(weight=3.0, delay=1.0))
        sim.run(40.0)
        return sim.last_result()

    board = script(backend="board", port="virtual://")
    with Board("virtual://") as b:
        config = b.config(0)  # the core the (virtual) bitstream has
    golden = script(backend="golden", config=config)
    assert board.backend == "board" and board.spikes["exc"].sum() > 0
    assert np.array_equal(board.spikes["exc"], golden.spikes["exc"])


@pytest.mark.rtl
@pytest.mark.slow
def test_the_rtl_backend_runs_the_script_bit_exactly_like_golden():
    def script(**setup):
        sim.setup(timestep=1.0, **setup)
        src = sim.Population(2, sim.SpikeSourceArray(spike_times=[[2, 9], [4, 12]]), label="src")
        exc = sim.Population(3, sim.IF_curr_exp(tau_m=10.0, i_offset=0.4), label="exc")
        sim.Projection(src, exc, sim.AllToAllConnector(), sim.StaticSynapse(weight=3.0, delay=1.0))
        sim.run(30.0)
        return sim.last_result()

    rtl = script(backend="rtl")
    golden = script(backend="golden")
    assert rtl.backend == "rtl" and np.array_equal(rtl.spikes["exc"], golden.spikes["exc"])
