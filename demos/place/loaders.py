"""Loaders for the real data sets: Nordland and Oxford RobotCar, in the layout VPRSNN uses.

Neither data set can be downloaded by spikeforge; a user who has them points ``--data`` at the
folder. Both are *frame-aligned*: frame k of every traverse shows the same place, so after the same
subsampling, place k is frame k everywhere.

Nordland (``DIR/<season>/images-NNNNN.png``, seasons spring, summer, fall, winter):
    references spring + fall, query summer; every ``skip`` = 8th frame (about 100 m apart). VPRSNN
    also drops the frames where the train runs slower than 15 km/h, from a list of kept frames;
    give that list as ``frames`` (a text file, one frame file name or number per line) to do the
    same -- without it every frame is used.
Oxford RobotCar (``DIR/<condition>/NNNNNN.png``, conditions Sun, Rain, Dusk as VPRSNN names them):
    references Sun + Rain, query Dusk; the frames of the three folders are already aligned, so
    ``skip`` defaults to 1.

The paper's splits: Nordland 600 calibration + 2,700 test places, Oxford RobotCar 75 + 375, 25
places per module. Images are preprocessed with demos/place/preprocess.py (resize, grey, patch
normalisation) to the module's image size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from spikeforge.demos.place.dataset import DatasetError, PlaceDataset
from spikeforge.demos.place.preprocess import check_patch_size, load_image, preprocess

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")


@dataclass(frozen=True)
class Layout:
    """How a data set is laid out on disk and which traverses play which role."""

    name: str
    references: tuple[str, ...]
    query: str
    skip: int
    calibration_places: int
    test_places: int
    example: str


NORDLAND = Layout("nordland", ("spring", "fall"), "summer", skip=8, calibration_places=600, test_places=2700,
                  example="DIR/spring/images-00001.png, DIR/fall/..., DIR/summer/...")
OXFORD_ROBOTCAR = Layout("oxford-robotcar", ("Sun", "Rain"), "Dusk", skip=1, calibration_places=75,
                         test_places=375, example="DIR/Sun/000000.png, DIR/Rain/..., DIR/Dusk/...")
LAYOUTS = {"nordland": NORDLAND, "oxford-robotcar": OXFORD_ROBOTCAR, "orc": OXFORD_ROBOTCAR}


def _frame_number(name: str) -> int | None:
    digits = re.findall(r"\d+", Path(name).stem)
    return int(digits[-1]) if digits else None


def traverse_frames(folder: Path) -> list[Path]:
    """The image files of one traverse folder, sorted by name (as VPRSNN sorts them)."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such traverse folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this traverse folder")
    return files


def read_frame_list(path: Path) -> set[int]:
    """Frame numbers kept by a filter list: one file name or frame number per line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such frame list file (one frame name or number per line)")
    kept = set()
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        n = _frame_number(line)
        if n is None:
            raise DatasetError(f"{path}:{line_no}: {line!r} names no frame number")
        kept.add(n)
    return kept


def select_frames(files: Sequence[Path], skip: int, offset: int, count: int,
                  kept: set[int] | None = None) -> list[Path]:
    """Frame subsampling: the kept frames (all if ``kept`` is None), every ``skip``-th of them,
    starting at ``offset`` places; ``count`` of them."""
    if skip < 1:
        raise DatasetError(f"skip = {skip}: expected >= 1 (1 = every frame)")
    if offset < 0:
        raise DatasetError(f"offset = {offset}: expected >= 0")
    frames = [f for f in files if kept is None or _frame_number(f.name) in kept]
    chosen = frames[::skip][offset:offset + count]
    return chosen


def load_layout(
    root,
    layout: Layout,
    *,
    image_shape: tuple[int, int] = (12, 12),
    patch_size: int = 5,
    calibration_places: int | None = None,
    test_places: int | None = None,
    places_per_module: int = 25,
    skip: int | None = None,
    offset: int = 0,
    frames: Path | None = None,
    references: Sequence[str] | None = None,
    query: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PlaceDataset:
    """Load, subsample and preprocess a frame-aligned data set laid out as ``layout`` under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such data folder; expected the {layout.name} layout {layout.example}")
    check_patch_size(patch_size, image_shape)
    refs = tuple(references or layout.references)
    q_name = query or layout.query
    cal = layout.calibration_places if calibration_places is None else int(calibration_places)
    test = layout.test_places if test_places is None else int(test_places)
    step = layout.skip if skip is None else int(skip)
    kept = read_frame_list(frames) if frames is not None else None
    n = cal + test
    folders = {name: root / name for name in (*refs, q_name)}
    missing = [str(f) for f in folders.values() if not f.is_dir()]
    if missing:
        raise DatasetError(
            f"{root}: missing traverse folder(s) {', '.join(missing)}; the {layout.name} layout is {layout.example}"
        )
    chosen = {}
    for name, folder in folders.items():
        files = select_frames(traverse_frames(folder), step, offset, n, kept)
        if len(files) < n:
            raise DatasetError(
                f"{folder}: {len(files)} frames after subsampling (skip {step}, offset {offset}"
                f"{', frame list ' + str(frames) if frames else ''}), but {cal} calibration + {test} test = {n} "
                "places are needed; use fewer places, a smaller skip, or a smaller offset"
            )
        chosen[name] = files
    total = n * len(folders)
    done = 0
    out = {}
    for name, files in chosen.items():
        imgs = []
        for f in files:
            imgs.append(preprocess(load_image(f), image_shape, patch_size))
            done += 1
            if progress:
                progress(done, total)
        out[name] = np.stack(imgs)
    return PlaceDataset(
        name=layout.name,
        reference=np.stack([out[r] for r in refs]),
        query=out[q_name],
        calibration_places=cal,
        places_per_module=places_per_module,
        reference_names=refs,
        query_name=q_name,
        meta={"root": str(root), "skip": step, "offset": offset, "frames": str(frames) if frames else None,
              "patch_size": patch_size, "first_frames": {k: v[0].name for k, v in chosen.items()}},
    )


def load_nordland(root, **options) -> PlaceDataset:
    """Nordland (see the module docstring); options as ``load_layout``."""
    return load_layout(root, NORDLAND, **options)


def load_oxford_robotcar(root, **options) -> PlaceDataset:
    """Oxford RobotCar in VPRSNN's Sun / Rain / Dusk layout; options as ``load_layout``."""
    return load_layout(root, OXFORD_ROBOTCAR, **options)
