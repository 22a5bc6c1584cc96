"""Network files: lossless round trips (YAML/JSON, inline/side file, npz/HDF5), connectors written
back, the examples, and a clear message (file, line, field path, fix) for every kind of bad input."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from spikeforge.compiler.netfile import (
    INLINE_LIMIT,
    SCHEMA,
    NetworkFileError,
    load_network,
    save_network,
)
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
from spikeforge.compiler.validate import NetworkValidationError

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


# ---- comparing networks field by field ----------------------------------------------------------------
def assert_same(a, b, where="network"):
    """Equal field by field; arrays bit-exact (float64 bit patterns) and of the same kind (scalar vs array)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), f"{where}: {type(a)} vs {type(b)}"
        assert a.shape == b.shape, f"{where}: shape {a.shape} vs {b.shape}"
        assert np.array_equal(np.asarray(a, np.float64).view(np.uint64), np.asarray(b, np.float64).view(np.uint64)), where
    elif dataclasses.is_dataclass(a):
        assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: {a!r} vs {b!r}"
        for k, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{k}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b and type(a) is type(b) or (isinstance(a, (int, float)) and float(a) == float(b)), \
            f"{where}: {a!r} vs {b!r}"


def full_network(big: int = 0) -> Network:
    """Every feature of the format. ``big`` > 0 adds arrays larger than INLINE_LIMIT."""
    rng = np.random.default_rng(5)
    net = Network(dt=0.5, name="everything")
    net.add(Population("exc", 6, LIFParameters(
        tau_m=rng.uniform(10, 30, 6), v_thresh=-50.0 + rng.random(6) * 1e-9, i_offset=0.1,
        reset="subtract_threshold", threshold_adaptation=ThresholdAdaptation(0.07, math.inf)),
        v_init=rng.uniform(-70, -60, 6), current_input=True))
    net.add(Population("inh", 3, LIFParameters(tau_refrac=1.5, threshold_adaptation=ThresholdAdaptation(1.0, 250.0)),
                       v_init=-66.0))
    net.add(PoissonSource("noise", 4, rate=np.array([1.0, 2.5, 0.0, 33.3]), seed=9, start=10.0, stop=None))
    net.add(PoissonSource("bg", 2, rate=7.0, seed=1, start=0.0, stop=250.5))
    net.add(SpikeSource("cue", 3, spike_times=[[0.5, 1.0 / 3.0 + 1.0], [], [7.0]]))
    w = rng.random((4, 6)) * (rng.random((4, 6)) < 0.5)
    net.add(Projection("noise", "exc", weights=w, delays=np.where(w > 0, 1.5, 0.5), label="dense"))
    net.add(Projection("exc", "inh", weights=rng.random((6, 3)), delays=1.0, receptor="excitatory"))
    net.add(Projection("inh", "exc", connections=np.array([[0, 1, 0.25, 0.5], [2, 5, 1 / 3, 2.0]]),
                       receptor="inhibitory", label="list"))
    net.add(Projection("cue", "inh", connections=np.array([[0, 0, 0.2, 0.5], [1, 2, 0.4, 1.0]]),
                       plasticity=STDP(tau_plus=16.8, tau_minus=33.7, A_plus=0.005, A_minus=0.0055, w_min=0.1, w_max=0.9),
                       label="plastic"))
    net.add(Projection("bg", "inh", weights=np.full((2, 3), 0.3), plasticity=STDP(), label="plastic_dense"))
    if big:
        net.add(Population("big", big, LIFParameters(tau_m=rng.uniform(5, 40, big))))
        net.add(Projection("big", "big", weights=rng.random((big, big)) * 1e-3 + 1e-300, delays=0.5, label="big_rec"))
        rows = np.array([[i, j, rng.random(), 0.5 * (1 + (i + j) % 4)] for i in range(big) for j in range(3)])
        net.add(Projection("big", "inh", connections=rows, label="big_list"))  # 4 * 3 * big values
        net.add(SpikeSource("many", 2, spike_times=[list(np.arange(1, 400) * 0.5), list(np.arange(1, 300) * 0.5 + 0.25)]))
        net.add(Projection("many", "big", connections=np.array([[0, 0, 0.5, 0.5]]), label="many_big"))
    return net


