"""The boot ROM of a standalone bitstream: a CoreImage and an input stimulus as 16-bit words.

A standalone board has no host, so the bitstream carries everything: at power-up a small loader
(boards/standalone.py) replays this ROM into the core through the same load bus the host uses
(``memory_map.image_writes``), then plays the stimulus, one timestep per ``dt``, forever.

Weights cannot simply be memory initial values: on the iCE40 UltraPlus they live in SPRAM, which has
no initial contents. Replaying writes works on every family, and keeping the image in one ROM lets a
new network with the same CoreConfig reuse a placed and routed bitstream: only the ROM's block RAM
contents change (``icebram`` / ``ecpbram`` swap them in the packed design).

Layout (16-bit words)::

    MAGIC  step_cycles_lo  step_cycles_hi  blink_steps
    record*            [op:4 | region:4 | addr[23:16]:8]  addr[15:0]  count_lo  count_hi  payload
    END                [0:4 | 0:12]
    n_steps            stimulus steps, then per step: k, then k input indices

    op FILL   payload: value_lo value_hi        count copies of one 32-bit word
    op W32    payload: count x (lo, hi)         32-bit words
    op W16    payload: count x word             16-bit words, sign-extended
    op SYN8   payload: ceil(count/2) words      packed synapses, 2 per word (low byte first)
    op SYN16  payload: count words              packed synapses
    op SPARSE8  payload: count words            [step:8 | packed synapse:8]: address += step, write
    op SPARSE16 payload: count x (step, packed) the same with 16-bit steps and synapses

Sparse records start at the record's address with a first step of 0; they carry the synapses that
differ from the FILL, so a network with few synapses per row costs about one word per synapse.

``step_cycles`` is the clock cycles per timestep (one ``dt`` in real time; 0 = as fast as the core
runs), ``blink_steps`` the steps per toggle of the "alive" LED: both live in the ROM, not the logic,
so networks with another ``dt`` reuse the bitstream too.

A packed synapse is ``weight (weight_bits, two's complement) | plastic (1 bit, with STDP) |
delay - 1 (delay_bits)``, LSB first: the loader widens it to the bus word of memory_map.pack_synapse.
Nearby addresses of one region share a record; the most common synapse word (usually "no synapse")
and mostly-zero state are covered by one FILL each.
"""

import enum
from dataclasses import dataclass

import numpy as np

from spikeforge.core import memory_map as mm
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage

MAGIC = 0x5346  # "SF"
MAX_STEPS = 0xFFFF


class Op(enum.IntEnum):
    END = 0
    FILL = 1
    W32 = 2
    W16 = 3
    SYN8 = 4
    SYN16 = 5
    SPARSE8 = 6
    SPARSE16 = 7


class BootRomError(ValueError):
    """The image or stimulus cannot be put in a boot ROM; the message says what to change."""


def packed_synapse_bits(config: CoreConfig) -> int:
    return config.weight_bits + (1 if config.stdp else 0) + config.delay_bits


def pack_synapse_value(config: CoreConfig, weight, plastic, delay) -> np.ndarray:
    """Packed synapses (the ROM form) of arrays of weights, plastic flags and delays."""
    wb = config.weight_bits
    v = np.asarray(weight, dtype=np.int64) & ((1 << wb) - 1)
    shift = wb
    if config.stdp:
        v |= np.asarray(plastic, dtype=np.int64) << shift
        shift += 1
    if config.delay_bits:
        v |= (np.asarray(delay, dtype=np.int64) - 1) << shift
    return v


def unpack_synapse_value(config: CoreConfig, value: int) -> int:
    """A packed synapse -> its 32-bit bus word (what the RTL loader computes)."""
    wb = config.weight_bits
    w = value & ((1 << wb) - 1)
    if w >> (wb - 1):
        w -= 1 << wb
    shift = wb
    plastic = 0
    if config.stdp:
        plastic = (value >> shift) & 1
        shift += 1
    delay_m1 = (value >> shift) & ((1 << config.delay_bits) - 1) if config.delay_bits else 0
    return (w & 0xFFFF) | (plastic << mm.SYNAPSE_PLASTIC_BIT) | (delay_m1 << mm.SYNAPSE_DELAY_SHIFT)


