"""The testbench: driver, monitor, reference model and scoreboard wired around one core.

One :class:`CoreTestbench` runs the cases of an :class:`~spikeforge.sim.cocotb_tb.case.RtlJob`
one after the other on the same simulated core (same Verilog build, no re-elaboration): each case
loads its image through the bus, runs its steps with the golden model stepping alongside, and reads
the whole image back at the end. That final readback is also what the core is known to hold, so the
next case writes only the words that differ ("delta load"): a cheap load that is still fully
checked, because the next final readback compares every word again.

Per step: stage the inputs, pulse ``start``, collect ``spike_out`` until ``done``, read LAST_CYCLES,
then read back the fields of the case's compare level and compare everything with the golden model.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path

import numpy as np

from spikeforge.core import fixedpoint as fx
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage
from spikeforge.core.memory_map import (
    MAGIC, ControlReg, Region, config_hash_word, image_from_words, image_reads, image_writes,
)
from spikeforge.sim.cocotb_tb import readback
from spikeforge.sim.cocotb_tb.case import CaseResult, RtlCase, RtlJob
from spikeforge.sim.cocotb_tb.cycles import CyclePredictor
from spikeforge.sim.cocotb_tb.driver import BurstPlayer, CoreDriver
from spikeforge.sim.cocotb_tb.monitor import SpikeMonitor
from spikeforge.sim.cocotb_tb.ports import CorePorts
from spikeforge.sim.cocotb_tb.reference import ReferenceModel
from spikeforge.sim.cocotb_tb.scoreboard import Mismatch, Scoreboard


def step_cycle_limit(config: CoreConfig) -> int:
    """A generous bound on the cycles of one step; exceeding it means the core hung."""
    c = config
    per_step = c.n_neurons * 8 + c.n_sources * (c.n_neurons + 8) * 2
    if c.stdp:
        per_step += 2 * c.n_sources * c.n_neurons + 4 * c.n_neurons * c.n_sources
    return 4 * per_step + 10_000


class CoreTestbench:
    def __init__(self, dut, job: RtlJob):
        self.job = job
        self.config = job.config
        self.ports = CorePorts(dut, job.ports, has_spike_in=job.config.n_inputs > 0)
        self.period_ns = job.clock_period_ns
        player = None
        if hasattr(dut, "player_go") and job.work_dir:
            work = Path(job.work_dir)
            player = BurstPlayer(dut, self.ports.clk, str(work / "burst_in.hex"), str(work / "burst_out.hex"),
                                 self.period_ns)
        self.driver = CoreDriver(self.ports, period_ns=self.period_ns, player=player)
        self.monitor = SpikeMonitor(self.ports, self.period_ns)
        self.known_words: dict[tuple[int, int], int] | None = None  # what the core holds, if known
        self.fresh = True  # no word written since power-up
        self.cycles = CyclePredictor(self.config)
        self.identity_checked = False

    async def start(self):
        await self.driver.start_clock_and_reset()

    # ---- one case ------------------------------------------------------------------------------
    async def run_case(self, case: RtlCase) -> CaseResult:
        t_wall = time.perf_counter()
        result = CaseResult(name=case.name, passed=False)
        config = self.config
        stress = case.backpressure
        self.driver.stress = self.monitor.stress = stress
        sb = Scoreboard(self.job.max_report, self.job.cycle_tolerance)
        try:
            image = case.image(config)
            spikes_in, currents = case.inputs(config)
            level = case.compare if case.compare != "auto" else readback.choose_level(config, case.read_budget)
            result.compare = level
            if not self.identity_checked:
                await self._check_identity(sb)
                self.identity_checked = True
            tick = time.perf_counter()
            result.words_loaded = await self._load(image)
            result.phase_seconds["load"] = time.perf_counter() - tick
            ref = ReferenceModel(image) if case.check else None
            fields = readback.level_fields(config, level) if case.check else []
            plan = readback.read_plan(config, fields)
            record = _RecordBuffer(config, case.record)
            record_plan = readback.read_plan(config, record.fields)
            check_cycles = case.check and case.check_cycles and not stress and self.cycles.available
            limit = step_cycle_limit(config)
            out_spikes = np.zeros((case.steps, config.n_neurons), dtype=bool)
            self.cycles.reset(image)
            timing = {"inputs": 0.0, "step": 0.0, "readback": 0.0, "model": 0.0}
            result.phase_seconds.update(timing)
            for t in range(case.steps):
                cur = None if currents is None else currents[t]
                tick = time.perf_counter()
                await self.driver.set_inputs(spikes_in[t], cur)
                await self.driver.pulse_start()
                tock = time.perf_counter()
                timing["inputs"] += tock - tick
                out = await self.monitor.collect_step(limit)
                result.sim_cycles_in_steps += out.cycles
                tick = time.perf_counter()
                timing["step"] += tick - tock
                last_cycles = await self.driver.read_control(ControlReg.LAST_CYCLES)
                result.cycles.append(last_cycles)
                for i in out.spikes:
                    if 0 <= i < config.n_neurons:
                        out_spikes[t, i] = True
                result.steps_run = t + 1
                if record.fields:
                    words = await self.driver.bus.read_words(record_plan)
                    record.add(readback.decode(config, record.fields, words), image)
                if ref is None:
                    continue
                expected = ref.step(spikes_in[t], cur)
                sb.compare_spikes(t, expected, out.spikes)
                for err in out.protocol_errors:
                    sb.add(Mismatch(t, "protocol", None, "hdl/INTERFACE.md", err))
                if last_cycles != out.cycles:
                    sb.add(Mismatch(t, "LAST_CYCLES", None, f"{out.cycles} (busy cycles seen)", last_cycles))
                tock = time.perf_counter()
                timing["model"] += tock - tick
                if plan:
                    words = await self.driver.bus.read_words(plan)
                    got = readback.decode(config, fields, words)
                    tick = time.perf_counter()
                    timing["readback"] += tick - tock
                    sb.compare_fields(t, {k: ref.field(k) for k in got}, got)
                predicted = self.cycles.step(spikes_in[t], expected)
                if predicted is not None:
                    result.predicted_cycles.append(predicted)
                    if check_cycles:
                        sb.compare_cycles(t, last_cycles, predicted)
                if not sb.functional_ok:
                    break
            result.phase_seconds.update(timing)
            result.spikes_total = int(out_spikes.sum())
            if case.final_readback:
                tick = time.perf_counter()
                final = await self._read_image()
                result.phase_seconds["final_read"] = time.perf_counter() - tick
                if ref is not None and sb.functional_ok:
                    sb.compare_images(readback.hardware_view(ref.image()), final)
            else:
                final = None
                self.known_words = self._unchanged_words(image)
            if case.output_path:
                record.save(case.output_path, out_spikes[: result.steps_run], final, result.cycles)
        except Exception as exc:  # a hang or protocol breach ends the case, not the whole job
            result.error = f"{type(exc).__name__}: {exc}"
            result.mismatches.append(traceback.format_exc(limit=6))
            self.known_words = None
            await self.driver.recover()
        result.mismatches = [str(m) for m in sb.mismatches] + \
            (result.mismatches if result.error else [])
        result.cycle_deviations = list(sb.cycle_deviations)
        result.passed = result.error is None and sb.passed
        result.wall_seconds = time.perf_counter() - t_wall
        return result

    # ---- helpers -------------------------------------------------------------------------------
    async def _check_identity(self, sb: Scoreboard):
        """MAGIC and CONFIG_HASH tell that the right core answers the bus."""
        magic = await self.driver.read_control(ControlReg.MAGIC)
        if magic != MAGIC:
            sb.add(Mismatch(None, "CONTROL.MAGIC", None, hex(MAGIC), hex(magic)))
        got = await self.driver.read_control(ControlReg.CONFIG_HASH)
        want = config_hash_word(self.config)
        if got != want:
            sb.add(Mismatch(None, "CONTROL.CONFIG_HASH", None, hex(want), hex(got)))

    async def _load(self, image: CoreImage):
        """Write ``image`` into the core, skipping words the core is known to hold already.

        Known: after a case, everything its final readback returned. On a fresh core, the SYNAPSE
        and RING memories are zero (Amaranth memories power up at their zero init, as FPGA block
        RAM does); every other word is written. Whatever is skipped is still compared by the final
        readback of the case, so a wrong assumption shows up as a mismatch, not as a silent pass."""
        writes = list(image_writes(image))
        if self.known_words is not None:
            known = self.known_words
            writes = [(r, a, w) for r, a, w in writes
                      if r == Region.CONTROL or known.get((int(r), int(a))) != w]
        elif self.fresh:
            writes = [(r, a, w) for r, a, w in writes
                      if w != 0 or r not in (Region.SYNAPSE, Region.RING)]
        self.fresh = False
        await self.driver.load_words(writes)
        return len(writes)

    def _unchanged_words(self, image: CoreImage) -> dict[tuple[int, int], int]:
        """The words of ``image`` that running steps cannot change (parameters; synapses without
        STDP): what the core is known to hold after a case that skipped its final readback."""
        fixed = {Region.PROFILE, Region.STDP, Region.NEURON_PROFILE, Region.ROW_SHIFT}
        if not self.config.stdp:
            fixed.add(Region.SYNAPSE)
        view = readback.hardware_view(image)
        return {(int(r), int(a)): w for r, a, w in image_writes(view) if r in fixed}

    async def _read_image(self) -> CoreImage:
        addresses = image_reads(self.config)
        words = await self.driver.bus.read_words(addresses)
        table = {(int(r), int(a)): w for (r, a), w in zip(addresses, words)}
        self.known_words = table
        return image_from_words(self.config, {(Region(r), a): w for (r, a), w in table.items()})


class _RecordBuffer:
    """Per-step values of the variables a backend run records (read back over the bus)."""

    _FIELD_OF = {"v": "v", "ie": "ie", "ii": "ii", "refrac_count": "refrac_count", "adapt": "adapt",
                 "threshold": "adapt", "x_trace": "x_trace", "y_trace": "y_trace", "weights": "synapses"}

    def __init__(self, config: CoreConfig, names):
        self.config = config
        self.names = list(names)
        present = set(readback.present_fields(config))
        fields = []
        for name in self.names:
            if name not in self._FIELD_OF:
                raise ValueError(f"cannot record {name!r}; recordable: {', '.join(self._FIELD_OF)}")
            f = self._FIELD_OF[name]
            if f in present and f not in fields:
                fields.append(f)
        self.fields = fields
        self.rows: dict[str, list[np.ndarray]] = {n: [] for n in self.names}
        self._prev_adapt = None

    def add(self, got: dict, image: CoreImage):
        for name in self.names:
            if name == "threshold":
                self.rows[name].append(self._threshold(got, image))
            elif name in got:
                self.rows[name].append(np.asarray(got[name]))
            else:  # a feature this core does not have: its state is 0, as in the golden model
                size = self.config.n_sources if name == "x_trace" else self.config.n_neurons
                shape = (self.config.n_sources, self.config.n_neurons) if name == "weights" else (size,)
                self.rows[name].append(np.zeros(shape, dtype=np.int64))

    def _threshold(self, got: dict, image: CoreImage) -> np.ndarray:
        """theta of this step (docs/core-spec.md, phase 3): v_thresh + the adaptation decayed from
        the previous step's value -- read back ``adapt`` already includes this step's increments."""
        p = image.neuron_profile
        theta = np.asarray(image.profiles["v_thresh"][p], dtype=np.int64)
        if "adapt" not in got:
            return theta
        prev = self._prev_adapt if self._prev_adapt is not None else np.asarray(image.adapt, dtype=np.int64)
        decayed = fx.usat(fx.rtz(image.profiles["c_adecay"][p] * prev, fx.COEF_FRAC), self.config.adapt_bits)
        self._prev_adapt = np.asarray(got["adapt"], dtype=np.int64)
        return theta + decayed

    def save(self, path, spikes, final: CoreImage, cycles):
        arrays = {"spikes": spikes, "cycles": np.asarray(cycles, dtype=np.int64)}
        c = self.config
        for name, rows in self.rows.items():
            if rows:
                arrays[f"var.{name}"] = np.stack(rows)
            else:
                shape = {"x_trace": (0, c.n_sources), "weights": (0, c.n_sources, c.n_neurons)}
                arrays[f"var.{name}"] = np.zeros(shape.get(name, (0, c.n_neurons)), dtype=np.int64)
        np.savez(path, **arrays)
        if final is not None:
            final.save(str(path) + ".final_image.npz")
