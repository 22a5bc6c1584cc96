"""The place-recognition demo: evaluation pipeline, shipped weights, deployment hooks, CLI."""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from spikeforge.demos.place.demo import SHIPPED_WEIGHTS, DemoOptions, run_demo
from spikeforge.demos.place.ensemble import TrainedEnsemble
from spikeforge.demos.place.evaluation import VARIANTS, evaluate
from spikeforge.demos.place.training import module_specs, train

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_place_module import SHORT, tiny_dataset  # noqa: E402  (the shared tiny route and schedule)


@pytest.fixture(scope="module")
def tiny_ensemble():
    ds = tiny_dataset(places=8, per_module=4)
    specs = module_specs(ds, [1, 2])
    imgs, _ = train(specs, ds, SHORT, 2)
    return ds, TrainedEnsemble.from_images(SHORT, specs, imgs, 2, ds)


def test_evaluation_pipeline_on_a_tiny_route(tiny_ensemble):
    ds, ens = tiny_ensemble
    ev = evaluate(ens, ds)
    assert set(ev.metrics) == set(VARIANTS)
    for name, s in ev.scores.items():
        assert s.shape == (4, 4), name
    # no regularisation is the ensemble at threshold 0; the chosen thresholds come from the list
    assert ev.thresholds["snn_no_regularisation"] == 0
    assert ev.thresholds["snn_ensemble"] in ev.calibration_curve["snn_ensemble"]
    ens0 = evaluate(ens, ds, responses=ev.responses)
    assert np.array_equal(ens0.scores["snn_ensemble"], ev.scores["snn_ensemble"])
    # the ensemble score is the sum of its members' scores
    assert ev.responses.reference.shape == (4, 2, 8, SHORT.n_neurons)
    # learning made the modules better than chance on their own reference images
    assert ev.metrics["sad"]["recall"]["1"] > 0.5


