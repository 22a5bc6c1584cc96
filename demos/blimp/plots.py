"""PNG plots of the demo: altitude and setpoint, motor command, hidden-layer raster, evolution cost."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_altitude(path: Path, snn, pid, run: int = 0) -> None:
    """Altitude of SNN and PID against the setpoint, one run of the evaluation scenario."""
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(snn.time, snn.setpoint[run], "k--", lw=1, label="setpoint")
    ax.plot(pid.time, pid.altitude[run], color="tab:blue", lw=1.2, label="PID")
    ax.plot(snn.time, snn.altitude[run], color="tab:red", lw=1.2, label="SNN")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("altitude (m)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_command(path: Path, snn, pid, run: int = 0) -> None:
    """Motor command of SNN and PID, and the SNN's PD and I parts against the PID's."""
    fig, axes = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    axes[0].plot(pid.time, pid.command[run], color="tab:blue", lw=0.8, label="PID")
    axes[0].plot(snn.time, snn.command[run], color="tab:red", lw=0.8, label="SNN")
    axes[0].set_ylabel("command u")
    axes[0].legend(loc="upper right")
    axes[1].plot(pid.time, pid.parts["i"][run], color="tab:blue", lw=1, label="PID: I")
    axes[1].plot(snn.time, snn.parts["i"][run], color="tab:red", lw=1, label="SNN: I sub-network")
    axes[1].set_ylabel("integral part")
    axes[1].set_xlabel("time (s)")
    axes[1].legend(loc="upper right")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_raster(path: Path, snn, n_pd: int, run: int = 0) -> None:
    """Hidden-layer spikes of one run (PD sub-network below the line, I above)."""
    spikes = snn.spikes[run]
    t, j = np.nonzero(spikes)
    fig, ax = plt.subplots(figsize=(10, 4))
    colors = np.where(j < n_pd, "tab:purple", "tab:green")
    ax.scatter(snn.time[t], j, s=1.5, c=colors, marker="|")
    ax.axhline(n_pd - 0.5, color="k", lw=0.5)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("hidden neuron (PD | I)")
    ax.set_ylim(-0.5, spikes.shape[1] - 0.5)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_cost(path: Path, history: dict) -> None:
    """Evolution cost curves: best of each generation and the validation cost, per sub-network."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, color in (("pd", "tab:purple"), ("i", "tab:green")):
        h = history.get(name)
        if not h:
            continue
        ax.plot(h["generation"], h["best"], color=color, lw=0.6, alpha=0.6, label=f"{name}: best of generation")
        ax.plot(h["val_generation"], h["val"], color=color, lw=1.8, label=f"{name}: validation")
    ax.set_xlabel("generation")
    ax.set_ylabel("cost = MAE + (1 - rho)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
