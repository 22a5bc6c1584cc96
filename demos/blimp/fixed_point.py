"""The controller's host-side arithmetic in integers: what a standalone FPGA computes itself.

On the host the encoders' inputs are computed in floating point from the error in metres and the
decoder is a float leaky integrator (snn.encoder_inputs, snn.Decoder). A standalone board has no
host: it receives the altitude error over its UART and must compute both in integers. This module
defines that integer arithmetic once; ``standalone_top.BlimpControllerTop`` implements exactly it in
logic and ``FixedPointController`` runs it around any core runner (the golden model), so the board's
commands can be checked bit for bit against a golden-model closed loop.

- **Error**: a signed 16-bit integer in millimetres (``ERROR_LSB_M``), what the sensor side sends
  (the TFmini-S LiDAR itself resolves 1 cm). Saturated to +-32.767 m.
- **Encoders**: input k gets ``clamp((G_k e + B_k + 2^(F-1)) >> F, +-CLIP)`` with
  ``G_k = round(+-g s / (1000 V_LSB) 2^F)`` and ``B_k = round(b / V_LSB 2^F)``, ``F = ENC_FRAC``:
  the float encoder rounded once more (its result differs from ``snn.encoder_inputs`` by at most one
  LSB of the membrane, 1.2 uV, besides the error's millimetre quantisation).
- **Decoder**: the float decoder is linear with one decay per sub-network, so
  ``y = a y + (1 - a) sum_j d_j s_j`` needs no per-neuron state: ``acc = sum_j D_j s_j`` over the
  step's spikes, then ``y = (A y + (2^16 - A) acc + 2^15) >> 16`` with ``D_j = round(d_j 2^FD)``,
  ``A = round(a 2^16)``; the command is ``clamp(y_pd + y_i, +-floor(3.3 2^FD))`` in units of
  ``2^-FD`` (``FD = CMD_FRAC``), sent as a signed 16-bit integer.
``>>`` is an arithmetic shift (floor) in Python and in the logic alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeforge.demos.blimp import snn
from spikeforge.demos.blimp.plant import U_MAX
from spikeforge.demos.blimp.runners import CoreRunner

ERROR_LSB_M = 1e-3          # the error word: millimetres
ERROR_BITS = 16
ENC_FRAC = 12               # fraction bits of the encoder gains and biases
CMD_FRAC = 12               # fraction bits of decoder weights, decoder state and command
DECAY_FRAC = 16             # fraction bits of the decoder decays
CLIP = int(round(snn.INPUT_CLIP / snn.V_LSB))


@dataclass
class FixedPointIO:
    """The integer constants of one controller: encoder gains/biases (K,), decoder weights (N,) per
    core neuron (0 for encoders), which sub-network each neuron decodes into (0 = PD, 1 = I, -1 none),
    the decoder decays (2,) and the command limit."""

    gain: np.ndarray
    bias: np.ndarray
    dec_weight: np.ndarray
    dec_part: np.ndarray
    decay: np.ndarray
    cmd_max: int

    @classmethod
    def of(cls, controller: snn.Controller) -> "FixedPointIO":
        gains, biases = [], []
        for part in (controller.pd, controller.i):
            spec = part.spec
            g = np.asarray(part["enc_gain"]).reshape(-1)[:spec.pairs] * spec.input_scale
            b = np.asarray(part["enc_bias"]).reshape(-1)[:spec.pairs]
            per_mv = ERROR_LSB_M / snn.V_LSB * (1 << ENC_FRAC)
            gains.append(np.stack([np.rint(g * per_mv), np.rint(-g * per_mv)], axis=-1).reshape(-1))
            biases.append(np.repeat(np.rint(b / snn.V_LSB * (1 << ENC_FRAC)), 2))
        n = controller.n_neurons
        dec_w = np.zeros(n, dtype=np.int64)
        dec_part = np.full(n, -1, dtype=np.int64)
        decays = []
        for k, name in enumerate(("pd", "i")):
            part = getattr(controller, name)
            hidden = np.asarray(controller.hidden_range(name))
            dec_w[hidden] = np.rint(np.asarray(part.dec_weights).reshape(-1) * (1 << CMD_FRAC))
            dec_part[hidden] = k
            decays.append(int(np.rint(float(np.asarray(part["dec_decay"]).reshape(-1)[0]) * (1 << DECAY_FRAC))))
        io = cls(np.concatenate(gains).astype(np.int64), np.concatenate(biases).astype(np.int64), dec_w, dec_part,
                 np.asarray(decays, dtype=np.int64), int(U_MAX * (1 << CMD_FRAC)))
        # the widths of standalone_top.BlimpControllerTop's constants
        for name, values, bits in (("decoder weight", io.dec_weight, 16), ("encoder gain", io.gain, 18),
                                   ("encoder bias", io.bias, 26)):
            if np.abs(values).max() >= 1 << (bits - 1):
                raise ValueError(f"the {name}s of this controller do not fit the standalone logic's {bits}-bit "
                                 f"constants (max |value| {int(np.abs(values).max())}); lower ENC_FRAC / CMD_FRAC")
        return io

    # ---- the arithmetic (vectorised over a batch B) ------------------------------------------------
    @staticmethod
    def error_word(error_m) -> np.ndarray:
        """Errors (B,) m -> the signed 16-bit millimetre words the sensor side sends."""
        lim = (1 << (ERROR_BITS - 1)) - 1
        return np.clip(np.rint(np.asarray(error_m, dtype=float) / ERROR_LSB_M), -lim, lim).astype(np.int64)

    def encode(self, e: np.ndarray) -> np.ndarray:
        """Error words (B,) -> the encoders' analog inputs (B, K), core integers."""
        e = np.asarray(e, dtype=np.int64).reshape(-1, 1)
        return np.clip((self.gain * e + self.bias + (1 << (ENC_FRAC - 1))) >> ENC_FRAC, -CLIP, CLIP)

    def accumulate(self, spikes: np.ndarray) -> np.ndarray:
        """Spikes (B, N) -> the step's decoder sums (B, 2): sum of D_j over the spiking neurons of PD, I."""
        s = np.asarray(spikes, dtype=bool)
        return np.stack([(s & (self.dec_part == k)) @ self.dec_weight for k in (0, 1)], axis=-1)

    def leak(self, y: np.ndarray, acc: np.ndarray) -> np.ndarray:
        """Decoder states (B, 2) after one step with sums ``acc`` (B, 2)."""
        one = 1 << DECAY_FRAC
        return (self.decay * y + (one - self.decay) * acc + (one >> 1)) >> DECAY_FRAC

    def command(self, y: np.ndarray) -> np.ndarray:
        """Decoder states (B, 2) -> command words (B,), units of 2^-CMD_FRAC."""
        return np.clip(y[:, 0] + y[:, 1], -self.cmd_max, self.cmd_max)


class FixedPointController:
    """The controller with the standalone board's integer encoder and decoder around ``runner``:
    ``step(error m) -> command``, the same interface as ``SNNController``. ``words`` logs the
    (error word, command word) pairs, i.e. the board's UART traffic."""

    def __init__(self, controller: snn.Controller, runner: CoreRunner):
        self.io = FixedPointIO.of(controller)
        self.runner = runner
        self.batch = runner.batch
        self.y = np.zeros((runner.batch, 2), dtype=np.int64)
        self.words: list[tuple[np.ndarray, np.ndarray]] = []
        self.last_parts = None

    def step(self, error) -> np.ndarray:
        e = self.io.error_word(np.broadcast_to(np.asarray(error, dtype=float), (self.batch,)))
        spikes = self.runner.step(self.io.encode(e))
        self.y = self.io.leak(self.y, self.io.accumulate(spikes))
        cmd = self.io.command(self.y)
        self.words.append((e, cmd))
        scale = float(1 << CMD_FRAC)
        self.last_parts = (self.y[:, 0] / scale, self.y[:, 1] / scale)
        return cmd / scale