def test_shipped_weights_match_the_benchmark_and_the_core():
    from spikeforge.demos.place.synthetic import SyntheticRoute

    path = SHIPPED_WEIGHTS["synthetic"]
    assert path.exists(), "demos/place/trained/synthetic.npz is missing: run spikeforge demo place --train"
    assert path.stat().st_size < 2_000_000
    ens = TrainedEnsemble.load(path)
    ds = SyntheticRoute(image_shape=tuple(ens.params.image_shape)).generate()
    ens.check_dataset(ds)
    ens.params.check_fits()
    assert len(ens.members) >= 3 and len(ens.specs) == len(ens.members) * (ds.n_places // ds.places_per_module)
    img = ens.inference_images()[0]
    assert not img.learning and img.adapt.any()


def test_ensemble_network_for_spinnaker_has_the_learned_thresholds(tiny_ensemble):
    from spikeforge.demos.place.deploy import ensemble_network, module_physical

    ds, ens = tiny_ensemble
    net = ensemble_network(ens, [0, 1], ds.query[0])
    assert [p.label for p in net.populations] == ["module0", "module1"]
    assert net.n_neurons == 2 * SHORT.n_neurons and net.sources[0].size == SHORT.n_inputs
    phys = module_physical(ens, 0)
    th = np.asarray(net.populations[0].params.v_thresh)
    assert np.allclose(th, phys["thresholds"]) and th.max() > SHORT.v_thresh  # adaptation became thresholds
    assert net.populations[0].params.threshold_adaptation is None
    inh = [p for p in net.projections if p.label == "module0.inhibition"][0]
    assert inh.receptor == "inhibitory" and np.allclose(np.diag(inh.weights), 0)


@pytest.mark.slow
def test_spinnaker_mapping_of_two_modules(tiny_ensemble, tmp_path):
    pytest.importorskip("spynnaker")
    from spikeforge.demos.place.demo import spinnaker_check

    ds, ens = tiny_ensemble
    check = spinnaker_check(ens, ds, tmp_path, modules=2)
    report = json.loads((tmp_path / "spinnaker.json").read_text())
    assert check["modules"] == 2 and check["application_cores"] >= 2 and report["virtual"]


@pytest.mark.slow
def test_default_demo_with_shipped_weights(tmp_path):
    """What `spikeforge demo place` does by default, with its contract on metrics.json."""
    res = run_demo(DemoOptions(out=tmp_path, scaling=True, board_cores=2, limits=True, sequence=3),
                   log=lambda s: None)
    m = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("recall_at_1", "pr_auc"):
        assert set(m[key]) == {"snn_ensemble", "snn_single", "snn_no_regularisation", "sad"}
    assert isinstance(m["places"], int) and isinstance(m["modules"], int)
    assert m["checks"]["virtual_board"]["equal_to_golden"]
    assert m["recall_at_1"]["snn_ensemble"] > 10 / m["places"]
    # the limits analysis: exact templates with no spikes are at SAD's level, the modules below it
    lim = m["limits"]
    assert lim["noise_free"]["sad"] == m["recall_at_1"]["sad"]
    assert lim["exact_templates"]["integrate_and_fire"]["standard"] < lim["noise_free"]["templates_per_image"]
    for f in ("pr_curves.png", "distance_matrices.png", "example_matches.png", "limits.png"):
        assert (tmp_path / f).stat().st_size > 1000
    assert res.metrics["throughput"]["scaling"]["r2"] > 0.9
    seq = m["sequence"]
    assert seq["length"] == 3 and set(seq["recall_at_1"]) == set(m["recall_at_1"])
    for key in m["recall_at_1"]:  # on this route three frames beat one for every method
        assert seq["recall_at_1"][key] > m["recall_at_1"][key]


def place_app():
    from spikeforge.demos.place.cli import place_command

    app = typer.Typer()
    app.command()(place_command)
    return app


def test_cli_explains_missing_data(tmp_path):
    def run(*args):
        r = CliRunner().invoke(place_app(), [*args, "--out", str(tmp_path)])
        return r.exit_code, " ".join(r.output.split())  # the console wraps long lines

    code, text = run("--dataset", "nordland")
    assert code == 2 and "--data" in text
    code, text = run("--dataset", "kitti")
    assert code == 2 and "synthetic, nordland or oxford-robotcar" in text
    code, text = run("--dataset", "nordland", "--data", str(tmp_path / "none"))
    assert code == 2 and "no such data folder" in text
    code, text = run("--weights", str(tmp_path / "missing.npz"))
    assert code == 2 and "no such weights file" in text


def test_throughput_prediction_and_scaling(tiny_ensemble):
    from spikeforge.demos.place.throughput import golden_scaling, hardware_prediction, link_bytes_per_image
    from spikeforge.sim.cycle_model import predict_cycles

    ds, ens = tiny_ensemble
    imgs = ens.inference_images()
    hw = hardware_prediction(imgs[:2], ds.query[:2], SHORT, clock_hz=24e6)
    per = SHORT.steps_per_image
    c = SHORT.core_config()
    idle = predict_cycles(c, n_spiking_sources=0, n_post_spikes=0, learning=False)
    assert hw["steps_per_image"] == per and hw["cycles_per_image"] > per * idle  # input spikes cost cycles
    assert hw["compute_images_per_s_per_core"] == pytest.approx(24e6 / hw["cycles_per_image"])
    assert hw["images_per_s_per_core"] <= min(hw["compute_images_per_s_per_core"], hw["link_images_per_s"])
    raster = np.zeros((per, SHORT.n_inputs), bool)
    down, up = link_bytes_per_image(raster, SHORT.n_neurons)
    assert down == 0 and up > 0  # no input spikes, no INJECT frames; spikes come back every step
    raster[0, :3] = True
    assert link_bytes_per_image(raster, SHORT.n_neurons)[0] > 0
    s = golden_scaling(imgs, ds.query[:1], SHORT, counts=(1, 2, 4), repeats=1)
    # wall times are measured, not asserted (a loaded machine can make 4 modules as fast as 2): check
    # that each count was timed and that the line is the least-squares fit of those times
    assert s["modules"] == [1, 2, 4] and len(s["seconds"]) == 3 and min(s["seconds"]) > 0
    slope, intercept = np.polyfit([1, 2, 4], s["seconds"], 1)
    assert s["seconds_per_module"] == pytest.approx(slope) and s["intercept_s"] == pytest.approx(intercept)


def test_cli_sequence_matching_table_and_metrics(tmp_path):
    """`--sequence L` adds every method's scores over L consecutive frames (table and metrics.json)."""
    r = CliRunner().invoke(place_app(), ["--out", str(tmp_path), "--no-scaling", "--sequence", "2"])
    assert r.exit_code == 0, r.output
    assert "With sequence matching over 2 frames" in r.output
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["sequence"]["length"] == 2
    assert set(m["sequence"]["pr_auc"]) == {"snn_ensemble", "snn_single", "snn_no_regularisation", "sad"}
    r = CliRunner().invoke(place_app(), ["--out", str(tmp_path), "--sequence", "0"])
    assert r.exit_code == 2 and "--sequence" in r.output


def test_cli_trains_on_a_nordland_folder_and_its_weights_reproduce_the_evaluation(tmp_path):
    """What a user with Nordland runs, end to end: a season folder of PNG frames -> --train -> metrics.json
    and weights; evaluating those weights again (--weights, no training) gives the same numbers."""
    from PIL import Image

    from spikeforge.demos.place.metrics import recall_at, sad_distances
    from spikeforge.demos.place.synthetic import DAY, DUSK, OVERCAST, SyntheticRoute

    route = SyntheticRoute(places=20, calibration_places=10, places_per_module=5, seed=5)
    data = tmp_path / "nordland"
    for k, (season, cond) in enumerate((("spring", DAY), ("fall", OVERCAST), ("summer", DUSK))):
        (data / season).mkdir(parents=True)
        for i, frame in enumerate(route.camera_frames(cond, k)):
            rgb = Image.fromarray(np.uint8(np.round(frame * 255))).convert("RGB")
            rgb.save(data / season / f"images-{i + 1:05d}.png")
    common = ["--dataset", "nordland", "--data", str(data), "--skip", "1", "--calibration-places", "10",
              "--test-places", "10", "--places-per-module", "5", "--no-scaling"]
    r = CliRunner().invoke(place_app(), [*common, "--out", str(tmp_path / "a"), "--train", "--members", "2",
                                         "--epochs", "2"])
    assert r.exit_code == 0, r.output
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert a["dataset"]["name"] == "nordland" and a["places"] == 10 and a["modules"] == 2 * 4
    assert a["training"]["epochs"] == 2 and (tmp_path / "a" / "weights.npz").is_file()
    # SAD on the loaded frames is what the metrics report (the loader's images, not the generator's)
    from spikeforge.demos.place.loaders import NORDLAND, load_layout

    ds = load_layout(data, NORDLAND, calibration_places=10, test_places=10, places_per_module=5, skip=1,
                     image_shape=(12, 12), patch_size=5)
    test = np.arange(10, 20)
    assert a["recall_at_1"]["sad"] == recall_at(-sad_distances(ds.query[test], ds.reference[:, test]), [1])[1]
    r = CliRunner().invoke(place_app(), [*common, "--out", str(tmp_path / "b"),
                                         "--weights", str(tmp_path / "a" / "weights.npz")])
    assert r.exit_code == 0, r.output
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    for key in ("recall_at_1", "recall_at_5", "pr_auc", "regularisation_threshold"):
        assert b[key] == a[key]
