"""Planning link transfers: CoreImage words -> WRITE/READ blocks, input rasters -> INJECT frames.

Everything here is pure (no I/O), so the Board driver stays about talking to the board and these
plans are tested on their own. Blocks come lazily from ``memory_map.image_writes`` -- the one
definition of which word goes where -- so planning a 134k-word image overlaps with sending it.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from spikeforge.core import protocol as P
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import PROFILE_FIELDS, STDP_FIELDS, CoreImage
from spikeforge.core.memory_map import ADAPTIVE_PROFILE_FIELDS, Region, image_writes
from spikeforge.core.protocol import Op

#: Regions that hold the dynamic state (RESET(STATE) clears them; reloading state writes them).
STATE_REGIONS = frozenset({Region.NEURON_STATE, Region.X_TRACE, Region.RING, Region.CONTROL})


def image_word_count(config: CoreConfig, *, state: bool = True) -> int:
    """Words ``image_writes(image, state=state)`` yields for an image of ``config`` (for progress bars)."""
    c = config
    n, s = c.n_neurons, c.n_sources
    profile_fields = len(PROFILE_FIELDS) - (0 if c.adaptive_threshold else len(ADAPTIVE_PROFILE_FIELDS))
    words = c.n_profiles * profile_fields + (len(STDP_FIELDS) if c.stdp else 0) + n + s * n + s
    if state:
        per_neuron = 4 + int(c.adaptive_threshold) + int(c.stdp)
        words += n * per_neuron + (s if c.stdp else 0) + c.max_delay * 2 * n + 2
    return words


def write_blocks(writes: Iterable[tuple[int, int, int]], max_words: int) -> Iterator[tuple[int, int, list[int]]]:
    """Group (region, address, word) writes into blocks (region, first address, words) of consecutive
    addresses, at most ``max_words`` each, in the order given."""
    region = start = None
    words: list[int] = []
    for r, a, w in writes:
        if words and (r != region or a != start + len(words) or len(words) == max_words):
            yield region, start, words
            words = []
        if not words:
            region, start = int(r), int(a)
        words.append(int(w))
    if words:
        yield region, start, words


def read_blocks(addresses: Iterable[tuple[int, int]], max_words: int) -> Iterator[tuple[int, int, int]]:
    """Group (region, address) reads into blocks (region, first address, count)."""
    for region, start, words in write_blocks(((r, a, 0) for r, a in addresses), max_words):
        yield region, start, len(words)


def image_write_blocks(image: CoreImage, max_words: int, *, state: bool = True):
    return write_blocks(image_writes(image, state=state), max_words)


def image_read_blocks(config: CoreConfig, max_words: int, *, state: bool = True):
    blank = CoreImage.blank(config)
    return read_blocks(((r, a) for r, a, _ in image_writes(blank, state=state)), max_words)


def state_write_blocks(image: CoreImage, max_words: int):
    """Blocks that write only the dynamic state of ``image`` (and STEP, LEARNING)."""
    return write_blocks(((r, a, w) for r, a, w in image_writes(image, state=True) if r in STATE_REGIONS),
                        max_words)


def first_difference(expected: CoreImage, got: CoreImage) -> str | None:
    """A sentence naming the first field and element where two images differ (None when equal)."""
    names = expected.differences(got)
    if not names:
        return None
    if names == ["config"]:
        return "the CoreConfigs differ"
    a, b = expected.state_arrays(), got.state_arrays()
    name = names[0]
    x, y = np.asarray(a[name]), np.asarray(b[name])
    diff = np.argwhere(x != y)
    where = "" if x.ndim == 0 else "[" + ", ".join(str(int(i)) for i in diff[0]) + "]"
    count = 1 if x.ndim == 0 else len(diff)
    xv = x[tuple(diff[0])] if x.ndim else x
    yv = y[tuple(diff[0])] if y.ndim else y
    more = f"; {count} values differ in {name}" if count > 1 else ""
    others = f"; other fields that differ: {', '.join(names[1:])}" if len(names) > 1 else ""
    return f"{name}{where} reads back {int(yv)}, the image has {int(xv)}{more}{others}"


# ---- inputs ---------------------------------------------------------------------------------------
def inject_frames(first_step: int, inputs: np.ndarray, max_payload: int) -> list[tuple[int, bytes]]:
    """INJECT / INJECT_BITMAP payloads (opcode, payload) carrying the spikes of ``inputs`` (steps, A)
    for steps ``first_step`` ...: per step the smaller encoding (2 bytes per index, or ceil(A/8)
    bytes of bitmap), consecutive steps of one encoding packed into one frame. Steps without spikes
    need no frame (the board's input slots start empty)."""
    inputs = np.asarray(inputs, dtype=bool)
    steps, a = inputs.shape
    nb = P.bitmap_bytes(a)
    frames: list[tuple[int, bytes]] = []
    kind = None  # current frame: Op.INJECT or Op.INJECT_BITMAP
    frame_first = last = 0
    parts: list = []
    size = 0

    def flush():
        if kind == Op.INJECT:
            frames.append((Op.INJECT, P.encode_inject(first_step + frame_first, parts)))
        elif kind == Op.INJECT_BITMAP:
            frames.append((Op.INJECT_BITMAP, P.encode_inject_bitmap(first_step + frame_first, np.array(parts))))

    for j in np.flatnonzero(inputs.any(axis=1)):
        idx = np.flatnonzero(inputs[j])
        want = Op.INJECT_BITMAP if nb < 2 * idx.size else Op.INJECT
        gap = j - last - 1 if kind is not None else 0
        if want == Op.INJECT:
            extra = 2 * (gap + 1) + 2 * idx.size  # markers for skipped steps and this one, then indices
            cost_new = 4 + 2 * idx.size
        else:
            extra = nb * (gap + 1)
            cost_new = 4 + nb
        if kind == want and size + extra <= max_payload and extra < cost_new + P.FRAME_OVERHEAD + 2:
            if want == Op.INJECT:
                parts.extend([np.zeros(0, dtype=np.int64)] * gap)
                parts.append(idx)
            else:
                parts.extend([np.zeros(a, dtype=bool)] * gap)
                parts.append(inputs[j])
            size += extra
        else:
            flush()
            if cost_new > max_payload:
                # one step with more indices than a frame holds: split it into several frames
                per = (max_payload - 4) // 2
                for k in range(0, idx.size, per):
                    frames.append((Op.INJECT, P.encode_inject(first_step + j, [idx[k:k + per]])))
                kind = None
                last = j
                continue
            kind, frame_first, size = want, j, cost_new
            parts = [idx] if want == Op.INJECT else [inputs[j]]
        last = j
    flush()
    return frames


def currents_frames(first_step: int, currents: np.ndarray, max_payload: int) -> list[bytes]:
    """CURRENTS payloads for the analog inputs ``currents`` (steps, K) of steps ``first_step`` ...;
    rows of zeros need no frame (the slots start at 0)."""
    currents = np.asarray(currents, dtype=np.int64)
    steps, k = currents.shape
    cols = min(k, (max_payload - 8) // 4)
    rows_per_frame = max(1, (max_payload - 8) // (4 * k)) if cols == k else 1
    frames: list[bytes] = []
    nonzero = np.flatnonzero(currents.any(axis=1))
    j = 0
    while j < nonzero.size:
        first = int(nonzero[j])
        end = first + 1
        # extend over consecutive non-zero rows
        while end - first < rows_per_frame and j + (end - first) < nonzero.size and nonzero[j + end - first] == end:
            end += 1
        for c0 in range(0, k, cols):
            frames.append(P.encode_currents(first_step + first, c0, currents[first:end, c0:c0 + cols]))
        j += end - first
    return frames
