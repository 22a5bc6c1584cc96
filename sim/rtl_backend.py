"""The ``rtl`` backend: the network on the generated Verilog of the neuron core, under cocotb.

``simulate`` compiles the Network to a CoreImage exactly as the golden backend does, generates the
core's Verilog for the image's CoreConfig (``spikeforge.hdl.generate_verilog``; cached, see
``sim/cocotb_tb/runner.py``), and runs it in Icarus Verilog (default) or Verilator: the testbench
loads the image through the core's bus, feeds each step's input spikes and analog inputs, collects
the output spikes, reads the recorded variables back over the bus after every step and the whole
image at the end. The answer is the same SimResult the golden backend gives (``record_to_result``),
so ``simulate(net, steps, backend="rtl")`` and ``backend="golden"`` must be identical -- that is the
point of the core being bit-exact.

It is slow (every step is a few thousand simulated clock cycles): use it to check the hardware on
a network, to measure cycles per step (``result.meta["cycles"]``) or to get a waveform (``vcd=``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from spikeforge.compiler.compile import CompiledNetwork
from spikeforge.compiler.network import Network
from spikeforge.core.image import CoreImage
from spikeforge.sim.cocotb_tb import runner
from spikeforge.sim.cocotb_tb.case import RtlCase
from spikeforge.sim.golden import CoreRecord
from spikeforge.sim.golden_backend import prepare_run, record_to_result
from spikeforge.sim.result import SimResult


class RtlBackendError(RuntimeError):
    """The RTL run failed or (with verify=True) disagreed with the golden model."""


def simulate(
    network: Network,
    steps: int,
    *,
    seed: int | None = None,
    record=(),
    currents=None,
    config=None,
    simulator: str = "icarus",
    vcd=None,
    verify: bool = False,
    compiled: CompiledNetwork | None = None,
    **compile_options,
) -> SimResult:
    """Run ``network`` for ``steps`` steps on the RTL core; return a SimResult like the golden backend.

    ``seed``, ``record``, ``currents``, ``config`` and compile options: as ``golden_backend.simulate``.
    ``simulator``: ``"icarus"`` or ``"verilator"``. ``vcd``: path of a waveform (VCD, opens in
    GTKWave) of the whole run. ``verify``: also step the golden model alongside and raise
    RtlBackendError at the first step where any spike or state word differs.
    ``result.meta`` gets ``cycles`` (LAST_CYCLES of every step), ``simulator`` and ``wall_seconds``.
    """
    if simulator not in runner.SIMULATORS:
        raise RtlBackendError(f"simulator = {simulator!r}: choose one of {', '.join(runner.SIMULATORS)}")
    steps, record, compiled, inputs, u = prepare_run(network, steps, seed, record, currents, config, compiled,
                                                     compile_options, RtlBackendError)
    t0 = time.perf_counter()
    final, rec, cycles = run_image(compiled.image, inputs, u, record=record, simulator=simulator,
                                   vcd=vcd, verify=verify)
    meta = {"seed": seed, "simulator": simulator, "cycles": cycles,
            "wall_seconds": time.perf_counter() - t0}
    if vcd is not None:
        meta["vcd"] = str(Path(vcd).resolve())
    return record_to_result(compiled, rec, "rtl", final_image=final, meta=meta)


def run_image(image: CoreImage, inputs: np.ndarray, currents: np.ndarray | None = None, *,
              record=(), simulator: str = "icarus", vcd=None, verify: bool = False
              ) -> tuple[CoreImage, CoreRecord, list[int]]:
    """Run a CoreImage on the RTL core: (final image, CoreRecord, LAST_CYCLES of every step).

    The CoreImage-level twin of ``golden.run``: ``inputs`` (steps, A) bool, ``currents`` (steps, K)."""
    config = image.config
    inputs = np.asarray(inputs, dtype=bool)
    steps = inputs.shape[0]
    with tempfile.TemporaryDirectory(prefix="spikeforge-rtl-") as tmp:
        tmp = Path(tmp)
        image.save(tmp / "image.npz")
        arrays = {"spikes": inputs}
        if currents is not None and config.n_current_inputs:
            arrays["currents"] = np.asarray(currents, dtype=np.int64)
        np.savez(tmp / "inputs.npz", **arrays)
        out = tmp / "out.npz"
        case = RtlCase(name="network", steps=steps, image_path=str(tmp / "image.npz"),
                       inputs_path=str(tmp / "inputs.npz"), check=verify, check_cycles=False,
                       compare="auto" if verify else "spikes", record=tuple(record), output_path=str(out))
        try:
            b = runner.build(config, simulator=simulator, vcd=vcd is not None)
            (result,) = runner.run_job(b, [case], vcd_path=Path(vcd) if vcd is not None else None)
        except runner.RtlRunError as exc:
            raise RtlBackendError(str(exc)) from exc
        if not result.passed:
            raise RtlBackendError(
                f"the RTL run failed at step {result.steps_run - 1}: "
                + "; ".join((result.mismatches + result.cycle_deviations)[:6] or [str(result.error)])
            )
        with np.load(out) as data:
            spikes = np.asarray(data["spikes"], dtype=bool)
            variables = {name: np.asarray(data[f"var.{name}"]) for name in record}
            cycles = [int(c) for c in data["cycles"]]
        final = CoreImage.load(str(out) + ".final_image.npz")
    if not config.adaptive_threshold:  # parameters the core does not store (memory_map.ADAPTIVE_PROFILE_FIELDS)
        for name in ("c_adecay", "a_inc"):
            final.profiles[name] = np.array(image.profiles[name], dtype=np.int64)
    return final, CoreRecord(spikes=spikes, variables=variables), cycles