# ---- round trips ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_round_trip_inline(tmp_path, suffix):
    net = full_network()
    path = save_network(net, tmp_path / f"net{suffix}")
    assert not (tmp_path / "net.npz").exists(), "small arrays must stay inline"
    assert_same(load_network(path), net)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize("side", [None, "arrays.h5", "arrays.npz"])
def test_round_trip_with_side_file_is_bit_exact(tmp_path, suffix, side):
    net = full_network(big=40)  # 40 x 40 = 1600 > INLINE_LIMIT
    path = save_network(net, tmp_path / f"net{suffix}", side_file=side)
    side_path = tmp_path / (side or "net.npz")
    assert side_path.exists()
    text = path.read_text()
    assert Path(side_path).name in text
    loaded = load_network(path)
    assert_same(loaded, net)
    # the big matrix went to the side file, the small ones stayed inline
    doc = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    projs = {p.get("label"): p for p in doc["projections"]}
    assert isinstance(projs["big_rec"]["weights"], dict)
    assert isinstance(projs["list"]["connections"], list)
    assert isinstance(doc["sources"][-1]["spike_times"], dict)  # 2 x 698 values > INLINE_LIMIT
    assert INLINE_LIMIT == 1000


def test_side_file_float64_bits_survive(tmp_path):
    """Values that decimal printing would round: subnormals, 1/3, huge and tiny magnitudes."""
    values = np.array([1 / 3, 5e-324, 2.2250738585072014e-308, 1e300, 0.1 + 0.2, np.nextafter(1.0, 2.0)])
    w = np.resize(values, (40, 40))
    net = Network(name="bits")
    net.add(Population("a", 40))
    net.add(Projection("a", "a", weights=w, label="w"))
    for side in ("a.npz", "a.h5"):
        loaded = load_network(save_network(net, tmp_path / f"bits_{side[-2:]}.yaml", side_file=side))
        assert np.array_equal(loaded.projections[0].weights.view(np.uint64), w.view(np.uint64))
    small = Network(name="small")
    small.add(Population("a", 6, v_init=values - 60.0))
    for suffix in (".yaml", ".json"):
        loaded = load_network(save_network(small, tmp_path / f"inline{suffix}"))
        assert np.array_equal(loaded.populations[0].v_init.view(np.uint64), (values - 60.0).view(np.uint64))


def test_hand_written_side_files_npz_and_h5(tmp_path):
    import h5py

    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 7  # float32 is widened exactly
    np.savez(tmp_path / "m.npz", w=w)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.create_dataset("group/w", data=w)
        f.create_dataset("group/rows", data=np.array([[0, 1, 0.5, 1.0], [3, 2, 0.25, 2.0]]))
    (tmp_path / "net.yaml").write_text(textwrap.dedent("""\
        spikeforge: 1
        populations:
          - {label: a, size: 3}
          - {label: b, size: 4}
        projections:
          - {label: npz, pre: a, post: b, weights: {file: m.npz, key: w}}
          - {label: h5, pre: b, post: a, weights: {file: m.h5, key: group/w}}
        """).replace("weights: {file: m.h5, key: group/w}", "connections: {file: m.h5, key: group/rows}"))
    net = load_network(tmp_path / "net.yaml")
    assert net.name == "net"  # default: the file's stem
    assert net.projections[0].weights.dtype == np.float64
    assert np.array_equal(net.projections[0].weights, w.astype(np.float64))
    assert net.projections[1].connections.tolist() == [[0, 1, 0.5, 1.0], [3, 2, 0.25, 2.0]]


