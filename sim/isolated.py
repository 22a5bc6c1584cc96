"""Run a function in a fresh Python process and bring its result back.

NEST (3.10) cannot reliably build a second kernel in one process: ``ResetKernel`` after a previous
network sometimes segfaults, taking the whole test worker or user session with it. Every NEST run
therefore happens in a freshly *spawned* process (not forked: a fork would inherit the kernel's
state). The cost is the child's imports, about a second; the gain is that a NEST crash becomes a
clear error instead of a dead interpreter.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import importlib.util
import multiprocessing
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path


class IsolatedRunError(RuntimeError):
    """The child process died (e.g. a segfault in a simulator's native code)."""


def run_isolated(fn, /, *args, what: str = "the simulation", **kwargs):
    """``fn(*args, **kwargs)`` in a new spawned process; ``fn`` must be a module-level function."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        try:
            return pool.submit(fn, *args, **kwargs).result()
        except BrokenProcessPool as exc:
            raise IsolatedRunError(
                f"{what} crashed its process (native code, e.g. a NEST segfault); nothing of it was kept. "
                "Run it again; if it repeats, report the network that triggers it."
            ) from exc


def _call_script_function(path: str, function: str, sim_module: str, options: dict):
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sim = importlib.import_module(sim_module)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(module, function)(sim, **options)


def run_script_function(path, function: str, sim_module: str, **options):
    """Call ``function(sim, **options)`` from the Python file ``path`` with ``sim`` = the module
    ``sim_module`` (e.g. ``"pyNN.nest"``), in a fresh process. For PyNN scripts written as
    ``def run(sim, ...)``, so the same script runs on several simulators side by side."""
    return run_isolated(_call_script_function, str(path), function, sim_module, options,
                        what=f"{Path(path).name}:{function} on {sim_module}")
