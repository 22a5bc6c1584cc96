"""A generated route benchmark for place recognition: seeded, offline, with appearance change.

Why generated: Nordland and Oxford RobotCar cannot be downloaded here, and a demo and its tests must
run anywhere. The benchmark imitates what makes those data sets hard, in a form that is cheap to
render and exactly reproducible from a seed:

- **The world** is a side-on panorama along a route: sky, a hill line, buildings with windows, trees,
  poles with signs, and a road with dashed lane markings. A place is a camera view (a window of the
  panorama) every ``spacing`` pixels; views are wider than the spacing, so neighbouring places
  overlap -- *near-duplicates* that differ by a partial shift.
- **Perceptual aliasing**: a fraction of the route (``repeat_fraction``) is built from copies of
  earlier stretches (a row of identical houses, a repeated avenue), re-rendered with small
  differences, so some distinct places look almost the same.
- **Traverses** render the same world under different conditions. The references are ``day`` and
  ``overcast``; the query is ``dusk``. A condition sets the global illumination (gain, gamma),
  contrast, a smooth illumination gradient, sky brightness, the shade of walls, foliage (season:
  leaves darker or gone), lit windows (at dusk windows are *brighter* than walls -- a local polarity
  change that patch normalisation cannot undo), parked cars that come and go (occlusion), fog over
  the far hills, camera noise, and a small random viewpoint change per frame (lateral and vertical
  shift of the view).

Each frame is rendered at camera resolution (``camera`` = height x width pixels) and preprocessed
like the real data (demos/place/preprocess.py). Global illumination and contrast changes are removed
by patch normalisation; the rest -- noise, shifts, lit windows, cars, foliage, fog -- is not, and
that is what costs SAD (sum of absolute differences) its recall.

Limits (read before quoting a number): the scenes are flat 2-D drawings, not photographs; there is
no perspective, parallax, motion blur, weather texture or dynamic range; the appearance change is
drawn from a handful of hand-made parameters, so a method tuned on it can overfit it. Results on
this benchmark show that a pipeline works and how methods compare *on this benchmark*; they do not
predict results on Nordland or Oxford RobotCar.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace

import numpy as np

from spikeforge.demos.place.dataset import DatasetError, PlaceDataset
from spikeforge.demos.place.preprocess import check_patch_size, preprocess_many


@dataclass(frozen=True)
class Condition:
    """How one traverse sees the world (see the module docstring)."""

    name: str
    gain: float = 1.0            # global brightness factor
    gamma: float = 1.0           # global gamma (after the gain)
    contrast: float = 1.0        # contrast around mid-grey
    gradient: float = 0.0        # strength of a smooth random illumination gradient across the view
    sky: float = 0.85            # sky brightness
    wall: float = 1.0            # factor on wall shades
    foliage: float = 0.0         # shift of canopy shades (negative: darker leaves)
    leaf_loss: float = 0.0       # probability that a tree has no canopy in this traverse
    lit_windows: float = 0.0     # probability that a window is lit (brighter than its wall)
    cars: float = 0.3            # parked cars per place (Poisson mean), different in every traverse
    fog: float = 0.0             # blend of the hill line toward the sky
    noise: float = 0.02          # camera noise (sd, on 0..1 intensities) at camera resolution
    shift: float = 1.0           # lateral viewpoint change (sd, camera pixels)
    vshift: float = 0.5          # vertical viewpoint change (sd, camera pixels)


#: The traverses of the benchmark: two references and the query.
DAY = Condition("day", gain=1.0, gamma=1.0, contrast=1.0, gradient=0.15, sky=0.85, wall=1.0,
                foliage=0.0, leaf_loss=0.0, lit_windows=0.0, cars=0.4, fog=0.0, noise=0.03,
                shift=1.5, vshift=0.6)
OVERCAST = Condition("overcast", gain=0.8, gamma=1.2, contrast=0.7, gradient=0.25, sky=0.7, wall=0.9,
                     foliage=-0.1, leaf_loss=0.15, lit_windows=0.05, cars=0.4, fog=0.3, noise=0.04,
                     shift=1.5, vshift=0.6)
DUSK = Condition("dusk", gain=0.6, gamma=1.2, contrast=0.6, gradient=0.35, sky=0.45, wall=0.7,
                 foliage=-0.25, leaf_loss=0.35, lit_windows=0.4, cars=0.5, fog=0.5, noise=0.03,
                 shift=2.0, vshift=1.0)


@dataclass(frozen=True)
class SyntheticRoute:
    """Parameters of the generated benchmark; ``generate()`` renders it. Same parameters, same images."""

    places: int = 150
    calibration_places: int = 50
    places_per_module: int = 25
    image_shape: tuple[int, int] = (12, 12)
    patch_size: int = 5
    camera: tuple[int, int] = (48, 64)
    spacing: int = 40
    repeat_fraction: float = 0.15
    seed: int = 2024
    references: tuple[Condition, ...] = (DAY, OVERCAST)
    query: Condition = DUSK

    def check(self) -> None:
        if self.places < 2:
            raise DatasetError(f"SyntheticRoute.places = {self.places}: expected >= 2")
        ch, cw = self.camera
        if ch < 8 or cw < 8:
            raise DatasetError(f"SyntheticRoute.camera = {self.camera}: expected at least 8 x 8 pixels")
        if not 1 <= self.spacing:
            raise DatasetError(f"SyntheticRoute.spacing = {self.spacing}: expected >= 1 pixel")
        if not 0.0 <= self.repeat_fraction < 1.0:
            raise DatasetError(f"SyntheticRoute.repeat_fraction = {self.repeat_fraction}: expected 0 <= f < 1")
        if not self.references:
            raise DatasetError("SyntheticRoute.references: give at least one reference condition")
        check_patch_size(self.patch_size, self.image_shape)

    def generate(self) -> PlaceDataset:
        """Render every traverse and preprocess it; returns the PlaceDataset."""
        self.check()
        world = build_world(self)
        conditions = (*self.references, self.query)
        frames = [render_traverse(world, self, cond, k) for k, cond in enumerate(conditions)]
        processed = [preprocess_many(f, self.image_shape, self.patch_size) for f in frames]
        return PlaceDataset(
            name="synthetic",
            reference=np.stack(processed[:-1]),
            query=processed[-1],
            calibration_places=self.calibration_places,
            places_per_module=self.places_per_module,
            reference_names=tuple(c.name for c in self.references),
            query_name=self.query.name,
            meta={"generator": "spikeforge.demos.place.synthetic", "seed": self.seed,
                  "camera": list(self.camera), "spacing": self.spacing, "patch_size": self.patch_size,
                  "repeat_fraction": self.repeat_fraction},
        )

    def camera_frames(self, condition: Condition, traverse: int = 0) -> np.ndarray:
        """The raw (places, camera height, camera width) frames of one traverse, 0..1 (for plots)."""
        self.check()
        return render_traverse(build_world(self), self, condition, traverse)


# ---- the world --------------------------------------------------------------------------------------
@dataclass
class World:
    """Condition-independent description of the panorama (positions, sizes, base shades)."""

    width: int
    height: int
    horizon: int
    road_top: int
    hills: np.ndarray                      # (width,) hill line height above the horizon
    buildings: list = field(default_factory=list)  # dicts: x, w, h, shade, roof, windows (rows, cols)
    trees: list = field(default_factory=list)      # dicts: x, r, trunk, shade, id
    poles: list = field(default_factory=list)      # dicts: x, h, sign (bool), shade
    dash_phase: int = 0


def _margin(route: SyntheticRoute) -> int:
    return 4 * max(1, int(np.ceil(3 * route.query.shift))) + 8


def build_world(route: SyntheticRoute) -> World:
    """Place the objects of the route (seeded by ``route.seed``)."""
    rng = np.random.default_rng([route.seed, 1])
    ch, cw = route.camera
    pad = 4  # rows above and below the view for vertical viewpoint changes
    height = ch + 2 * pad
    width = route.spacing * (route.places - 1) + cw + 2 * _margin(route)
    horizon = pad + int(0.55 * ch)
    road_top = pad + int(0.78 * ch)
    x = np.arange(width)
    hills = np.zeros(width)
    for _ in range(4):
        period = rng.uniform(60, 400)
        hills += rng.uniform(1.0, 4.0) * np.sin(2 * np.pi * x / period + rng.uniform(0, 2 * np.pi))
    hills = hills - hills.min() + 2
    world = World(width=width, height=height, horizon=horizon, road_top=road_top, hills=hills,
                  dash_phase=int(rng.integers(0, 12)))

    # Objects in segments; a segment may copy an earlier one (perceptual aliasing).
    segment = max(route.spacing, 24)
    history: list[tuple[int, list, list, list]] = []
    tree_id = 0
    for x0 in range(0, width, segment):
        if history and rng.random() < route.repeat_fraction:
            src_x0, b_src, t_src, p_src = history[int(rng.integers(0, len(history)))]
            dx = x0 - src_x0
            bs = [dict(b, x=b["x"] + dx, shade=float(np.clip(b["shade"] + rng.normal(0, 0.03), 0.1, 0.9)))
                  for b in b_src]
            ts = []
            for t in t_src:
                ts.append(dict(t, x=t["x"] + dx, id=tree_id))
                tree_id += 1
            ps = [dict(p, x=p["x"] + dx) for p in p_src]
        else:
            bs, ts, ps = [], [], []
            cursor = x0 + int(rng.integers(0, 6))
            while cursor < x0 + segment:
                kind = rng.choice(["building", "tree", "pole", "gap"], p=[0.45, 0.3, 0.1, 0.15])
                if kind == "building":
                    w = int(rng.integers(8, 22))
                    h = int(rng.integers(6, int(0.5 * ch)))
                    bs.append({"x": cursor, "w": w, "h": h, "shade": float(rng.uniform(0.2, 0.8)),
                               "roof": float(rng.uniform(0.05, 0.5)),
                               "windows": (int(rng.integers(1, max(2, h // 4))), int(rng.integers(1, max(2, w // 4)))),
                               "seed": int(rng.integers(0, 2**31))})
                    cursor += w + int(rng.integers(0, 4))
                elif kind == "tree":
                    r = int(rng.integers(3, 8))
                    ts.append({"x": cursor + r, "r": r, "trunk": int(rng.integers(3, 9)),
                               "shade": float(rng.uniform(0.15, 0.55)), "id": tree_id})
                    tree_id += 1
                    cursor += 2 * r + int(rng.integers(0, 3))
                elif kind == "pole":
                    ps.append({"x": cursor, "h": int(rng.integers(10, int(0.6 * ch))), "sign": bool(rng.random() < 0.5),
                               "shade": float(rng.uniform(0.0, 1.0))})
                    cursor += 3
                else:
                    cursor += int(rng.integers(3, 10))
        world.buildings += bs
        world.trees += ts
        world.poles += ps
        history.append((x0, bs, ts, ps))
    return world


# ---- rendering --------------------------------------------------------------------------------------
def _stable(name: str) -> int:
    """A seed from a condition name that is the same in every process (``hash`` is salted)."""
    return zlib.crc32(name.encode()) & 0xFFFF


def render_panorama(world: World, cond: Condition, rng: np.random.Generator) -> np.ndarray:
    """The whole panorama under ``cond`` (before camera effects), intensities 0..1."""
    H, W = world.height, world.width
    img = np.empty((H, W))
    rows = np.arange(H)[:, None]
    img[:] = cond.sky * (0.8 + 0.2 * rows / max(1, world.horizon))  # sky, brighter toward the horizon
    # hills, fogged toward the sky
    hill_top = world.horizon - world.hills.astype(int)
    hill_shade = (1 - cond.fog) * 0.45 + cond.fog * cond.sky
    img[(rows >= hill_top[None, :]) & (rows < world.horizon)] = hill_shade
    # ground between horizon and road
    img[world.horizon:world.road_top] = 0.35 * cond.wall
    # buildings
    for b in world.buildings:
        x0, x1 = max(0, b["x"]), min(W, b["x"] + b["w"])
        if x0 >= x1:
            continue
        top = world.horizon + 2 - b["h"]
        shade = float(np.clip(b["shade"] * cond.wall, 0, 1))
        img[max(0, top):world.road_top, x0:x1] = shade
        img[max(0, top):max(0, top) + 2, x0:x1] = b["roof"] * cond.wall
        wrng = np.random.default_rng([b["seed"], _stable(cond.name)])
        nr, nc = b["windows"]
        for i in range(nr):
            for j in range(nc):
                wy = top + 3 + 4 * i
                wx = b["x"] + 2 + 4 * j
                if wy + 2 > world.road_top - 1 or wx + 2 > b["x"] + b["w"] - 1:
                    continue
                lit = wrng.random() < cond.lit_windows
                value = min(1.0, shade + 0.45) if lit else shade * 0.4
                img[max(0, wy):wy + 2, max(0, wx):min(W, wx + 2)] = value
    # trees
    for t in world.trees:
        x = t["x"]
        base = world.road_top
        trunk_top = base - t["trunk"]
        if 0 <= x < W:
            img[trunk_top:base, max(0, x - 1):min(W, x + 1)] = 0.2 * cond.wall
        trng = np.random.default_rng([t["id"], _stable(cond.name), 7])
        if trng.random() < cond.leaf_loss:
            continue
        r = t["r"]
        cy = trunk_top - r + 1
        ys, xs = np.ogrid[-r:r + 1, -r:r + 1]
        disk = ys**2 + xs**2 <= r * r
        y0, x0 = cy - r, x - r
        ya, xa = max(0, y0), max(0, x0)
        yb, xb = min(H, y0 + 2 * r + 1), min(W, x0 + 2 * r + 1)
        if ya < yb and xa < xb:
            sub = disk[ya - y0:yb - y0, xa - x0:xb - x0]
            region = img[ya:yb, xa:xb]
            region[sub] = np.clip(t["shade"] + cond.foliage, 0.02, 1.0)
    # poles with signs
    for p in world.poles:
        x = p["x"]
        if not 0 <= x < W:
            continue
        top = world.road_top - p["h"]
        img[max(0, top):world.road_top, x] = 0.1
        if p["sign"]:
            img[max(0, top):max(0, top) + 3, max(0, x - 2):min(W, x + 3)] = p["shade"]
    # road with dashed lane markings
    img[world.road_top:] = 0.25 * cond.wall
    lane = world.road_top + (H - world.road_top) // 2
    dash = ((np.arange(W) + world.dash_phase) % 12) < 6
    img[lane, dash] = 0.9 * cond.wall
    return img


def _add_cars(view: np.ndarray, road_top: int, mean: float, rng: np.random.Generator) -> None:
    """Parked cars (dark boxes with a light window band) occluding the bottom of a view."""
    h, w = view.shape
    for _ in range(int(rng.poisson(mean))):
        cw = int(rng.integers(10, 18))
        ch = int(rng.integers(4, 7))
        x0 = int(rng.integers(-cw // 2, w - cw // 2))
        y1 = min(h, road_top + 2)
        xa, xb = max(0, x0), min(w, x0 + cw)
        if xa >= xb:
            continue
        view[max(0, y1 - ch):y1, xa:xb] = rng.uniform(0.05, 0.9)
        view[max(0, y1 - ch):max(0, y1 - ch) + 1, xa:xb] = 0.6


def render_traverse(world: World, route: SyntheticRoute, cond: Condition, traverse: int) -> np.ndarray:
    """The (places, camera height, camera width) camera frames of one traverse, intensities 0..1."""
    rng = np.random.default_rng([route.seed, 2, traverse])
    pano = render_panorama(world, cond, rng)
    ch, cw = route.camera
    pad = (world.height - ch) // 2
    margin = _margin(route)
    frames = np.empty((route.places, ch, cw))
    ys, xs = np.mgrid[0:ch, 0:cw]
    for k in range(route.places):
        dx = int(np.clip(np.rint(rng.normal(0, cond.shift)), -margin + 1, margin - 1))
        dy = int(np.clip(np.rint(rng.normal(0, cond.vshift)), -pad, pad))
        x0 = margin + k * route.spacing + dx
        view = pano[pad + dy:pad + dy + ch, x0:x0 + cw].copy()
        _add_cars(view, world.road_top - pad - dy, cond.cars, rng)
        # smooth illumination gradient (a random plane) then global gain, contrast and gamma
        angle = rng.uniform(0, 2 * np.pi)
        plane = (np.cos(angle) * (xs / cw - 0.5) + np.sin(angle) * (ys / ch - 0.5))
        view = view * (1.0 + cond.gradient * plane)
        view = 0.5 + cond.contrast * (view - 0.5)
        view = np.clip(view * cond.gain, 0.0, 1.0) ** cond.gamma
        view = view + rng.normal(0.0, cond.noise, view.shape)
        frames[k] = np.clip(view, 0.0, 1.0)
    return frames


def synthetic_benchmark(**overrides) -> PlaceDataset:
    """The default benchmark (SyntheticRoute()), with any field overridden; rendered and preprocessed."""
    return replace(SyntheticRoute(), **overrides).generate()
