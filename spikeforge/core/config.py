"""CoreConfig: the shape of one neuron core (docs/core-spec.md, section 1).

A CoreConfig fixes everything that changes the hardware: sizes, widths, and which features generate
logic. Two networks with the same CoreConfig run on the same bitstream.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass


class CoreConfigError(ValueError):
    """A CoreConfig field is out of range; the message names the field, the limit and the fix."""


def _bits_for(count: int) -> int:
    """Bits needed to index ``count`` items (0 for a single item)."""
    return max(0, math.ceil(math.log2(count))) if count > 1 else 0


@dataclass(frozen=True)
class CoreConfig:
    """Shape and features of one neuron core.

    Sizes: ``n_neurons`` (N) LIF neurons, ``n_inputs`` (A) external spike inputs, so the weight memory
    is (A + N) x N. ``n_current_inputs`` (K) neurons 0..K-1 also take a per-step voltage increment from
    the host (analog input). ``lanes`` (P) weights are read per clock during spike delivery.

    Features that are off generate no logic and no memory: ``stdp`` (traces, plastic flags, weight
    updates), ``adaptive_threshold`` (per-neuron threshold adaptation), ``max_delay`` > 1 (per-synapse
    delays and the delay ring buffer).
    """

    n_neurons: int = 256
    n_inputs: int = 256
    weight_bits: int = 8
    lanes: int = 1
    max_delay: int = 1
    stdp: bool = False
    adaptive_threshold: bool = False
    n_current_inputs: int = 0
    n_profiles: int = 16
    v_bits: int = 16
    i_bits: int = 16
    refrac_bits: int = 8
    adapt_bits: int = 16
    trace_bits: int = 12
    trace_frac: int = 4

    def __post_init__(self):
        def check(name, ok, expected):
            if not ok:
                raise CoreConfigError(
                    f"CoreConfig.{name} = {getattr(self, name)!r}: expected {expected}"
                )

        for name in (
            "n_neurons", "n_inputs", "weight_bits", "lanes", "max_delay", "n_current_inputs",
            "n_profiles", "v_bits", "i_bits", "refrac_bits", "adapt_bits", "trace_bits", "trace_frac",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise CoreConfigError(
                    f"CoreConfig.{name} = {value!r}: expected an integer"
                )
        for name in ("stdp", "adaptive_threshold"):
            check(name, isinstance(getattr(self, name), bool), "True or False")
        check("n_neurons", 1 <= self.n_neurons <= 4096, "1 .. 4096 neurons")
        check("n_inputs", 0 <= self.n_inputs <= 4096, "0 .. 4096 inputs")
        check("weight_bits", 4 <= self.weight_bits <= 16, "4 .. 16 bits")
        check("lanes", self.lanes in (1, 2, 4, 8, 16), "1, 2, 4, 8 or 16 weights per clock")
        check(
            "lanes", self.n_neurons % self.lanes == 0,
            f"a divisor of n_neurons = {self.n_neurons} (each weight row is read in whole words)",
        )
        check("max_delay", 1 <= self.max_delay <= 64, "1 .. 64 steps (1 = no delay memory)")
        check(
            "n_current_inputs", 0 <= self.n_current_inputs <= self.n_neurons,
            f"0 .. n_neurons = {self.n_neurons}",
        )
        check("n_profiles", 1 <= self.n_profiles <= 64, "1 .. 64 neuron parameter profiles")
        check("v_bits", 8 <= self.v_bits <= 32, "8 .. 32 bits")
        check("i_bits", 8 <= self.i_bits <= 32, "8 .. 32 bits")
        check("refrac_bits", 1 <= self.refrac_bits <= 16, "1 .. 16 bits")
        check("adapt_bits", 4 <= self.adapt_bits <= 32, "4 .. 32 bits")
        check("trace_bits", 4 <= self.trace_bits <= 24, "4 .. 24 bits")
        check("trace_frac", 0 <= self.trace_frac < self.trace_bits, f"0 .. trace_bits - 1 = {self.trace_bits - 1}")

    # ---- derived sizes -------------------------------------------------------------------------
    @property
    def n_sources(self) -> int:
        """Rows of the weight memory: A external inputs then N neurons."""
        return self.n_inputs + self.n_neurons

    @property
    def delay_bits(self) -> int:
        """Bits per synapse storing ``delay - 1`` (0 when ``max_delay`` == 1)."""
        return _bits_for(self.max_delay)

    @property
    def profile_bits(self) -> int:
        return _bits_for(self.n_profiles)

    @property
    def synapse_bits(self) -> int:
        """Bits of one synapse in the weight memory: weight, plastic flag, delay."""
        return self.weight_bits + (1 if self.stdp else 0) + self.delay_bits

    @property
    def neuron_state_bits(self) -> int:
        """Bits of one neuron's state word."""
        bits = self.v_bits + 2 * self.i_bits + self.refrac_bits
        if self.adaptive_threshold:
            bits += self.adapt_bits
        if self.stdp:
            bits += self.trace_bits  # post trace y
        return bits

    def memory_bits(self) -> dict[str, int]:
        """Bits of every memory of the core (docs/core-spec.md, section 6)."""
        mem = {
            "synapses": self.n_sources * self.n_neurons * self.synapse_bits,
            "row_shift": self.n_sources * 4,
            "neuron_state": self.n_neurons * self.neuron_state_bits,
            "neuron_profile_index": self.n_neurons * self.profile_bits,
            "ring_buffer": self.max_delay * 2 * self.n_neurons * self.i_bits,
        }
        if self.stdp:
            mem["pre_traces"] = self.n_sources * self.trace_bits
        if self.n_current_inputs:
            mem["current_inputs"] = self.n_current_inputs * self.v_bits
        return mem

    # ---- identity ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CoreConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CoreConfigError(
                f"unknown CoreConfig field(s) {unknown}; known fields: {sorted(known)}"
            )
        return cls(**data)

    def config_hash(self) -> str:
        """A short stable hash of the config: the key of the bitstream cache."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def replace(self, **changes) -> "CoreConfig":
        return dataclasses.replace(self, **changes)
