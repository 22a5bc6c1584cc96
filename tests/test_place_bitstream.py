"""One place-recognition module fits one core of the iCEBreaker: its own CoreConfig (144 neurons,
288 ON/OFF inputs, STDP, adaptive thresholds, 16-bit state, one lane) with the bus bridge, built
with the pip YoWASP tools through the ordinary compile flow (``deploy.module_bitstream``), placed,
routed and timed by nextpnr -- not the capacity estimate's word for it.

The first run after a change of the hardware sources builds for about three minutes; later runs
reuse the cached placed-and-routed design (.cache/bitstreams). The fit is tight (about 99 % of the
UP5K's logic cells): a change of the core that grows its logic fails here first.
"""

import json

import pytest
from typer.testing import CliRunner

from spikeforge.boards.flow import BoardOptions, compile_for_board
from spikeforge.demos.place.demo import SHIPPED_WEIGHTS
from spikeforge.demos.place.deploy import module_bitstream
from spikeforge.demos.place.ensemble import TrainedEnsemble
from spikeforge.demos.place.module import ModuleParameters, build_network, compile_module

ICE40_SYNC = bytes.fromhex("7EAA997E")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("place-icebreaker")
    return module_bitstream(ModuleParameters(), "icebreaker", out), out


def test_the_module_core_is_placed_and_routed_on_the_up5k(built):
    check, out = built
    data = (out / "top.bin").read_bytes()
    assert ICE40_SYNC in data[:64]
    for name in ("luts", "bram", "spram", "dsp"):
        used, available = check["resources"][name]
        assert 0 < used <= available, (name, used, available)
    # the weight memory is the four SPRAM blocks, as ModuleParameters.spram_tiles says
    assert check["resources"]["spram"][0] == ModuleParameters().spram_tiles() == 4


def test_timing_is_met_at_the_board_clock(built):
    check, _ = built
    assert check["timing"]["met"] is True
    assert check["timing"]["fmax_mhz"] >= check["timing"]["target_mhz"] == pytest.approx(24.0)


def test_the_shipped_weights_run_on_this_core(built):
    """The bitstream is runtime-loaded: the host loads a module's weights over UART into a core of
    exactly this CoreConfig, so the shipped ensemble's modules must compile to it."""
    check, out = built
    shipped = TrainedEnsemble.load(SHIPPED_WEIGHTS["synthetic"])
    assert shipped.params.core_config().to_dict() == check["core_config"] == ModuleParameters().core_config().to_dict()
    report = json.loads((out / "report.json").read_text())
    assert report["core_config"]["lanes"] == 1 and report["core_config"]["stdp"] is True
    assert "bridge" in check["link"] and "bridge://" in report["connect"]


def test_the_refractory_counter_is_as_narrow_as_tau_refrac_allows():
    assert ModuleParameters().refrac_bits == 3                     # 5 ms at dt 1 ms: 5 steps
    assert ModuleParameters(tau_refrac=8.0).refrac_bits == 4       # 8 steps
    assert ModuleParameters(tau_refrac=0.0).refrac_bits == 1
    assert ModuleParameters(tau_refrac=2.5).core_config().refrac_bits == 2   # rounded up to 3 steps
    compile_module(ModuleParameters(tau_refrac=8.0), 1)            # the compiler accepts the counter


def test_a_caller_compiled_core_cannot_be_standalone(tmp_path):
    compiled = compile_module(ModuleParameters(), 0)
    with pytest.raises(ValueError, match="runtime-loaded bitstream only"):
        compile_for_board(compiled.network, "icebreaker", tmp_path, BoardOptions(standalone=True), compiled=compiled)


def test_the_compiled_network_must_be_the_network_given(tmp_path):
    params = ModuleParameters()
    with pytest.raises(ValueError, match="compilation of the network given"):
        compile_for_board(build_network(params, 0), "icebreaker", tmp_path, compiled=compile_module(params, 0))


def test_an_artix_module_gets_a_vivado_project_and_says_how_to_build_it(tmp_path):
    """Vivado is not installed here: the project is written, nothing claims a bitstream."""
    from spikeforge.boards.vivado import vivado_available
    from spikeforge.demos.place.cli import bitstream_line

    if vivado_available():
        pytest.skip("Vivado is installed: this checks the path without it")
    check = module_bitstream(ModuleParameters(), "cmod-a7-35t", tmp_path)
    assert check["bitstream"] is None and check["status"] == "vivado_not_run"
    assert (tmp_path / "build.tcl").exists() and (tmp_path / "top.v").exists()
    assert "run_vivado.sh" in bitstream_line(check)


def test_cli_names_an_unknown_board(tmp_path):
    from spikeforge.cli import app

    res = CliRunner().invoke(app, ["demo", "place", "--out", str(tmp_path), "--no-scaling", "--bitstream", "icebreakr"])
    assert res.exit_code == 2
    assert "unknown board 'icebreakr'" in res.output and "icebreaker" in res.output
