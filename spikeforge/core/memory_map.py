"""The core's memory map: how every field of a CoreImage is addressed on the core's load/read bus.

One map shared by the RTL (hdl/), the testbenches and the host link (host/): a 32-bit data word at a
(region, address) pair. Values are two's-complement integers sign- or zero-extended to 32 bits.
docs/core-spec.md, section 7, shows the same table.

| region        | address                         | word                                           |
|---------------|---------------------------------|------------------------------------------------|
| CONTROL       | ControlReg                      | see ControlReg                                 |
| PROFILE       | profile * 16 + field            | PROFILE_FIELDS[field] of that profile          |
| STDP          | field                           | STDP_FIELDS[field]                             |
| NEURON_PROFILE| neuron                          | profile index                                  |
| SYNAPSE       | row * N + column                | weight [15:0], plastic [16], delay - 1 [29:24] |
| ROW_SHIFT     | row                             | shift                                          |
| NEURON_STATE  | neuron * 8 + NeuronStateField   | v, ie, ii, refrac_count, adapt, y_trace        |
| X_TRACE       | source row                      | pre trace                                      |
| RING          | (slot * 2 + channel) * N + n    | ring buffer slot value                         |
| CURRENT_IN    | k (0 .. K-1)                    | analog input u of the coming step (write only) |

Rows: 0 .. A-1 are the external inputs, A .. A+N-1 the neurons (weights of the neurons' outputs).
"""

from __future__ import annotations

import enum
from typing import Iterator

import numpy as np

from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage, PROFILE_FIELDS, STDP_FIELDS

DATA_BITS = 32
ADDR_BITS = 24
PROFILE_STRIDE = 16
NEURON_STATE_STRIDE = 8

SYNAPSE_WEIGHT_BITS = 16
SYNAPSE_PLASTIC_BIT = 16
SYNAPSE_DELAY_SHIFT = 24
SYNAPSE_DELAY_BITS = 6


class Region(enum.IntEnum):
    CONTROL = 0
    PROFILE = 1
    STDP = 2
    NEURON_PROFILE = 3
    SYNAPSE = 4
    ROW_SHIFT = 5
    NEURON_STATE = 6
    X_TRACE = 7
    RING = 8
    CURRENT_IN = 9


class ControlReg(enum.IntEnum):
    MAGIC = 0        # read: 0x53464F52 ("SFOR")
    STEP = 1         # read/write: step counter (ring pointer = step % max_delay)
    LEARNING = 2     # read/write: 1 = STDP updates on
    LAST_CYCLES = 3  # read: clock cycles the last timestep took
    CONFIG_HASH = 4  # read: low 32 bits of CoreConfig.config_hash()


MAGIC = 0x53464F52


class NeuronStateField(enum.IntEnum):
    V = 0
    IE = 1
    II = 2
    REFRAC_COUNT = 3
    ADAPT = 4
    Y_TRACE = 5


NEURON_STATE_NAMES = {
    NeuronStateField.V: "v",
    NeuronStateField.IE: "ie",
    NeuronStateField.II: "ii",
    NeuronStateField.REFRAC_COUNT: "refrac_count",
    NeuronStateField.ADAPT: "adapt",
    NeuronStateField.Y_TRACE: "y_trace",
}

#: Profile fields that exist only in cores with ``adaptive_threshold`` (the golden model ignores them
#: otherwise); they are neither written nor read on other cores.
ADAPTIVE_PROFILE_FIELDS = {"a_inc", "c_adecay"}

#: Fields whose 32-bit words are read back sign-extended.
SIGNED_PROFILE_FIELDS = {"v_rest", "bias", "v_reset", "v_thresh"}
SIGNED_STDP_FIELDS = {"w_min", "w_max"}
SIGNED_STATE_FIELDS = {"v", "ie", "ii"}


def to_word(value: int) -> int:
    """A signed or unsigned integer as a 32-bit two's-complement word."""
    return int(value) & 0xFFFF_FFFF


def from_word(word: int, signed: bool) -> int:
    word &= 0xFFFF_FFFF
    return word - (1 << 32) if signed and word & 0x8000_0000 else word


def config_hash_word(config: CoreConfig) -> int:
    return int(config.config_hash()[:8], 16)


def pack_synapse(weight: int, plastic: bool, delay: int) -> int:
    return (int(weight) & 0xFFFF) | (int(bool(plastic)) << SYNAPSE_PLASTIC_BIT) | \
        ((int(delay) - 1) << SYNAPSE_DELAY_SHIFT)


def unpack_synapse(word: int) -> tuple[int, bool, int]:
    w = word & 0xFFFF
    w = w - 0x10000 if w & 0x8000 else w
    return w, bool((word >> SYNAPSE_PLASTIC_BIT) & 1), ((word >> SYNAPSE_DELAY_SHIFT) & 0x3F) + 1


def pack_synapses(weights: np.ndarray, plastic: np.ndarray, delays: np.ndarray) -> np.ndarray:
    """Vectorised pack_synapse over whole matrices (uint32, row-major = address order)."""
    w = np.asarray(weights, dtype=np.int64) & 0xFFFF
    return (w | (np.asarray(plastic, dtype=np.int64) << SYNAPSE_PLASTIC_BIT)
            | ((np.asarray(delays, dtype=np.int64) - 1) << SYNAPSE_DELAY_SHIFT)).astype(np.uint32)


