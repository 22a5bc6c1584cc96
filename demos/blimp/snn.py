"""The SNN controller's architecture, its genome, and the genome -> CoreImage map.

Structure (arXiv 2309.12937, adapted to the spikeforge core; docs/blimp.md):

- two sub-networks, PD and I, each: an **encoding layer** of P neuron pairs driven through the core's
  analog input path -- the host writes, every tick, ``g_k s e + b_k`` into neuron 2k and
  ``-g_k s e + b_k`` into neuron 2k+1 (shared bias, opposite-sign weights, e = altitude error, s a
  fixed input scale) -- and a **hidden LIF layer** of H neurons (subtract reset, exponential
  synapses with separate excitatory/inhibitory decays, a bias), each fed by ``fan_in`` encoders
  (a fixed random wiring), optionally with a self-connection; or, for the I sub-network
  (``SubnetSpec.integrator``), the structured integrator: bias-free perfect integrate-and-fire
  encoders (sigma-delta) and hidden neurons that each sum one pair's spikes with +w/-w into synaptic
  currents that never decay, so ie + ii holds the error integral exactly;
- a **leaky-integrator decoder** on the host: ``y = a y + (1 - a) sum_j d_j s_j`` over the hidden
  spikes of each tick, identical on every backend because it only sees spikes.

Everything the core holds is written directly from the genome with the compiler's own quantisation
formulas and a fixed Scaling (``SCALING``): the evolution evaluates exactly the integers the FPGA
runs, without a compile per genome. ``network(params)`` gives the same controller as a spikeforge
``Network`` (PyNN units); compiling it with ``compile_options()`` gives the same image
(tests/test_blimp_snn.py checks), which is what ``spikeforge inspect`` and SpiNNaker use.

Units: dt = 100 ms (one core step per control tick, as in the paper); membrane in mV with rest and
reset at 0 mV; every neuron's capacitance is chosen so that its larger current-to-voltage propagator
P21 is 1 mV/nA -- a weight of w nA then moves the membrane by w mV (times the synaptic decay
thereafter), the paper's ``v = a v + i`` with the core's one-step synaptic delay.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numba
import numpy as np

from spikeforge.compiler import propagators as prop
from spikeforge.compiler.network import LIFParameters, Network, Population, Projection
from spikeforge.compiler.quantise import coef
from spikeforge.core import fixedpoint as fx
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import PROFILE_FIELDS, CoreImage

#: Core step (ms): one step per 10 Hz control tick.
DT_MS = 100.0
#: Membrane window (mV) and synaptic current range (nA) the controller is quantised for.
V_WINDOW = (-40.0, 40.0)
CURRENT_RANGE = 32.0
#: Core widths.
WEIGHT_BITS, V_BITS, I_BITS = 8, 16, 16
#: Host-side clip of the encoders' per-step input (mV): keeps it inside the membrane window.
INPUT_CLIP = 20.0
#: Parameter bounds (the paper's: weights [-2, 2], bias [-1, 1], threshold up to 10).
W_MAX, SELF_W_MAX, BIAS_MAX = 2.0, 1.0, 1.0
THRESH_RANGE = (0.1, 10.0)
#: Decays are searched as time constants, log-uniform from 0.1 to 10^4 steps (fine near 1).
LOG_TAU_RANGE = (-1.0, 4.0)


def _scaling_constants():
    """v_lsb, v_offset and i_lsb exactly as compile() chooses them for V_WINDOW and CURRENT_RANGE with
    every neuron's largest P21 = 1 mV/nA (compiler/scaling.py)."""
    from spikeforge.compiler.scaling import MIN_GAIN_FRACTION, pow2_ceil

    lo, hi = V_WINDOW
    v_lsb = (hi - lo) / (2 ** V_BITS - 2)
    v_offset = (lo + hi) / 2.0
    i_gain_max = (fx.COEF_MAX - 0.5) / fx.COEF_ONE * v_lsb / 1.0
    target = max(CURRENT_RANGE / fx.smax(I_BITS), i_gain_max * MIN_GAIN_FRACTION)
    target = min(target, i_gain_max)
    i_lsb = pow2_ceil(target)
    if i_lsb > i_gain_max:
        i_lsb = target
    return v_lsb, v_offset, i_lsb


V_LSB, V_OFFSET, I_LSB = _scaling_constants()


def v_to_int(mv):
    return np.rint((np.asarray(mv, dtype=float) - V_OFFSET) / V_LSB).astype(np.int64)


