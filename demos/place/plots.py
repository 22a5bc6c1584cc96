"""Plots of the place-recognition demo: PR curves, distance matrices, example matches, calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeforge.demos.place import metrics
from spikeforge.demos.place.dataset import PlaceDataset

LABELS = {
    "snn_ensemble": "SNN ensemble",
    "snn_single": "SNN (one member)",
    "snn_no_regularisation": "SNN ensemble, no regularisation",
    "sad": "SAD",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pr_curves(scores: dict[str, np.ndarray], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, s in scores.items():
        p, r = metrics.precision_recall(s)
        ax.plot(np.r_[0.0, r], np.r_[p[0], p], label=f"{LABELS.get(name, name)} (AUC {metrics.pr_auc(s):.2f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("Precision-recall, test split")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def distance_matrices(scores: dict[str, np.ndarray], path: Path) -> Path:
    """Score matrices shown as distances (dark = close): normalised per query row."""
    plt = _plt()
    names = list(scores)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.4))
    for ax, name in zip(np.atleast_1d(axes), names):
        s = scores[name]
        lo, hi = s.min(axis=1, keepdims=True), s.max(axis=1, keepdims=True)
        d = 1.0 - (s - lo) / np.where(hi > lo, hi - lo, 1.0)
        ax.imshow(d, cmap="viridis", interpolation="nearest")
        ax.set_title(LABELS.get(name, name), fontsize=9)
        ax.set_xlabel("reference place")
        ax.set_ylabel("query")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def example_matches(dataset: PlaceDataset, scores: np.ndarray, places: np.ndarray, path: Path,
                    n: int = 6, title: str = "SNN ensemble") -> Path:
    """Queries (left), the true reference (middle) and the best match (right); green = correct."""
    plt = _plt()
    best = scores.argmax(axis=1)
    picks = np.linspace(0, len(places) - 1, n).astype(int)
    fig, axes = plt.subplots(n, 3, figsize=(5.0, 1.6 * n))
    for row, qi in enumerate(picks):
        q_place, m_place = places[qi], places[best[qi]]
        ok = best[qi] == qi
        for col, (img, label) in enumerate([(dataset.query[q_place], f"query {q_place}"),
                                            (dataset.reference[0, q_place], f"true {q_place}"),
                                            (dataset.reference[0, m_place], f"match {m_place}")]):
            ax = axes[row, col]
            ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(label, fontsize=8, color=("green" if ok else "red") if col == 2 else "black")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def calibration_curve(curves: dict[str, dict[int, float]], chosen: dict[str, int], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, curve in curves.items():
        t = sorted(curve)
        line, = ax.plot(t, [curve[k] for k in t], label=LABELS.get(name, name))
        ax.axvline(chosen[name], color=line.get_color(), ls=":", lw=1)
    ax.set_xlabel("hyperactivity threshold (places a neuron fires for; 0 = off)")
    ax.set_ylabel("Recall@1, calibration split")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def benchmark_examples(dataset: PlaceDataset, path: Path, places=(0, 1, 2, 3)) -> Path:
    """Preprocessed images of a few places in every traverse (what the modules see)."""
    plt = _plt()
    names = [*dataset.reference_names, dataset.query_name]
    stacks = [*dataset.reference, dataset.query]
    fig, axes = plt.subplots(len(places), len(names), figsize=(1.7 * len(names), 1.7 * len(places)))
    for row, p in enumerate(places):
        for col, (name, stack) in enumerate(zip(names, stacks)):
            ax = axes[row, col]
            ax.imshow(stack[p], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=8)
            if col == 0:
                ax.set_ylabel(f"place {p}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def limits_chart(rows: list[tuple[str, str, float, str]], sad: float, path: Path) -> Path:
    """Recall@1 of every step of the limits analysis (demos/place/limits.py), by stage; SAD as a line."""
    plt = _plt()
    stages = list(dict.fromkeys(r[0] for r in rows))
    colours = {st: c for st, c in zip(stages, ("0.55", "tab:green", "tab:blue", "tab:orange", "tab:red"))}
    fig, ax = plt.subplots(figsize=(8.0, 0.3 * len(rows) + 1.4))
    y = np.arange(len(rows))[::-1]
    ax.barh(y, [r[2] for r in rows], color=[colours[r[0]] for r in rows])
    from matplotlib.patches import Patch

    line = ax.axvline(sad, color="k", ls="--", lw=1)
    handles = [Patch(color=colours[st], label=st) for st in stages] + [line]
    labels = [*stages, f"SAD {sad:.2f}"]
    ax.set_yticks(y)
    ax.set_yticklabels([r[1] for r in rows], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("Recall@1, test split")
    ax.set_title("Where the SNN loses against SAD", fontsize=9)
    ax.legend(handles, labels, fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
