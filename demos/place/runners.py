"""Core runners: who executes a module's (image, inputs, steps).

Training and inference of the place modules are written only in terms of *run this CoreImage on
this input raster and give me the final image and the spikes*. Anything that can do that is a
runner, and because every runner executes the core's exact integer rule, they all give the same
learned weights and the same spikes:

- ``GoldenRunner``: the golden model, all modules of a call in one batch (``run_batch``: B images
  of one CoreConfig, exactly equal to B separate runs). ``engine="fast"`` is the numba kernel
  (sim/golden_fast.py), ``"golden"`` the NumPy reference (sim/golden.py).
- ``BoardRunner``: a spikeforge board over the UART link (host/board.py) -- the virtual board
  (host/virtual_board.py) or an FPGA with K cores. Each image is loaded into a core, the cores run
  in lock-step, and the final images are read back.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from spikeforge.core.image import CoreImage


class RunnerError(RuntimeError):
    """A runner cannot execute the request (wrong core count, config mismatch); says what to do."""


class CoreRunner(Protocol):
    """Runs images on inputs; returns (final images, spike rasters (steps, N) per image)."""

    name: str

    def run(self, images: Sequence[CoreImage], inputs: Sequence[np.ndarray]) -> tuple[list[CoreImage], list[np.ndarray]]:
        ...


def _check(images, inputs) -> tuple[list[CoreImage], list[np.ndarray]]:
    images, inputs = list(images), [np.asarray(x, dtype=bool) for x in inputs]
    if len(images) != len(inputs):
        raise RunnerError(f"{len(images)} images but {len(inputs)} input rasters; give one raster per image")
    if images:
        steps = {x.shape[0] for x in inputs}
        if len(steps) > 1:
            raise RunnerError(f"input rasters cover different step counts {sorted(steps)}; a batch runs one length")
    return images, inputs


class GoldenRunner:
    """The golden model in batch mode (``engine``: "fast" numba kernel or "golden" NumPy reference).

    ``batch``: at most this many images per ``run_batch`` call (memory: each holds an S x N weight
    matrix and its own copy of the inputs)."""

    def __init__(self, engine: str = "fast", batch: int = 64):
        if engine not in ("fast", "golden"):
            raise RunnerError(f"engine = {engine!r}: choose fast (numba kernel) or golden (NumPy reference)")
        if batch < 1:
            raise RunnerError(f"batch = {batch}: expected >= 1")
        self.engine = engine
        self.batch = int(batch)
        self.name = f"golden-{engine}"

    def _module(self):
        if self.engine == "fast":
            from spikeforge.sim import golden_fast

            return golden_fast
        from spikeforge.sim import golden

        return golden

    def run(self, images, inputs):
        images, inputs = _check(images, inputs)
        sim = self._module()
        out_images: list[CoreImage] = []
        out_spikes: list[np.ndarray] = []
        for k in range(0, len(images), self.batch):
            imgs = images[k:k + self.batch]
            finals, rec = sim.run_batch(imgs, np.stack(inputs[k:k + self.batch]))
            out_images += list(finals)
            out_spikes += [rec.spikes[b] for b in range(len(imgs))]
        return out_images, out_spikes


class BoardRunner:
    """A board with K >= 1 cores (host/board.py ``Board``): up to K images run at once, in lock-step.

    Every core of the board must have the modules' CoreConfig. Images are loaded with verification
    (``verify``), run with ``Board.run_cores`` and read back with ``Board.read_image``."""

    def __init__(self, board, verify: bool = True):
        self.board = board
        self.verify = verify
        self.name = f"board:{getattr(board, 'port', 'board')}"

    def run(self, images, inputs):
        images, inputs = _check(images, inputs)
        board = self.board
        k_cores = board.n_cores
        out_images: list[CoreImage] = []
        out_spikes: list[np.ndarray] = []
        for start in range(0, len(images), k_cores):
            group = images[start:start + k_cores]
            for core, img in enumerate(group):
                if board.config(core) != img.config:
                    raise RunnerError(
                        f"core {core} of the board has a different CoreConfig than the module image; build or "
                        "start the board with the modules' CoreConfig (ModuleParameters.core_config())"
                    )
            # cores without a module of this group run a silent copy (lock-step needs every core)
            fill = [group[k] if k < len(group) else None for k in range(k_cores)]
            steps = inputs[start].shape[0]
            for core, img in enumerate(fill):
                board.load(img if img is not None else _silent(group[0], board.config(core)), core,
                           verify=self.verify)
            raster = [inputs[start + k] if k < len(group) else np.zeros((steps, board.config(k).n_inputs), bool)
                      for k in range(k_cores)]
            records = board.run_cores(steps, raster)
            for core in range(len(group)):
                out_images.append(board.read_image(core))
                out_spikes.append(records[core].spikes)
        return out_images, out_spikes


def _silent(like: CoreImage, config) -> CoreImage:
    """An image for an idle core: the config's blank image (it never spikes), at the group's step."""
    img = CoreImage.blank(config)
    img.step = like.step
    return img