def dv_to_int(mv):
    return np.rint(np.asarray(mv, dtype=float) / V_LSB).astype(np.int64)


# ---- architecture ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SubnetSpec:
    """One sub-network (PD or I). ``input_scale``: error (m) -> encoder input (mV per step) before the
    pair's gain; ``decoder_decay_max``: bound of the decoder's decay (0.3 for I: integrate in the SNN)."""

    name: str
    pairs: int = 6
    hidden: int = 30
    groups: int = 6
    fan_in: int = 4
    input_scale: float = 2.0
    decoder_decay_max: float = 0.95
    self_connections: bool = False
    wiring_seed: int = 0
    #: log10 range (steps) of the hidden synaptic time constants: (2, 4.5) makes the I sub-network's
    #: synaptic currents near-perfect integrators of its encoders' spikes (tau 10 s .. 50 min).
    syn_log_tau: tuple[float, float] = LOG_TAU_RANGE
    #: range of the encoder pairs' shared bias (mV per step); (-1, 0) for I: a pair is silent at zero
    #: error, so near-perfect synaptic integrators do not fill up with both signs at once.
    enc_bias_range: tuple[float, float] = (-BIAS_MAX, BIAS_MAX)
    #: log-uniform range (mV) of the encoder and hidden thresholds.
    thresh_range: tuple[float, float] = THRESH_RANGE
    #: The structured integrator (the I sub-network, docs/blimp.md "The I sub-network"): encoders are
    #: perfect integrate-and-fire neurons (no leak, no bias, subtract reset: sigma-delta modulators
    #: whose spike counts are the integral of their input), hidden neuron j listens to encoder pair
    #: j % pairs with weights +w_j / -w_j (one gene), and the hidden synaptic currents never decay
    #: (coefficient exactly 1): ie + ii = w_j (N+ - N-), the error integral held in the synapses.
    integrator: bool = False
    #: bound (nA) of the integrator's hidden weights: sets how much error integral the 16-bit synaptic
    #: accumulators hold before they saturate (docs/blimp.md).
    w_max: float = W_MAX
    #: log-uniform range (mV) of the integrator's encoder threshold (the integral's quantum).
    enc_thresh_range: tuple[float, float] = THRESH_RANGE

    @property
    def n_encoders(self) -> int:
        return 2 * self.pairs

    @property
    def n_neurons(self) -> int:
        return self.n_encoders + self.hidden

    @property
    def n_profiles(self) -> int:
        return 1 + self.hidden  # encoders share one; each hidden neuron has its own bias

    def wiring(self) -> np.ndarray:
        """(H, fan_in) encoder indices feeding each hidden neuron (distinct, seeded)."""
        rng = np.random.default_rng([self.wiring_seed, self.pairs, self.hidden, self.fan_in])
        return np.stack([rng.choice(self.n_encoders, size=self.fan_in, replace=False) for _ in range(self.hidden)])

    def group_of(self) -> np.ndarray:
        return np.arange(self.hidden) % self.groups

    def config(self) -> CoreConfig:
        return _config(self.n_neurons, self.n_encoders, self.n_profiles)

    # genome layout: name -> (count, kind)
    def layout(self) -> list[tuple[str, int, str]]:
        P, H, G = self.pairs, self.hidden, self.groups
        if self.integrator:
            return [("enc_gain", P, "w"), ("enc_thresh", 1, "ethresh"), ("grp_decay_m", G, "decay"),
                    ("grp_thresh", G, "thresh"), ("hid_bias", H, "bias"), ("w_in", H, "win"), ("dec_decay", 1, "dec")]
        out = [("enc_gain", P, "w"), ("enc_bias", P, "ebias"), ("enc_decay", 1, "decay"), ("enc_thresh", 1, "thresh"),
               ("grp_decay_m", G, "decay"), ("grp_decay_e", G, "syn"), ("grp_decay_i", G, "syn"),
               ("grp_thresh", G, "thresh"), ("hid_bias", H, "bias"), ("w_in", H * self.fan_in, "w")]
        if self.self_connections:
            out.append(("w_self", H, "self"))
        out.append(("dec_decay", 1, "dec"))
        return out

    @property
    def genome_size(self) -> int:
        return sum(n for _, n, _ in self.layout())

    def to_dict(self) -> dict:
        return asdict(self)