def unpack_synapses(words: np.ndarray):
    words = np.asarray(words, dtype=np.int64)
    w = words & 0xFFFF
    w = np.where(w & 0x8000, w - 0x10000, w)
    return w, ((words >> SYNAPSE_PLASTIC_BIT) & 1).astype(bool), ((words >> SYNAPSE_DELAY_SHIFT) & 0x3F) + 1


def image_writes(image: CoreImage, *, state: bool = True) -> Iterator[tuple[Region, int, int]]:
    """Every (region, address, word) write that loads ``image`` into a core, in a sensible order:
    parameters, synapses, then (if ``state``) the dynamic state and the control registers."""
    c = image.config
    n = c.n_neurons
    for p in range(c.n_profiles):
        for f, name in enumerate(PROFILE_FIELDS):
            if name in ADAPTIVE_PROFILE_FIELDS and not c.adaptive_threshold:
                continue  # not stored by a core without threshold adaptation
            yield Region.PROFILE, p * PROFILE_STRIDE + f, to_word(image.profiles[name][p])
    for f, name in enumerate(STDP_FIELDS):
        if c.stdp:
            yield Region.STDP, f, to_word(image.stdp[name])
    for i in range(n):
        yield Region.NEURON_PROFILE, i, int(image.neuron_profile[i])
    words = pack_synapses(image.weights, image.plastic, image.delays).reshape(-1)
    for addr, word in enumerate(words):
        yield Region.SYNAPSE, addr, int(word)
    for row in range(c.n_sources):
        yield Region.ROW_SHIFT, row, int(image.row_shift[row])
    if not state:
        return
    for i in range(n):
        for field, name in NEURON_STATE_NAMES.items():
            if field == NeuronStateField.ADAPT and not c.adaptive_threshold:
                continue
            if field == NeuronStateField.Y_TRACE and not c.stdp:
                continue
            yield Region.NEURON_STATE, i * NEURON_STATE_STRIDE + field, to_word(getattr(image, name)[i])
    if c.stdp:
        for row in range(c.n_sources):
            yield Region.X_TRACE, row, int(image.x_trace[row])
    for slot in range(c.max_delay):
        for ch in range(2):
            for i in range(n):
                yield Region.RING, (slot * 2 + ch) * n + i, to_word(image.ring[slot, ch, i])
    yield Region.CONTROL, ControlReg.STEP, int(image.step)
    yield Region.CONTROL, ControlReg.LEARNING, int(image.learning)


def image_reads(config: CoreConfig, *, state: bool = True) -> list[tuple[Region, int]]:
    """The (region, address) list that reads a whole image back (same order as image_writes)."""
    return [(r, a) for r, a, _ in image_writes(CoreImage.blank(config), state=state)]


def image_from_words(config: CoreConfig, words: dict[tuple[int, int], int]) -> CoreImage:
    """Rebuild a CoreImage from words read at every (region, address) of image_reads(config)."""
    c = config
    n = c.n_neurons
    img = CoreImage.blank(c)
    for p in range(c.n_profiles):
        for f, name in enumerate(PROFILE_FIELDS):
            if name in ADAPTIVE_PROFILE_FIELDS and not c.adaptive_threshold:
                continue  # keeps the blank image's value: unused without adaptation
            img.profiles[name][p] = from_word(words[(Region.PROFILE, p * PROFILE_STRIDE + f)],
                                              name in SIGNED_PROFILE_FIELDS)
    if c.stdp:
        for f, name in enumerate(STDP_FIELDS):
            img.stdp[name] = from_word(words[(Region.STDP, f)], name in SIGNED_STDP_FIELDS)
    for i in range(n):
        img.neuron_profile[i] = words[(Region.NEURON_PROFILE, i)]
    syn = np.array([words[(Region.SYNAPSE, a)] for a in range(c.n_sources * n)], dtype=np.int64)
    w, pl, d = unpack_synapses(syn)
    img.weights[:] = w.reshape(c.n_sources, n)
    img.plastic[:] = pl.reshape(c.n_sources, n)
    img.delays[:] = d.reshape(c.n_sources, n)
    for row in range(c.n_sources):
        img.row_shift[row] = words[(Region.ROW_SHIFT, row)]
    if (Region.CONTROL, ControlReg.STEP) in words:
        for i in range(n):
            for field, name in NEURON_STATE_NAMES.items():
                key = (Region.NEURON_STATE, i * NEURON_STATE_STRIDE + field)
                if key in words:
                    getattr(img, name)[i] = from_word(words[key], name in SIGNED_STATE_FIELDS)
        if c.stdp:
            for row in range(c.n_sources):
                img.x_trace[row] = words[(Region.X_TRACE, row)]
        for slot in range(c.max_delay):
            for ch in range(2):
                for i in range(n):
                    img.ring[slot, ch, i] = from_word(words[(Region.RING, (slot * 2 + ch) * n + i)], True)
        img.step = words[(Region.CONTROL, ControlReg.STEP)]
        img.learning = bool(words[(Region.CONTROL, ControlReg.LEARNING)])
    return img
