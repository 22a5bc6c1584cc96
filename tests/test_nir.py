"""NIR <-> Network: the mapping's physics, round trips, graphs built with the nir package, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from spikeforge.compiler.loaders import LoadError, load_any  # noqa: E402
from spikeforge.compiler.netfile import save_network  # noqa: E402
from spikeforge.compiler.network import (  # noqa: E402
    STDP, LIFParameters, Network, PoissonSource, Population, Projection, SpikeSource,
)
from spikeforge.compiler.nir_frontend import (  # noqa: E402
    SHORT_TAU_SYN_STEPS, NIRMappingError, read_nir, to_nir, write_nir,
)
from spikeforge.sim.backends import simulate  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nir_recurrent.nir"


def a(*values):
    return np.array(values, dtype=float)


def single_neuron_graph(neuron, weight=1.0):
    return nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([1])}),
        "w": nir.Linear(weight=np.array([[weight]])),
        "n": neuron,
        "out": nir.Output(output_type={"output": np.array([1])}),
    }, edges=[("in", "w"), ("w", "n"), ("n", "out")])


# ---- the physics of the mapping -----------------------------------------------------------------------
def test_lif_input_spike_moves_v_by_r_w_dt_over_tau_then_decays_with_tau():
    """NIR LIF, tau dv/dt = (v_leak - v) + R I, a spike = input 1 for one step: jump R w dt / tau."""
    tau_s, r, w, dt = 0.02, 2.0, 0.5, 1.0  # tau in seconds (snnTorch/Norse convention), dt in ms
    g = single_neuron_graph(nir.LIF(tau=a(tau_s), r=a(r), v_leak=a(0.0), v_threshold=a(100.0)), w)
    net = read_nir(g, dt, inputs={"in": [[10.0]]})
    res = simulate(net, 80, backend="float", record=("v",))
    v = res.variables["n"]["v"][:, 0]
    jump = r * w * dt / (tau_s * 1000.0)
    # spike at t = 10 ms (step 9) arrives in step 10, moves v in step 11; after the short synaptic
    # current has died out (tau_s = dt/8), v follows the NIR solution exactly up to exp(-8) of the jump
    t = np.arange(80) + 1.0  # time of each row
    expected = np.where(t >= 12.0, jump * np.exp(-(t - 11.0) / 20.0), 0.0)
    late = t >= 12.0
    assert np.allclose(v[late], expected[late], rtol=0, atol=jump * 2e-3)
    assert np.all(v[t <= 10.0] == 0.0)
    assert SHORT_TAU_SYN_STEPS * dt == net.population("n").params.tau_syn_E


def test_cubalif_maps_exactly_onto_if_curr_exp():
    g = single_neuron_graph(nir.CubaLIF(tau_syn=a(0.005), tau_mem=a(0.02), r=a(4.0), v_leak=a(-1.0),
                                        v_threshold=a(1.0), v_reset=a(-2.0), w_in=a(3.0)), weight=0.5)
    net = read_nir(g, 0.5)
    p = net.population("n").params
    assert (p.tau_m, p.cm, p.v_rest, p.v_thresh, p.v_reset, p.tau_syn_E, p.tau_syn_I) == \
        (20.0, 5.0, -1.0, 1.0, -2.0, 5.0, 5.0)
    (proj,) = net.projections
    # the synaptic current jumps by w_in * w * dt / tau_syn (the NIR reference implementation's Euler step)
    assert proj.connections[0, 2] == pytest.approx(3.0 * 0.5 * 0.5 / 5.0)
    assert proj.connections[0, 3] == 0.5 and proj.receptor == "excitatory"


def test_affine_bias_becomes_i_offset_with_the_nir_steady_state():
    nodes = {
        "in": nir.Input(input_type={"input": np.array([2])}),
        "fc": nir.Affine(weight=np.zeros((2, 2)), bias=a(0.3, 0.6)),
        "n": nir.LIF(tau=a(0.01, 0.01), r=a(2.0, 2.0), v_leak=a(0.1, 0.1), v_threshold=a(10.0, 10.0)),
    }
    net = read_nir(nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "n")]), 1.0)
    assert np.allclose(net.population("n").params.i_offset, [0.3, 0.6])
    res = simulate(net, 300, backend="float", record=("v",))
    assert np.allclose(res.variables["n"]["v"][-1], 0.1 + 2.0 * a(0.3, 0.6), atol=1e-6)  # v_leak + R b


def test_if_integrates_without_leak():
    g = single_neuron_graph(nir.IF(r=a(2.0), v_threshold=a(100.0), v_reset=a(0.0)), weight=1.5)
    net = read_nir(g, 1.0, inputs={"in": [[5.0, 20.0]]})
    v = simulate(net, 60, backend="float", record=("v",)).variables["n"]["v"][:, 0]
    assert v[-1] == pytest.approx(2 * 2.0 * 1.5 * 1.0 / 1000.0, rel=1e-6)  # two jumps of R w dt, no decay


def test_signs_split_into_receptors_and_delays_add_to_the_transport_step():
    nodes = {
        "in": nir.Input(input_type={"input": np.array([2])}),
        "fc": nir.Linear(weight=np.array([[1.0, -2.0], [0.0, 0.5]])),
        "d": nir.Delay(delay=a(0.003, 0.001)),
        "n": nir.CubaLIF(tau_syn=a(0.005, 0.005), tau_mem=a(0.02, 0.02), r=a(1.0, 1.0), v_leak=a(0.0, 0.0),
                         v_threshold=a(1.0, 1.0)),
    }
    net = read_nir(nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "d"), ("d", "n")]), 1.0)
    rows = {(p.receptor, int(i), int(j)): d for p in net.projections for i, j, _, d in p.connections}
    # neuron 0's inputs: Delay 3 ms + the core's one step = 4 ms; neuron 1's: 1 + 1 = 2 ms
    assert rows == {("excitatory", 0, 0): 4.0, ("inhibitory", 1, 0): 4.0, ("excitatory", 1, 1): 2.0}


def test_recurrent_self_edge_and_cycles_through_neurons_become_recurrent_projections():
    n = 3
    lif = lambda: nir.LIF(tau=np.full(n, 0.02), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n))
    nodes = {
        "in": nir.Input(input_type={"input": np.array([n])}),
        "w_in": nir.Linear(weight=np.eye(n)),
        "a": lif(), "b": lif(),
        "ab": nir.Linear(weight=np.full((n, n), 0.2)),
        "ba": nir.Linear(weight=np.full((n, n), -0.1)),
        "aa": nir.Linear(weight=np.ones((n, n)) - np.eye(n)),
        "out": nir.Output(output_type={"output": np.array([n])}),
    }
    edges = [("in", "w_in"), ("w_in", "a"), ("a", "ab"), ("ab", "b"), ("b", "ba"), ("ba", "a"), ("a", "aa"), ("aa", "a"),
             ("b", "out")]
    net = read_nir(nir.NIRGraph(nodes=nodes, edges=edges), 1.0)
    pairs = {(p.pre, p.post, p.receptor): len(p.connections) for p in net.projections}
    assert pairs == {("in", "a", "excitatory"): 3, ("a", "b", "excitatory"): 9, ("b", "a", "inhibitory"): 9,
                     ("a", "a", "excitatory"): 6}
    res = simulate(net, 50, backend="golden")
    assert set(res.spikes) == {"a", "b"}


def test_nested_graphs_are_flattened():
    inner = nir.NIRGraph(nodes={
        "i": nir.Input(input_type={"input": np.array([2])}),
        "lin": nir.Linear(weight=np.eye(2)),
        "lif": nir.LIF(tau=a(0.02, 0.02), r=a(1.0, 1.0), v_leak=a(0.0, 0.0), v_threshold=a(1.0, 1.0)),
        "o": nir.Output(output_type={"output": np.array([2])}),
    }, edges=[("i", "lin"), ("lin", "lif"), ("lif", "o")])
    outer = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([2])}),
        "block": inner,
        "out": nir.Output(output_type={"output": np.array([2])}),
    }, edges=[("in", "block"), ("block", "out")])
    net = read_nir(outer, 1.0)
    assert [p.label for p in net.populations] == ["block.lif"]
    assert [(p.pre, p.post) for p in net.projections] == [("in", "block.lif")]


def test_readout_nodes_do_not_spike_and_may_only_feed_outputs():
    li = nir.LI(tau=a(0.02), r=a(1.0), v_leak=a(0.0))
    net = read_nir(single_neuron_graph(li, 50.0), 1.0, inputs={"in": [[5.0, 6.0, 7.0]]})
    res = simulate(net, 40, backend="float", record=("v",))
    assert res.spikes["n"].sum() == 0 and res.variables["n"]["v"].max() > 0
    nodes = {"in": nir.Input(input_type={"input": np.array([1])}), "w": nir.Linear(weight=np.ones((1, 1))),
             "li": nir.LI(tau=a(0.02), r=a(1.0), v_leak=a(0.0)), "w2": nir.Linear(weight=np.ones((1, 1))),
             "lif": nir.LIF(tau=a(0.02), r=a(1.0), v_leak=a(0.0), v_threshold=a(1.0))}
    g = nir.NIRGraph(nodes=nodes, edges=[("in", "w"), ("w", "li"), ("li", "w2"), ("w2", "lif")])
    with pytest.raises(NIRMappingError, match="LI node 'li' drives.*spikes only"):
        read_nir(g, 1.0)


# ---- refusals -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("node, type_name", [
    (lambda: nir.Conv2d(input_shape=(4, 4), weight=np.ones((1, 1, 2, 2)), stride=1, padding=0, dilation=1,
                        groups=1, bias=np.zeros(1)), "Conv2d"),
    (lambda: nir.Conv1d(input_shape=4, weight=np.ones((1, 1, 2)), stride=1, padding=0, dilation=1, groups=1,
                        bias=np.zeros(1)), "Conv1d"),
    (lambda: nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
     "SumPool2d"),
    (lambda: nir.Flatten(input_type={"input": np.array([2, 2])}, start_dim=0, end_dim=-1), "Flatten"),
    (lambda: nir.Threshold(threshold=a(1.0, 1.0)), "Threshold"),
])
def test_unmappable_nodes_stop_with_the_node_name_and_type(node, type_name):
    g = nir.NIRGraph(nodes={"in": nir.Input(input_type={"input": np.array([2])}), "bad": node()},
                     edges=[("in", "bad")], type_check=False)
    with pytest.raises(NIRMappingError, match=f"node 'bad' of type {type_name}"):
        read_nir(g, 1.0)


def test_an_algebraic_loop_and_a_missing_dt_are_refused():
    nodes = {"in": nir.Input(input_type={"input": np.array([1])}), "x": nir.Linear(weight=np.ones((1, 1))),
             "y": nir.Scale(scale=a(0.5)),
             "lif": nir.LIF(tau=a(0.02), r=a(1.0), v_leak=a(0.0), v_threshold=a(1.0))}
    g = nir.NIRGraph(nodes=nodes, edges=[("in", "x"), ("x", "y"), ("y", "x"), ("y", "lif")], type_check=False)
    with pytest.raises(NIRMappingError, match="x -> y -> x form a cycle of linear nodes"):
        read_nir(g, 1.0)
    plain = single_neuron_graph(nir.LIF(tau=a(0.02), r=a(1.0), v_leak=a(0.0), v_threshold=a(1.0)))
    with pytest.raises(NIRMappingError, match="NIR carries no timestep: give dt"):
        read_nir(plain)


# ---- round trip ------------------------------------------------------------------------------------------
def round_trip_network() -> Network:
    net = Network(dt=0.5, name="rt")
    net.add(SpikeSource("stim", 3, spike_times=[[1.0, 4.5], [], [2.0]]))
    net.add(PoissonSource("noise", 2, rate=np.array([10.0, 30.0]), seed=9, start=5.0, stop=80.0))
    net.add(Population("exc", 4, LIFParameters(tau_m=np.array([10.0, 20.0, 30.0, 40.0]), cm=0.5, v_rest=-60.0,
                                               v_reset=-70.0, v_thresh=-52.0, tau_syn_E=4.0, tau_syn_I=4.0,
                                               tau_refrac=1.5, i_offset=0.2), v_init=-61.0))
    net.add(Population("inh", 2, LIFParameters(i_offset=0.4)))
    net.add(Projection("stim", "exc", weights=np.full((3, 4), 0.6), delays=np.where(np.eye(3, 4) > 0, 2.0, 0.5)))
    net.add(Projection("noise", "exc", weights=np.array([[0.0, 0.3, 0.0, 0.0], [0.2, 0.0, 0.0, 0.1]]), delays=1.0))
    net.add(Projection("exc", "inh", connections=np.array([[0, 0, 0.5, 1.0], [3, 1, 0.25, 1.5]]),
                       label="e2i"))
    net.add(Projection("inh", "exc", weights=np.full((2, 4), 0.8), receptor="inhibitory", label="i2e"))
    net.add(Projection("exc", "exc", connections=np.array([[0, 1, 0.0, 0.5], [1, 2, 0.3, 0.5]]),
                       plasticity=STDP(tau_plus=15.0, A_plus=0.02, w_max=0.9), label="plastic"))
    return net


def synapses(net):
    sizes = {o.label: o.size for o in [*net.populations, *net.sources]}
    out = {}
    for p in net.projections:
        w, d, e = p.dense(sizes[p.pre], sizes[p.post])
        out[p.name] = (p.pre, p.post, p.receptor, p.plasticity, e, np.where(e, w, 0.0), np.where(e, d, 0.0))
    return out


def test_write_then_read_gives_the_same_network(tmp_path):
    net = round_trip_network()
    path = write_nir(net, tmp_path / "rt.nir")
    back = read_nir(path)  # dt and the time unit come from the file spikeforge wrote
    assert back.dt == net.dt and back.name == "rt"
    for pa, pb in zip(net.populations, back.populations):
        assert pa.label == pb.label and pa.size == pb.size
        for f in ("tau_m", "cm", "v_rest", "v_reset", "v_thresh", "tau_syn_E", "tau_syn_I", "tau_refrac", "i_offset"):
            assert np.allclose(getattr(pa.params, f), getattr(pb.params, f), rtol=1e-12), (pa.label, f)
        assert np.allclose(pa.v_init if pa.v_init is not None else pa.params.v_rest, pb.v_init)
    assert [s.label for s in back.sources] == ["stim", "noise"]
    assert back.source("stim").spike_times == [[1.0, 4.5], [], [2.0]]
    noise = back.source("noise")
    assert (noise.seed, noise.start, noise.stop) == (9, 5.0, 80.0) and np.allclose(noise.rate, [10.0, 30.0])
    sa, sb = synapses(net), synapses(back)
    assert set(sa) == set(sb)
    for name in sa:
        pre, post, rec, stdp, e, w, d = sa[name]
        pre2, post2, rec2, stdp2, e2, w2, d2 = sb[name]
        assert (pre, post, rec, stdp) == (pre2, post2, rec2, stdp2), name
        assert np.array_equal(e, e2) and np.allclose(w, w2, rtol=1e-12) and np.allclose(d, d2), name
    # and it runs the same: identical spikes on the golden core
    ra, rb = simulate(net, 200, backend="golden"), simulate(back, 200, backend="golden")
    assert all(np.array_equal(ra.spikes[k], rb.spikes[k]) for k in ra.spikes)


def test_written_files_are_plain_nir_that_the_nir_package_reads(tmp_path):
    path = write_nir(round_trip_network(), tmp_path / "rt.nir")
    graph = nir.read(path)
    assert isinstance(graph.nodes["exc"], nir.CubaLIF) and isinstance(graph.nodes["stim"], nir.Input)
    assert np.allclose(graph.nodes["exc"].tau_mem, a(10.0, 20.0, 30.0, 40.0) / 1000.0)  # seconds
    assert any(isinstance(n, nir.Delay) for n in graph.nodes.values())
    assert graph.nodes["i2e"].weight.max() < 0  # inhibition is a negative weight in NIR


def test_networks_nir_cannot_express_are_refused_on_export():
    net = round_trip_network()
    net.population("inh").params.tau_syn_I = 10.0
    with pytest.raises(NIRMappingError, match="population 'inh': tau_syn_E != tau_syn_I"):
        to_nir(net)
    net = round_trip_network()
    net.population("inh").params.reset = "subtract_threshold"
    with pytest.raises(NIRMappingError, match="reset"):
        to_nir(net)


# ---- loaders and the example ------------------------------------------------------------------------------
def test_load_any_dispatches_on_the_suffix(tmp_path):
    net = round_trip_network()
    yaml_path = save_network(net, tmp_path / "rt.yaml")
    nir_path = write_nir(net, tmp_path / "rt.nir")
    assert load_any(yaml_path).name == load_any(nir_path).name == "rt"
    assert load_any(nir_path, dt=0.25).dt == 0.25  # the user's dt wins for NIR
    with pytest.raises(LoadError, match="timestep is 0.5 ms, but dt = 1.0 ms"):
        load_any(yaml_path, dt=1.0)
    bad = tmp_path / "net.txt"
    bad.write_text("x")
    with pytest.raises(LoadError, match="unknown network file type .txt"):
        load_any(bad)
    with pytest.raises(FileNotFoundError):
        load_any(tmp_path / "missing.nir")


def test_the_example_nir_file_runs_on_the_golden_core_and_the_float_reference():
    net = load_any(EXAMPLE, dt=1.0)  # written with the nir package in seconds (docs/nir.md shows how)
    assert {p.label for p in net.populations} == {"hidden", "readout"}
    golden = simulate(net, 400, backend="golden")
    ref = simulate(net, 400, backend="float")
    # the Affine bias drives the upper half of the hidden layer without any input
    assert golden.spikes["hidden"][:, 4:].sum() > 20 and golden.spikes["hidden"][:, :3].sum() == 0
    for label in ("hidden", "readout"):
        g, f = golden.spike_counts(label), ref.spike_counts(label)
        assert np.all(np.abs(g - f) <= 0.2 * f + 3), (label, g.tolist(), f.tolist())


def test_export_command_writes_nir(tmp_path):
    from typer.testing import CliRunner
    import typer

    from spikeforge.compiler.nir_frontend import export_command

    app = typer.Typer()
    app.command("export")(export_command)
    app.command("noop")(lambda: None)
    src = save_network(round_trip_network(), tmp_path / "rt.yaml")
    out = tmp_path / "rt.nir"
    result = CliRunner().invoke(app, ["export", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert read_nir(out).population("exc").size == 4
    result = CliRunner().invoke(app, ["export", str(tmp_path / "missing.yaml"), "-o", str(out)])
    assert result.exit_code == 2 and "no such network file" in result.output


def test_cli_compile_takes_nir_files(tmp_path):
    """`spikeforge compile net.nir --dt` builds the board files (the Artix-7 board needs no P&R here:
    without Vivado it writes the project); without --dt it stops and names the option."""
    import json

    from typer.testing import CliRunner

    from spikeforge.cli import app

    src = Path(__file__).resolve().parents[1] / "examples" / "nir_recurrent.nir"
    out = tmp_path / "board"
    result = CliRunner().invoke(app, ["compile", str(src), "--board", "cmod-a7-35t", "--dt", "1.0",
                                      "--no-vivado", "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    from spikeforge.compiler import compile as compile_network

    expected = compile_network(load_any(src, 1.0)).config
    assert report["core_config"]["n_neurons"] == expected.n_neurons
    assert report["core_config"]["n_inputs"] == expected.n_inputs
    assert (out / "top.v").exists() and (out / "build.tcl").exists()
    result = CliRunner().invoke(app, ["compile", str(src), "--board", "cmod-a7-35t", "-o", str(tmp_path / "b2")])
    assert result.exit_code != 0
    assert "--dt" in result.output and "timestep" in result.output

