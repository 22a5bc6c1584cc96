"""Plots people look at: spike rasters of a SimResult (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeforge.sim.result import SimResult


def raster_png(result: SimResult, path, *, title: str | None = None, max_neurons: int = 400) -> Path:
    """Write a spike raster of every population (stacked, one colour each) to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = list(result.spikes)
    fig, ax = plt.subplots(figsize=(10, 5), dpi=120)
    offset = 0
    ticks, ticklabels = [], []
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, label in enumerate(labels):
        raster = result.spikes[label][:, :max_neurons]
        steps, idx = np.nonzero(raster)
        ax.scatter((steps + 1) * result.dt, idx + offset, s=2, marker="|", color=colours[k % len(colours)],
                   label=f"{label} ({result.spikes[label].sum()} spikes)")
        ticks.append(offset + raster.shape[1] / 2)
        ticklabels.append(label)
        offset += raster.shape[1] + 2
    ax.set_xlim(0, result.steps * result.dt)
    ax.set_ylim(-1, max(offset, 1))
    ax.set_yticks(ticks, ticklabels)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("neuron")
    ax.set_title(title or f"spike raster — backend {result.backend}, dt = {result.dt} ms")
    ax.legend(loc="upper right", fontsize=8, markerscale=4)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
