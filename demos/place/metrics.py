"""Place-recognition metrics: Recall@N, precision-recall curve and its area, and the SAD baseline.

Conventions (as VPRSNN evaluates): query q shows place q of the split (the data sets are
frame-aligned), a *score* matrix S (Q, P) is larger for a better match, a *distance* matrix the
opposite (``scores = -distances``).

- Recall@N: the fraction of queries whose true place is among the N best-scored places (ties are
  broken against the query: a true place that ties with others counts at its worst rank, so a
  method that scores everything equally gets chance, not 100 %).
- Precision-recall: every query retrieves its best place with that place's score as confidence;
  accepting the queries whose confidence is above a threshold gives precision = correct / accepted
  and recall = correct / all queries (every query has a true match). Sweeping the threshold over all
  confidences traces the curve; its area (AUC) is integrated over recall by the trapezoid rule from
  recall 0 (where precision is that of the most confident query) to the largest recall.
- Sequence matching (``sequence_scores``): scores averaged over the last L frames along the
  diagonal, an option on top of any method's scores.
- SAD: the sum of absolute differences between the preprocessed images; with several reference
  traverses the distance to a place is the smallest over its reference images (the strongest use
  of the same reference data the SNN learns from).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _check_scores(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"a score matrix must be (queries, places) and non-empty, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("the score matrix holds NaN or infinite values")
    return s


def true_places(scores: np.ndarray, truth: Sequence[int] | None = None) -> np.ndarray:
    s = np.asarray(scores)
    t = np.arange(s.shape[0]) if truth is None else np.asarray(truth, dtype=np.int64)
    if t.shape != (s.shape[0],) or t.min(initial=0) < 0 or t.max(initial=0) >= s.shape[1]:
        raise ValueError(f"truth must give one place in 0 .. {s.shape[1] - 1} per query ({s.shape[0]})")
    return t


def ranks(scores: np.ndarray, truth: Sequence[int] | None = None) -> np.ndarray:
    """Rank (1 = best) of each query's true place; ties count against the query."""
    s = _check_scores(scores)
    t = true_places(s, truth)
    true_score = s[np.arange(s.shape[0]), t]
    return (s >= true_score[:, None]).sum(axis=1)


def recall_at(scores: np.ndarray, ns: Sequence[int] = (1, 5, 10), truth: Sequence[int] | None = None) -> dict[int, float]:
    """Recall@N for every N in ``ns``."""
    r = ranks(scores, truth)
    return {int(n): float((r <= n).mean()) for n in ns}


def precision_recall(scores: np.ndarray, truth: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) arrays of the PR curve, ordered by decreasing confidence threshold."""
    s = _check_scores(scores)
    t = true_places(s, truth)
    best = s.argmax(axis=1)
    # a best match that ties with the true place is not "the" true place unless it is unique
    top = s.max(axis=1)
    unique_top = (s == top[:, None]).sum(axis=1) == 1
    correct = (best == t) & unique_top
    order = np.argsort(-top, kind="stable")
    conf, ok = top[order], correct[order]
    tp = np.cumsum(ok)
    accepted = np.arange(1, len(ok) + 1)
    # thresholds between distinct confidences only: equal confidences are accepted together
    last = np.r_[conf[1:] != conf[:-1], True]
    precision = tp[last] / accepted[last]
    recall = tp[last] / len(ok)
    return precision, recall


def pr_auc(scores: np.ndarray, truth: Sequence[int] | None = None) -> float:
    """Area under the PR curve (trapezoids over recall, starting at recall 0)."""
    precision, recall = precision_recall(scores, truth)
    r = np.r_[0.0, recall]
    p = np.r_[precision[0], precision]
    return float(np.sum((r[1:] - r[:-1]) * (p[1:] + p[:-1]) / 2.0))


def sad_distances(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(Q, P) SAD distances: query (Q, H, W) against reference (R, P, H, W), min over traverses."""
    q = np.asarray(query, dtype=np.int64).reshape(len(query), -1)
    ref = np.asarray(reference, dtype=np.int64)
    if ref.ndim == 3:
        ref = ref[None]
    r = ref.reshape(ref.shape[0], ref.shape[1], -1)
    if r.shape[2] != q.shape[1]:
        raise ValueError(f"query images have {q.shape[1]} pixels, reference images {r.shape[2]}")
    out = np.full((q.shape[0], r.shape[1]), np.iinfo(np.int64).max)
    for trav in r:
        d = np.abs(q[:, None, :] - trav[None, :, :]).sum(axis=2)
        out = np.minimum(out, d)
    return out


def sequence_scores(scores: np.ndarray, length: int) -> np.ndarray:
    """Sequence matching (SeqSLAM's idea; the VPRSNN authors study it for SNN place recognition in
    their follow-up work): the score of query q for place p becomes the mean of the last ``length``
    frames' scores along the diagonal, S'(q, p) = mean_k Z(q - k, p - k) for k = 0 .. length - 1
    where q - k, p - k >= 0, with Z each query's scores standardised over the places (zero mean,
    unit spread: one query's scale cannot outvote the others). Trailing, so a robot can use it online; it assumes the query
    and reference traverses visit the places in the same order at a similar speed (true of the
    frame-aligned data sets here). ``length`` 1 only standardises, which keeps every ranking."""
    s = _check_scores(scores)
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"sequence length = {length!r}: expected a whole number of frames >= 1")
    q, p = s.shape
    if length > min(q, p):
        raise ValueError(f"sequence length {length} is longer than the {min(q, p)} queries/places it matches")
    spread = s.std(axis=1, keepdims=True)
    z = np.where(spread > 0, (s - s.mean(axis=1, keepdims=True)) / np.where(spread > 0, spread, 1.0), 0.0)
    total = np.zeros_like(z)
    count = np.zeros_like(z)
    for k in range(int(length)):
        total[k:, k:] += z[:q - k, :p - k]
        count[k:, k:] += 1
    return total / count


def summary(scores: np.ndarray, ns: Sequence[int] = (1, 5, 10)) -> dict:
    """Recall@N and PR AUC of a score matrix (queries aligned with places)."""
    rec = recall_at(scores, ns)
    return {"recall": {str(n): v for n, v in rec.items()}, "pr_auc": pr_auc(scores)}
