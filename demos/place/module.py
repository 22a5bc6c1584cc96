"""One place-recognition module = one neuron core: Poisson pixel inputs -> excitatory layer with
adaptive thresholds and direct lateral inhibition, input weights learned by the core's own STDP.

The module is described as a spikeforge Network in physical units (ms, mV, nA) and compiled by
``spikeforge.compiler.compile`` onto a CoreConfig sized for one iCE40 UP5K core (see
``ModuleParameters.core_config``, ``check_fits`` and docs/place-recognition.md section 2):

- ``pixels``: two Poisson inputs per pixel (ON: x / ``intensity`` Hz, OFF: (255 - x) / ``intensity``
  Hz; ``input_rates`` says why); the spikes are drawn on the host from a seed (``encode``), so every
  core runner sees the same ones.
- ``exc``: ``n_neurons`` current-based LIF neurons, threshold adaptation (+``theta_plus`` mV per
  spike, no decay: the homeostasis that spreads places over neurons), refractory period.
- ``pixels -> exc`` ("input"): all-to-all, plastic, pair STDP with exponential traces (the core's
  rule, docs/core-spec.md section 6), random initial weights from the module's seed.
- ``exc -> exc`` ("lateral_inhibition"): all-to-all except self, inhibitory, fixed -- lateral
  inhibition as direct negative recurrent weights (the core allows neuron -> neuron synapses),
  replacing Diehl & Cook's separate inhibitory population, which would cost N more neurons and an
  N x N block of the weight memory.

What differs from the paper's Brian2 model: Diehl & Cook normalise each neuron's input weights to a
fixed sum before every image; the core has no such operation, so the host does it between runs of
``norm_every`` images (``training.normalise_weights``, integer arithmetic on the image it reads back,
so every runner still learns the same weights). Otherwise the module uses what the core has --
additive STDP with weight bounds, ON/OFF inputs, the adaptive threshold, winner-take-all
inhibition, and a silent rest after every training image.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from spikeforge.compiler import compile as compile_network
from spikeforge.compiler.errors import QuantisationWarning
from spikeforge.compiler.network import (
    STDP, LIFParameters, Network, PoissonSource, Population, Projection, ThresholdAdaptation,
)
from spikeforge.compiler.propagators import refractory_steps
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage

#: iCE40 UP5K: 4 SPRAM blocks of 16K x 16 bits hold the weight memory of one core.
UP5K_SPRAM_TILES = 4
UP5K_SPRAM_BITS = UP5K_SPRAM_TILES * 16 * 1024 * 16


class ModuleError(ValueError):
    """A module parameter is out of range or the module does not fit its core; the message says why."""


@dataclass(frozen=True)
class ModuleParameters:
    """Everything that defines a module except its places and seed. Units: ms, mV, nA, Hz.

    The defaults are the ones the shipped weights were trained with (docs/place-recognition.md
    explains how they were found)."""

    image_shape: tuple[int, int] = (12, 12)
    on_off: bool = True             # two inputs per pixel: ON (x) and OFF (255 - x)
    n_neurons: int = 144
    weight_bits: int = 12
    lanes: int = 1                  # synapses per clock: 1 is the least logic (a module fits the iCEBreaker only so)
    dt: float = 1.0
    # input encoding and presentation
    intensity: float = 4.0          # rate (Hz) = value (0..255) / intensity
    present_steps: int = 200        # steps an image is shown in training
    train_rest_steps: int = 100     # silent steps after each image in training (the state relaxes)
    infer_present_steps: int = 400  # steps an image is shown at inference (more spikes, less noise)
    rest_steps: int = 100           # silent steps after each image at inference
    infer_gain: float = 1.5         # input rates are multiplied by this at inference
    infer_inhibition: float = 0.1   # lateral inhibition is scaled by this at inference (graded responses)
    # excitatory neurons
    tau_m: float = 20.0
    v_rest: float = -65.0
    v_reset: float = -65.0
    v_thresh: float = -52.0
    tau_syn_E: float = 1.0
    tau_syn_I: float = 8.0
    tau_refrac: float = 5.0
    theta_plus: float = 0.1
    # weights and learning
    w_max: float = 0.3              # nA
    w_init: float = 0.5             # initial weights uniform in [0, w_init * w_max]
    w_inh: float = 10.0             # lateral inhibition, nA
    tau_plus: float = 20.0
    tau_minus: float = 20.0
    A_plus: float = 0.02
    A_minus: float = 0.01
    # host-side weight normalisation during training (Diehl & Cook; training.normalise_weights)
    weight_norm: float = 0.35       # each neuron's input weights sum to weight_norm * w_max * inputs; 0 = off
    norm_every: int = 5             # images between normalisations
    # fixed-point widths
    v_bits: int = 16
    i_bits: int = 16
    adapt_bits: int = 16
    trace_bits: int = 16
    trace_frac: int = 6
    voltage_range: tuple[float, float] = (-95.0, -15.0)

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("voltage_range", "image_shape"):
                if len(value) != 2:
                    raise ModuleError(f"ModuleParameters.{f.name} = {value!r}: expected two numbers")
                continue
            if f.name == "on_off":
                if not isinstance(value, bool):
                    raise ModuleError(f"ModuleParameters.on_off = {value!r}: expected True or False")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ModuleError(f"ModuleParameters.{f.name} = {value!r}: expected a finite number")
        for name in ("n_neurons", "present_steps", "infer_present_steps", "intensity", "infer_gain", "tau_m",
                     "w_max"):
            if getattr(self, name) <= 0:
                raise ModuleError(f"ModuleParameters.{name} = {getattr(self, name)!r}: expected > 0")
        if not 0.0 <= self.weight_norm <= 1.0:
            raise ModuleError(f"ModuleParameters.weight_norm = {self.weight_norm}: expected 0 (off) .. 1 (every weight "
                              "at w_max)")
        if int(self.norm_every) != self.norm_every or self.norm_every < 1:
            raise ModuleError(f"ModuleParameters.norm_every = {self.norm_every!r}: expected a whole number of images >= 1")
        if not 0.0 <= self.infer_inhibition <= 1.0:
            raise ModuleError(f"ModuleParameters.infer_inhibition = {self.infer_inhibition}: expected 0 .. 1")
        if min(self.image_shape) < 1:
            raise ModuleError(f"ModuleParameters.image_shape = {self.image_shape}: expected (height, width) >= 1")
        for name in ("rest_steps", "train_rest_steps"):
            if getattr(self, name) < 0:
                raise ModuleError(f"ModuleParameters.{name} = {getattr(self, name)}: expected >= 0")

    @property
    def n_pixels(self) -> int:
        return int(self.image_shape[0] * self.image_shape[1])

    @property
    def n_inputs(self) -> int:
        """Inputs of the core: one per pixel, two with ON/OFF encoding."""
        return self.n_pixels * (2 if self.on_off else 1)

    @property
    def steps_per_image(self) -> int:
        """Steps of one presentation at inference (image + rest)."""
        return int(self.infer_present_steps + self.rest_steps)

    @property
    def train_steps_per_image(self) -> int:
        return int(self.present_steps + self.train_rest_steps)

    @property
    def refrac_bits(self) -> int:
        """Width of the refractory counter: just enough for tau_refrac in steps (rounded up, as the
        compiler does), not CoreConfig's default 8 -- every bit of logic counts on the UP5K."""
        return max(1, int(refractory_steps(np.array([self.tau_refrac]), self.dt)[0]).bit_length())

    def core_config(self) -> CoreConfig:
        """The CoreConfig of one module: A = pixels, N = neurons, STDP and adaptive thresholds on."""
        return CoreConfig(
            n_neurons=int(self.n_neurons), n_inputs=int(self.n_inputs), weight_bits=int(self.weight_bits),
            lanes=int(self.lanes), stdp=True, adaptive_threshold=True, n_profiles=1,
            v_bits=int(self.v_bits), i_bits=int(self.i_bits), adapt_bits=int(self.adapt_bits),
            trace_bits=int(self.trace_bits), trace_frac=int(self.trace_frac), refrac_bits=self.refrac_bits,
        )

    def weight_memory_bits(self) -> int:
        """Bits of the synapse memory of one module's core ((A + N) N (weight_bits + 1))."""
        return int(self.core_config().memory_bits()["synapses"])

    def spram_tiles(self) -> int:
        """iCE40 SPRAM blocks (16K x 16) the weight memory takes: the core reads ``lanes`` synapses per
        word, so the memory is (A + N) N / lanes words of lanes * (weight_bits + 1) bits, split into
        16-bit columns (boards/capacity.py places it the way Yosys does)."""
        from spikeforge.boards.capacity import ice40_spram_tiles

        c = self.core_config()
        return int(ice40_spram_tiles(c.n_sources * c.n_neurons // c.lanes, c.lanes * c.synapse_bits))

    def check_fits(self, spram_tiles: int = UP5K_SPRAM_TILES) -> None:
        """ModuleError unless the module's weight memory fits the iCE40 UP5K's SPRAM (one core).

        Both limits count: the bits ((A + N) N (W + 1) <= 1 Mbit) and the packing of lanes * (W + 1)
        bit words into 16K-deep, 16-bit-wide blocks."""
        bits, tiles = self.weight_memory_bits(), self.spram_tiles()
        if bits > UP5K_SPRAM_BITS or tiles > spram_tiles:
            a, n, w, p = self.n_inputs, self.n_neurons, self.weight_bits, self.lanes
            raise ModuleError(
                f"a module of {a} inputs x {n} neurons with {w}-bit plastic weights and {p} lanes needs "
                f"{bits:,} bits of weight memory in {tiles} SPRAM blocks; one core on the iCE40 UP5K has "
                f"{UP5K_SPRAM_BITS:,} bits in {spram_tiles} blocks. Use a smaller image, fewer neurons, fewer "
                "weight_bits, or fewer lanes (narrower words pack better)"
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["voltage_range"] = list(self.voltage_range)
        d["image_shape"] = list(self.image_shape)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "ModuleParameters":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModuleError(f"unknown module parameter(s) {unknown}; known: {sorted(known)}")
        data = dict(data)
        if "voltage_range" in data:
            data["voltage_range"] = tuple(float(v) for v in data["voltage_range"])
        if "image_shape" in data:
            data["image_shape"] = tuple(int(v) for v in data["image_shape"])
        return cls(**data)

    def replace(self, **changes) -> "ModuleParameters":
        return replace(self, **changes)


def build_network(params: ModuleParameters, seed: int) -> Network:
    """The module as a Network (physical units); the initial input weights are drawn from ``seed``."""
    p = params
    rng = np.random.default_rng([int(seed), 11])
    net = Network(dt=p.dt, name=f"place-module-seed{seed}")
    # The rate only sizes the compiler's current estimate; the real rasters come from encode().
    net.add(PoissonSource("pixels", p.n_inputs, rate=255.0 / p.intensity / 2.0, seed=int(seed)))
    lif = LIFParameters(
        tau_m=p.tau_m, cm=1.0, v_rest=p.v_rest, v_reset=p.v_reset, v_thresh=p.v_thresh,
        tau_syn_E=p.tau_syn_E, tau_syn_I=p.tau_syn_I, tau_refrac=p.tau_refrac,
        threshold_adaptation=ThresholdAdaptation(increment=p.theta_plus, tau=math.inf),
    )
    net.add(Population("exc", p.n_neurons, lif))
    w0 = rng.random((p.n_inputs, p.n_neurons)) * (p.w_init * p.w_max)
    net.add(Projection(
        "pixels", "exc", weights=w0, label="input",
        plasticity=STDP(tau_plus=p.tau_plus, tau_minus=p.tau_minus, A_plus=p.A_plus, A_minus=p.A_minus,
                        w_min=0.0, w_max=p.w_max),
    ))
    inh = np.full((p.n_neurons, p.n_neurons), p.w_inh)
    np.fill_diagonal(inh, 0.0)
    net.add(Projection("exc", "exc", weights=inh, receptor="inhibitory", label="lateral_inhibition"))
    return net


def compile_module(params: ModuleParameters, seed: int):
    """Compile the module of ``seed`` onto its CoreConfig; returns the CompiledNetwork.

    Initial weights below half a weight unit round to zero; they are plastic synapses, so they stay
    connected and can grow -- the compiler's warning about vanishing synapses does not apply and is
    silenced here."""
    params.check_fits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuantisationWarning)
        return compile_network(build_network(params, seed), params.core_config(),
                               voltage_range=tuple(params.voltage_range))


def frozen(image: CoreImage, params: ModuleParameters) -> CoreImage:
    """The inference image of a trained module.

    - learning off and the adaptive threshold frozen (a_inc = 0), so that presenting images no longer
      changes the module: the threshold keeps the value training gave it (Diehl & Cook's test phase);
    - lateral inhibition scaled by ``infer_inhibition`` (rows of the neuron sources): training needs a
      hard winner-take-all so that neurons specialise, but at inference a hard WTA reports only the
      single best neuron of a module, and a module's scores for its other places -- and the
      comparison between modules -- are lost. Weaker inhibition keeps the responses graded.
      (docs/place-recognition.md, "Inference", shows the measured effect.)"""
    out = image.copy()
    out.learning = False
    out.profiles["a_inc"] = np.zeros_like(out.profiles["a_inc"])
    a = params.n_inputs
    inh = out.weights[a:]
    out.weights[a:] = np.where(inh < 0, -np.rint(-inh * params.infer_inhibition), inh).astype(np.int64)
    return out.validate()


def input_rates(images: np.ndarray, params: ModuleParameters, *, training: bool = False) -> np.ndarray:
    """Poisson rates (Hz) of the core's inputs for ``images`` (M, H, W) or (M, pixels), values 0..255.

    ON/OFF encoding (``params.on_off``): inputs 0..P-1 carry x / intensity, inputs P..2P-1 carry
    (255 - x) / intensity. Why: plastic weights are excitatory (w >= 0), so a template can only say
    "bright here"; the OFF channel lets it also say "dark here", and the total input rate no longer
    depends on the image. At inference the rates are multiplied by ``infer_gain``."""
    imgs = np.asarray(images)
    m = imgs.shape[0]
    flat = imgs.reshape(m, -1).astype(np.float64)
    if flat.shape[1] != params.n_pixels:
        raise ModuleError(
            f"images have {flat.shape[1]} pixels, the module takes {params.image_shape[0]} x "
            f"{params.image_shape[1]} = {params.n_pixels}; preprocess them to the module's image size"
        )
    if flat.size and (flat.min() < 0 or flat.max() > 255):
        raise ModuleError("image values must be 0..255 (the preprocessed uint8 images)")
    if params.on_off:
        flat = np.concatenate([flat, 255.0 - flat], axis=1)
    gain = 1.0 if training else params.infer_gain
    return flat / params.intensity * gain


def encode(images: np.ndarray, params: ModuleParameters, seed, *, training: bool = False) -> np.ndarray:
    """The input raster (len(images) * steps per image, A) for presenting ``images`` in order.

    Each image is shown as Poisson spikes (``input_rates``, drawn from ``seed`` on the host;
    probability rate * dt per step, as compiler/sources.py) for ``present_steps`` (training) or
    ``infer_present_steps`` (inference) steps, then the rest steps (``train_rest_steps`` or
    ``rest_steps``) follow."""
    rates = input_rates(images, params, training=training)
    m, a = rates.shape
    prob = np.clip(rates * params.dt / 1000.0, 0.0, 1.0)
    rng = np.random.default_rng(seed)
    per = params.train_steps_per_image if training else params.steps_per_image
    shown = params.present_steps if training else params.infer_present_steps
    raster = np.zeros((m, per, a), dtype=bool)
    raster[:, :shown] = rng.random((m, shown, a)) < prob[:, None, :]
    return raster.reshape(m * per, a)


def presentation_counts(spikes: np.ndarray, params: ModuleParameters, n_images: int, *,
                        training: bool = False) -> np.ndarray:
    """Spike counts (n_images, N) per presented image from a run's raster (steps, N) or (B, steps, N);
    counts cover the presentation and its rest period (late spikes still belong to the image)."""
    s = np.asarray(spikes)
    per = params.train_steps_per_image if training else params.steps_per_image
    if s.shape[-2] != n_images * per:
        raise ModuleError(f"spike raster covers {s.shape[-2]} steps, expected {n_images} images x {per} steps")
    return s.reshape(*s.shape[:-2], n_images, per, s.shape[-1]).sum(axis=-2, dtype=np.int64)