def _header(op: Op, region: int, addr: int, count: int) -> list[int]:
    return [(int(op) << 12) | (int(region) << 8) | ((addr >> 16) & 0xFF), addr & 0xFFFF,
            count & 0xFFFF, (count >> 16) & 0xFFFF]


def _groups(positions: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """Sorted positions -> [lo, hi) spans, merging neighbours closer than ``gap``."""
    if not len(positions):
        return []
    breaks = np.flatnonzero(np.diff(positions) > gap) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(positions)]])
    return [(int(positions[a]), int(positions[b - 1]) + 1) for a, b in zip(starts, stops)]


def _encode_span(region: int, base: int, dense: np.ndarray) -> list[int]:
    """One record for the words ``dense`` at addresses base.. : FILL if they are all equal, W16 if
    they are sign-extended 16-bit values, else W32."""
    count = len(dense)
    if count > 2 and np.all(dense == dense[0]):
        v = int(dense[0])
        return _header(Op.FILL, region, base, count) + [v & 0xFFFF, (v >> 16) & 0xFFFF]
    signed = np.where(dense >= 1 << 31, dense - (1 << 32), dense)
    if np.all((signed >= -(1 << 15)) & (signed < (1 << 15))):
        return _header(Op.W16, region, base, count) + [int(v) & 0xFFFF for v in signed]
    out = _header(Op.W32, region, base, count)
    for v in dense.tolist():
        out += [v & 0xFFFF, (v >> 16) & 0xFFFF]
    return out


def _encode_words(region: int, addrs: np.ndarray, values: np.ndarray, gap: int = 4) -> list[int]:
    """Records for the (address, 32-bit word) writes of one region.

    The addresses are laid on one dense span (addresses in between are unmapped fields: writes there
    are ignored by the core, hdl/INTERFACE.md). Mostly-zero spans get one zero FILL and records for
    the non-zero words only; nearby words share a record."""
    a0 = int(addrs.min())
    dense = np.zeros(int(addrs.max()) - a0 + 1, dtype=np.int64)
    dense[addrs - a0] = values
    nonzero = np.flatnonzero(dense)
    out: list[int] = []
    if len(dense) - len(nonzero) >= 8:
        out += _header(Op.FILL, region, a0, len(dense)) + [0, 0]
        targets = nonzero
    else:
        targets = np.arange(len(dense))
    for lo, hi in _groups(targets, gap):
        out += _encode_span(region, a0 + lo, dense[lo:hi])
    return out


def _encode_synapses(config: CoreConfig, image: CoreImage, gap: int) -> list[int]:
    """Every synapse: one FILL with the most common word, then the other synapses in runs; runs
    closer than ``gap`` synapses are merged (a record header costs 4 words)."""
    n_words = config.n_sources * config.n_neurons
    words = mm.pack_synapses(image.weights, image.plastic, image.delays).reshape(-1).astype(np.int64)
    packed = pack_synapse_value(config, image.weights, image.plastic, image.delays).reshape(-1)
    values, counts = np.unique(words, return_counts=True)
    common = int(values[np.argmax(counts)])
    out = _header(Op.FILL, mm.Region.SYNAPSE, 0, n_words) + [common & 0xFFFF, (common >> 16) & 0xFFFF]
    others = np.flatnonzero(words != common)
    if not len(others):
        return out
    bits = packed_synapse_bits(config)
    dense = _dense_synapse_records(packed, words, others, bits, gap)
    if bits <= 16:
        sparse = _sparse_synapse_records(packed, others, bits)
        if len(sparse) < len(dense):
            return out + sparse
    return out + dense


