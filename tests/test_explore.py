"""spikeforge explore: sweep parsing, the quality metrics, Pareto fronts, resume, outputs, the CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from spikeforge.compiler.explore import (
    CSV_NAME, ExploreOptions, SWEEP_KEYS, csv_columns, explore, parse_sweep, sweep_points,
)
from spikeforge.compiler.explore_quality import (
    ExploreError, SpikeAgreement, coincidence_factor, make_task, requantise_weights, spike_agreement,
)
from spikeforge.compiler.network import LIFParameters, Network, PoissonSource, Population, Projection
from spikeforge.compiler.pareto import front_of, pareto_front
from spikeforge.core import fixedpoint as fx
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage


def small_network() -> Network:
    """12 LIF neurons on 6 Poisson inputs with sparse recurrence: compiles and runs in milliseconds."""
    net = Network(dt=1.0, name="small")
    net.add(PoissonSource("in", 6, rate=80.0, seed=3))
    net.add(Population("out", 12, LIFParameters(tau_m=20.0, v_thresh=-50.0, v_reset=-65.0, tau_syn_E=5.0,
                                                tau_refrac=2.0)))
    rng = np.random.default_rng(1)
    net.add(Projection("in", "out", weights=np.where(rng.random((6, 12)) < 0.6, 1.7, 0.0)))
    net.add(Projection("out", "out", weights=np.where(rng.random((12, 12)) < 0.2, 0.37, 0.0)))
    return net


#: short runs, and memories by the placement rules (Yosys' census takes 10-20 s per new core)
FAST = dict(steps=200, activity_steps=40, census=False)


# ---- sweep syntax ------------------------------------------------------------------------------------
def test_parse_sweep_accepts_items_and_one_string():
    assert parse_sweep(["weight_bits=4,6,8", "lanes=1,2"]) == {"weight_bits": [4, 6, 8], "lanes": [1, 2]}
    assert parse_sweep("weight_bits=4 lanes=8") == {"weight_bits": [4], "lanes": [8]}


@pytest.mark.parametrize("items, words", [
    (["weigth_bits=4"], ["'weigth_bits'", "did you mean weight_bits"]),
    (["n_neurons=64"], ["not a core width", "lanes"]),
    (["weight_bits"], ["KEY=V1,V2"]),
    (["weight_bits=4,x"], ["whole numbers"]),
    (["weight_bits=4,,6"], ["empty value"]),
    (["lanes=3"], ["lanes=3", "does not support", "1, 2, 4, 8 or 16"]),
    (["weight_bits=2"], ["weight_bits=2", "4 .. 16 bits"]),
    (["weight_bits=4", "weight_bits=6"], ["given twice"]),
    (["lanes=2,2"], ["listed twice"]),
    ([], ["--sweep is empty"]),
])
def test_parse_sweep_errors_name_the_problem(items, words):
    with pytest.raises(ExploreError) as err:
        parse_sweep(items)
    for word in words:
        assert word in str(err.value)


def test_interdependent_values_are_checked_per_point_not_alone():
    # trace_bits=4 alone is fine (trace_frac can be smaller); the combination with trace_frac=6 is not
    assert parse_sweep(["trace_bits=4,12", "trace_frac=6"])["trace_bits"] == [4, 12]


def test_sweep_points_is_the_product_first_key_slowest():
    points = sweep_points({"weight_bits": [4, 8], "lanes": [1, 2, 4]})
    assert len(points) == 6
    assert points[0] == {"weight_bits": 4, "lanes": 1} and points[3] == {"weight_bits": 8, "lanes": 1}
    assert set(SWEEP_KEYS) >= {"weight_bits", "lanes"}


# ---- Pareto fronts -------------------------------------------------------------------------------------
def test_pareto_front_on_known_points():
    # minimise both: (1, 5), (2, 3), (4, 1) are the front; (3, 4) is dominated by (2, 3);
    # (2, 3) twice: neither copy is strictly better, both stay; NaN never wins
    obj = np.array([[1, 5], [2, 3], [3, 4], [4, 1], [2, 3], [np.nan, 0], [5, 5]], dtype=float)
    assert pareto_front(obj).tolist() == [True, True, False, True, True, False, False]


def test_front_of_respects_the_quality_direction():
    rows = [{"quality": 0.9, "luts": 100}, {"quality": 0.5, "luts": 50}, {"quality": 0.4, "luts": 80},
            {"quality": None, "luts": 10}]
    assert front_of(rows, "luts", higher_is_better=True).tolist() == [True, True, False, False]
    # lower is better (an error): 0.4 at 80 LUTs beats 0.5 and 0.9 in quality, (0.5, 50) is cheapest
    assert front_of(rows, "luts", higher_is_better=False).tolist() == [False, True, True, False]


def test_recommend_picks_the_best_quality_that_fits_then_the_fastest():
    from spikeforge.compiler.pareto import recommend

    rows = [{"point": "a", "quality": 0.9, "latency_us": 5.0, "luts": 100, "fits_x": False},
            {"point": "b", "quality": 0.8, "latency_us": 9.0, "luts": 50, "fits_x": True},
            {"point": "c", "quality": 0.8, "latency_us": 7.0, "luts": 90, "fits_x": True},
            {"point": "d", "quality": 0.1, "latency_us": 1.0, "luts": 10, "fits_x": True}]
    assert recommend(rows, "x", higher_is_better=True)["point"] == "c"
    assert recommend(rows, "x", higher_is_better=False)["point"] == "d"
    assert recommend(rows, "y", higher_is_better=True) is None


# ---- quality metrics -------------------------------------------------------------------------------------
def test_coincidence_factor_identical_shifted_and_unrelated():
    rng = np.random.default_rng(0)
    a = rng.random((2000, 3)) < 0.02
    assert np.allclose(coincidence_factor(a, a, 2), 1.0)
    shifted = np.roll(a, 1, axis=0)
    assert np.allclose(coincidence_factor(shifted, a, 2), 1.0, atol=0.02)  # within the window
    assert np.all(coincidence_factor(shifted, a, 0) < 0.1)                  # outside a zero window
    b = rng.random((2000, 3)) < 0.02
    assert np.all(np.abs(coincidence_factor(b, a, 2)) < 0.2)                # unrelated: about chance
    silent = np.zeros((100, 2), bool)
    g = coincidence_factor(silent, silent, 1)
    assert np.isnan(g).all()


def test_coincidence_factor_by_hand():
    # reference spikes at 10 and 50; test spikes at 11 (coincident, D = 1) and 80 (not); 100 steps
    ref = np.zeros((100, 1), bool)
    ref[[10, 50], 0] = True
    test = np.zeros((100, 1), bool)
    test[[11, 80], 0] = True
    p = 2 / 100
    expected = (1 - 3 * p * 2) / (0.5 * 4 * (1 - 3 * p))
    assert coincidence_factor(test, ref, 1)[0] == pytest.approx(expected)


def test_spike_agreement_rate_error():
    a = {"p": np.zeros((10, 2), bool)}
    b = {"p": np.zeros((10, 2), bool)}
    a["p"][[1, 2, 3], 0] = True
    b["p"][[1, 2], 0] = True
    b["p"][5, 1] = True
    out = spike_agreement(a, b, dt=1.0, window_ms=0)
    assert out["rate_error"] == pytest.approx((1 + 1) / 3)


def test_requantise_weights_keeps_currents_within_half_an_lsb():
    config = CoreConfig(n_neurons=8, n_inputs=8, weight_bits=12)
    img = CoreImage.blank(config)
    rng = np.random.default_rng(5)
    img.weights = rng.integers(fx.smin(12), fx.smax(12) + 1, size=img.weights.shape)
    img.row_shift = rng.integers(0, 3, size=img.row_shift.shape)
    value = img.weights << img.row_shift[:, None]
    narrow = requantise_weights(img, 6)
    assert narrow.config.weight_bits == 6
    assert narrow.weights.min() >= fx.smin(6) and narrow.weights.max() <= fx.smax(6)
    got = narrow.weights << narrow.row_shift[:, None]
    lsb = (1 << narrow.row_shift)[:, None]
    assert np.all(np.abs(got - value) <= lsb / 2 + 1e-9)
    wide = requantise_weights(img, 16)
    assert np.array_equal(wide.weights << wide.row_shift[:, None], value)  # wider words: exact


def test_unknown_task_is_refused():
    with pytest.raises(ExploreError, match="choose one of spikes, blimp, place"):
        make_task("cartpole")


# ---- the sweep ---------------------------------------------------------------------------------------
def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_explore_writes_csv_md_png_and_lanes_do_not_change_quality(tmp_path):
    res = explore(small_network(), parse_sweep("weight_bits=4,8 lanes=1,2"), tmp_path, ExploreOptions(**FAST))
    rows = _rows(tmp_path / CSV_NAME)
    assert list(rows[0]) == csv_columns(["weight_bits", "lanes"], ["icebreaker", "ulx3s-85f", "cmod-a7-35t"])
    assert [r["point"] for r in rows] == ["weight_bits=4 lanes=1", "weight_bits=4 lanes=2",
                                          "weight_bits=8 lanes=1", "weight_bits=8 lanes=2"]
    assert all(r["status"] == "ok" for r in rows)
    q = {r["point"]: float(r["quality"]) for r in rows}
    assert q["weight_bits=4 lanes=1"] == q["weight_bits=4 lanes=2"]
    assert all(-1.0 <= v <= 1.0 for v in q.values())
    for r in rows:
        assert r["resources_source"] == "estimate" and int(r["luts"]) > 0
        assert r["fits_icebreaker"] in ("yes", "no")
        assert float(r["latency_us"]) == pytest.approx(float(r["cycles_mean"]) / float(r["clock_mhz"]), rel=1e-4)
        assert json.loads(r["quality_detail"])["window_steps"] == 2
    # two lanes read two weights per clock: a step with spike deliveries takes fewer cycles
    assert float(rows[1]["cycles_mean"]) < float(rows[0]["cycles_mean"])
    md = (tmp_path / "explore.md").read_text()
    assert "| weight_bits | lanes | coincidence |" in md and "~" in md
    assert (tmp_path / "explore.png").read_bytes()[:4] == b"\x89PNG"
    assert res.evaluated == 4 and res.skipped == 0


def test_an_interrupted_sweep_resumes_and_skips_done_points(tmp_path):
    sweep = parse_sweep("weight_bits=4,6,8")
    seen = []

    def stop_at_third(i, n, label, skipped):
        if i == 2:
            raise KeyboardInterrupt
        seen.append(label)

    with pytest.raises(KeyboardInterrupt):
        explore(small_network(), sweep, tmp_path, ExploreOptions(**FAST), on_point=stop_at_third)
    assert [r["point"] for r in _rows(tmp_path / CSV_NAME)] == ["weight_bits=4", "weight_bits=6"]
    first = _rows(tmp_path / CSV_NAME)
    calls = []
    res = explore(small_network(), sweep, tmp_path, ExploreOptions(**FAST),
                  on_point=lambda i, n, label, skipped: calls.append((label, skipped)))
    assert calls == [("weight_bits=4", True), ("weight_bits=6", True), ("weight_bits=8", False)]
    assert (res.evaluated, res.skipped) == (1, 2)
    rows = _rows(tmp_path / CSV_NAME)
    assert len(rows) == 3 and rows[:2] == first   # done rows untouched, nothing measured twice
    again = explore(small_network(), sweep, tmp_path, ExploreOptions(**FAST))
    assert (again.evaluated, again.skipped) == (0, 3)


def test_a_folder_of_another_sweep_is_not_mixed_in(tmp_path):
    explore(small_network(), parse_sweep("weight_bits=8"), tmp_path, ExploreOptions(**FAST))
    with pytest.raises(ExploreError, match="other keys"):
        explore(small_network(), parse_sweep("lanes=1"), tmp_path, ExploreOptions(**FAST))
    with pytest.raises(ExploreError, match="another network, task, board"):
        explore(small_network(), parse_sweep("weight_bits=8"), tmp_path, ExploreOptions(board="ulx3s-85f", **FAST))
    res = explore(small_network(), parse_sweep("weight_bits=8"), tmp_path,
                  ExploreOptions(board="ulx3s-85f", fresh=True, **FAST))
    assert res.evaluated == 1 and _rows(tmp_path / CSV_NAME)[0]["board"] == "ulx3s-85f"


def test_a_point_the_core_cannot_take_is_a_row_not_a_crash(tmp_path):
    res = explore(small_network(), parse_sweep("trace_bits=4,12 trace_frac=6"), tmp_path, ExploreOptions(**FAST))
    status = [r["status"] for r in res.rows]
    assert status[0].startswith("invalid") and "trace_frac" in status[0]
    assert status[1] == "ok"
    assert "invalid" in (tmp_path / "explore.md").read_text()


def test_the_place_task_refuses_widths_its_training_fixed(tmp_path):
    with pytest.raises(ExploreError, match="--task place sweeps weight_bits and lanes only; drop v_bits"):
        explore(small_network(), parse_sweep("v_bits=16"), tmp_path, ExploreOptions(**FAST), task=make_task("place"))
    assert not (tmp_path / CSV_NAME).exists()


def test_build_sweeps_only_what_the_board_flow_chooses(tmp_path):
    with pytest.raises(ExploreError, match="--build sweeps weight_bits and lanes only"):
        explore(small_network(), parse_sweep("v_bits=16"), tmp_path, ExploreOptions(build=True, **FAST))


def test_a_cached_build_of_the_same_core_is_reported_as_measured(tmp_path, monkeypatch):
    """A build of exactly the point's core, with the top level the point gets, in the bitstream cache
    turns its numbers into measurements; builds of the same core with another top, or of several
    cores, are not that point."""
    from spikeforge.boards.flow import top_path
    from spikeforge.boards.toolchain import design_fingerprint
    from spikeforge.compiler.explore_quality import SpikeAgreement

    cache = tmp_path / "cache"
    monkeypatch.setenv("SPIKEFORGE_BITSTREAM_CACHE", str(cache))
    task = SpikeAgreement(steps=FAST["steps"])
    config = task.compile(small_network(), {"weight_bits": 8}).config

    def cached(key: str, top: str, luts: int, **design):
        entry = cache / key
        entry.mkdir(parents=True)
        (entry / "design.json").write_text(json.dumps({"board": "icebreaker", "mode": "runtime",
                                                       "config": config.to_dict(), "fingerprint": design_fingerprint(),
                                                       "top": top_path(top), **design}))
        (entry / "result.json").write_text(json.dumps({
            "key": key, "directory": str(entry), "board": "icebreaker",
            "bitstream": str(entry / "top.bin"), "verilog": str(entry / "top.v"), "logs": {},
            "utilisation": {"ICESTORM_LC": [luts, 5280], "ICESTORM_RAM": [17, 30], "ICESTORM_SPRAM": [0, 4],
                            "ICESTORM_DSP": [5, 8]},
            "cells": {"SB_DFFE": 1500}, "clocks": [{"name": "sync", "fmax_mhz": 27.5, "target_mhz": 24.0, "passed": True}],
            "seconds": {}, "cached": False, "extra": {}}))

    cached("0" * 20, "bridge", 3210)              # the iCEBreaker's top for this core (auto: the link does not fit)
    cached("1" * 20, "interim", 3100)
    cached("2" * 20, "bridge", 4900, cores=2)     # two cores of it: not this point
    res = explore(small_network(), parse_sweep("weight_bits=8,6"), tmp_path / "out", ExploreOptions(**FAST), task=task)
    hit, miss = res.rows
    assert hit["resources_source"] == "measured (cached build)" and hit["fmax_source"] == "measured (cached build)"
    assert hit["luts"] == 3210 and hit["ffs"] == 1500 and hit["fmax_mhz"] == 27.5 and hit["clock_mhz"] == 24.0
    assert hit["fits_icebreaker"] is True and hit["over_limits"] is None  # it was placed and routed
    assert miss["resources_source"] == "estimate" and miss["fmax_mhz"] is None
    md = (tmp_path / "out" / "explore.md").read_text()
    assert "| 3,210 |" in md and "~3,210" not in md
    interim = explore(small_network(), parse_sweep("weight_bits=8"), tmp_path / "interim",
                      ExploreOptions(**FAST, top="interim"), task=task)
    assert interim.rows[0]["luts"] == 3100


# ---- the command ---------------------------------------------------------------------------------------
@pytest.fixture
def cli():
    from spikeforge.compiler.explore_cli import explore_command

    app = typer.Typer()
    app.command()(explore_command)
    app.command("other")(lambda: None)  # two commands: typer keeps the subcommand name
    return app


def test_cli_sweep_items_after_one_flag_and_resume(cli, tmp_path):
    net = tmp_path / "net.yaml"
    net.write_text("""