def test_connectors_are_written_back_while_they_match(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent("""\
        spikeforge: 1
        populations: [{label: a, size: 30}, {label: b, size: 30}]
        projections:
          - {label: fp, pre: a, post: a, connector: {fixed_probability: {p: 0.2, seed: 4, allow_self_connections: false}},
             weight: 0.5, delay: 2.0}
          - {label: o2o, pre: a, post: b, connector: one_to_one, weight: 1.0}
          - {label: all, pre: b, post: b, connector: {all_to_all: {allow_self_connections: false}}, weight: 0.1,
             plasticity: {stdp: {}}}
        """))
    net = load_network(path)
    fp, o2o, all_ = net.projections
    assert fp.weights.shape == (30, 30) and not np.diag(fp.weights).any() and fp.delays == 2.0
    assert np.array_equal(o2o.weights, np.eye(30))
    assert all_.weights is None and len(all_.connections) == 30 * 29  # plastic and sparse: a connection list
    out = save_network(net, tmp_path / "out.yaml")
    text = out.read_text()
    assert "fixed_probability" in text and "one_to_one" in text and "all_to_all" in text
    for proj in yaml.safe_load(text)["projections"]:
        assert "connector" in proj and "weights" not in proj and "connections" not in proj
    assert not (tmp_path / "out.npz").exists()
    assert_same(load_network(out), net)
    # learning changed the weights: the connector no longer describes them, the arrays are written
    fp.weights = fp.weights * 1.5
    out2 = save_network(net, tmp_path / "out2.yaml")
    doc = yaml.safe_load(out2.read_text())
    assert "connector" not in doc["projections"][0] and "weights" in doc["projections"][0]
    assert doc["projections"][1]["connector"] == "one_to_one"
    reloaded = load_network(out2)
    assert reloaded.projections[0].connector is None
    assert np.array_equal(reloaded.projections[0].weights, fp.weights)


def test_units_in_strings_and_infinity(tmp_path):
    path = tmp_path / "u.yaml"
    path.write_text(textwrap.dedent("""\
        spikeforge: 1
        dt: 0.5 ms
        populations:
          - label: a
            size: 2
            neuron: {tau_m: 20 ms, v_thresh: "-50mV", i_offset: [0.1 nA, 2e-1], threshold_adaptation: {tau: .inf}}
        sources: [{label: s, size: 1, poisson: {rate: 5 Hz}}]
        """))
    net = load_network(path)
    p = net.populations[0].params
    assert net.dt == 0.5 and p.tau_m == 20.0 and p.v_thresh == -50.0
    assert p.i_offset.tolist() == [0.1, 0.2]
    assert p.threshold_adaptation.tau == math.inf and p.threshold_adaptation.increment == 0.05
    assert net.sources[0].rate == 5.0


def test_saved_yaml_is_readable(tmp_path):
    text = save_network(full_network(), tmp_path / "n.yaml").read_text()
    assert text.startswith("# spikeforge network file, format version 1")
    assert "spikeforge: 1" in text
    assert "- [0, 1, 0.25, 0.5]" in text  # connection rows: integer indices, one row per line
    assert "tau: .inf" in text


# ---- the examples ------------------------------------------------------------------------------------------
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml")) + sorted(EXAMPLES.glob("*.json"))


def test_the_required_examples_exist():
    names = {p.name for p in EXAMPLE_FILES}
    assert {"balanced.yaml", "stdp_pair.yaml", "delays.yaml", "adaptive.yaml", "recurrent.yaml"} <= names
    assert (EXAMPLES / "recurrent.npz").exists()


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_loads_validates_and_round_trips(path, tmp_path):
    net = load_network(path)
    assert net.name == path.stem
    assert_same(load_network(save_network(net, tmp_path / path.name)), net)


