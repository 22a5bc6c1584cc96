"""CoreImage: everything one neuron core holds, as integers (docs/core-spec.md, section 6).

A CoreImage is what the compiler produces, what the golden model runs, what the UART link loads
and reads back, and what a standalone bitstream bakes into memory. It has three parts:

- parameters: neuron profiles, the profile index of each neuron, STDP constants;
- synapses: weights, plastic flags, delays (per synapse) and the weight shift of each row;
- state: membrane, currents, refractory counters, threshold adaptation, traces, delay ring buffer,
  step counter, learning switch.
"""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spikeforge.core import fixedpoint as fx
from spikeforge.core.config import CoreConfig


class CoreImageError(ValueError):
    """A CoreImage field has the wrong shape or a value outside its width."""


#: Per-profile parameter fields, in the order of the profile memory word.
PROFILE_FIELDS = (
    "c_vdecay",        # membrane decay exp(-dt/tau_m), Q1.15
    "c_ie",            # excitatory current -> voltage gain (NEST P21ex, scaled), Q1.15
    "c_ii",            # inhibitory current -> voltage gain (NEST P21in, scaled), Q1.15
    "c_edecay",        # excitatory current decay exp(-dt/tau_syn_E), Q1.15
    "c_idecay",        # inhibitory current decay exp(-dt/tau_syn_I), Q1.15
    "v_rest",          # resting potential, signed v_bits
    "bias",            # constant voltage step from i_offset (P20 * i_offset), signed v_bits
    "v_reset",         # reset potential, signed v_bits
    "v_thresh",        # base threshold, signed v_bits
    "refrac",          # refractory period in steps, unsigned refrac_bits
    "reset_subtract",  # 0: reset to v_reset; 1: subtract (threshold - v_reset)
    "a_inc",           # threshold increment per spike, unsigned adapt_bits
    "c_adecay",        # threshold adaptation decay, Q1.15
)

#: STDP constants (one rule per core).
STDP_FIELDS = ("c_xdecay", "c_ydecay", "x_inc", "y_inc", "w_min", "w_max")

#: Per-neuron and per-source state arrays.
STATE_FIELDS = ("v", "ie", "ii", "refrac_count", "adapt", "x_trace", "y_trace", "ring")


def _zeros(*shape):
    return np.zeros(shape, dtype=np.int64)


