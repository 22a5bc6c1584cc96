"""Unit tests of the testbench's own pieces (no HDL simulation): packing, readback decoding, the
scoreboard's reports, job files, the Icarus compatibility rewrite, the sweep's coverage of the space."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage
from spikeforge.core.memory_map import Region, image_writes, pack_synapses, to_word
from spikeforge.core.random_image import random_image
from spikeforge.sim.cocotb_tb import readback
from spikeforge.sim.cocotb_tb.case import CaseResult, RtlCase, RtlCaseError, RtlJob
from spikeforge.sim.cocotb_tb.driver import describe_request
from spikeforge.sim.cocotb_tb.ports import pack_request
from spikeforge.sim.cocotb_tb.runner import icarus_compatible
from spikeforge.sim.cocotb_tb.scoreboard import Scoreboard
from spikeforge.sim.cocotb_tb.sweep import group_config, sweep
from spikeforge.sim.cocotb_tb.tb_top import tb_top_verilog

CONFIG = CoreConfig(n_neurons=6, n_inputs=3, max_delay=4, stdp=True, adaptive_threshold=True, n_profiles=2)


def test_pack_request_matches_the_interface_layout():
    word = pack_request(True, Region.SYNAPSE, 0x123456, 0xDEADBEEF)
    assert word & 1 == 1
    assert (word >> 1) & 0xF == Region.SYNAPSE
    assert (word >> 5) & 0xFFFFFF == 0x123456
    assert word >> 29 == 0xDEADBEEF
    assert describe_request(pack_request(False, Region.RING, 7)) == "read RING[7]"
    assert pack_request(True, 0, 0, -1) >> 29 == 0xFFFF_FFFF  # signed data as two's complement
    with pytest.raises(ValueError, match="region"):
        pack_request(False, 16, 0)


def test_readback_decodes_what_image_writes_encodes():
    img = random_image(CONFIG, 3, extreme=True)
    table = {(int(r), int(a)): w for r, a, w in image_writes(img)}
    fields = readback.present_fields(CONFIG)
    words = [table[(int(r), int(a))] for r, a in readback.read_plan(CONFIG, fields)]
    got = readback.decode(CONFIG, fields, words)
    for name in ("v", "ie", "ii", "refrac_count", "adapt", "y_trace", "x_trace", "ring", "weights",
                 "plastic", "delays"):
        np.testing.assert_array_equal(got[name], getattr(img, name), err_msg=name)
    assert int(got["step"]) == img.step and bool(got["learning"]) == img.learning
    assert readback.readback_count(CONFIG, "full") == len(readback.read_plan(CONFIG, readback.level_fields(CONFIG, "full")))


def test_compare_levels_shrink_with_the_budget():
    big = CoreConfig(n_neurons=256, n_inputs=64, max_delay=8)
    assert readback.choose_level(CONFIG, 1500) == "full"
    assert readback.choose_level(big, 1500) == "neuron"
    assert readback.choose_level(big, 100) == "spikes"
    assert "synapses" not in readback.level_fields(CoreConfig(n_neurons=4, n_inputs=0), "full")


def test_hardware_view_blanks_parameters_the_core_does_not_store():
    c = CoreConfig(n_neurons=4, n_inputs=2, n_profiles=2)
    img = random_image(c, 0)
    img.profiles["a_inc"][:] = 5
    img.profiles["c_adecay"][:] = 123
    view = readback.hardware_view(img)
    blank = CoreImage.blank(c)
    for name in ("c_adecay", "a_inc"):
        np.testing.assert_array_equal(view.profiles[name], blank.profiles[name])
    assert (img.profiles["a_inc"] == 5).all(), "the original is not modified"
    adaptive = random_image(c.replace(adaptive_threshold=True), 0)
    assert readback.hardware_view(adaptive) == adaptive


def test_scoreboard_reports_step_field_index_expected_and_got():
    sb = Scoreboard(max_report=2)
    assert sb.compare_array(3, "v", np.array([1, 2, 3]), np.array([1, 2, 3]))
    assert not sb.compare_array(5, "ring", np.zeros((2, 2, 2), int), np.array([[[0, 0], [0, 7]], [[0, 0], [0, 0]]]))
    assert sb.report() == ["step 5: ring[0, 1, 1] expected 0, got 7"]
    expected = np.array([False, True, False, True])
    sb2 = Scoreboard()
    assert sb2.compare_spikes(0, expected, [1, 3])
    assert not sb2.compare_spikes(1, expected, [3, 1])  # order
    assert not sb2.compare_spikes(2, expected, [1])  # missing spike
    text = "\n".join(sb2.report())
    assert "step 1: spike_out order" in text and "step 2: spikes[3] expected True, got False" in text
    sb3 = Scoreboard(cycle_tolerance=0.05)
    assert sb3.compare_cycles(0, 104, 100) and not sb3.compare_cycles(1, 106, 100)
    assert "+6.0 %" in sb3.cycle_deviations[0] and sb3.functional_ok and not sb3.passed


def test_job_and_case_round_trip(tmp_path):
    case = RtlCase(name="a", image_seed=4, steps=3, extreme=True, record=("v",), backpressure=True)
    job = RtlJob(config=CONFIG, cases=[case], results_path=str(tmp_path / "r.json"), work_dir=str(tmp_path))
    back = RtlJob.load(job.save(tmp_path / "job.json"))
    assert back.config == CONFIG and back.cases == [case] and back.work_dir == str(tmp_path)
    assert CaseResult.from_dict(CaseResult("x", True, cycles=[3]).to_dict()).cycles == [3]
    with pytest.raises(RtlCaseError, match="exactly one of image_seed"):
        RtlCase(name="b")
    with pytest.raises(RtlCaseError, match="compare"):
        RtlCase(name="b", image_seed=1, compare="everything")


def test_given_case_inputs_are_checked(tmp_path):
    img = CoreImage.blank(CONFIG)
    img.save(tmp_path / "img.npz")
    np.savez(tmp_path / "in.npz", spikes=np.zeros((4, 5), bool))
    case = RtlCase(name="g", steps=4, image_path=str(tmp_path / "img.npz"), inputs_path=str(tmp_path / "in.npz"))
    assert case.image(CONFIG) == img
    with pytest.raises(RtlCaseError, match=r"shape \(4, 5\), expected \(4, 3\)"):
        case.inputs(CONFIG)


def test_icarus_rewrite_touches_only_constant_always_star_blocks():
    text = ("  always @*\n    rd[31:16] = 16'h0000;\n"
            "  always @* begin\n    x = y;\n  end\n"
            "  always @*\n    z = a;\n")
    out, n = icarus_compatible(text)
    assert n == 1
    assert "initial\n    rd[31:16] = 16'h0000;" in out
    assert "always @*\n    z = a;" in out and "always @* begin" in out


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
@pytest.mark.parametrize("n_inputs", [0, 5])
def test_tb_top_is_valid_verilog_around_a_core_with_the_interface_ports(tmp_path, n_inputs):
    c = CoreConfig(n_neurons=6, n_inputs=n_inputs)
    spike_in = ("input wire spike_in__valid, output wire spike_in__ready, input wire [2:0] spike_in__payload,"
                if n_inputs else "")
    core = ("module spikeforge_core(input wire clk, input wire rst, input wire bus_req__valid,"
            " output wire bus_req__ready, input wire [60:0] bus_req__payload, output wire bus_resp__valid,"
            f" input wire bus_resp__ready, output wire [31:0] bus_resp__payload, {spike_in} input wire start,"
            " output wire busy, output wire done, output wire spike_out__valid, input wire spike_out__ready,"
            " output wire [2:0] spike_out__payload);\nendmodule\n")
    (tmp_path / "core.v").write_text(core)
    (tmp_path / "top.v").write_text(tb_top_verilog(c))
    proc = subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "a.vvp"), "-s", "spikeforge_tb_top",
                           str(tmp_path / "core.v"), str(tmp_path / "top.v")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_sweep_groups_cover_every_value_of_every_dimension():
    seen: dict[str, set] = {}
    for g in range(12):
        c = group_config(g)
        for name in ("n_neurons", "n_inputs", "weight_bits", "lanes", "stdp", "adaptive_threshold", "n_profiles"):
            seen.setdefault(name, set()).add(getattr(c, name))
        seen.setdefault("delays", set()).add(c.max_delay > 1)
        seen.setdefault("analog", set()).add(c.n_current_inputs > 0)
        seen.setdefault("refrac_bits", set()).add(c.refrac_bits)
    assert seen["n_neurons"] == {4, 16, 64, 256} and seen["n_inputs"] == {0, 8, 64}
    assert seen["weight_bits"] == {4, 8, 12} and seen["lanes"] == {1, 2, 4}
    for flag in ("stdp", "adaptive_threshold", "delays", "analog"):
        assert seen[flag] == {False, True}, flag
    assert len(seen["refrac_bits"]) > 1
    groups = sweep(48, resolve=False)
    assert sum(len(g.slots) for g in groups) == 48
    slots = [s for g in groups for s in g.slots]
    assert any(s[2] for s in slots) and any(s[3] for s in slots)  # extreme and backpressure cases


def test_sweep_cases_are_alive_and_deterministic():
    grp = sweep(4, resolve=False)[0]
    a, b = grp.resolve(), grp.resolve()
    assert a == b
    from spikeforge.sim.golden import GoldenCore
    for case in a:
        spikes, currents = case.inputs(grp.config)
        assert GoldenCore(case.image(grp.config)).run(spikes, currents=currents).spikes.any(), case.name


def test_words_of_one_synapse_matrix_in_address_order():
    # the burst player and image_from_words both rely on row-major synapse addresses
    img = random_image(CONFIG, 1)
    words = pack_synapses(img.weights, img.plastic, img.delays).reshape(-1)
    syn = [(a, w) for r, a, w in image_writes(img) if r == Region.SYNAPSE]
    assert [a for a, _ in syn] == list(range(CONFIG.n_sources * CONFIG.n_neurons))
    assert [w for _, w in syn] == [int(x) for x in words]
    assert to_word(-1) == 0xFFFF_FFFF
