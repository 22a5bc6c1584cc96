"""A core's memory as its load/read bus sees it: block writes and reads of 32-bit words into a CoreImage.

The virtual board keeps each core's memory as a CoreImage and serves WRITE/READ frames through this
class. Words are stored the way the hardware stores them: each field keeps the low bits of its width
(docs/core-spec.md, section 3) and reads back sign- or zero-extended, so a value that does not fit
its field reads back different -- exactly what ``Board.load(verify=True)`` is there to catch.
Addresses inside a region that hold no field (and fields of features that are off) read 0 and
ignore writes, as on the core's bus (hdl/INTERFACE.md).

Every access is one vectorised NumPy operation per field, so a 256-word frame costs microseconds.
"""

from __future__ import annotations

import numpy as np

from spikeforge.core import fixedpoint as fx
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import PROFILE_FIELDS, STDP_FIELDS, CoreImage
from spikeforge.core.memory_map import (
    MAGIC, NEURON_STATE_NAMES, NEURON_STATE_STRIDE, PROFILE_STRIDE, SYNAPSE_DELAY_SHIFT, SYNAPSE_PLASTIC_BIT,
    ControlReg, NeuronStateField, Region, config_hash_word,
)
from spikeforge.core.protocol import check_access

_COEFS = {"c_vdecay", "c_ie", "c_ii", "c_edecay", "c_idecay", "c_adecay", "c_xdecay", "c_ydecay"}


def _zx(words: np.ndarray, bits: int) -> np.ndarray:
    """The low ``bits`` of each word, unsigned."""
    return words & ((1 << bits) - 1) if bits > 0 else np.zeros_like(words)


def _sx(words: np.ndarray, bits: int) -> np.ndarray:
    """The low ``bits`` of each word, sign-extended."""
    w = words & ((1 << bits) - 1)
    return np.where(w >> (bits - 1) & 1, w - (1 << bits), w)