def _config(n_neurons: int, n_encoders: int, n_profiles: int) -> CoreConfig:
    return CoreConfig(n_neurons=n_neurons, n_inputs=0, weight_bits=WEIGHT_BITS, v_bits=V_BITS, i_bits=I_BITS,
                      n_current_inputs=n_encoders, n_profiles=n_profiles, lanes=1, max_delay=1)


def _decay_from_unit(z, log_tau=LOG_TAU_RANGE):
    tau = 10.0 ** (log_tau[0] + (log_tau[1] - log_tau[0]) * z)
    return np.exp(-1.0 / tau)


def _unit_from_decay(a, log_tau=LOG_TAU_RANGE):
    a = np.clip(np.asarray(a, dtype=float), 1e-12, 1 - 1e-12)
    tau = -1.0 / np.log(a)
    return np.clip((np.log10(tau) - log_tau[0]) / (log_tau[1] - log_tau[0]), 0.0, 1.0)


@dataclass
class SubnetParams:
    """The parameters of one sub-network for a batch of B genomes (leading axis B on every array)."""

    spec: SubnetSpec
    values: dict[str, np.ndarray]
    dec_weights: np.ndarray | None = None  # (B, H), fitted by least squares (train.py)

    @property
    def batch(self) -> int:
        return self.values["enc_decay"].shape[0]

    def __getitem__(self, name):
        return self.values[name]

    def take(self, b: int) -> "SubnetParams":
        return SubnetParams(self.spec, {k: v[b:b + 1] for k, v in self.values.items()},
                            None if self.dec_weights is None else self.dec_weights[b:b + 1])

    # ---- files ----------------------------------------------------------------------------
    def to_json(self) -> dict:
        if self.batch != 1:
            raise ValueError("only a single genome (batch 1) is saved")
        return {"spec": self.spec.to_dict(), "values": {k: v[0].tolist() for k, v in self.values.items()},
                "dec_weights": None if self.dec_weights is None else self.dec_weights[0].tolist()}

    @classmethod
    def from_json(cls, data: dict) -> "SubnetParams":
        spec_data = dict(data["spec"])
        for key in ("syn_log_tau", "enc_bias_range", "thresh_range", "enc_thresh_range"):
            if key in spec_data:
                spec_data[key] = tuple(spec_data[key])
        spec = SubnetSpec(**spec_data)
        values = _fixed_values(spec, {k: np.asarray(v, dtype=float)[None] for k, v in data["values"].items()})
        for name, count, _ in spec.layout():
            if name not in values or values[name][0].size != count:
                raise ValueError(f"controller file: sub-network {spec.name!r} lacks {name!r} ({count} values)")
        dec = data.get("dec_weights")
        return cls(spec, values, None if dec is None else np.asarray(dec, dtype=float)[None])


#: The decay of a "never decaying" state: tau = 10^7 steps (11.6 days) is finite (PyNN and the
#: network validator want finite time constants) and its Q1.15 coefficient rounds to exactly 1.0, so
#: the core holds the value without the one-LSB-per-step loss that any coefficient below one causes
#: (round toward zero).
HOLD_DECAY = math.exp(-1e-7)


def _fixed_values(spec: SubnetSpec, values: dict) -> dict:
    """The parameters an integrator sub-network does not search (SubnetSpec.integrator), filled in:
    encoders without leak or bias, hidden synaptic currents that never decay."""
    if spec.integrator:
        B = values["enc_gain"].shape[0]
        values.setdefault("enc_bias", np.zeros((B, spec.pairs)))
        values.setdefault("enc_decay", np.full(B, HOLD_DECAY))
        values.setdefault("grp_decay_e", np.full((B, spec.groups), HOLD_DECAY))
        values.setdefault("grp_decay_i", np.full((B, spec.groups), HOLD_DECAY))
    return values