def _sparse_synapse_records(packed, others, bits: int) -> list[int]:
    """SPARSE8 (steps < 256, synapses of <= 8 bits) or SPARSE16 records for the addresses ``others``."""
    narrow = bits <= 8
    limit = 0xFF if narrow else 0xFFFF
    out: list[int] = []
    addrs = [int(a) for a in others]
    start = 0
    while start < len(addrs):
        stop = start + 1
        while stop < len(addrs) and addrs[stop] - addrs[stop - 1] <= limit:
            stop += 1
        run = addrs[start:stop]
        steps = [0] + [b - a for a, b in zip(run, run[1:])]
        out += _header(Op.SPARSE8 if narrow else Op.SPARSE16, mm.Region.SYNAPSE, run[0], len(run))
        for step, a in zip(steps, run):
            out += [(step << 8) | int(packed[a])] if narrow else [step, int(packed[a])]
        start = stop
    return out


def _dense_synapse_records(packed, words, others, bits: int, gap: int) -> list[int]:
    out: list[int] = []
    for lo, hi in _groups(others, gap):
        count = hi - lo
        if bits <= 8:
            vals = packed[lo:hi]
            if count % 2:
                vals = np.concatenate([vals, [0]])
            out += _header(Op.SYN8, mm.Region.SYNAPSE, lo, count)
            out += [int(vals[i]) | (int(vals[i + 1]) << 8) for i in range(0, len(vals), 2)]
        elif bits <= 16:
            out += _header(Op.SYN16, mm.Region.SYNAPSE, lo, count) + [int(v) for v in packed[lo:hi]]
        else:
            out += _header(Op.W32, mm.Region.SYNAPSE, lo, count)
            for v in words[lo:hi].tolist():
                out += [v & 0xFFFF, (v >> 16) & 0xFFFF]
    return out


def encode_header(step_cycles: int, blink_steps: int) -> list[int]:
    if not 0 <= step_cycles < 1 << 32:
        raise BootRomError(f"step_cycles = {step_cycles} does not fit 32 bits")
    return [MAGIC, step_cycles & 0xFFFF, step_cycles >> 16, max(1, min(0xFFFF, int(blink_steps)))]


def encode_image(image: CoreImage) -> list[int]:
    """The load records of ``image`` (parameters, synapses, state, control registers) + END."""
    config = image.config
    by_region: dict[int, tuple[list[int], list[int]]] = {}
    for region, addr, word in mm.image_writes(image, state=True):
        if region == mm.Region.SYNAPSE:
            continue
        a, v = by_region.setdefault(int(region), ([], []))
        a.append(addr)
        v.append(word & 0xFFFF_FFFF)
    bits = packed_synapse_bits(config)
    gap = 8 if bits <= 8 else 4
    out = []
    # parameters first, then synapses, then state; CONTROL (step, learning) last
    order = [mm.Region.PROFILE, mm.Region.STDP, mm.Region.NEURON_PROFILE, mm.Region.ROW_SHIFT]
    for region in order:
        if int(region) in by_region:
            a, v = by_region.pop(int(region))
            out += _encode_words(int(region), np.array(a, dtype=np.int64), np.array(v, dtype=np.int64))
    out += _encode_synapses(config, image, gap)
    for region in sorted(by_region):
        if region == mm.Region.CONTROL:
            continue
        a, v = by_region[region]
        out += _encode_words(region, np.array(a, dtype=np.int64), np.array(v, dtype=np.int64))
    if int(mm.Region.CONTROL) in by_region:
        a, v = by_region[int(mm.Region.CONTROL)]
        for addr, word in zip(a, v):  # STEP and LEARNING are not consecutive records
            out += _header(Op.W32, mm.Region.CONTROL, addr, 1) + [word & 0xFFFF, (word >> 16) & 0xFFFF]
    out.append(int(Op.END) << 12)
    return out


def encode_stimulus(raster: np.ndarray) -> list[int]:
    """A (steps, A) boolean input raster -> n_steps, then per step k and k indices."""
    raster = np.asarray(raster, dtype=bool)
    steps = raster.shape[0]
    if steps < 1:
        raise BootRomError("the stimulus needs at least one step")
    if steps > MAX_STEPS:
        raise BootRomError(f"a stimulus of {steps} steps is longer than the ROM format's {MAX_STEPS}")
    out = [steps]
    for row in raster:
        idx = np.flatnonzero(row)
        out.append(len(idx))
        out += [int(i) for i in idx]
    return out


