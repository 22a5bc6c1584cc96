"""Place recognition data: preprocessing, the synthetic benchmark, the Nordland / Oxford RobotCar loaders."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from spikeforge.demos.place.dataset import DatasetError, PlaceDataset
from spikeforge.demos.place.loaders import NORDLAND, OXFORD_ROBOTCAR, load_layout, read_frame_list, select_frames
from spikeforge.demos.place.metrics import recall_at, sad_distances
from spikeforge.demos.place.preprocess import PreprocessError, patch_normalise, preprocess, to_uint8
from spikeforge.demos.place.synthetic import DUSK, SyntheticRoute


# ---- preprocessing ------------------------------------------------------------------------------------
def reference_patch_normalise(img, k):
    """Direct per-pixel definition: statistics over the in-image part of the k x k patch."""
    h, w = img.shape
    r = k // 2
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            patch = img[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1].astype(float)
            sd = patch.std()
            out[y, x] = 0.0 if sd == 0 else (img[y, x] - patch.mean()) / sd
    return np.clip(out, -1, 1)


def test_patch_normalisation_matches_its_definition_including_borders():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (9, 11)).astype(float)
    for k in (3, 5, 7):
        np.testing.assert_allclose(patch_normalise(img, k), reference_patch_normalise(img, k), atol=1e-12)


def test_patch_normalisation_removes_gain_and_offset():
    rng = np.random.default_rng(2)
    img = rng.random((12, 12)) * 100
    np.testing.assert_allclose(patch_normalise(img, 5), patch_normalise(3.0 * img + 40.0, 5), atol=1e-9)


def test_flat_patch_is_mid_grey_and_uint8_scaling():
    out = to_uint8(patch_normalise(np.full((6, 6), 7.0), 3))
    assert out.dtype == np.uint8 and (out == 127).all()  # uint8(255 * 1 / 2) truncates to 127
    assert to_uint8(np.array([-1.0, 1.0])).tolist() == [0, 255]


def test_preprocess_resizes_colour_frames():
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (60, 80, 3)).astype(np.uint8)
    out = preprocess(frame, (12, 14), 5)
    assert out.shape == (12, 14) and out.dtype == np.uint8


@pytest.mark.parametrize("k", [4, 0, 13])
def test_bad_patch_sizes_are_refused(k):
    with pytest.raises(PreprocessError, match="patch_size"):
        patch_normalise(np.zeros((12, 12)), k)


# ---- the synthetic benchmark --------------------------------------------------------------------------
SMALL = SyntheticRoute(places=50, calibration_places=25, places_per_module=25)


def test_synthetic_benchmark_is_seeded_and_shaped():
    a, b = SMALL.generate(), SMALL.generate()
    assert np.array_equal(a.reference, b.reference) and np.array_equal(a.query, b.query)
    assert a.reference.shape == (2, 50, 12, 12) and a.query.shape == (50, 12, 12)
    c = replace(SMALL, seed=SMALL.seed + 1).generate()
    assert not np.array_equal(a.query, c.query)
    assert a.split_places("test").tolist() == list(range(25, 50))
    assert [m.tolist() for m in a.module_places("calibration")] == [list(range(25))]


def test_appearance_change_hurts_sad_but_it_is_far_above_chance():
    """The benchmark's contract: SAD is neither trivially perfect nor hopeless, and the query's
    appearance change is what costs it (a query rendered like a reference is matched far better)."""
    ds = SyntheticRoute().generate()
    test = ds.split_places("test")
    r1 = recall_at(-sad_distances(ds.query[test], ds.reference[:, test]), (1,))[1]
    assert 0.3 < r1 < 0.9
    assert r1 > 10 / len(test)  # 10x chance
    easy = replace(SyntheticRoute(), query=replace(DUSK, name="day-again", gain=1.0, gamma=1.0, contrast=1.0,
                                                   lit_windows=0.0, leaf_loss=0.0, foliage=0.0, fog=0.0,
                                                   noise=0.03, shift=1.5, vshift=0.6, cars=0.4, wall=1.0,
                                                   sky=0.85, gradient=0.15)).generate()
    r1_easy = recall_at(-sad_distances(easy.query[test], easy.reference[:, test]), (1,))[1]
    assert r1_easy > r1 + 0.1


def test_near_duplicates_neighbouring_places_overlap():
    """Views overlap (spacing < view width), so neighbours are closer than random places."""
    ds = SMALL.generate()
    d = sad_distances(ds.reference[0], ds.reference[:1])
    neighbour = np.mean([d[k, k + 1] for k in range(49)])
    far = np.mean([d[k, (k + 25) % 50] for k in range(50)])
    assert neighbour < far


def test_dataset_checks_module_splits():
    ref = np.zeros((2, 30, 4, 4), np.uint8)
    with pytest.raises(DatasetError, match="modules of 25"):
        PlaceDataset("x", ref, np.zeros((30, 4, 4), np.uint8), calibration_places=5, places_per_module=25)
    with pytest.raises(DatasetError, match="query has shape"):
        PlaceDataset("x", ref, np.zeros((29, 4, 4), np.uint8), calibration_places=0, places_per_module=10)


# ---- loaders on generated image folders ---------------------------------------------------------------
def write_traverse(folder, names, seed, shape=(30, 40)):
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(0).integers(0, 256, (len(names), *shape, 3))  # the places
    for k, name in enumerate(names):
        img = np.clip(base[k] * 0.8 + rng.integers(0, 50, (*shape, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / name)


def test_nordland_layout_skip_frames_list_and_alignment(tmp_path):
    names = [f"images-{k:05d}.png" for k in range(1, 41)]
    for s, season in enumerate(("spring", "fall", "summer", "winter")):
        write_traverse(tmp_path / season, names, s)
    (tmp_path / "kept.txt").write_text("\n".join(n for n in names if int(n[7:12]) % 5 != 0) + "\n")
    ds = load_layout(tmp_path, NORDLAND, calibration_places=2, test_places=4, places_per_module=2, skip=4,
                     frames=tmp_path / "kept.txt", image_shape=(8, 8), patch_size=3)
    assert ds.reference.shape == (2, 6, 8, 8) and ds.query.shape == (6, 8, 8)
    assert ds.reference_names == ("spring", "fall") and ds.query_name == "summer"
    # kept frames 1,2,3,4,6,7,... every 4th: 1, 6, 11, 16, 21, 26 (frames 5, 10, ... dropped)
    assert ds.meta["first_frames"]["summer"] == "images-00001.png"
    files = select_frames([tmp_path / "spring" / n for n in names], 4, 0, 6, read_frame_list(tmp_path / "kept.txt"))
    assert [int(f.name[7:12]) for f in files] == [1, 6, 11, 16, 21, 26]
    # the same place in different traverses is more alike than different places
    d = sad_distances(ds.query, ds.reference)
    assert (d.argmin(axis=1) == np.arange(6)).mean() >= 0.8


def test_oxford_robotcar_layout_and_errors(tmp_path):
    names = [f"{k:06d}.png" for k in range(10)]
    for s, cond in enumerate(("Sun", "Rain", "Dusk")):
        write_traverse(tmp_path / cond, names, s)
    ds = load_layout(tmp_path, OXFORD_ROBOTCAR, calibration_places=2, test_places=4, places_per_module=2,
                     image_shape=(6, 6), patch_size=3)
    assert ds.reference.shape == (2, 6, 6, 6)
    with pytest.raises(DatasetError, match="places are needed"):
        load_layout(tmp_path, OXFORD_ROBOTCAR, calibration_places=10, test_places=10, places_per_module=2,
                    image_shape=(6, 6), patch_size=3)
    with pytest.raises(DatasetError, match="missing traverse folder"):
        load_layout(tmp_path, NORDLAND, calibration_places=2, test_places=2, places_per_module=2)
    with pytest.raises(DatasetError, match="no such data folder"):
        load_layout(tmp_path / "nope", NORDLAND)