def decode_genome(spec: SubnetSpec, z: np.ndarray) -> SubnetParams:
    """Genomes z (B, n) in [0, 1] -> SubnetParams (physical values within the bounds)."""
    z = np.clip(np.atleast_2d(np.asarray(z, dtype=float)), 0.0, 1.0)
    if z.shape[1] != spec.genome_size:
        raise ValueError(f"genome of {z.shape[1]} values, the {spec.name!r} sub-network needs {spec.genome_size}")
    values = {}
    pos = 0
    for name, count, kind in spec.layout():
        u = z[:, pos:pos + count]
        pos += count
        if kind == "w":
            v = W_MAX * (2 * u - 1)
        elif kind == "win":
            v = spec.w_max * (2 * u - 1)
        elif kind == "self":
            v = SELF_W_MAX * (2 * u - 1)
        elif kind == "bias":
            v = BIAS_MAX * (2 * u - 1)
        elif kind == "ebias":
            lo, hi = spec.enc_bias_range
            v = lo + (hi - lo) * u
        elif kind == "decay":
            v = _decay_from_unit(u)
        elif kind == "syn":
            v = _decay_from_unit(u, spec.syn_log_tau)
        elif kind in ("thresh", "ethresh"):
            lo, hi = np.log10(spec.thresh_range if kind == "thresh" else spec.enc_thresh_range)
            v = 10.0 ** (lo + (hi - lo) * u)
        elif kind == "dec":
            v = spec.decoder_decay_max * u
        if count == 1:
            v = v[:, 0]
        elif name == "w_in" and not spec.integrator:
            v = v.reshape(-1, spec.hidden, spec.fan_in)
        values[name] = v
    return SubnetParams(spec, _fixed_values(spec, values))


def encode_genome(params: SubnetParams) -> np.ndarray:
    """The inverse of decode_genome: SubnetParams -> z (B, n) in [0, 1]."""
    spec = params.spec
    parts = []
    B = params.batch
    for name, count, kind in spec.layout():
        v = np.asarray(params[name], dtype=float).reshape(B, count)
        if kind == "w":
            u = (v / W_MAX + 1) / 2
        elif kind == "win":
            u = (v / spec.w_max + 1) / 2
        elif kind == "self":
            u = (v / SELF_W_MAX + 1) / 2
        elif kind == "bias":
            u = (v / BIAS_MAX + 1) / 2
        elif kind == "ebias":
            lo, hi = spec.enc_bias_range
            u = (v - lo) / (hi - lo)
        elif kind == "decay":
            u = _unit_from_decay(v)
        elif kind == "syn":
            u = _unit_from_decay(v, spec.syn_log_tau)
        elif kind in ("thresh", "ethresh"):
            lo, hi = np.log10(spec.thresh_range if kind == "thresh" else spec.enc_thresh_range)
            u = (np.log10(v) - lo) / (hi - lo)
        elif kind == "dec":
            u = v / spec.decoder_decay_max if spec.decoder_decay_max > 0 else v * 0
        parts.append(u)
    return np.clip(np.concatenate(parts, axis=1), 0.0, 1.0)


# ---- per-neuron physics ---------------------------------------------------------------------------
def _tau_ms(a):
    """Decay factor per step -> time constant in ms (tau = -dt / ln a; inf for a = 1)."""
    a = np.clip(np.asarray(a, dtype=float), 1e-4, 1.0)
    with np.errstate(divide="ignore"):
        return np.where(a >= 1.0, math.inf, -DT_MS / np.log(a))


@dataclass
class NeuronPhysics:
    """Per-neuron PyNN parameters (B, n) of a sub-network: what network() writes and the image encodes."""

    tau_m: np.ndarray
    tau_e: np.ndarray
    tau_i: np.ndarray
    cm: np.ndarray
    v_thresh: np.ndarray
    i_offset: np.ndarray


def neuron_physics(params: SubnetParams) -> NeuronPhysics:
    spec, B = params.spec, params.batch
    E, H = spec.n_encoders, spec.hidden
    g = spec.group_of()
    a_m = np.concatenate([np.repeat(params["enc_decay"][:, None], E, 1), params["grp_decay_m"][:, g]], axis=1)
    a_e = np.concatenate([np.full((B, E), 0.5), params["grp_decay_e"][:, g]], axis=1)
    a_i = np.concatenate([np.full((B, E), 0.5), params["grp_decay_i"][:, g]], axis=1)
    theta = np.concatenate([np.repeat(params["enc_thresh"][:, None], E, 1), params["grp_thresh"][:, g]], axis=1)
    bias = np.concatenate([np.zeros((B, E)), params["hid_bias"]], axis=1)
    tau_m, tau_e, tau_i = _tau_ms(a_m), _tau_ms(a_e), _tau_ms(a_i)
    # capacitance: the larger of the two P21 propagators is exactly 1 mV/nA
    cm = np.maximum(prop.p21(DT_MS, tau_m, tau_e, 1.0), prop.p21(DT_MS, tau_m, tau_i, 1.0))
    p20 = prop.p20(DT_MS, tau_m, cm)
    return NeuronPhysics(tau_m=tau_m, tau_e=tau_e, tau_i=tau_i, cm=cm, v_thresh=theta, i_offset=bias / p20)


