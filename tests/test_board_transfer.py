"""Transfer planning (host/transfer.py): image blocks, input frames. Pure functions, checked against
the memory map and the codec they are built from."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeforge.core import protocol as P
from spikeforge.core.image import CoreImage
from spikeforge.core.memory_map import image_reads, image_writes
from spikeforge.core.random_image import random_config, random_image
from spikeforge.host import transfer


@pytest.mark.parametrize("seed", range(8))
def test_blocks_cover_image_writes_exactly_in_order(seed):
    config = random_config(seed)
    image = random_image(config, seed)
    for state in (True, False):
        writes = list(image_writes(image, state=state))
        assert transfer.image_word_count(config, state=state) == len(writes)
        for max_words in (1, 7, P.MAX_WORDS):
            blocks = list(transfer.image_write_blocks(image, max_words, state=state))
            assert all(1 <= len(w) <= max_words for _, _, w in blocks)
            flat = [(r, a + k, w) for r, a, words in blocks for k, w in enumerate(words)]
            assert flat == [(int(r), int(a), int(w)) for r, a, w in writes]
            reads = list(transfer.image_read_blocks(config, max_words, state=state))
            assert [(r, a + k) for r, a, n in reads for k in range(n)] == \
                [(int(r), int(a)) for r, a in image_reads(config, state=state)]


def test_state_blocks_hold_only_the_dynamic_state():
    config = random_config(3, n_neurons=16)
    image = random_image(config, 3)
    regions = {r for r, _, _ in transfer.state_write_blocks(image, 64)}
    assert regions <= transfer.STATE_REGIONS


def test_first_difference_names_field_index_and_values():
    config = random_config(1)
    a = random_image(config, 1)
    b = a.copy()
    assert transfer.first_difference(a, b) is None
    b.weights[2, 1] += 1
    b.v[0] += 3
    text = transfer.first_difference(a, b)
    assert text.startswith(f"weights[2, 1] reads back {b.weights[2, 1]}, the image has {a.weights[2, 1]}")
    assert "other fields that differ: v" in text
    assert transfer.first_difference(a, CoreImage.blank(random_config(2, n_neurons=3))) == "the CoreConfigs differ"


def _replay_injects(frames, first_step, steps, n_inputs):
    raster = np.zeros((steps, n_inputs), dtype=bool)
    for op, payload in frames:
        if op == P.Op.INJECT:
            step, per_step = P.decode_inject(payload)
            for j, idx in enumerate(per_step):
                raster[step - first_step + j, idx] = True
        else:
            step, masks = P.decode_inject_bitmap(payload, n_inputs)
            raster[step - first_step:step - first_step + len(masks)] |= masks
    return raster


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 400), st.integers(1, 40), st.sampled_from([0.0, 0.01, 0.1, 0.6]),
       st.sampled_from([36, 132, P.MAX_PAYLOAD]), st.integers(0, 2**31))
def test_inject_frames_carry_exactly_the_raster(a, steps, rate, limit, seed):
    rng = np.random.default_rng(seed)
    raster = rng.random((steps, a)) < rate
    frames = transfer.inject_frames(100, raster, limit)
    assert all(len(payload) <= max(limit, 4 + 2) for _, payload in frames)
    np.testing.assert_array_equal(_replay_injects(frames, 100, steps, a), raster)
    if not raster.any():
        assert frames == []
    # the smaller encoding per step: a full step never goes as 2-byte indices when its bitmap is smaller
    dense = raster.sum(axis=1) * 2 > P.bitmap_bytes(a)
    if dense.any() and limit >= 4 + P.bitmap_bytes(a):
        assert any(op == P.Op.INJECT_BITMAP for op, _ in frames)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.integers(1, 30), st.sampled_from([36, 132, P.MAX_PAYLOAD]), st.integers(0, 2**31))
def test_currents_frames_carry_exactly_the_values(k, steps, limit, seed):
    rng = np.random.default_rng(seed)
    currents = np.where(rng.random((steps, k)) < 0.5, rng.integers(-1000, 1000, (steps, k)), 0)
    currents[rng.random(steps) < 0.3] = 0  # some steps without analog input need no frame
    out = np.zeros_like(currents)
    for payload in transfer.currents_frames(7, currents, limit):
        assert len(payload) <= limit
        step, first, values = P.decode_currents(payload)
        out[step - 7:step - 7 + len(values), first:first + values.shape[1]] = values
    np.testing.assert_array_equal(out, currents)
