"""PyNN scripts as network files: ``load_any(script.py)`` runs the script on spikeforge.pynn in capture mode."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from spikeforge.compiler.loaders import LoadError, capture_pynn_script, load_any

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

NEST_SCRIPT = """
import pyNN.nest as sim
from pathlib import Path

sim.setup(timestep=0.5, spike_precision="on_grid")
stim = sim.Population(3, sim.SpikeSourceArray(spike_times=[[2.0, 5.0], [3.0], [4.0]]), label="stim")
cells = sim.Population(5, sim.IF_curr_exp(tau_m=12.0), label="cells")
sim.Projection(stim, cells, sim.AllToAllConnector(), sim.StaticSynapse(weight=0.8, delay=1.5), label="drive")
cells.record("spikes")
sim.run(250.0)
Path(__file__).with_suffix(".ran").write_text("the script went on after run()")
"""


def test_a_nest_script_is_captured_at_its_first_run_and_stops_there(tmp_path):
    script = tmp_path / "nest_model.py"
    script.write_text(NEST_SCRIPT)
    captured = capture_pynn_script(script)
    net = captured.network
    assert net.name == "nest_model" and net.dt == 0.5
    assert [p.label for p in net.populations] == ["cells"] and net.population("cells").params.tau_m == 12.0
    (proj,) = net.projections
    assert proj.name == "drive" and np.all(proj.connections[:, 3] == 1.5)
    assert captured.run_ms == 250.0 and captured.steps == 500
    assert not script.with_suffix(".ran").exists()
    # pyNN.nest is the real one again afterwards
    if "pyNN.nest" in sys.modules:
        assert sys.modules["pyNN.nest"].__name__ == "pyNN.nest"
    assert load_any(script).population("cells").size == 5


@pytest.mark.filterwarnings("ignore::spikeforge.pynn.errors.SpiNNakerOnlyCallNote")
def test_the_cam_example_compiles_from_its_script():
    from spikeforge.compiler import compile as compile_network

    net = load_any(EXAMPLES / "pynn_cam.py")
    assert {p.label for p in net.populations} == {"ca3_exc", "ca3_inh"}
    recurrent = next(p for p in net.projections if p.name == "recurrent")
    assert recurrent.plasticity is not None and len(recurrent.connections) == 40 * 39
    compiled = compile_network(net)
    assert compiled.config.stdp


def test_scripts_that_never_run_or_exit_early_are_explained(tmp_path):
    never = tmp_path / "never.py"
    never.write_text("import spikeforge.pynn as sim\nsim.setup()\nsim.Population(2, sim.IF_curr_exp())\n")
    with pytest.raises(LoadError, match="without calling run"):
        load_any(never)
    early = tmp_path / "early.py"
    early.write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(LoadError, match="exited \\(code 3\\) before its first run"):
        load_any(early)


def test_a_capture_inside_a_running_simulation_leaves_it_alone(tmp_path):
    """A board opened from inside a PyNN script (``virtual://?network=script.py``) captures a script
    while the outer spikeforge.pynn simulation runs: the capture must not reset the outer one."""
    import spikeforge.pynn as sim

    script = tmp_path / "nest_model.py"
    script.write_text(NEST_SCRIPT)

    def experiment(capture_between: bool):
        sim.setup(timestep=1.0)
        stim = sim.Population(2, sim.SpikeSourceArray(spike_times=[[2.0, 9.0], [4.0]]), label="stim")
        cells = sim.Population(3, sim.IF_curr_exp(tau_m=15.0), label="cells")
        sim.Projection(stim, cells, sim.AllToAllConnector(), sim.StaticSynapse(weight=2.0, delay=1.0))
        cells.record("spikes")
        sim.run(20.0)
        if capture_between:
            assert capture_pynn_script(script).network.dt == 0.5
        sim.run(20.0)
        trains = [np.asarray(st.magnitude) for st in cells.get_data("spikes").segments[-1].spiketrains]
        t = sim.get_current_time()
        sim.end()
        return trains, t

    plain, t_plain = experiment(False)
    nested, t_nested = experiment(True)
    assert t_nested == t_plain == 40.0
    assert sum(len(s) for s in plain) > 0
    for a, b in zip(plain, nested, strict=True):
        np.testing.assert_array_equal(a, b)