def weight_matrix(params: SubnetParams) -> np.ndarray:
    """Signed weights (B, n, n) in nA, rows = source neuron, columns = target neuron."""
    spec, B = params.spec, params.batch
    E, n = spec.n_encoders, spec.n_neurons
    w = np.zeros((B, n, n))
    if spec.integrator:
        # hidden j <- pair k = j % pairs: +w_j from the pair's positive encoder, -w_j from its negative one
        k = np.arange(spec.hidden) % spec.pairs
        cols = np.arange(spec.hidden) + E
        w[:, 2 * k, cols] = params["w_in"]
        w[:, 2 * k + 1, cols] = -params["w_in"]
        return w
    wiring = spec.wiring()
    rows = wiring.reshape(-1)
    cols = np.repeat(np.arange(spec.hidden) + E, spec.fan_in)
    w[:, rows, cols] = params["w_in"].reshape(B, -1)
    if spec.self_connections:
        j = np.arange(spec.hidden) + E
        w[:, j, j] = params["w_self"]
    return w


# ---- the core image -----------------------------------------------------------------------------
def neuron_fields(params: SubnetParams) -> dict[str, np.ndarray]:
    """The PROFILE_FIELDS of every neuron (B, n): compiler/quantise.quantise_neurons' formulas."""
    ph = neuron_physics(params)
    p = prop.propagators(ph.tau_m, ph.cm, ph.tau_e, ph.tau_i, DT_MS)
    shape = ph.tau_m.shape
    return {
        "c_vdecay": coef(p["P22"]),
        "c_ie": coef(p["P21ex"] * I_LSB / V_LSB),
        "c_ii": coef(p["P21in"] * I_LSB / V_LSB),
        "c_edecay": coef(p["P11ex"]),
        "c_idecay": coef(p["P11in"]),
        "v_rest": np.broadcast_to(v_to_int(0.0), shape).astype(np.int64),
        "bias": dv_to_int(p["P20"] * ph.i_offset),
        "v_reset": np.broadcast_to(v_to_int(0.0), shape).astype(np.int64),
        "v_thresh": v_to_int(ph.v_thresh),
        "refrac": np.zeros(shape, dtype=np.int64),
        "reset_subtract": np.ones(shape, dtype=np.int64),
        "a_inc": np.zeros(shape, dtype=np.int64),
        "c_adecay": np.full(shape, fx.COEF_ONE, dtype=np.int64),
    }


