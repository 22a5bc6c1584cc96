"""Training: tune the PID baseline, then evolve the PD and I sub-networks with CMA-ES to mimic it.

- ``tune_pid``: CMA-ES on the closed loop (identified blimp, random steps/buoyancy/noise), cost =
  altitude RMSE + CHATTER_WEIGHT x mean |du| per tick (the motor-chatter term keeps the derivative gain
  from amplifying LiDAR noise into a bang-bang command) + STEADY_WEIGHT x steady-state error. The same
  optimiser as the SNN, no hand tuning.
- ``train_subnet``: CMA-ES (pip ``cma``) over the sub-network genome in [0, 1]^n. Each generation
  draws ``datasets_per_gen`` data sets from a pool (the paper draws one of 100 per generation) and
  evaluates the whole population on the golden model in one batch call (fitness.evaluate). Every
  ``val_every`` generations the distribution mean is scored on fixed validation sets and the best
  is kept. A checkpoint (pickled CMA state + history) is written as it goes; ``resume`` picks it up.
- ``train``: everything, into a Controller (decoder refitted on the whole pool).

Single-threaded by design (NUMBA_NUM_THREADS / OPENBLAS_NUM_THREADS = 1 via ``limit_threads``):
training shares the machine.
"""

from __future__ import annotations

import os
import pickle
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from spikeforge.demos.blimp import metrics, snn
from spikeforge.demos.blimp.closed_loop import PIDController, run_closed_loop
from spikeforge.demos.blimp.datasets import i_datasets, pd_datasets
from spikeforge.demos.blimp.fitness import evaluate, score
from spikeforge.demos.blimp.pid import PIDGains
from spikeforge.demos.blimp.scenarios import make_scenario

CHATTER_WEIGHT = 0.1
#: Weight of the steady-state error (metrics.py's, on the tuning scenario) in the PID tuning cost: the
#: issue asks for <= 3 cm, and RMSE + chatter alone leave the integral gain low (Ki 0.068: 3.0 cm).
STEADY_WEIGHT = 1.0
PID_TUNING_SEED = 1000

#: The shipped architecture: 6 encoder pairs + 30 hidden neurons per sub-network (84 neurons).
PD_SPEC = snn.SubnetSpec("pd", pairs=6, hidden=30, groups=6, fan_in=4, input_scale=2.0, decoder_decay_max=0.95,
                         wiring_seed=1)
#: The I sub-network is the structured integrator (SubnetSpec.integrator; docs/blimp.md): 6 encoder
#: pairs (perfect integrate-and-fire, sigma-delta; input 5 mV per m per unit gain, threshold 10 .. 30
#: mV, so up to 1 m of error is integrated at full rate), 30 hidden neurons each on one pair with +-w
#: (|w| <= 0.05 nA) into synaptic currents that never decay; hidden thresholds 2 .. 30 mV. The small
#: |w| is the accumulators' budget: >= 128 m s of error of each sign before a 16-bit current saturates.
I_SPEC = snn.SubnetSpec("i", pairs=6, hidden=30, groups=6, fan_in=2, input_scale=5.0, decoder_decay_max=0.3,
                        integrator=True, thresh_range=(2.0, 30.0), enc_thresh_range=(10.0, 30.0), w_max=0.05,
                        wiring_seed=2)


