"""Closed-loop evaluation: SNN vs PID on seeded scenarios; metrics, plots, metrics.json.

``EVAL_SEED`` scenarios are never used in training (training uses PID_TUNING_SEED and the data-set
seeds). The SNN runs on the chosen backend; the golden model runs all runs of the scenario as one
batch of cores, a board runs them one after the other. ``negative_buoyancy`` repeats the evaluation
with every run heavier than air (the paper's hard case for the integral part).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikeforge.demos.blimp import metrics, plots, snn
from spikeforge.demos.blimp.closed_loop import PIDController, Trajectory, run_closed_loop
from spikeforge.demos.blimp.pid import PIDGains
from spikeforge.demos.blimp.plant import CONTROL_HZ
from spikeforge.demos.blimp.runners import BoardRunner, GoldenRunner, RtlRunner
from spikeforge.demos.blimp.scenarios import Scenario, make_scenario
from spikeforge.demos.blimp.snn_controller import SNNController

EVAL_SEED = 2024
NEGATIVE_BUOYANCY = (-0.5, -0.2)


def eval_scenario(runs: int = 8, seed: int = EVAL_SEED, buoyancy=(-0.5, 0.5)) -> Scenario:
    return make_scenario(seed, batch=runs, n_steps=4, step_seconds=40.0, buoyancy_range=buoyancy)


def run_snn(controller: snn.Controller, scenario: Scenario, backend: str = "golden", port: str | None = None,
            log_currents: bool = False, simulator: str = "icarus") -> tuple[Trajectory, list[SNNController]]:
    """The SNN closed loop on ``backend`` (golden, virtual-board, board, rtl); returns the trajectory and
    the SNNController(s) (their currents/spike logs when ``log_currents``). ``simulator``: rtl's."""
    image = controller.image()
    if backend == "golden":
        ctrl = SNNController(controller, GoldenRunner(image, scenario.batch), log_currents)
        return run_closed_loop(ctrl, scenario, record_spikes=True), [ctrl]
    trajs, ctrls = [], []
    for b in range(scenario.batch):  # a board runs one blimp at a time
        if backend == "rtl":
            runner = RtlRunner(image, simulator=simulator)
        elif backend == "virtual-board":
            runner = BoardRunner.virtual(image)
        else:
            runner = BoardRunner.open(port, image)
        with runner:
            ctrl = SNNController(controller, runner, log_currents)
            trajs.append(run_closed_loop(ctrl, scenario.take(b), record_spikes=True))
            ctrls.append(ctrl)
    return _stack(trajs), ctrls


def _stack(trajs: list[Trajectory]) -> Trajectory:
    cat = lambda name: np.concatenate([getattr(t, name) for t in trajs])
    return Trajectory(time=trajs[0].time, setpoint=cat("setpoint"), altitude=cat("altitude"), measured=cat("measured"),
                      command=cat("command"), parts={k: np.concatenate([t.parts[k] for t in trajs]) for k in trajs[0].parts},
                      spikes=np.concatenate([t.spikes for t in trajs]))


