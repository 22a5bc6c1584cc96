"""`spikeforge compile` options that shape the quantisation (the bitstream flow itself: test_bitstream_*)."""

from pathlib import Path

import pytest


def test_cli_compile_passes_scaling_options_to_the_compiler(tmp_path):
    """--voltage-range and --current-range reach the quantiser (report.json's scaling), and a malformed
    range stops with the expected form."""
    import json

    from typer.testing import CliRunner

    from spikeforge.cli import app

    src = Path(__file__).resolve().parents[1] / "examples" / "balanced.yaml"
    out = tmp_path / "board"
    result = CliRunner().invoke(app, ["compile", str(src), "--board", "cmod-a7-35t", "--no-vivado", "-o", str(out),
                                      "--voltage-range=-90,-30", "--current-range", "3.5"])
    assert result.exit_code == 0, result.output
    scaling = json.loads((out / "report.json").read_text())["quantisation"]["scaling"]
    lo, hi = scaling["voltage_window_mV"]
    assert lo == pytest.approx(-90.0, abs=0.01) and hi == pytest.approx(-30.0, abs=0.01)
    assert scaling["current_scale_limited_by"] == "current range given by the user"
    assert scaling["current_range_nA"] >= 3.5
    result = CliRunner().invoke(app, ["compile", str(src), "--board", "cmod-a7-35t", "-o", str(tmp_path / "b"),
                                      "--voltage-range", "high"])
    assert result.exit_code != 0 and "LO,HI" in result.output


def test_a_board_too_small_for_the_host_link_says_so_and_offers_the_ways_out(tmp_path):
    """The UP5K cannot hold the protocol link beside any core: asked for the link, the error must say
    that (not "fewer neurons", which would not help) and name --standalone, the bus bridge and a
    bigger board. (--top auto, the default, takes the bus bridge there: tests/test_bitstream_ice40.py.)"""
    from typer.testing import CliRunner

    from spikeforge.boards.capacity import estimate
    from spikeforge.boards.catalog import get_board
    from spikeforge.cli import app
    from spikeforge.core.config import CoreConfig

    board = get_board("icebreaker")
    link = "spikeforge.hdl.link.LinkTop"
    assert not estimate(CoreConfig(n_neurons=1, n_inputs=1), board, exact=False, top=link).fits
    src = Path(__file__).resolve().parents[1] / "examples" / "balanced.yaml"
    result = CliRunner().invoke(app, ["compile", str(src), "--board", "icebreaker", "-o", str(tmp_path / "b"),
                                      "--top", "link"])
    assert result.exit_code != 0
    text = " ".join(result.output.split())
    assert "cannot hold the protocol host link" in text
    for way_out in ("--standalone", "--board ulx3s-85f", "--top bridge"):
        assert way_out in text
    assert not (tmp_path / "b" / "top.bin").exists()
