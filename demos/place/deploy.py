"""Deployment of a trained ensemble: modules as cores on a board, and the ensemble on SpiNNaker.

- **Cores on one FPGA**: every module is one core image (``TrainedEnsemble.inference_images``). A
  board with K cores (the K-core top level; the virtual board stands in for it here) holds K
  modules; ``virtual_board`` builds one over the in-process UART link, ``BoardRunner`` (runners.py)
  runs inference on it, K modules at a time in lock-step, and gives the same spike counts as the
  golden model (tests/test_place_deploy.py checks this bit for bit).
- **A module's bitstream**: ``module_bitstream`` builds one module's core (its own CoreConfig, with
  the host link: on the iCEBreaker the bus bridge) with the open toolchain through the ordinary
  ``spikeforge compile`` flow and reports what place and route used: the proof that a module fits
  one core of the board. The bitstream is runtime-loaded, so one build serves every module (the
  host loads a module's weights over UART).
- **SpiNNaker**: ``ensemble_network`` writes the frozen ensemble as one spikeforge Network in physical
  units -- one shared input population, one population per module with its learned thresholds as
  per-neuron ``v_thresh`` (threshold adaptation is frozen at inference, so sPyNNaker's IF_curr_exp
  expresses it exactly), its learned input weights and its inference-strength lateral inhibition
  -- and ``spinnaker_mapping`` maps it with the ``spinnaker`` backend (sim/spinnaker_backend.py) on a
  virtual SpiNNaker machine: placements, routing keys, routing tables and sPyNNaker's weight
  quantisation. A virtual SpiNNaker board runs no neurons (sPyNNaker has no emulator).
"""

from __future__ import annotations

import numpy as np

from spikeforge.compiler.network import LIFParameters, Network, PoissonSource, Population, Projection
from spikeforge.core.image import CoreImage
from spikeforge.demos.place.ensemble import TrainedEnsemble
from spikeforge.demos.place.module import ModuleParameters, build_network, input_rates


def virtual_board(images: list[CoreImage], **options):
    """A Board connected in-process to a virtual board with one core per image (loaded)."""
    from spikeforge.host.board import Board
    from spikeforge.host.loopback import DeviceSerial
    from spikeforge.host.virtual_board import VirtualBoard

    device = VirtualBoard(list(images), **options)
    return Board(DeviceSerial(device, own_device=True), progress=False)


def module_bitstream(params: ModuleParameters, board: str, out_dir, *, top: str = "auto", seed: int = 0,
                     use_cache: bool = True, progress=None) -> dict:
    """Build one module's core for ``board`` (boards/flow.compile_for_board with the module's own
    CoreConfig) into ``out_dir``; returns what place and route used (resource -> [used, available]),
    the timing, the host link and the paths. Raises boards.build.BuildError if it does not fit."""
    from spikeforge.boards.flow import BoardOptions, compile_for_board
    from spikeforge.demos.place.module import compile_module

    compiled = compile_module(params, seed)
    build = compile_for_board(compiled.network, board, out_dir, BoardOptions(top=top, use_cache=use_cache),
                              progress, compiled=compiled)
    report = build.report
    return {
        "board": build.board.name, "part": build.board.part, "link": report["link"],
        "core_config": report["core_config"], "status": report["status"], "note": report.get("status_message"),
        "resources": {k: [v["used"], v["available"]] for k, v in report["resources"].items()},
        "timing": {k: report["timing"].get(k) for k in ("target_mhz", "fmax_mhz", "met")},
        "bitstream": str(build.bitstream) if build.bitstream else None, "report": str(build.out_dir / "report.md"),
    }


def module_physical(ensemble: TrainedEnsemble, k: int) -> dict:
    """Module k in physical units: input weights (A, N) nA, thresholds (N,) mV, inhibition (N, N) nA."""
    import warnings

    from spikeforge.compiler import compile as compile_network
    from spikeforge.compiler.errors import QuantisationWarning

    params = ensemble.params
    spec = ensemble.specs[k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuantisationWarning)
        compiled = compile_network(build_network(params, spec.module_seed), params.core_config(),
                                   voltage_range=tuple(params.voltage_range))
    image = ensemble.trained_image(k)
    weights = compiled.projection_weights(image, plastic_only=False)
    thresholds = params.v_thresh + compiled.scaling.dv_from_int(np.asarray(image.adapt[:params.n_neurons]))
    return {"input": weights["input"], "thresholds": np.asarray(thresholds, dtype=float),
            "inhibition": weights["lateral_inhibition"] * params.infer_inhibition}


def ensemble_network(ensemble: TrainedEnsemble, modules: list[int] | None = None,
                     stimulus: np.ndarray | None = None, seed: int = 0) -> Network:
    """The frozen ensemble (or the listed modules) as one Network; ``stimulus`` (H, W) sets the input
    rates (one query image at inference gain), else a mid-grey image."""
    params: ModuleParameters = ensemble.params
    modules = list(range(len(ensemble.specs))) if modules is None else list(modules)
    if stimulus is None:
        stimulus = np.full(params.image_shape, 128, dtype=np.uint8)
    rates = input_rates(np.asarray(stimulus)[None], params)[0]
    net = Network(dt=params.dt, name="place-ensemble")
    net.add(PoissonSource("pixels", params.n_inputs, rate=rates, seed=seed))
    for k in modules:
        phys = module_physical(ensemble, k)
        label = f"module{k}"
        lif = LIFParameters(tau_m=params.tau_m, cm=1.0, v_rest=params.v_rest, v_reset=params.v_reset,
                            v_thresh=phys["thresholds"], tau_syn_E=params.tau_syn_E, tau_syn_I=params.tau_syn_I,
                            tau_refrac=params.tau_refrac)
        net.add(Population(label, params.n_neurons, lif))
        net.add(Projection("pixels", label, weights=phys["input"], label=f"{label}.input"))
        net.add(Projection(label, label, weights=phys["inhibition"], receptor="inhibitory",
                           label=f"{label}.inhibition"))
    return net


def spinnaker_mapping(network: Network, steps: int, *, console=None) -> dict:
    """Map ``network`` on a virtual SpiNNaker machine; returns the mapping report (placements,
    routing keys, routing-table entries, weight quantisation). Needs sPyNNaker installed."""
    from spikeforge.sim.spinnaker_backend import simulate

    result = simulate(network, steps, virtual=True, report=console is not None, console=console)
    return result.meta["spinnaker"]
