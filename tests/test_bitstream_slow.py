"""The long bitstream builds (``make test-long``): ECP5 (ULX3S 85F) for a small network, and standalone
iCE40 bitstreams whose boot ROM is swapped with icebram for a second network without a new place and
route."""

import hashlib
import pathlib
import re
import sys
import time

import pytest

from spikeforge.boards import boot_rom
from spikeforge.boards.flow import BoardOptions, compile_for_board
from spikeforge.boards.toolchain import ToolError, run_tool, tool_environment

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_bitstream_ice40 import skip_comment, tiny_network  # noqa: E402

pytestmark = pytest.mark.slow

ECP5_SYNC = bytes.fromhex("FFFFBDB3")


def test_ecp5_bitstream(tmp_path):
    result = compile_for_board(tiny_network(), "ulx3s-85f", tmp_path, BoardOptions(top="interim"))
    data = (tmp_path / "top.bit").read_bytes()
    start = skip_comment(data)
    assert ECP5_SYNC in data[start:start + 16]
    assert b"LFE5U-85F" in data[:start]
    r = result.report
    assert r["timing"]["met"] and r["clock"]["pll"]["primitive"] == "EHXPLLL"
    log = (tmp_path / "logs" / "nextpnr.log").read_text()
    used = int(re.findall(r"TRELLIS_COMB:\s+(\d+)/", log)[-1])
    assert r["resources"]["luts"]["used"] == used
    assert r["resources"]["bram"]["used"] == r["estimate"]["bram_tiles_total"]
    assert r["core_config"]["lanes"] == 4  # 4 x 8-bit synapses fill one 36-bit DP16KD word


def test_standalone_icebram_swaps_the_network_without_place_and_route(tmp_path):
    first = compile_for_board(tiny_network(), "icebreaker", tmp_path / "a", BoardOptions(standalone=True,
                                                                                         stimulus_steps=200))
    r = first.report
    assert r["mode"] == "standalone" and r["timing"]["met"]
    assert "icebram" in r["standalone"]["rom_method"]
    rom = (tmp_path / "a" / "rom.hex").read_text().split()
    assert int(rom[0], 16) == boot_rom.MAGIC
    assert len(rom) == r["standalone"]["rom_depth"]
    # the placeholder ROM of the cached routed design is gone from the bitstream: icebram, asked to
    # swap it once more, no longer finds it (the reverse swap cannot be checked: icebram needs the
    # distinctive random "from" pattern, and a network's ROM is mostly zeros)
    work = tmp_path / "check"
    work.mkdir()
    (work / "top.bin").write_bytes((tmp_path / "a" / "top.bin").read_bytes())
    (work / "rom.hex").write_text("\n".join(rom) + "\n")
    env = tool_environment()
    run_tool(["iceunpack", "top.bin", "top.asc"], cwd=work, log=work / "unpack.log", env=env)
    depth = r["standalone"]["rom_depth"]
    seed = int(hashlib.sha256(f"{r['config_hash']}-{depth}".encode()).hexdigest()[:8], 16)
    (work / "placeholder.hex").write_text(boot_rom.to_hex(boot_rom.random_words(depth, seed), depth))
    with pytest.raises(ToolError):
        run_tool(["icebram", "placeholder.hex", "rom.hex"], cwd=work, log=work / "icebram.log", env=env,
                 stdin=work / "top.asc", stdout=work / "again.asc")
    # a second network of the same shape: same routed design, only the ROM changes
    second = compile_for_board(tiny_network(w_in=3.0), "icebreaker", tmp_path / "b",
                               BoardOptions(standalone=True, stimulus_steps=200))
    assert second.report["bitstream"]["cached"] is True and second.report["build_seconds"] == {}
    assert (tmp_path / "b" / "top.bin").read_bytes() != (tmp_path / "a" / "top.bin").read_bytes()


@pytest.mark.parametrize("board", ["ulx3s-85f"])  # the UP5K cannot hold the link beside a core (test_compile_cli)
def test_the_protocol_link_builds_and_meets_timing(board, tmp_path):
    """The default runtime top level: the protocol link (spikeforge.hdl.link.LinkTop) with one core."""
    result = compile_for_board(tiny_network(), board, tmp_path, BoardOptions(top="link"))
    r = result.report
    assert r["link"].endswith("LinkTop")
    assert r["timing"]["met"], r.get("status_message")