def limit_threads(n: int = 1) -> None:
    """Keep numba and BLAS to ``n`` threads (call before the first numba kernel runs)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(n))
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except Exception:  # numba missing or threads already launched: nothing to limit
        pass


def pid_closed_loop_cost(gains: PIDGains, scenario) -> float:
    tr = run_closed_loop(PIDController(gains, scenario.batch), scenario)
    rmse = float(np.sqrt(np.mean((tr.altitude - tr.setpoint) ** 2)))
    steady = metrics.summarise(tr.altitude, tr.setpoint)["steady_state_error_m"]
    return rmse + CHATTER_WEIGHT * float(np.mean(np.abs(np.diff(tr.command, axis=1)))) + STEADY_WEIGHT * steady


def tune_pid(seed: int = PID_TUNING_SEED, iterations: int = 40, batch: int = 8) -> PIDGains:
    """CMA-ES-tuned PID gains (Kp in [0, 10], Ki in [0, 2], Kd in [0, 20])."""
    import cma

    scenario = make_scenario(seed, batch=batch)
    es = cma.CMAEvolutionStrategy([2.0, 0.2, 3.0], 1.0, {"bounds": [[0, 0, 0], [10, 2, 20]], "maxiter": iterations,
                                                         "verbose": -9, "seed": seed})
    es.optimize(lambda x: pid_closed_loop_cost(PIDGains(*map(float, x)), scenario))
    return PIDGains(*map(float, es.result.xbest))


@dataclass
class TrainSettings:
    generations: int = 300
    popsize: int = 24
    datasets_per_gen: int = 3
    pool: int = 40
    validation: int = 4
    val_every: int = 10
    sigma0: float = 0.15
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _data(spec: snn.SubnetSpec, gains: PIDGains, n: int, seed: int):
    return pd_datasets(gains, n, seed) if spec.name == "pd" else i_datasets(gains, n, seed)


def initial_genome(spec: snn.SubnetSpec, seed: int) -> np.ndarray:
    """The starting point: a random reservoir (weights and biases drawn over their whole range,
    decays and thresholds mid-range), which the decoder fit can already read."""
    rng = np.random.default_rng([seed, 7])
    z = np.full(spec.genome_size, 0.5)
    pos = 0
    for name, count, kind in spec.layout():
        if kind in ("w", "bias", "ebias", "self"):
            z[pos:pos + count] = rng.uniform(0.0, 1.0, count) if kind != "self" else 0.5
        elif kind in ("decay", "syn"):
            z[pos:pos + count] = rng.uniform(0.2, 0.8, count)
        elif kind == "thresh":
            z[pos:pos + count] = rng.uniform(0.3, 0.6, count)
        pos += count
    return z


@dataclass
class TrainResult:
    params: snn.SubnetParams
    history: dict = field(default_factory=dict)  # "generation", "best", "mean", "val_generation", "val"


def train_subnet(spec: snn.SubnetSpec, gains: PIDGains, settings: TrainSettings, checkpoint: Path | None = None,
                 progress: bool = True, log=print) -> TrainResult:
    """Evolve one sub-network; return its best SubnetParams (decoder fitted on the whole pool)."""
    import cma

    pool_e, pool_y = _data(spec, gains, settings.pool, seed=settings.seed * 1000 + 11)
    val_e, val_y = _data(spec, gains, settings.validation, seed=settings.seed * 1000 + 12)
    state = None
    if checkpoint is not None and checkpoint.exists():
        with open(checkpoint, "rb") as fh:
            state = pickle.load(fh)
        if state.get("spec") != spec.to_dict() or state.get("settings", {}).get("seed") != settings.seed:
            log(f"checkpoint {checkpoint} is for another sub-network or seed; starting afresh")
            state = None
        else:
            log(f"resuming {spec.name} from generation {state['generation']} ({checkpoint})")
    if state is None:
        es = cma.CMAEvolutionStrategy(initial_genome(spec, settings.seed), settings.sigma0, {
            "bounds": [0.0, 1.0], "popsize": settings.popsize, "seed": settings.seed + 1, "verbose": -9,
            "CMA_diagonal": True})
        state = {"spec": spec.to_dict(), "settings": settings.to_dict(), "es": es, "generation": 0,
                 "history": {"generation": [], "best": [], "mean": [], "val_generation": [], "val": []},
                 "best_z": None, "best_val": np.inf}
    es = state["es"]
    hist = state["history"]
    rng = np.random.default_rng([settings.seed, 3, state["generation"]])
    start = state["generation"]
    bar = _progress(settings.generations - start, f"evolving {spec.name}", progress)
    t0 = time.perf_counter()
    with bar as advance:
        for gen in range(start, settings.generations):
            pick = rng.choice(settings.pool, size=settings.datasets_per_gen, replace=False)
            z = np.asarray(es.ask())
            costs, _ = evaluate(spec, z, pool_e[pick], pool_y[pick])
            es.tell(list(z), costs.tolist())
            hist["generation"].append(gen)
            hist["best"].append(float(costs.min()))
            hist["mean"].append(float(costs.mean()))
            if (gen + 1) % settings.val_every == 0 or gen + 1 == settings.generations:
                cand = np.stack([es.mean, z[int(np.argmin(costs))]])
                vcost, _ = evaluate(spec, cand, val_e, val_y)
                k = int(np.argmin(vcost))
                hist["val_generation"].append(gen)
                hist["val"].append(float(vcost[k]))
                if vcost[k] < state["best_val"]:
                    state["best_val"], state["best_z"] = float(vcost[k]), cand[k].copy()
                state["generation"] = gen + 1
                if checkpoint is not None:
                    _save_checkpoint(checkpoint, state)
            advance(1, f"cost {costs.min():.3f} val {state['best_val']:.3f}")
    state["generation"] = settings.generations
    if checkpoint is not None:
        _save_checkpoint(checkpoint, state)
    best = state["best_z"] if state["best_z"] is not None else np.asarray(es.mean)
    _, params = evaluate(spec, best[None], pool_e, pool_y)  # decoder from the whole pool
    log(f"{spec.name}: validation cost {state['best_val']:.4f} after {settings.generations} generations "
        f"({time.perf_counter() - t0:.0f} s)")
    return TrainResult(params=params, history=hist)


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(state, fh)
    tmp.replace(path)


class _progress:
    """A rich progress bar (or nothing): ``with _progress(n, what, on) as advance: advance(k, note)``."""

    def __init__(self, total: int, what: str, on: bool):
        self.total, self.what, self.on = total, what, on and total > 0

    def __enter__(self):
        if not self.on:
            return lambda k, note="": None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), TextColumn("{task.fields[note]}"))
        self.p.__enter__()
        task = self.p.add_task(self.what, total=self.total, note="")
        return lambda k, note="": self.p.update(task, advance=k, note=note)

    def __exit__(self, *exc):
        if self.on:
            self.p.__exit__(*exc)


def train(out_dir: Path, pd_settings: TrainSettings, i_settings: TrainSettings, gains: PIDGains | None = None,
          pd_spec: snn.SubnetSpec = PD_SPEC, i_spec: snn.SubnetSpec = I_SPEC, progress: bool = True,
          log=print) -> tuple[snn.Controller, dict]:
    """Tune the PID (unless ``gains``), evolve both sub-networks; return the Controller and the histories.
    Checkpoints go to ``out_dir``; an interrupted run resumes from them."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if gains is None:
        log("tuning the PID baseline with CMA-ES on the closed loop ...")
        gains = tune_pid()
        log(f"PID gains: Kp {gains.kp:.4f}  Ki {gains.ki:.4f}  Kd {gains.kd:.4f}")
    pd = train_subnet(pd_spec, gains, pd_settings, out_dir / "checkpoint_pd.pkl", progress, log)
    ii = train_subnet(i_spec, gains, i_settings, out_dir / "checkpoint_i.pkl", progress, log)
    meta = {"pid_gains": gains.to_dict(), "train": {"pd": pd_settings.to_dict(), "i": i_settings.to_dict()},
            "validation_cost": {"pd": min(pd.history["val"], default=None), "i": min(ii.history["val"], default=None)}}
    history = {"pd": pd.history, "i": ii.history}
    return snn.Controller(pd.params, ii.params, meta), history