spikeforge: 1
name: cli-net
dt: 1.0
populations:
  - {label: out, size: 8, neuron: {tau_m: 20.0, v_thresh: -50.0, v_reset: -65.0, tau_refrac: 2.0}}
sources:
  - {label: in, size: 4, poisson: {rate: 80.0, seed: 2}}
projections:
  - {label: drive, pre: in, post: out, connector: all_to_all, weight: 1.5, delay: 1.0}
""")
    out = tmp_path / "out"
    args = ["explore-command", str(net), "--sweep", "weight_bits=4,8", "lanes=1,2", "-o", str(out), "--steps", "100", "--no-census"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "4 point(s) measured, 0 resumed" in result.output
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and "0 point(s) measured, 4 resumed" in result.output
    assert len(_rows(out / CSV_NAME)) == 4


@pytest.mark.parametrize("args, words", [
    (["--sweep", "lanes=3"], ["lanes=3", "does not support"]),
    (["--sweep", "colour=4"], ["not a core width"]),
    ([], ["give what to sweep"]),
    (["--sweep", "weight_bits=8", "--board", "nexys"], ["unknown board 'nexys'"]),
    (["--sweep", "weight_bits=8", "--task", "cartpole"], ["--task 'cartpole'"]),
])
def test_cli_errors_exit_2_with_a_message(cli, tmp_path, args, words):
    result = CliRunner().invoke(cli, ["explore-command", "examples/balanced.yaml", "-o", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    for word in words:
        assert word in text


def test_cli_missing_network_file(cli, tmp_path):
    result = CliRunner().invoke(cli, ["explore-command", str(tmp_path / "nope.yaml"), "--sweep", "weight_bits=8"])
    assert result.exit_code == 2 and "no such network file" in result.output


@pytest.mark.slow
def test_blimp_task_quality_at_the_trained_width_matches_the_shipped_controller(tmp_path):
    """The blimp task compiled at 8 bits flies exactly the shipped image; 4 bits flies worse."""
    task = make_task("blimp")
    res = explore(task.default_network(), parse_sweep("weight_bits=4,8"), tmp_path, ExploreOptions(task="blimp", **FAST),
                  task=task)
    q = {r["weight_bits"]: r["quality"] for r in res.rows}
    assert q[4] > q[8]
    assert "Baseline (PID)" in (tmp_path / "explore.md").read_text()


@pytest.mark.slow
def test_place_task_wider_words_change_nothing_narrower_ones_do():
    """Re-quantising the 12-bit module to 16 bits is exact (same responses, same Recall@1); at 4 bits
    the stored weights change."""
    task = make_task("place")
    net = task.default_network()
    q12 = task.measure(task.compile(net, {"weight_bits": 12}), {"weight_bits": 12})
    q16 = task.measure(task.compile(net, {"weight_bits": 16}), {"weight_bits": 16})
    assert q12 == q16 and 0.0 <= q12["quality"] <= 1.0
    image = task._load()["image"]
    assert not np.array_equal(requantise_weights(image, 4).weights << requantise_weights(image, 4).row_shift[:, None],
                              image.weights << image.row_shift[:, None])
    assert task.reference()["name"] == "SAD"