def test_example_contents():
    bal = load_network(EXAMPLES / "balanced.yaml")
    assert bal.n_neurons == 100 and {p.receptor for p in bal.projections} == {"excitatory", "inhibitory"}
    assert isinstance(bal.sources[0], PoissonSource)
    stdp = load_network(EXAMPLES / "stdp_pair.yaml")
    assert any(p.plasticity is not None for p in stdp.projections)
    delays = load_network(EXAMPLES / "delays.yaml")
    assert sorted(delays.projections[0].connections[:, 3]) == [1, 2, 3, 4, 5, 6, 7, 8]
    adaptive = load_network(EXAMPLES / "adaptive.yaml").populations[0].params
    assert adaptive.reset == "subtract_threshold" and adaptive.threshold_adaptation is not None
    rec = load_network(EXAMPLES / "recurrent.yaml")
    ring = [p for p in rec.projections if p.label == "ring_ring"][0]
    assert ring.weights.shape == (50, 50) and np.ndim(ring.delays) == 2


# ---- bad input ----------------------------------------------------------------------------------------------
GOOD = """\
spikeforge: 1
name: t
dt: 1.0
populations:
  - label: exc
    size: 4
    neuron: {tau_m: 20.0}
sources:
  - {label: noise, size: 3, poisson: {rate: 10.0}}
projections:
  - label: p0
    pre: noise
    post: exc
    connector: all_to_all
    weight: 0.5
"""


