"""Place recognition metrics: Recall@N, precision-recall / AUC, SAD."""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge.demos.place.metrics import (pr_auc, precision_recall, ranks, recall_at, sad_distances,
                                            sequence_scores)


def test_recall_at_n_counts_rank_of_true_place():
    s = np.array([[0.9, 0.1, 0.0],   # correct at rank 1
                  [0.5, 0.4, 0.6],   # true place 1 ranks 3rd
                  [0.2, 0.7, 0.3]])  # true place 2 ranks 2nd
    assert ranks(s).tolist() == [1, 3, 2]
    assert recall_at(s, (1, 2, 3)) == {1: 1 / 3, 2: 2 / 3, 3: 1.0}


def test_ties_count_against_the_query():
    flat = np.zeros((5, 5))
    assert recall_at(flat, (1, 5)) == {1: 0.0, 5: 1.0}
    p, r = precision_recall(flat)
    assert r[-1] == 0.0 and pr_auc(flat) == 0.0


def test_pr_curve_and_auc_of_known_cases():
    perfect = np.eye(4) + 0.1 * np.arange(4)[:, None]
    p, r = precision_recall(perfect)
    assert p.tolist() == [1, 1, 1, 1] and r.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert pr_auc(perfect) == pytest.approx(1.0)
    # the most confident query is wrong, the other two right: precision 0, 1/2, 2/3 at recall 0, 1/3, 2/3
    s = np.array([[0.0, 0.9, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.3]])
    p, r = precision_recall(s)
    np.testing.assert_allclose(p, [0.0, 0.5, 2 / 3])
    np.testing.assert_allclose(r, [0.0, 1 / 3, 2 / 3])
    expected = (1 / 3) * (0.5 + 2 / 3) / 2 + (1 / 3) * (0.0 + 0.5) / 2
    assert pr_auc(s) == pytest.approx(expected)


def test_sad_takes_the_best_reference_traverse():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (2, 3, 4, 4)).astype(np.uint8)
    q = ref[1, [2, 0, 1]]
    d = sad_distances(q, ref)
    assert d.shape == (3, 3)
    assert d[0, 2] == 0 and d[1, 0] == 0 and d[2, 1] == 0
    manual = np.abs(q[0].astype(int) - ref[0, 1].astype(int)).sum()
    assert d[0, 1] == min(manual, np.abs(q[0].astype(int) - ref[1, 1].astype(int)).sum())


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="queries, places"):
        recall_at(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        recall_at(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="pixels"):
        sad_distances(np.zeros((1, 3, 3)), np.zeros((1, 1, 4, 4)))


def test_sequence_matching_outvotes_an_isolated_wrong_match():
    """A route where every query's true place scores 1, except two queries whose best score (2) is at a
    wrong place: one frame alone gets them wrong, three consecutive frames get every query right
    from the third on (the first two have only their own past)."""
    n = 12
    scores = np.eye(n)
    scores[5, 9] = 2.0
    scores[8, 1] = 2.0
    assert recall_at(scores, (1,))[1] == pytest.approx(10 / 12)
    seq = sequence_scores(scores, 3)
    assert (ranks(seq)[2:] == 1).all()
    assert recall_at(seq, (1,))[1] == 1.0


def test_sequence_matching_is_trailing_and_standardised():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(10, 10)) * rng.uniform(0.1, 10.0, size=(10, 1)) + 5.0
    z = (scores - scores.mean(axis=1, keepdims=True)) / scores.std(axis=1, keepdims=True)
    one = sequence_scores(scores, 1)
    np.testing.assert_allclose(one, z)                                  # length 1: standardised only
    np.testing.assert_array_equal(np.argsort(one, axis=1), np.argsort(scores, axis=1))
    seq = sequence_scores(scores, 4)
    np.testing.assert_allclose(seq[6, 5], z[[6, 5, 4, 3], [5, 4, 3, 2]].mean())
    np.testing.assert_allclose(seq[1, 7], z[[1, 0], [7, 6]].mean())      # only the frames there are
    later = scores.copy()
    later[6:] = rng.normal(size=(4, 10))
    np.testing.assert_allclose(sequence_scores(later, 4)[:6], seq[:6])  # no frame from the future
    flat = np.ones((5, 5))
    assert np.isfinite(sequence_scores(flat, 2)).all()                  # a flat query adds nothing


@pytest.mark.parametrize("length", [0, -1, 2.5, True, 11])
def test_sequence_length_is_checked(length):
    with pytest.raises(ValueError, match="sequence length"):
        sequence_scores(np.eye(10), length)