class CoreMemory:
    """One core's memory: ``write(region, address, words)`` / ``read(region, address, count)``.

    ``image`` is the live CoreImage (the golden model runs it). ``currents_for_next_step`` backs the
    CURRENT_IN region; the link owns it (it is the analog input slot of the coming step).
    """

    def __init__(self, image: CoreImage):
        self.image = image
        self.config: CoreConfig = image.config
        self.last_cycles = 0

    # ---- field widths -------------------------------------------------------------------------
    def _field_bits(self, name: str) -> tuple[int, bool]:
        """(stored bits, signed) of a profile, STDP or neuron-state field on this core."""
        c = self.config
        if name in _COEFS:
            return fx.COEF_BITS, False
        table = {
            "v_rest": (c.v_bits, True), "bias": (c.v_bits, True), "v_reset": (c.v_bits, True),
            "v_thresh": (c.v_bits, True), "refrac": (c.refrac_bits, False), "reset_subtract": (1, False),
            "a_inc": (c.adapt_bits, False),
            "x_inc": (c.trace_bits, False), "y_inc": (c.trace_bits, False),
            "w_min": (c.weight_bits, True), "w_max": (c.weight_bits, True),
            "v": (c.v_bits, True), "ie": (c.i_bits, True), "ii": (c.i_bits, True),
            "refrac_count": (c.refrac_bits, False),
            "adapt": (c.adapt_bits if c.adaptive_threshold else 0, False),
            "y_trace": (c.trace_bits if c.stdp else 0, False),
            "x_trace": (c.trace_bits if c.stdp else 0, False),
        }
        return table[name]

    def _store(self, name: str, words: np.ndarray) -> np.ndarray:
        bits, signed = self._field_bits(name)
        if bits == 0:
            return np.zeros_like(words)
        return _sx(words, bits) if signed else _zx(words, bits)

    # ---- access -------------------------------------------------------------------------------
    def check(self, region: int, address: int, count: int, write: bool) -> None:
        """Raise ProtocolError unless the access is allowed (see protocol.check_access)."""
        check_access(self.config, region, address, count, write)

    def write(self, region: int, address: int, words: np.ndarray, current_slot: np.ndarray | None = None) -> None:
        """Store ``words`` at ``address`` ... of ``region``. ``current_slot``: the (K,) analog input of
        the coming step, which CURRENT_IN writes go to. Call ``check`` first."""
        img, c = self.image, self.config
        w = np.asarray(words, dtype=np.int64) & 0xFFFF_FFFF
        addr = address + np.arange(w.size)
        n = c.n_neurons
        if region == Region.CONTROL:
            for a, word in zip(addr, w):
                if a == ControlReg.STEP:
                    img.step = int(word)
                elif a == ControlReg.LEARNING:
                    img.learning = bool(word & 1)
        elif region == Region.PROFILE:
            p, f = addr // PROFILE_STRIDE, addr % PROFILE_STRIDE
            for k, name in enumerate(PROFILE_FIELDS):
                sel = f == k
                if sel.any():
                    img.profiles[name][p[sel]] = self._store(name, w[sel])
        elif region == Region.STDP:
            for a, word in zip(addr, w):
                name = STDP_FIELDS[a]
                img.stdp[name] = int(self._store(name, np.array([word]))[0])
        elif region == Region.NEURON_PROFILE:
            img.neuron_profile[addr] = _zx(w, c.profile_bits)
        elif region == Region.SYNAPSE:
            rows, cols = addr // n, addr % n
            img.weights[rows, cols] = _sx(w & 0xFFFF, c.weight_bits)
            img.plastic[rows, cols] = (w >> SYNAPSE_PLASTIC_BIT & 1).astype(bool) & c.stdp
            img.delays[rows, cols] = _zx(w >> SYNAPSE_DELAY_SHIFT, c.delay_bits) + 1
        elif region == Region.ROW_SHIFT:
            img.row_shift[addr] = _zx(w, fx.ROW_SHIFT_BITS)
        elif region == Region.NEURON_STATE:
            i, f = addr // NEURON_STATE_STRIDE, addr % NEURON_STATE_STRIDE
            for field, name in NEURON_STATE_NAMES.items():
                sel = f == field
                if sel.any():
                    getattr(img, name)[i[sel]] = self._store(name, w[sel])
        elif region == Region.X_TRACE:
            img.x_trace[addr] = self._store("x_trace", w)
        elif region == Region.RING:
            slot, ch, i = addr // (2 * n), addr // n % 2, addr % n
            img.ring[slot, ch, i] = _sx(w, c.i_bits)
        elif region == Region.CURRENT_IN:
            if current_slot is not None:
                current_slot[addr] = _sx(w, c.v_bits)
        else:  # pragma: no cover - check() refuses unknown regions
            raise ValueError(f"region {region}")

    def read(self, region: int, address: int, count: int, current_slot: np.ndarray | None = None) -> np.ndarray:
        """``count`` words from ``address`` of ``region`` as uint32 (signed fields two's complement)."""
        img, c = self.image, self.config
        addr = address + np.arange(count)
        out = np.zeros(count, dtype=np.int64)
        n = c.n_neurons
        if region == Region.CONTROL:
            regs = {ControlReg.MAGIC: MAGIC, ControlReg.STEP: int(img.step), ControlReg.LEARNING: int(img.learning),
                    ControlReg.LAST_CYCLES: int(self.last_cycles), ControlReg.CONFIG_HASH: config_hash_word(c)}
            out[:] = [regs[ControlReg(a)] for a in addr]
        elif region == Region.PROFILE:
            p, f = addr // PROFILE_STRIDE, addr % PROFILE_STRIDE
            for k, name in enumerate(PROFILE_FIELDS):
                sel = f == k
                out[sel] = np.asarray(img.profiles[name])[p[sel]]
        elif region == Region.STDP:
            out[:] = [int(img.stdp[STDP_FIELDS[a]]) for a in addr]
        elif region == Region.NEURON_PROFILE:
            out[:] = img.neuron_profile[addr]
        elif region == Region.SYNAPSE:
            rows, cols = addr // n, addr % n
            out[:] = ((img.weights[rows, cols] & 0xFFFF) | (img.plastic[rows, cols].astype(np.int64) << SYNAPSE_PLASTIC_BIT)
                      | ((img.delays[rows, cols] - 1) << SYNAPSE_DELAY_SHIFT))
        elif region == Region.ROW_SHIFT:
            out[:] = img.row_shift[addr]
        elif region == Region.NEURON_STATE:
            i, f = addr // NEURON_STATE_STRIDE, addr % NEURON_STATE_STRIDE
            for field, name in NEURON_STATE_NAMES.items():
                sel = f == field
                if field == NeuronStateField.ADAPT and not c.adaptive_threshold:
                    continue
                if field == NeuronStateField.Y_TRACE and not c.stdp:
                    continue
                out[sel] = np.asarray(getattr(img, name))[i[sel]]
        elif region == Region.X_TRACE:
            out[:] = img.x_trace[addr]
        elif region == Region.RING:
            out[:] = img.ring[addr // (2 * n), addr // n % 2, addr % n]
        elif region == Region.CURRENT_IN:
            if current_slot is not None:
                out[:] = current_slot[addr]
        return (out & 0xFFFF_FFFF).astype(np.uint32)

    # ---- whole-core operations ---------------------------------------------------------------
    def reset_state(self) -> None:
        """Dynamic state and the step counter to 0; parameters, weights and LEARNING kept."""
        img = self.image
        for name in ("v", "ie", "ii", "refrac_count", "adapt", "x_trace", "y_trace", "ring"):
            getattr(img, name)[...] = 0
        img.step = 0

    def reset_blank(self) -> None:
        self.image = CoreImage.blank(self.config)