def quantise_weight_matrix(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed weights (B, S, N) nA -> (integer weights, row shifts (B, S)): compiler/quantise.py's rule
    (the smallest shift per row at which the row's largest weights fit weight_bits)."""
    max_exc = np.where(w > 0, w, 0.0).max(axis=2)
    max_inh = np.where(w < 0, -w, 0.0).max(axis=2)
    shifts = np.arange(fx.ROW_SHIFT_MAX + 1, dtype=float)
    lsb = I_LSB * np.exp2(shifts)
    fits = (np.rint(max_exc[..., None] / lsb) <= fx.smax(WEIGHT_BITS)) & (
        np.rint(max_inh[..., None] / lsb) <= -fx.smin(WEIGHT_BITS))
    shift = np.argmax(fits, axis=-1).astype(np.int64)  # every row fits at some shift: |w| <= 2 nA
    w_int = np.rint(w / (I_LSB * np.exp2(shift.astype(float)))[..., None]).astype(np.int64)
    return w_int, shift


def subnet_images(params: SubnetParams) -> list[CoreImage]:
    """One CoreImage per genome of the batch, for the sub-network alone (its own CoreConfig)."""
    spec = params.spec
    return _images(spec.config(), [params], [0], [spec.n_encoders])


def _images(config: CoreConfig, parts: list[SubnetParams], enc_offsets: list[int], hid_offsets: list[int]) -> list[CoreImage]:
    """Write sub-networks into images of ``config``: part k's encoders at neuron enc_offsets[k] on,
    its hidden neurons at hid_offsets[k] on. Profile 0.. per part: encoders, then one per hidden neuron."""
    B = parts[0].batch
    template = CoreImage.blank(config)
    images = [template.copy() for _ in range(B)]
    profile_base = 0
    for part, e0, h0 in zip(parts, enc_offsets, hid_offsets):
        spec = part.spec
        E, H = spec.n_encoders, spec.hidden
        idx = np.concatenate([np.arange(e0, e0 + E), np.arange(h0, h0 + H)])  # sub-network neuron -> core neuron
        f = neuron_fields(part)
        w_int, shift = quantise_weight_matrix(weight_matrix(part))
        prof = np.concatenate([np.zeros(E, dtype=np.int64), 1 + np.arange(H)]) + profile_base
        rep = np.concatenate([[0], E + np.arange(H)])  # the neuron each profile is taken from
        for b, img in enumerate(images):
            for name in PROFILE_FIELDS:
                img.profiles[name][profile_base:profile_base + 1 + H] = f[name][b, rep]
            img.neuron_profile[idx] = prof
            img.weights[np.ix_(idx, idx)] = w_int[b]
            img.row_shift[idx] = shift[b]
        profile_base += 1 + H
    return images


# ---- the whole controller ---------------------------------------------------------------------------
@dataclass
class Controller:
    """The trained SNN: PD and I sub-networks in one core. Neuron order on the core:
    [PD encoders | I encoders | PD hidden | I hidden] (analog inputs are neurons 0..K-1)."""

    pd: SubnetParams
    i: SubnetParams
    meta: dict = field(default_factory=dict)

    @property
    def n_neurons(self) -> int:
        return self.pd.spec.n_neurons + self.i.spec.n_neurons

    @property
    def n_encoders(self) -> int:
        return self.pd.spec.n_encoders + self.i.spec.n_encoders

    def offsets(self) -> dict[str, tuple[int, int]]:
        """Sub-network name -> (first encoder, first hidden neuron) on the core."""
        pe, ie = self.pd.spec.n_encoders, self.i.spec.n_encoders
        return {"pd": (0, pe + ie), "i": (pe, pe + ie + self.pd.spec.hidden)}

    def hidden_range(self, name: str) -> range:
        h0 = self.offsets()[name][1]
        return range(h0, h0 + getattr(self, name).spec.hidden)

    def config(self) -> CoreConfig:
        return _config(self.n_neurons, self.n_encoders, self.pd.spec.n_profiles + self.i.spec.n_profiles)

    def image(self) -> CoreImage:
        off = self.offsets()
        return _images(self.config(), [self.pd, self.i], [off["pd"][0], off["i"][0]],
                       [off["pd"][1], off["i"][1]])[0].validate()

    # ---- files ----------------------------------------------------------------------------
    def save(self, path) -> None:
        data = {"format": "spikeforge-blimp-controller/1", "pd": self.pd.to_json(), "i": self.i.to_json(),
                "meta": self.meta}
        with open(path, "w") as fh:
            json.dump(data, fh, indent=1)

    @classmethod
    def load(cls, path) -> "Controller":
        try:
            with open(path) as fh:
                data = json.load(fh)
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read the controller file {path}: {exc}") from None
        if data.get("format") != "spikeforge-blimp-controller/1":
            raise ValueError(f"{path}: not a blimp controller file (format {data.get('format')!r})")
        return cls(SubnetParams.from_json(data["pd"]), SubnetParams.from_json(data["i"]), data.get("meta", {}))


# ---- host side: encoder inputs and decoder --------------------------------------------------------
def encoder_inputs(params: SubnetParams, error) -> np.ndarray:
    """Per-step voltage increments (core integers) of the encoders for errors ``error`` (B, ...) m:
    (B, ..., 2P). Pair k: +-g_k s e + b_k mV, clipped to +-INPUT_CLIP."""
    spec = params.spec
    e = np.asarray(error, dtype=float)
    extra = (1,) * (e.ndim - 1)
    g = params["enc_gain"].reshape(params.batch, *extra, spec.pairs)
    b = params["enc_bias"].reshape(params.batch, *extra, spec.pairs)
    drive = g * spec.input_scale * e[..., None]
    x = np.stack([drive + b, -drive + b], axis=-1).reshape(*e.shape, spec.n_encoders)
    return dv_to_int(np.clip(x, -INPUT_CLIP, INPUT_CLIP))


def ema(counts: np.ndarray, decay) -> np.ndarray:
    """Exponential moving average along axis 1 of (B, T, H): f = a f + (1 - a) x, with a = decay[b].

    The same arithmetic, in the same order, as ``Decoder.step`` (float64), so the training's outputs
    are the closed loop's."""
    counts = np.ascontiguousarray(counts, dtype=np.float64)
    a = np.broadcast_to(np.asarray(decay, dtype=np.float64), (counts.shape[0],)).copy()
    return _ema_kernel(counts.reshape(counts.shape[0], counts.shape[1], -1), a).reshape(counts.shape)


@numba.njit(cache=True)
def _ema_kernel(x, a):
    out = np.empty_like(x)
    for b in range(x.shape[0]):
        for h in range(x.shape[2]):
            f = (1.0 - a[b]) * x[b, 0, h]
            out[b, 0, h] = f
            for t in range(1, x.shape[1]):
                f = a[b] * f + (1.0 - a[b]) * x[b, t, h]
                out[b, t, h] = f
    return out


class Decoder:
    """The host's leaky integrator for a batch: ``step(spikes (B, H)) -> (B,)`` output."""

    def __init__(self, params: SubnetParams):
        if params.dec_weights is None:
            raise ValueError(f"sub-network {params.spec.name!r} has no decoder weights; train or load a controller")
        self.a = params["dec_decay"].reshape(-1, 1)
        self.d = params.dec_weights
        self.f = None

    def step(self, spikes: np.ndarray) -> np.ndarray:
        s = np.asarray(spikes, dtype=float)
        self.f = (1.0 - self.a) * s if self.f is None else self.a * self.f + (1.0 - self.a) * s
        # a fixed summation order (neuron 0, 1, ...): np.sum's order depends on the array's shape, and a
        # board flying one blimp must produce the same bits as the golden model flying a batch
        out = np.zeros(self.f.shape[0])
        for j in range(self.f.shape[1]):
            out = out + self.f[:, j] * self.d[:, j]
        return out


# ---- the Network view -----------------------------------------------------------------------------
def network(controller: Controller, analog_inputs: bool = True, reset: str = "subtract_threshold") -> Network:
    """The controller as a spikeforge Network (PyNN units), in the core's neuron order.

    ``analog_inputs=False`` leaves the encoders without the host's per-step currents (for simulators
    that cannot take them, e.g. sPyNNaker's mapping); the closed loop needs them. ``reset="to_v_reset"``
    gives the same structure with sPyNNaker's reset, for mapping only (it changes the dynamics)."""
    net = Network(dt=DT_MS, name="blimp-snn")
    pops = {}
    for name in ("pd", "i"):
        part = getattr(controller, name)
        ph = neuron_physics(part)
        E = part.spec.n_encoders
        for label, sl, analog in ((f"{name}_encoders", slice(0, E), True), (f"{name}_hidden", slice(E, None), False)):
            params = LIFParameters(
                tau_m=ph.tau_m[0, sl], cm=ph.cm[0, sl], v_rest=0.0, v_reset=0.0, v_thresh=ph.v_thresh[0, sl],
                tau_syn_E=ph.tau_e[0, sl], tau_syn_I=ph.tau_i[0, sl], tau_refrac=0.0,
                i_offset=ph.i_offset[0, sl], reset=reset,
            )
            pops[label] = Population(label=label, size=ph.tau_m[0, sl].size, params=params, v_init=0.0,
                                     current_input=analog and analog_inputs)
    for label in ("pd_encoders", "i_encoders", "pd_hidden", "i_hidden"):
        net.add(pops[label])
    for name in ("pd", "i"):
        part = getattr(controller, name)
        E = part.spec.n_encoders
        w = weight_matrix(part)[0]
        blocks = [(f"{name}_encoders", f"{name}_hidden", w[:E, E:])]
        if part.spec.self_connections:
            blocks.append((f"{name}_hidden", f"{name}_hidden", w[E:, E:]))
        for pre, post, m in blocks:
            for receptor, sign in (("excitatory", 1.0), ("inhibitory", -1.0)):
                part_w = np.where(sign * m > 0, np.abs(m), 0.0)
                if part_w.any():
                    net.add(Projection(pre=pre, post=post, weights=part_w, delays=DT_MS, receptor=receptor,
                                       label=f"{pre}->{post}:{receptor[:3]}"))
    return net


def compile_options() -> dict:
    """Options that make ``compile(network(c), c.config(), **compile_options())`` use SCALING."""
    return {"voltage_range": V_WINDOW, "current_range": CURRENT_RANGE}
