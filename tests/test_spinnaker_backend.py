"""The SpiNNaker backend: sPyNNaker's virtual board maps spikeforge networks; configuration is spikeforge's job.

sPyNNaker's mapping takes seconds, so it runs once per module (``virtual_run``), in a temporary HOME
(to prove no ~/.spynnaker.cfg is needed or created) and a temporary run root.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from spikeforge.compiler.network import (
    STDP, LIFParameters, Network, PoissonSource, Population, Projection, SpikeSource,
)
from spikeforge.host.spinnaker import S1615_MAX, SpiNNakerUnsupported, _build
from spikeforge.host.spinnaker_config import SpiNNakerConfigError, config_text, resolve_target
from spikeforge.sim.backends import simulate

pytest.importorskip("spynnaker")


def small_network() -> Network:
    net = Network(dt=1.0, name="small")
    net.add(SpikeSource("stim", 4, spike_times=[[2.0, 12.0], [3.0], [5.0, 25.0], [8.0]]))
    net.add(PoissonSource("noise", 6, rate=40.0, seed=5))
    net.add(Population("exc", 12, LIFParameters(tau_m=15.0, tau_refrac=2.0, i_offset=0.1)))
    net.add(Population("inh", 4, LIFParameters(tau_syn_I=8.0, tau_syn_E=8.0)))
    net.add(Projection("stim", "exc", weights=np.full((4, 12), 1.5), delays=1.0, label="stim_exc"))
    rng = np.random.default_rng(0)
    w = np.where(rng.random((6, 12)) < 0.5, rng.uniform(0.2, 0.9, (6, 12)), 0.0)
    net.add(Projection("noise", "exc", weights=w, delays=2.0, label="noise_exc"))
    net.add(Projection("exc", "inh", weights=np.full((12, 4), 0.35), delays=3.0, label="exc_inh"))
    net.add(Projection("inh", "exc", weights=np.full((4, 12), 0.8), receptor="inhibitory", label="inh_exc"))
    pairs = np.array([[i, j, 0.3, 1.0] for i in range(12) for j in range(12) if i != j and (i + j) % 3 == 0])
    net.add(Projection("exc", "exc", connections=pairs, plasticity=STDP(A_plus=0.02, A_minus=0.02, w_max=0.6),
                       label="exc_exc"))
    return net


@pytest.fixture(scope="module")
def virtual_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    root = tmp_path_factory.mktemp("spinnaker-runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.delenv("XDG_CONFIG_HOME", raising=False)
        result = simulate(small_network(), 100, backend="spinnaker", virtual=True, run_root=root, report=False)
    return result, home, root


def test_virtual_board_needs_no_home_config_and_writes_its_own(virtual_run):
    result, home, root = virtual_run
    assert not (home / ".spynnaker.cfg").exists() and not (home / ".config" / ".spynnaker.cfg").exists()
    (run_dir,) = list(root.iterdir())
    text = (run_dir / "spynnaker.cfg").read_text()
    assert "virtual_board = True" in text and "version = 5" in text
    assert result.meta["spinnaker"]["run_dir"] == str(run_dir)
    assert (run_dir / "spinnaker.log").stat().st_size > 0  # sPyNNaker's chatter went to the log
    assert "XDG_CONFIG_HOME" not in os.environ or os.environ["XDG_CONFIG_HOME"] != str(run_dir / "xdg")


def test_virtual_board_result_is_empty_and_says_so(virtual_run):
    result, _, _ = virtual_run
    assert result.backend == "spinnaker" and result.meta["virtual"] is True
    assert set(result.spikes) == {"exc", "inh"}
    assert all(r.shape == (100, n) and not r.any() for r, n in zip(result.spikes.values(), (12, 4)))
    assert result.weights == {}  # nothing learned: nothing ran


def test_placements_and_routing_are_reported(virtual_run):
    report = virtual_run[0].meta["spinnaker"]
    labels = [p["label"] for p in report["placements"]]
    for name in ("stim", "noise", "exc", "inh"):
        assert any(label.startswith(name) for label in labels), (name, labels)
    for p in report["placements"]:
        assert 0 <= p["x"] < 8 and 0 <= p["y"] < 8 and 1 <= p["p"] < 18
    keyed = {r["label"] for r in report["routing_keys"]}
    assert {lab for lab in labels if not lab.startswith("SYSTEM")} <= keyed  # every population sends spikes
    for r in report["routing_keys"]:
        key, mask = int(r["key"], 16), int(r["mask"], 16)
        assert key & ~mask & 0xFFFFFFFF == 0  # a key has no bits outside its mask
    assert report["machine"].startswith("Spin1")  # a SpiNN-5 board: 48 SpiNNaker-1 chips
    assert sum(report["routing_table_entries"].values()) >= len(keyed)


def test_spinnaker_quantised_weights_are_close_to_requested_and_tabled_against_golden(virtual_run):
    rows = {r["projection"]: r for r in virtual_run[0].meta["spinnaker"]["weights"]}
    assert set(rows) == {"stim_exc", "noise_exc", "exc_inh", "inh_exc", "exc_exc"}
    for name, row in rows.items():
        lo, hi = row["requested_nA"]
        assert row["spinnaker_max_abs_error_nA"] <= 0.01 * hi, (name, row)
        assert row["spinnaker_rounded_to_zero"] == 0
        assert row["golden_nA"] is not None and row["golden_max_abs_error_nA"] <= 0.05 * hi, (name, row)
    assert rows["stim_exc"]["synapses"] == 48 and rows["exc_exc"]["synapses"] == 44
    run = virtual_run[0].meta["spinnaker_run"]
    noise = next(w for w in run.weights if w.projection == "noise_exc")
    assert np.allclose(noise.spinnaker, noise.requested, rtol=0, atol=1e-3)  # a fixed step, ~2^-11 nA here


def test_the_same_network_agrees_on_golden_float_and_nest():
    """The networks the SpiNNaker backend maps run on spikeforge's own backends too (spikes there)."""
    net = small_network()
    counts = {b: {k: v.sum() for k, v in simulate(net, 300, backend=b).spikes.items()} for b in ("golden", "float")}
    pytest.importorskip("pyNN.nest")
    counts["nest"] = {k: v.sum() for k, v in simulate(net, 300, backend="nest").spikes.items()}
    for label in ("exc", "inh"):
        ref = counts["float"][label]
        assert ref > 0
        assert abs(counts["golden"][label] - ref) <= 0.15 * ref + 2, (label, counts)
        assert abs(counts["nest"][label] - ref) <= 0.15 * ref + 2, (label, counts)