def rtl_closed_loop(controller: snn.Controller, seconds: float = 5.0, simulator: str = "icarus",
                    seed: int = EVAL_SEED, scenario: Scenario | None = None) -> dict:
    """Fly the first ``seconds`` of evaluation run 0 (or of run 0 of ``scenario``) with the SNN on the
    generated Verilog of the core (``RtlRunner``: cocotb, one timestep per control tick) and on the
    golden model; the summary dict says whether commands, altitudes and spikes are identical, bit for bit.

    Keys: ``identical`` (all three), ``commands_identical``, ``altitudes_identical``,
    ``spikes_identical``, ``first_difference`` (tick or None), ``steps``, ``flight_seconds``,
    ``spikes_total``, ``cycles_per_step_max``, ``simulator``, ``wall_seconds``, ``max_abs_command``."""
    ticks = max(1, int(round(seconds * CONTROL_HZ)))
    sc = eval_scenario(1, seed) if scenario is None else scenario.take(0)
    sc.setpoint = sc.setpoint[:, :ticks]
    gold, _ = run_snn(controller, sc, "golden")
    t0 = time.perf_counter()
    image = controller.image()
    with RtlRunner(image, simulator=simulator) as runner:
        rtl = run_closed_loop(SNNController(controller, runner), sc, record_spikes=True)
        cycles = list(runner.cycles)
    wall = time.perf_counter() - t0
    same = {"commands_identical": np.array_equal(gold.command, rtl.command),
            "altitudes_identical": np.array_equal(gold.altitude, rtl.altitude),
            "spikes_identical": np.array_equal(gold.spikes, rtl.spikes)}
    differs = (gold.command != rtl.command).any(axis=0) | (gold.spikes != rtl.spikes).any(axis=(0, 2))
    first = np.flatnonzero(differs)
    return {"identical": all(same.values()), **{k: bool(v) for k, v in same.items()},
            "first_difference": int(first[0]) if first.size else None, "steps": ticks,
            "flight_seconds": ticks / CONTROL_HZ, "spikes_total": int(rtl.spikes.sum()),
            "cycles_per_step_max": max(cycles) if cycles else 0, "simulator": simulator, "wall_seconds": wall,
            "max_abs_command": float(np.abs(rtl.command).max())}


def run_pid(gains: PIDGains, scenario: Scenario) -> Trajectory:
    return run_closed_loop(PIDController(gains, scenario.batch), scenario)


@dataclass
class Evaluation:
    snn: Trajectory
    pid: Trajectory
    metrics: dict


def evaluate_controller(controller: snn.Controller, runs: int = 8, backend: str = "golden", port: str | None = None,
                        seed: int = EVAL_SEED) -> Evaluation:
    gains = PIDGains(**controller.meta["pid_gains"])
    sc = eval_scenario(runs, seed)
    neg = eval_scenario(runs, seed + 1, NEGATIVE_BUOYANCY)
    t0 = time.perf_counter()
    snn_tr, _ = run_snn(controller, sc, backend, port)
    snn_neg, _ = run_snn(controller, neg, backend, port)
    seconds = time.perf_counter() - t0
    pid_tr, pid_neg = run_pid(gains, sc), run_pid(gains, neg)
    out = {
        "snn": metrics.summarise(snn_tr.altitude, snn_tr.setpoint),
        "pid": metrics.summarise(pid_tr.altitude, pid_tr.setpoint),
        "snn_negative_buoyancy": metrics.summarise(snn_neg.altitude, snn_neg.setpoint),
        "pid_negative_buoyancy": metrics.summarise(pid_neg.altitude, pid_neg.setpoint),
        "neurons": int(controller.n_neurons),
        "profiles": int(controller.config().n_profiles),
        "backend": backend,
        "runs": runs,
        "seconds_per_run": sc.ticks / 10.0,
        "eval_seed": seed,
        "snn_wall_seconds": seconds,
        "pid_gains": gains.to_dict(),
    }
    out["rmse_ratio_snn_over_pid"] = out["snn"]["rmse_m"] / out["pid"]["rmse_m"]
    return Evaluation(snn=snn_tr, pid=pid_tr, metrics=out)


def write_outputs(ev: Evaluation, controller: snn.Controller, out: Path, history: dict | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "metrics.json", out / "altitude.png", out / "command.png", out / "raster.png"]
    with open(paths[0], "w") as fh:
        json.dump(ev.metrics, fh, indent=2)
    plots.plot_altitude(paths[1], ev.snn, ev.pid)
    plots.plot_command(paths[2], ev.snn, ev.pid)
    plots.plot_raster(paths[3], ev.snn, controller.pd.spec.hidden)
    if history:
        paths.append(out / "cost.png")
        plots.plot_cost(paths[-1], history)
    return paths
