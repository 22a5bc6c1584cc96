"""Fitness of sub-network genomes: run them on the golden model in batch, decode, compare with the PID.

``evaluate`` takes a whole CMA-ES population (B genomes) and K data sets, builds the B CoreImages
directly from the genomes (snn.subnet_images: the compiler's quantisation, no compile per genome),
runs the B x K (image, data set) pairs in ONE golden-model batch call (the numba kernel when
importable -- bit-exact with sim/golden.py), and scores each genome with the paper's cost

    cost = MAE(u, u_target) + (1 - Pearson rho(u, u_target))   (mean over the K data sets)

The decoder weights d (host side) are fitted per genome by ridge regression of the target on the
decoder's filtered spike trains (features = EMA of each hidden neuron's spikes with the genome's decay):
the evolution searches everything the core holds plus the decoder decay, the linear read-out is
solved. It is exact for the MSE part and makes minutes of evolution do what 50,000 generations did.
"""

from __future__ import annotations

import numpy as np

from spikeforge.demos.blimp import snn

#: Ridge regularisation of the decoder fit, relative to the mean feature energy.
RIDGE = 1e-3


def run_golden(images, currents: np.ndarray, fast: bool | None = None) -> np.ndarray:
    """Spikes (B, T, N) of B images (one CoreConfig) with analog inputs (B, T, K): one batch call."""
    if fast is not False:
        try:
            from spikeforge.sim.golden_fast import run_batch
        except ImportError:
            if fast:
                raise
            from spikeforge.sim.golden import run_batch
    else:
        from spikeforge.sim.golden import run_batch
    _, rec = run_batch(images, None, steps=currents.shape[1], currents=currents)
    return np.asarray(rec.spikes)


def hidden_features(params: snn.SubnetParams, errors: np.ndarray, fast: bool | None = None) -> np.ndarray:
    """Decoder features (B, K, T, H): the EMA of every hidden neuron's spikes, for B genomes x K data sets."""
    spec = params.spec
    B, (K, T) = params.batch, errors.shape
    images = snn.subnet_images(params)
    currents = snn.encoder_inputs(params, np.broadcast_to(errors[None], (B, K, T)))  # (B, K, T, E)
    batch_images = [img for img in images for _ in range(K)]
    spikes = run_golden(batch_images, currents.reshape(B * K, T, spec.n_encoders), fast)
    hidden = spikes[:, :, spec.n_encoders:].reshape(B, K, T, spec.hidden)
    decay = np.repeat(params["dec_decay"], K)
    return snn.ema(hidden.reshape(B * K, T, spec.hidden), decay).reshape(B, K, T, spec.hidden)


def fit_decoder(features: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Ridge-regression decoder weights (B, H) from features (B, K, T, H) and targets (K, T)."""
    B, K, T, H = features.shape
    X = features.reshape(B, K * T, H)
    y = np.broadcast_to(targets.reshape(1, K * T), (B, K * T))
    gram = np.stack([x.T @ x for x in X])  # per genome: BLAS (a stacked matmul is 8x slower here)
    scale = np.trace(gram, axis1=1, axis2=2) / H
    gram = gram + (RIDGE * scale + 1e-9)[:, None, None] * np.eye(H)[None]
    rhs = np.stack([x.T @ y[0] for x in X])
    return np.linalg.solve(gram, rhs[..., None])[..., 0]


def cost(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The paper's cost per run: MAE + (1 - Pearson rho); outputs (..., T), targets broadcastable."""
    outputs = np.asarray(outputs, dtype=float)
    targets = np.broadcast_to(targets, outputs.shape)
    mae = np.mean(np.abs(outputs - targets), axis=-1)
    a = outputs - outputs.mean(axis=-1, keepdims=True)
    b = targets - targets.mean(axis=-1, keepdims=True)
    denom = np.sqrt(np.sum(a * a, axis=-1) * np.sum(b * b, axis=-1))
    rho = np.where(denom > 0, np.sum(a * b, axis=-1) / np.where(denom > 0, denom, 1.0), 0.0)
    return mae + (1.0 - rho)


def evaluate(spec: snn.SubnetSpec, genomes: np.ndarray, errors: np.ndarray, targets: np.ndarray,
             fast: bool | None = None) -> tuple[np.ndarray, snn.SubnetParams]:
    """Costs (B,) of genomes (B, n) on data sets (K, T); returns them with the SubnetParams (decoder fitted)."""
    params = snn.decode_genome(spec, genomes)
    feats = hidden_features(params, errors, fast)
    params.dec_weights = fit_decoder(feats, targets)
    return cost(_outputs(feats, params.dec_weights), targets[None]).mean(axis=1), params


def score(params: snn.SubnetParams, errors: np.ndarray, targets: np.ndarray, fast: bool | None = None) -> np.ndarray:
    """Costs (B,) of SubnetParams with their own decoder weights (no fit) on data sets (K, T)."""
    feats = hidden_features(params, errors, fast)
    return cost(_outputs(feats, params.dec_weights), targets[None]).mean(axis=1)


def _outputs(feats: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Decoder outputs (B, K, T) = features (B, K, T, H) . weights (B, H)."""
    return np.stack([f @ w for f, w in zip(feats, d)])