def test_printed_report_states_that_a_virtual_board_has_no_spikes(virtual_run, capsys):
    from rich.console import Console

    run = virtual_run[0].meta["spinnaker_run"]
    run.print_report(Console(width=140, force_terminal=False))
    out = capsys.readouterr().out
    assert "not an emulator" in out and "Spikes come back only from a real machine" in out
    assert "stim_exc" in out and "routing keys" in out and "placements" in out


# ---- configuration (no sPyNNaker run needed) ----------------------------------------------------------
def test_a_real_run_without_configuration_names_every_option(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    with pytest.raises(SpiNNakerConfigError) as info:
        simulate(small_network(), 10, backend="spinnaker")
    message = str(info.value)
    for option in ("--virtual", "--spinnaker-host", "--spalloc", "--spinnaker-config", "virtual=True"):
        assert option in message
    assert not (tmp_path / ".spynnaker.cfg").exists()


def test_a_configured_home_file_is_used_and_the_template_is_not(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / ".spynnaker.cfg").write_text("[Machine]\nmachine_name = None\nversion = None\n")
    with pytest.raises(SpiNNakerConfigError):
        resolve_target()  # sPyNNaker's own template names no machine
    (tmp_path / ".spynnaker.cfg").write_text("[Machine]\nmachine_name = 10.0.0.2\nversion = 5\n")
    target = resolve_target()
    assert target.user_file == tmp_path / ".spynnaker.cfg" and "user config" in target.description


def test_config_files_for_each_target(tmp_path):
    host = config_text(resolve_target(host="192.168.240.1", version=3))
    assert "machine_name = 192.168.240.1" in host and "version = 3" in host
    spalloc = config_text(resolve_target(spalloc="https://spalloc.example/", spalloc_user="ada"))
    assert "spalloc_server = https://spalloc.example/" in spalloc and "spalloc_user = ada" in spalloc
    own = tmp_path / "mine.cfg"
    own.write_text("[Machine]\nvirtual_board = True\nversion = 5\n# mine\n")
    assert config_text(resolve_target(config_file=own)).endswith("# mine\n")
    with pytest.raises(SpiNNakerConfigError, match="choose one SpiNNaker target"):
        resolve_target(virtual=True, host="1.2.3.4")
    with pytest.raises(SpiNNakerConfigError, match="version 4"):
        resolve_target(virtual=True, version=4)
    with pytest.raises(SpiNNakerConfigError, match="no such sPyNNaker config file"):
        resolve_target(config_file=tmp_path / "missing.cfg")


def test_features_spynnaker_cannot_express_are_refused_before_it_starts(tmp_path):
    net = small_network()
    net.population("inh").params.reset = "subtract_threshold"
    with pytest.raises(SpiNNakerUnsupported, match="population 'inh': reset"):
        simulate(net, 10, backend="spinnaker", virtual=True, run_root=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing was started


def test_a_parameter_outside_spynnakers_fixed_point_is_refused_by_name(tmp_path):
    net = small_network()
    net.population("inh").params.v_thresh = 1e6
    with pytest.raises(SpiNNakerUnsupported, match="population 'inh': v_thresh = 1e.06 is outside .*S1615"):
        simulate(net, 10, backend="spinnaker", virtual=True, run_root=tmp_path)
    assert not any(tmp_path.iterdir())


def test_no_leak_becomes_the_longest_time_constant_spynnaker_holds_and_says_so(tmp_path):
    """spikeforge writes "no leak" as tau = 1e9 ms (the blimp's integrators, NIR's IF neurons); S1615
    holds at most ~65,536: the network still maps, with that time constant and a note."""
    net = small_network()
    net.population("inh").params.tau_m = 1e9
    fake = _Recorder()
    _build(fake, net, 10, seed=None, record=())
    taus = [c[2]["tau_m"] for c in fake.calls if c[0] == "IF_curr_exp"]
    assert taus == [15.0, S1615_MAX]
    result = simulate(net, 10, backend="spinnaker", virtual=True, run_root=tmp_path, report=False)
    notes = result.meta["spinnaker"]["parameter_notes"]
    assert len(notes) == 1 and "population 'inh': tau_m" in notes[0] and "4 of 4" in notes[0]


def test_the_blimp_controller_maps_onto_a_virtual_spinnaker(tmp_path):
    """`spikeforge demo blimp --backend spinnaker`: the shipped controller's network (integrator
    encoders with no leak) is placed and routed."""
    from spikeforge.demos.blimp import snn
    from spikeforge.demos.blimp.cli import CONTROLLER_FILE

    net = snn.network(snn.Controller.load(CONTROLLER_FILE), analog_inputs=False, reset="to_v_reset")
    result = simulate(net, 10, backend="spinnaker", virtual=True, run_root=tmp_path, report=False)
    info = result.meta["spinnaker"]
    assert {p["label"].split("(")[0] for p in info["placements"]} >= {pop.label for pop in net.populations}
    assert any("'i_encoders': tau_m" in note for note in info["parameter_notes"])


class _Recorder:
    """A stand-in for pyNN.spiNNaker that records what the backend builds."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def make(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return _Obj(name, args, kwargs)
        return make


class _Obj:
    def __init__(self, name, args, kwargs):
        self.name, self.args, self.kwargs = name, args, kwargs

    def __getattr__(self, attr):
        return lambda *a, **k: None


def test_stdp_amplitudes_are_converted_to_spynnaker_units_and_sources_get_host_spikes():
    net = small_network()
    fake = _Recorder()
    _build(fake, net, 50, seed=None, record=())
    rule = next(c for c in fake.calls if c[0] == "SpikePairRule")
    assert rule[2]["A_plus"] == pytest.approx(0.02 * 0.6) and rule[2]["A_minus"] == pytest.approx(0.02 * 0.6)
    arrays = [c for c in fake.calls if c[0] == "SpikeSourceArray"]
    assert arrays[0][2]["spike_times"] == [[2.0, 12.0], [3.0], [5.0, 25.0], [8.0]]
    assert sum(len(t) for t in arrays[1][2]["spike_times"]) > 0  # the Poisson source, drawn on the host
    inh = next(c for c in fake.calls if c[0] == "Projection" and c[2].get("label") == "inh_exc")
    assert inh[2]["receptor_type"] == "inhibitory"
