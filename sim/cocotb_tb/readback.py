"""Which bus words hold which state field, and how to turn the words read back into arrays.

``spikeforge.core.memory_map`` defines the map; this module groups its addresses by *state field* so
the scoreboard can read exactly the fields a compare level needs after every step (a full
``image_reads`` list also re-reads the parameters, which cannot change while the core runs and are
compared once at the end of a case).
"""

from __future__ import annotations

import numpy as np

from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage
from spikeforge.core.memory_map import (
    ADAPTIVE_PROFILE_FIELDS, NEURON_STATE_STRIDE, SIGNED_STATE_FIELDS, ControlReg, NeuronStateField, Region, from_word,
    unpack_synapses,
)

_NEURON_FIELD = {
    "v": NeuronStateField.V, "ie": NeuronStateField.IE, "ii": NeuronStateField.II,
    "refrac_count": NeuronStateField.REFRAC_COUNT, "adapt": NeuronStateField.ADAPT,
    "y_trace": NeuronStateField.Y_TRACE,
}


def present_fields(config: CoreConfig) -> list[str]:
    """The state fields this core has (features that are off have no memory to read)."""
    fields = ["v", "ie", "ii", "refrac_count"]
    if config.adaptive_threshold:
        fields.append("adapt")
    if config.stdp:
        fields += ["y_trace", "x_trace"]
    fields += ["ring", "synapses", "step", "learning"]
    return fields


def level_fields(config: CoreConfig, level: str) -> list[str]:
    """The fields read after every step at a compare level (see case.COMPARE_LEVELS)."""
    fields = present_fields(config)
    if level == "spikes":
        return []
    if level == "neuron":
        return [f for f in fields if f not in ("ring", "synapses")]
    if level == "full":
        # weights change only through STDP: without it they are compared once, at the end
        return [f for f in fields if f != "synapses" or config.stdp]
    raise ValueError(f"unknown compare level {level!r}")


def field_addresses(config: CoreConfig, name: str) -> list[tuple[int, int]]:
    """The (region, address) words of one field, in array order."""
    n = config.n_neurons
    if name in _NEURON_FIELD:
        f = int(_NEURON_FIELD[name])
        return [(Region.NEURON_STATE, i * NEURON_STATE_STRIDE + f) for i in range(n)]
    if name == "x_trace":
        return [(Region.X_TRACE, row) for row in range(config.n_sources)]
    if name == "ring":
        return [(Region.RING, a) for a in range(config.max_delay * 2 * n)]
    if name == "synapses":
        return [(Region.SYNAPSE, a) for a in range(config.n_sources * n)]
    if name == "step":
        return [(Region.CONTROL, ControlReg.STEP)]
    if name == "learning":
        return [(Region.CONTROL, ControlReg.LEARNING)]
    raise ValueError(f"no bus words for state field {name!r}")


def read_plan(config: CoreConfig, fields: list[str]) -> list[tuple[int, int]]:
    """All words to read for ``fields``, concatenated in the order of ``fields``."""
    return [a for name in fields for a in field_addresses(config, name)]


def decode(config: CoreConfig, fields: list[str], words: list[int]) -> dict[str, np.ndarray]:
    """Split the words of read_plan(config, fields) back into arrays, by CoreImage field name.

    ``synapses`` decodes into ``weights``, ``plastic`` and ``delays``."""
    out: dict[str, np.ndarray] = {}
    pos = 0
    n = config.n_neurons
    for name in fields:
        count = len(field_addresses(config, name))
        chunk = words[pos:pos + count]
        pos += count
        if name == "synapses":
            w, pl, d = unpack_synapses(np.asarray(chunk, dtype=np.int64))
            out["weights"] = w.reshape(config.n_sources, n)
            out["plastic"] = pl.reshape(config.n_sources, n)
            out["delays"] = d.reshape(config.n_sources, n)
        elif name == "ring":
            out["ring"] = np.array([from_word(w, True) for w in chunk], dtype=np.int64).reshape(
                config.max_delay, 2, n)
        elif name == "learning":
            out["learning"] = np.asarray(bool(chunk[0]))
        elif name == "step":
            out["step"] = np.asarray(int(chunk[0]))
        else:
            signed = name in SIGNED_STATE_FIELDS
            out[name] = np.array([from_word(w, signed) for w in chunk], dtype=np.int64)
    return out


def field_size(config: CoreConfig, name: str) -> int:
    """Number of bus words of one field (len(field_addresses(config, name)), without building it)."""
    n = config.n_neurons
    sizes = {"x_trace": config.n_sources, "ring": config.max_delay * 2 * n,
             "synapses": config.n_sources * n, "step": 1, "learning": 1}
    return sizes.get(name, n)


def readback_count(config: CoreConfig, level: str) -> int:
    """Bus reads per step at a compare level."""
    return sum(field_size(config, f) for f in level_fields(config, level))


def choose_level(config: CoreConfig, budget: int) -> str:
    """The most detailed compare level whose per-step readback fits ``budget`` words."""
    for level in ("full", "neuron"):
        if readback_count(config, level) <= budget:
            return level
    return "spikes"


def hardware_view(image):
    """``image`` as a readback reports it. A core without threshold adaptation does not store the
    profile fields ``c_adecay`` and ``a_inc`` (memory_map.ADAPTIVE_PROFILE_FIELDS): they are neither
    written nor read, and ``image_from_words`` fills in the blank image's values, so the final
    comparison expects those."""
    view = image.copy()
    if not image.config.adaptive_threshold:
        blank = CoreImage.blank(image.config)
        for name in ADAPTIVE_PROFILE_FIELDS:
            view.profiles[name] = blank.profiles[name].copy()
    return view