def write(tmp_path, text, name="net.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load_error(path) -> NetworkError:
    with pytest.raises(NetworkError) as info:
        load_network(path)
    return info.value


def line_of(text: str, fragment: str) -> int:
    return next(k + 1 for k, line in enumerate(text.splitlines()) if fragment in line)


def test_good_base_file_loads(tmp_path):
    load_network(write(tmp_path, GOOD))


# (replace this, with that, expected message parts; {file} is the file path)
BAD = {
    "unknown field with suggestion": ("neuron: {tau_m: 20.0}", "neuron: {tau_mem: 20.0}",
                                      ["populations[0].neuron.tau_mem", "unknown field 'tau_mem'",
                                       "did you mean 'tau_m'?", "allowed fields here: tau_m, cm,"]),
    "unknown top-level field": ("dt: 1.0", "dt: 1.0\nneurons: 3",
                                ["neurons: unknown field 'neurons'", "allowed fields here: spikeforge, name, dt"]),
    "wrong type": ("weight: 0.5", "weight: heavy",
                   ["projections[0].weight: expected a number (nA), got 'heavy'", "fix: write a number in nA"]),
    "wrong unit": ("tau_m: 20.0", "tau_m: 20 mV",
                   ["populations[0].neuron.tau_m: expected a number in ms, got '20 mV'", "'mV' is not ms",
                    "does not convert units"]),
    "bool is not a number": ("weight: 0.5", "weight: true", ["projections[0].weight", "got true"]),
    "missing required": ("    size: 4\n", "", ["populations[0]", "missing required field 'size'", "add 'size: ...'"]),
    "size not integer": ("size: 4", "size: four", ["populations[0].size: expected a whole number, got 'four'"]),
    "bad enum": ("connector: all_to_all", "connector: all_to_al",
                 ["projections[0].connector: unknown value 'all_to_al'", "did you mean 'all_to_all'?"]),
    "bad receptor": ("    weight: 0.5", "    weight: 0.5\n    receptor: inhibitatory",
                     ["projections[0].receptor", "did you mean 'inhibitory'"]),
    "connector and weights": ("    weight: 0.5", "    weight: 0.5\n    weights: [[1.0]]",
                              ["projections[0]", "gives connector and weights", "exactly one of"]),
    "no synapses": ("    connector: all_to_all\n    weight: 0.5\n", "", ["projections[0]", "gives no synapses"]),
    "delays with connector": ("    weight: 0.5", "    weight: 0.5\n    delays: 2.0",
                              ["projections[0].delays", "'delays' does not go with 'connector'", "write 'delay'"]),
    "connector without weight": ("    weight: 0.5\n", "", ["projections[0]", "a connector needs 'weight'"]),
    "fixed_probability without p": ("connector: all_to_all", "connector: {fixed_probability: {seed: 1}}",
                                    ["projections[0].connector.fixed_probability", "needs the probability p"]),
    "connector option": ("connector: all_to_all", "connector: {one_to_one: {p: 0.5}}",
                         ["projections[0].connector.one_to_one.p", "one_to_one has no option 'p'"]),
    "one_to_one size mismatch": ("connector: all_to_all", "connector: one_to_one",
                                 ["projections[0].connector", "equal-sized groups", "pre size 3 and post size 4"]),
    "source kind": ("poisson: {rate: 10.0}", "rate: 10.0",
                    ["sources[0].rate", "unknown field 'rate'"]),
    "source needs one kind": ("{label: noise, size: 3, poisson: {rate: 10.0}}", "{label: noise, size: 3}",
                              ["sources[0]", "exactly one of 'poisson' and 'spike_times'"]),
    "ragged matrix": ("    connector: all_to_all\n    weight: 0.5\n", "    weights: [[1, 2], [3]]\n",
                      ["projections[0].weights", "rows of different lengths", "rectangular"]),
    "matrix element": ("    connector: all_to_all\n    weight: 0.5\n", "    weights: [[1, 2], [3, x]]\n",
                       ["projections[0].weights[1][1]: expected a number (nA), got 'x'"]),
    "connection row length": ("    connector: all_to_all\n    weight: 0.5\n", "    connections: [[0, 1, 0.5]]\n",
                              ["projections[0].connections", "rows have 3 values, expected 4"]),
    "weights matrix shape (semantic)": ("    connector: all_to_all\n    weight: 0.5\n", "    weights: [[1, 2], [3, 4]]\n",
                                        ["projections[0].weights", "shape (2, 2)", "(3, 4)", "3 x 4 matrix"]),
    "spike times not lists": ("{label: noise, size: 3, poisson: {rate: 10.0}}", "{label: noise, size: 3, spike_times: [1, 2, 3]}",
                              ["sources[0].spike_times[0]: expected a list of spike times (ms), got 1"]),
    "semantic rule": ("tau_m: 20.0", "tau_m: -20.0",
                      ["populations[0].neuron.tau_m (population 'exc'): = -20.0 ms", "a time constant must be > 0"]),
    "missing side file": ("    connector: all_to_all\n    weight: 0.5\n", "    weights: {file: nope.npz, key: w}\n",
                          ["projections[0].weights.file", "side file 'nope.npz' not found", "relative to the network file"]),
    "side file type": ("    connector: all_to_all\n    weight: 0.5\n", "    weights: {file: w.csv, key: w}\n",
                       ["projections[0].weights.file", "neither .npz nor .h5"]),
    "side ref fields": ("    connector: all_to_all\n    weight: 0.5\n", "    weights: {file: w.npz, name: w}\n",
                        ["projections[0].weights.name", "unknown field 'name'", "allowed fields here: file, key"]),
    "version unknown": ("spikeforge: 1", "spikeforge: 2",
                        ["spikeforge: format version 2 is not supported", "reads format versions 1"]),
    "version missing": ("spikeforge: 1\n", "", ["spikeforge: missing the format version", "add 'spikeforge: 1'"]),
    "duplicate key": ("dt: 1.0", "dt: 1.0\ndt: 2.0", ["the key 'dt' appears twice"]),
    "top level not mapping": (GOOD, "- 1\n- 2\n", ["the top level must be a mapping"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_message_names_file_line_field_and_fix(tmp_path, name):
    old, new, expected = BAD[name]
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    path = write(tmp_path, text)
    message = str(load_error(path))
    assert message.startswith(str(path)), message
    assert "fix: " in message
    assert re.search(r", line \d+", message) or "line " in message, message
    for part in expected:
        assert part in message, f"{part!r} missing from:\n{message}"


def test_error_line_points_at_the_bad_field(tmp_path):
    text = GOOD.replace("weight: 0.5", "weight: heavy")
    err = load_error(write(tmp_path, text))
    assert isinstance(err, NetworkFileError)
    assert err.line == line_of(text, "weight: heavy")
    assert err.path == "projections[0].weight"
    text = GOOD.replace("tau_m: 20.0", "tau_m: -2.0")
    err = load_error(write(tmp_path, text))
    assert isinstance(err, NetworkValidationError)
    assert err.issues[0].line == line_of(text, "tau_m: -2.0")


def test_missing_side_file_key_lists_the_available_ones(tmp_path):
    np.savez(tmp_path / "w.npz", weights=np.ones((3, 4)), other=np.zeros(2))
    text = GOOD.replace("    connector: all_to_all\n    weight: 0.5\n", "    weights: {file: w.npz, key: weight}\n")
    message = str(load_error(write(tmp_path, text)))
    assert "projections[0].weights.key" in message and "'w.npz' has no array 'weight'" in message
    assert "did you mean 'weights'?" in message and "other" in message


def test_side_file_shape_mismatch(tmp_path):
    np.savez(tmp_path / "w.npz", w=np.ones((4, 3)))
    text = GOOD.replace("    connector: all_to_all\n    weight: 0.5\n", "    weights: {file: w.npz, key: w}\n")
    message = str(load_error(write(tmp_path, text)))
    assert "projections[0].weights" in message and "shape (4, 3)" in message and "(3, 4)" in message


def test_side_file_of_wrong_dtype(tmp_path):
    np.savez(tmp_path / "w.npz", w=np.array([["a", "b"]]))
    text = GOOD.replace("    connector: all_to_all\n    weight: 0.5\n", "    weights: {file: w.npz, key: w}\n")
    assert "expected numbers" in str(load_error(write(tmp_path, text)))


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    text = GOOD.replace("    size: 4", "    size: [4")
    err = load_error(write(tmp_path, text))
    assert isinstance(err, NetworkFileError)
    assert "YAML syntax error" in str(err) and err.line is not None
    assert abs(err.line - line_of(text, "size: [4")) <= 2


def test_json_errors(tmp_path):
    path = tmp_path / "n.json"
    path.write_text('{"spikeforge": 1,\n "dt": 1.0,\n "populations": [}\n')
    err = load_error(path)
    assert "JSON syntax error" in str(err) and err.line == 3
    path.write_text(json.dumps({"spikeforge": 1, "populations": [{"label": "a", "size": 2, "neuron": {"tau_m": "x"}}]}))
    assert "populations[0].neuron.tau_m: expected a number (ms), got 'x'" in str(load_error(path))


def test_file_type_and_missing_file(tmp_path):
    assert "use a .yaml, .yml or .json file" in str(load_error(tmp_path / "net.txt"))
    assert "does not exist" in str(load_error(tmp_path / "absent.yaml"))
    with pytest.raises(NetworkFileError, match="use .npz, .h5 or .hdf5"):
        save_network(full_network(), tmp_path / "n.yaml", side_file="x.csv")


def test_all_semantic_problems_of_a_file_are_listed_with_lines(tmp_path):
    text = GOOD.replace("tau_m: 20.0", "tau_m: -20.0").replace("rate: 10.0", "rate: -1.0")
    err = load_error(write(tmp_path, text))
    assert isinstance(err, NetworkValidationError)
    assert [i.path for i in err.issues] == ["populations[0].neuron.tau_m", "sources[0].poisson.rate"]
    assert [i.line for i in err.issues] == [line_of(text, "tau_m"), line_of(text, "rate: -1.0")]
    assert f"line {line_of(text, 'tau_m')}: populations[0].neuron.tau_m" in str(err)


def test_schema_fields_are_documented():
    doc = (REPO / "docs" / "network-format.md").read_text()
    for table, fields in SCHEMA.items():
        for name in fields:
            assert f"`{name}`" in doc, f"{table}.{name} is not in docs/network-format.md"
