"""Throughput: images per second on the golden model (measured) and on hardware (predicted).

- **Golden model**: wall-clock time of the evaluation run (every module, every image), as
  module-images per second and as full-ensemble queries per second.
- **Hardware compute**: ``sim/cycle_model.py`` gives the clock cycles of every timestep of the RTL
  core from that step's spikes. A sample of query presentations is run on the golden model (spike
  rasters of every step), the cycles of every step are summed per presented image, and divided by
  the core clock (the board's default, e.g. the iCEBreaker's 24 MHz, stated in the output).
- **Hardware link**: the Poisson input spikes travel over the UART (INJECT / INJECT_BITMAP frames,
  host/transfer.py) and every step's spikes come back (SPIKES frames). The bytes per image at the
  link's baud rate bound the throughput of a host-driven board; a board that generated its own
  Poisson input would not have this bound.
- **Scaling**: the golden-model time of running M modules in one batch for M = 1, 2, 4, ... on one
  thread -- a straight line (intercept near 0) means the cost grows linearly with the number of
  modules.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from spikeforge.core import protocol as P
from spikeforge.core.image import CoreImage
from spikeforge.demos.place.module import ModuleParameters, encode
from spikeforge.demos.place.runners import GoldenRunner


def default_clock_hz(board: str = "icebreaker") -> float:
    """The core clock a bitstream for ``board`` aims for (boards/catalog.py)."""
    from spikeforge.boards.catalog import get_board

    return float(get_board(board).default_clock_hz)


def link_bytes_per_image(raster: np.ndarray, n_neurons: int, max_payload: int = P.MAX_PAYLOAD) -> tuple[float, float]:
    """(host -> board, board -> host) bytes per presented image for a raster (steps, A) of one image."""
    from spikeforge.host.transfer import inject_frames

    down = sum(len(payload) + P.FRAME_OVERHEAD for _, payload in inject_frames(0, raster, max_payload))
    spikes_frame = len(P.encode_spikes(0, np.zeros(n_neurons, dtype=bool))) + P.FRAME_OVERHEAD
    up = raster.shape[0] * spikes_frame
    return float(down), float(up)


def hardware_prediction(images: Sequence[CoreImage], stimuli: np.ndarray, params: ModuleParameters, *,
                        clock_hz: float, baud: float = 1_000_000, seed: int = 99) -> dict:
    """Predicted cycles and images per second of one core running one module (mean over the modules
    in ``images`` and the presented ``stimuli``)."""
    from spikeforge.sim.cycle_model import predict_run_cycles

    raster = encode(stimuli, params, seed)
    finals, spikes = GoldenRunner().run(list(images), [raster] * len(images))
    per = params.steps_per_image
    cycles = []
    for img, out in zip(images, spikes):
        c = predict_run_cycles(img, raster, out[:, :params.n_neurons])
        cycles.append(c.reshape(len(stimuli), per).sum(axis=1))
    cycles = np.array(cycles, dtype=np.float64)  # (modules, images)
    down = up = 0.0
    for k in range(len(stimuli)):
        d, u = link_bytes_per_image(raster[k * per:(k + 1) * per], params.n_neurons)
        down, up = down + d, up + u
    down, up = down / len(stimuli), up / len(stimuli)
    mean_cycles = float(cycles.mean())
    bits_per_byte = 10  # UART: start + 8 data + stop
    link_s = max(down, up) * bits_per_byte / baud
    return {
        "clock_hz": clock_hz,
        "steps_per_image": per,
        "cycles_per_image": mean_cycles,
        "cycles_per_step": mean_cycles / per,
        "compute_images_per_s_per_core": clock_hz / mean_cycles,
        "link_baud": baud,
        "link_bytes_per_image": {"host_to_board": down, "board_to_host": up},
        "link_images_per_s": 1.0 / link_s,
        "images_per_s_per_core": min(clock_hz / mean_cycles, 1.0 / link_s),
        "bound": "link" if link_s > mean_cycles / clock_hz else "compute",
    }


def golden_scaling(images: Sequence[CoreImage], stimuli: np.ndarray, params: ModuleParameters,
                   counts: Sequence[int] = (1, 2, 4, 8), repeats: int = 2, seed: int = 98) -> dict:
    """Wall time of presenting ``stimuli`` to M modules in one golden batch, for M in ``counts``
    (best of ``repeats``), and the least-squares line time = a + b M."""
    import numba

    raster = encode(stimuli, params, seed)
    runner = GoldenRunner()
    runner.run([images[0]], [raster[:params.steps_per_image]])  # compile the kernel first
    times = {}
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # one thread: the cost of more modules, not the spread over CPU cores
    try:
        for m in counts:
            if m > len(images):
                break
            group = [images[k % len(images)] for k in range(m)]
            best = np.inf
            for _ in range(repeats):
                t0 = time.perf_counter()
                runner.run(group, [raster] * m)
                best = min(best, time.perf_counter() - t0)
            times[m] = best
    finally:
        numba.set_num_threads(threads)
    ms = np.array(list(times), dtype=float)
    ts = np.array(list(times.values()))
    slope, intercept = np.polyfit(ms, ts, 1) if len(ms) >= 2 else (ts[0], 0.0)
    pred = intercept + slope * ms
    ss_res = float(((ts - pred) ** 2).sum())
    ss_tot = float(((ts - ts.mean()) ** 2).sum()) or 1.0
    return {"modules": [int(m) for m in ms], "seconds": [float(t) for t in ts],
            "seconds_per_module": float(slope), "intercept_s": float(intercept), "r2": 1.0 - ss_res / ss_tot,
            "images": int(len(stimuli))}