def encode(image: CoreImage, stimulus: np.ndarray, *, step_cycles: int = 0, blink_steps: int = 100) -> list[int]:
    """The whole ROM: header, image records, END, stimulus."""
    if image.config.n_current_inputs:
        raise BootRomError(
            "standalone mode plays spike inputs only; this network has current-input populations "
            "(current_input=True), which need the host to send currents: build it without --standalone"
        )
    if stimulus.shape[1:] != (image.config.n_inputs,):
        raise BootRomError(f"stimulus has shape {stimulus.shape}, expected (steps, {image.config.n_inputs})")
    return encode_header(step_cycles, blink_steps) + encode_image(image) + encode_stimulus(stimulus)


def rom_depth(words: int) -> int:
    """The ROM size a bitstream is built with: the next power of two >= ``words`` (at least 256), so
    networks of similar size share a cached standalone bitstream."""
    return max(256, 1 << max(0, (int(words) - 1).bit_length()))


# ---- a Python reading of the ROM: what the loader does (tests compare it with the RTL) ------------
@dataclass
class DecodedRom:
    writes: list[tuple[int, int, int]]   # (region, address, 32-bit word) in loader order
    stimulus: list[list[int]]            # input indices per step
    step_cycles: int = 0
    blink_steps: int = 1


def decode(config: CoreConfig, rom) -> DecodedRom:
    rom = [int(w) & 0xFFFF for w in rom]
    if not rom or rom[0] != MAGIC:
        raise BootRomError("not a spikeforge boot ROM (bad magic word)")
    step_cycles, blink_steps = rom[1] | (rom[2] << 16), rom[3]
    p, writes = 4, []
    while True:
        head = rom[p]
        op, region, hi = head >> 12, (head >> 8) & 0xF, head & 0xFF
        if op == Op.END:
            p += 1
            break
        addr = (hi << 16) | rom[p + 1]
        count = rom[p + 2] | (rom[p + 3] << 16)
        p += 4
        if op == Op.FILL:
            value = rom[p] | (rom[p + 1] << 16)
            p += 2
            writes += [(region, addr + i, value) for i in range(count)]
        elif op == Op.W32:
            for i in range(count):
                writes.append((region, addr + i, rom[p] | (rom[p + 1] << 16)))
                p += 2
        elif op == Op.W16:
            for i in range(count):
                v = rom[p] - 0x10000 if rom[p] & 0x8000 else rom[p]
                writes.append((region, addr + i, v & 0xFFFF_FFFF))
                p += 1
        elif op == Op.SYN8:
            for i in range(count):
                byte = (rom[p + i // 2] >> (8 * (i % 2))) & 0xFF
                writes.append((region, addr + i, unpack_synapse_value(config, byte)))
            p += (count + 1) // 2
        elif op == Op.SYN16:
            for i in range(count):
                writes.append((region, addr + i, unpack_synapse_value(config, rom[p + i])))
            p += count
        elif op == Op.SPARSE8:
            for _ in range(count):
                addr += rom[p] >> 8
                writes.append((region, addr, unpack_synapse_value(config, rom[p] & 0xFF)))
                p += 1
        elif op == Op.SPARSE16:
            for _ in range(count):
                addr += rom[p]
                writes.append((region, addr, unpack_synapse_value(config, rom[p + 1])))
                p += 2
        else:
            raise BootRomError(f"unknown ROM op {op} at word {p - 4}")
    steps = rom[p]
    p += 1
    stimulus = []
    for _ in range(steps):
        k = rom[p]
        stimulus.append(rom[p + 1:p + 1 + k])
        p += 1 + k
    return DecodedRom(writes, stimulus, step_cycles, blink_steps)


def to_hex(words, depth: int) -> str:
    """``$readmemh`` text of a 16-bit ROM, padded with zeros to ``depth`` words."""
    words = list(words) + [0] * (depth - len(words))
    return "".join(f"{w & 0xFFFF:04x}\n" for w in words)


def random_words(depth: int, seed: int) -> list[int]:
    """Distinctive placeholder contents: what a cached standalone bitstream is built with, so that
    icebram/ecpbram find exactly these words again when they swap in a network's ROM."""
    return np.random.default_rng(seed).integers(0, 1 << 16, size=depth).tolist()