@dataclass
class CoreImage:
    config: CoreConfig
    # parameters ------------------------------------------------------------------------------
    profiles: dict[str, np.ndarray] = field(default_factory=dict)  # field -> (n_profiles,)
    neuron_profile: np.ndarray = None  # (N,)
    stdp: dict[str, int] = field(default_factory=dict)
    # synapses --------------------------------------------------------------------------------
    weights: np.ndarray = None  # (A+N, N) signed weight_bits
    plastic: np.ndarray = None  # (A+N, N) bool
    delays: np.ndarray = None  # (A+N, N) 1..max_delay
    row_shift: np.ndarray = None  # (A+N,) 0..15
    # state -----------------------------------------------------------------------------------
    v: np.ndarray = None  # (N,)
    ie: np.ndarray = None  # (N,)
    ii: np.ndarray = None  # (N,)
    refrac_count: np.ndarray = None  # (N,)
    adapt: np.ndarray = None  # (N,)
    x_trace: np.ndarray = None  # (A+N,)
    y_trace: np.ndarray = None  # (N,)
    ring: np.ndarray = None  # (max_delay, 2, N): [:, 0] excitatory, [:, 1] inhibitory
    step: int = 0
    learning: bool = True

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def blank(cls, config: CoreConfig) -> "CoreImage":
        """An image with every field present and zero: no synapses, all neurons on profile 0.

        Profile 0 of a blank image has no decay (coefficients 1.0) and a threshold at the top of the
        voltage range, so a blank core never spikes.
        """
        n, s, p = config.n_neurons, config.n_sources, config.n_profiles
        profiles = {name: _zeros(p) for name in PROFILE_FIELDS}
        for name in ("c_vdecay", "c_edecay", "c_idecay", "c_adecay"):
            profiles[name][:] = fx.COEF_ONE
        profiles["v_thresh"][:] = fx.smax(config.v_bits)
        return cls(
            config=config,
            profiles=profiles,
            neuron_profile=_zeros(n),
            stdp={"c_xdecay": fx.COEF_ONE, "c_ydecay": fx.COEF_ONE, "x_inc": 0, "y_inc": 0,
                  "w_min": 0, "w_max": fx.smax(config.weight_bits)},
            weights=_zeros(s, n),
            plastic=np.zeros((s, n), dtype=bool),
            delays=np.ones((s, n), dtype=np.int64),
            row_shift=_zeros(s),
            v=_zeros(n), ie=_zeros(n), ii=_zeros(n), refrac_count=_zeros(n), adapt=_zeros(n),
            x_trace=_zeros(s), y_trace=_zeros(n), ring=_zeros(config.max_delay, 2, n),
            step=0, learning=True,
        )

    def copy(self) -> "CoreImage":
        return CoreImage(
            config=self.config,
            profiles={k: np.array(v, dtype=np.int64) for k, v in self.profiles.items()},
            neuron_profile=np.array(self.neuron_profile, dtype=np.int64),
            stdp={k: int(v) for k, v in self.stdp.items()},
            weights=np.array(self.weights, dtype=np.int64),
            plastic=np.array(self.plastic, dtype=bool),
            delays=np.array(self.delays, dtype=np.int64),
            row_shift=np.array(self.row_shift, dtype=np.int64),
            **{name: np.array(getattr(self, name), dtype=np.int64) for name in STATE_FIELDS},
            step=int(self.step), learning=bool(self.learning),
        )

    # ---- checking --------------------------------------------------------------------------
    def validate(self) -> "CoreImage":
        """Check every shape and every value against its width; raise CoreImageError naming the field."""
        c = self.config
        n, s, p, d = c.n_neurons, c.n_sources, c.n_profiles, c.max_delay

        def arr(name, value, shape, lo, hi):
            a = np.asarray(value)
            if a.shape != shape:
                raise CoreImageError(f"CoreImage.{name}: shape {a.shape}, expected {shape}")
            if a.size and (a.min() < lo or a.max() > hi):
                bad = a.min() if a.min() < lo else a.max()
                raise CoreImageError(
                    f"CoreImage.{name}: value {int(bad)} outside {lo} .. {hi} allowed by the CoreConfig"
                )

        vb, ib, wb = c.v_bits, c.i_bits, c.weight_bits
        ranges = {
            "c_vdecay": (0, fx.COEF_MAX), "c_ie": (0, fx.COEF_MAX), "c_ii": (0, fx.COEF_MAX),
            "c_edecay": (0, fx.COEF_MAX), "c_idecay": (0, fx.COEF_MAX), "c_adecay": (0, fx.COEF_MAX),
            "v_rest": (fx.smin(vb), fx.smax(vb)), "bias": (fx.smin(vb), fx.smax(vb)),
            "v_reset": (fx.smin(vb), fx.smax(vb)), "v_thresh": (fx.smin(vb), fx.smax(vb)),
            "refrac": (0, fx.umax(c.refrac_bits)), "reset_subtract": (0, 1),
            "a_inc": (0, fx.umax(c.adapt_bits)),
        }
        missing = [f for f in PROFILE_FIELDS if f not in self.profiles]
        if missing:
            raise CoreImageError(f"CoreImage.profiles: missing field(s) {missing}")
        for name, (lo, hi) in ranges.items():
            arr(f"profiles[{name!r}]", self.profiles[name], (p,), lo, hi)
        arr("neuron_profile", self.neuron_profile, (n,), 0, p - 1)
        missing = [f for f in STDP_FIELDS if f not in self.stdp]
        if missing:
            raise CoreImageError(f"CoreImage.stdp: missing field(s) {missing}")
        for name in ("c_xdecay", "c_ydecay"):
            arr(f"stdp[{name!r}]", self.stdp[name], (), 0, fx.COEF_MAX)
        for name in ("x_inc", "y_inc"):
            arr(f"stdp[{name!r}]", self.stdp[name], (), 0, fx.umax(c.trace_bits))
        for name in ("w_min", "w_max"):
            arr(f"stdp[{name!r}]", self.stdp[name], (), fx.smin(wb), fx.smax(wb))
        if self.stdp["w_min"] > self.stdp["w_max"]:
            raise CoreImageError(
                f"CoreImage.stdp: w_min = {self.stdp['w_min']} is above w_max = {self.stdp['w_max']}"
            )
        arr("weights", self.weights, (s, n), fx.smin(wb), fx.smax(wb))
        arr("plastic", self.plastic, (s, n), 0, 1 if c.stdp else 0)
        arr("delays", self.delays, (s, n), 1, d)
        arr("row_shift", self.row_shift, (s,), 0, fx.ROW_SHIFT_MAX)
        arr("v", self.v, (n,), fx.smin(vb), fx.smax(vb))
        arr("ie", self.ie, (n,), fx.smin(ib), fx.smax(ib))
        arr("ii", self.ii, (n,), fx.smin(ib), fx.smax(ib))
        arr("refrac_count", self.refrac_count, (n,), 0, fx.umax(c.refrac_bits))
        arr("adapt", self.adapt, (n,), 0, fx.umax(c.adapt_bits) if c.adaptive_threshold else 0)
        arr("x_trace", self.x_trace, (s,), 0, fx.umax(c.trace_bits) if c.stdp else 0)
        arr("y_trace", self.y_trace, (n,), 0, fx.umax(c.trace_bits) if c.stdp else 0)
        arr("ring", self.ring, (d, 2, n), fx.smin(ib), fx.smax(ib))
        if int(self.step) < 0:
            raise CoreImageError(f"CoreImage.step = {self.step}: expected >= 0")
        return self

    # ---- comparison ------------------------------------------------------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Every array of the image by a flat name (``profiles.v_rest``, ``weights``, ``v``, ...)."""
        out = {f"profiles.{k}": np.asarray(v) for k, v in self.profiles.items()}
        out.update({f"stdp.{k}": np.asarray(v) for k, v in self.stdp.items()})
        for name in ("neuron_profile", "weights", "plastic", "delays", "row_shift", *STATE_FIELDS):
            out[name] = np.asarray(getattr(self, name))
        out["step"] = np.asarray(self.step)
        out["learning"] = np.asarray(self.learning)
        return out

    def differences(self, other: "CoreImage") -> list[str]:
        """Names of the fields where two images differ (empty when identical)."""
        if self.config != other.config:
            return ["config"]
        a, b = self.state_arrays(), other.state_arrays()
        return [k for k in a if not np.array_equal(a[k], b[k])]

    def __eq__(self, other):
        return isinstance(other, CoreImage) and not self.differences(other)

    # ---- files -----------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the image to an ``.npz`` file (config as JSON inside)."""
        arrays = {k.replace(".", "__"): v for k, v in self.state_arrays().items()}
        arrays["config_json"] = np.frombuffer(json.dumps(self.config.to_dict()).encode(), dtype=np.uint8)
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path) -> "CoreImage":
        with np.load(path) as data:
            config = CoreConfig.from_dict(json.loads(bytes(data["config_json"]).decode()))
            img = cls.blank(config)
            for key in data.files:
                if key == "config_json":
                    continue
                name = key.replace("__", ".")
                value = data[key]
                if name.startswith("profiles."):
                    img.profiles[name.split(".", 1)[1]] = value.astype(np.int64)
                elif name.startswith("stdp."):
                    img.stdp[name.split(".", 1)[1]] = int(value)
                elif name == "step":
                    img.step = int(value)
                elif name == "learning":
                    img.learning = bool(value)
                elif name == "plastic":
                    img.plastic = value.astype(bool)
                else:
                    setattr(img, name, value.astype(np.int64))
        return img.validate()
