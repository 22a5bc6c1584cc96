"""The cocotb test module (COCOTB_TEST_MODULES=spikeforge.sim.cocotb_tb.tb_core).

It runs inside the simulator. The job file comes as the plusarg ``+spikeforge_job=<path>`` (plusargs
reach the simulator unchanged, unlike environment variables, which the cocotb runner merges with the
caller's environment). Results are written after every case, so a simulator crash still leaves the
cases before it on record. The cocotb test itself fails only when the testbench could not run; case
failures are reported in the results file, where pytest turns them into readable assertion messages.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb

from spikeforge.sim.cocotb_tb.case import JOB_ENV, RtlJob
from spikeforge.sim.cocotb_tb.testbench import CoreTestbench


def _job_path() -> str:
    path = cocotb.plusargs.get("spikeforge_job") or os.environ.get(JOB_ENV)
    if not path:
        raise RuntimeError(
            "no job: run through spikeforge.sim.cocotb_tb.runner (it passes +spikeforge_job=<file>)"
        )
    return str(path)


@cocotb.test()
async def run_job(dut):
    job = RtlJob.load(_job_path())
    out = Path(job.results_path)
    tb = CoreTestbench(dut, job)
    await tb.start()
    results = []
    for case in job.cases:
        res = await tb.run_case(case)
        results.append(res.to_dict())
        dut._log.info(res.summary())
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(out)
        if job.stop_after_failure and not res.passed:
            break
