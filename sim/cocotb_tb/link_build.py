"""Build the RTL board link (``spikeforge.hdl.link.LinkTop``) for cocotb, reusing runner.py's cache.

``build_link(configs, divisor=..., ...)`` writes the Verilog of a LinkTop and compiles it with the
verification engineer's runner settings (Icarus by default, the same ``@*`` fix, the same cache root
``.cache/rtl``): ``.cache/rtl/link/<key>/`` holds ``link_top.v`` and the simulator build. The key hashes
the spikeforge.hdl sources, the amaranth version and every LinkTop parameter, so a warm start costs
nothing. ``start_link_job`` runs the cocotb bridge (``link_bridge.py``) against a build: the host side
of that bridge is ``spikeforge.host.rtl_device.CocotbLinkDevice``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from spikeforge.core.config import CoreConfig
from spikeforge.file_lock import atomic_write, locked
from spikeforge.sim.cocotb_tb.runner import (
    RtlRunError, _runner, _tail, _verilator_make_fix, cache_root, design_fingerprint,
    icarus_compatible, simulator_available,
)

LINK_TOPLEVEL = "link_top"
LINK_TEST_MODULE = "spikeforge.sim.cocotb_tb.link_bridge"


@dataclass
class LinkBuild:
    simulator: str
    build_dir: Path
    verilog: Path
    divisor: int


def link_options(configs: Sequence[CoreConfig], *, divisor: int, slots: int, max_words: int, window: int,
                 name: str, clk_freq: int, baud: int, top: str = "link") -> dict:
    options = dict(configs=[c.to_dict() for c in configs], divisor=divisor, slots=slots, max_words=max_words,
                   window=window, name=name, clk_freq=clk_freq, baud=baud)
    if top != "link":  # keys of existing link builds stay valid
        options["top"] = top
    return options


def _top_level(top: str, configs, *, divisor, slots, max_words, window, name, clk_freq, baud):
    """The Amaranth top level to simulate: ``link`` (LinkTop) or ``bridge`` (the bus bridge, one core)."""
    if top == "link":
        from spikeforge.hdl.link import LinkTop

        return LinkTop(list(configs), clk_freq, baud, divisor=divisor, slots=slots, max_words=max_words,
                       window=window, name=name)
    if top == "bridge":
        from spikeforge.hdl.bus_bridge import BusBridge

        return BusBridge(list(configs), clk_freq, baud, divisor=divisor)
    raise ValueError(f"top = {top!r}: choose link (spikeforge.hdl.link.LinkTop) or bridge (BusBridge)")


def build_link(configs: Sequence[CoreConfig], *, divisor: int = 4, slots: int = 16, max_words: int = 64,
               window: int = 2, name: str = "rtl-cocotb", clk_freq: int = 12_000_000, baud: int = 1_000_000,
               simulator: str = "icarus", top: str = "link") -> LinkBuild:
    """Generate (or reuse) the Verilog of the ``top`` level (``link``: LinkTop, ``bridge``: the bus
    bridge) and build it for ``simulator`` (or reuse the build)."""
    reason = simulator_available(simulator)
    if reason:
        raise RtlRunError(reason)
    options = link_options(configs, divisor=divisor, slots=slots, max_words=max_words, window=window,
                           name=name, clk_freq=clk_freq, baud=baud, top=top)
    key = hashlib.sha256(json.dumps([design_fingerprint(), options, simulator], sort_keys=True).encode()).hexdigest()[:16]
    build_dir = cache_root() / "link" / f"{simulator}-{key}"
    verilog = build_dir / f"{LINK_TOPLEVEL}.v"
    with locked(build_dir.parent / f".{simulator}-{key}.lock"):
        stamp = build_dir / "build.ok"
        if not stamp.exists():
            from amaranth.back import verilog as amaranth_verilog

            design = _top_level(top, configs, divisor=divisor, slots=slots, max_words=max_words, window=window,
                                name=name, clk_freq=clk_freq, baud=baud)
            text = amaranth_verilog.convert(design, name=LINK_TOPLEVEL, emit_src=False)
            if simulator == "icarus":
                # KNOWN PROBLEM (docs/link-rtl.md): an `always @*` block runs only when a signal it reads
                # changes, so blocks whose inputs keep their initial values (FSMs idling in state 0) never
                # run and their outputs stay X under Icarus (e.g. FrameSender.idle). Rewriting them as
                # SystemVerilog always_comb (-g2012) made Icarus stall; not solved yet.
                text, _ = icarus_compatible(text)
            build_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(verilog, text)
            log = build_dir / "build.log"
            try:
                with _verilator_make_fix(simulator):
                    _runner(simulator, False).build(
                        sources=[verilog], hdl_toplevel=LINK_TOPLEVEL, build_dir=build_dir, always=True,
                        timescale=("1ns", "1ps"), log_file=log,
                        build_args=["-Wno-fatal", "-Wno-WIDTH"] if simulator == "verilator" else [],
                    )
            except (SystemExit, Exception) as exc:
                raise RtlRunError(f"{simulator} build of the link failed ({exc!r}); log: {log}\n{_tail(log)}") from None
            stamp.write_text(key)
    return LinkBuild(simulator, build_dir, verilog, divisor)


def run_link_bridge(b: LinkBuild, socket_path: str, run_dir: Path) -> None:
    """Run the cocotb bridge on build ``b`` (blocks until the host side closes the socket)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "sim.log"
    try:
        _runner(b.simulator, False).test(
            test_module=LINK_TEST_MODULE, hdl_toplevel=LINK_TOPLEVEL, hdl_toplevel_lang="verilog",
            build_dir=b.build_dir, test_dir=run_dir, log_file=log,
            plusargs=[f"+spikeforge_link_socket={socket_path}", f"+spikeforge_link_divisor={b.divisor}"],
            timescale=("1ns", "1ps") if b.simulator == "icarus" else None,
            results_xml=str(run_dir / "results.xml"),
        )
    except (SystemExit, Exception) as exc:
        raise RtlRunError(f"the link simulation failed ({exc!r}); log: {log}\n{_tail(log)}") from None
