"""spikeforge flash: the openFPGALoader command for each board, and the messages when there is nothing
(or the wrong thing) to flash. Only --dry-run here: no board is attached to CI."""

import json
import shlex

import pytest
from typer.testing import CliRunner

from spikeforge.boards.catalog import BOARDS, get_board
from spikeforge.boards.flash import FlashError, flash, flash_argv


def _fake_build(tmp_path, board_name):
    board = get_board(board_name)
    (tmp_path / board.bitstream).write_bytes(b"\xff\x00\x00\xff\x7e\xaa\x99\x7e")
    (tmp_path / "report.json").write_text(json.dumps({"board": {"name": board.name}}))
    return tmp_path


@pytest.mark.parametrize("name,expected", [
    ("icebreaker", ["-b", "ice40_generic", "--write-flash"]),
    ("ulx3s-85f", ["-b", "ulx3s", "--write-sram"]),
    ("cmod-a7-35t", ["-b", "cmoda7_35t", "--write-sram"]),
])
def test_dry_run_command(tmp_path, name, expected):
    build = _fake_build(tmp_path, name)
    argv = flash(build, name, dry_run=True)
    assert argv[0].endswith("openfpgaloader-cli")
    assert argv[1:-1] == expected
    assert argv[-1] == str(build / get_board(name).bitstream)


def test_persistent_flash_cable_and_serial(tmp_path):
    build = _fake_build(tmp_path, "ulx3s-85f")
    argv = flash(build, "ulx3s-85f", dry_run=True, to_flash=True, serial="FT1234", verify=True)
    assert argv[1:-1] == ["-b", "ulx3s", "--ftdi-serial", "FT1234", "--write-flash", "--verify"]
    argv = flash_argv("cmod-a7-35t", build / "top.bit", cable="digilent")
    assert argv[1:3] == ["-c", "digilent"] and "-b" not in argv


def test_every_board_has_a_loader_board_name():
    for board in BOARDS.values():
        assert board.openfpgaloader[0] == "-b" and board.openfpgaloader[1]


def test_missing_bitstream_says_how_to_make_it(tmp_path):
    with pytest.raises(FlashError, match="spikeforge compile"):
        flash(tmp_path, "icebreaker", dry_run=True)
    with pytest.raises(FlashError, match="run_vivado.sh"):
        flash(tmp_path, "cmod-a7-35t", dry_run=True)
    with pytest.raises(FlashError, match="no such folder"):
        flash(tmp_path / "nope", "icebreaker", dry_run=True)


def test_wrong_board_is_refused(tmp_path):
    build = _fake_build(tmp_path, "icebreaker")
    (tmp_path / "top.bit").write_bytes(b"x")
    with pytest.raises(FlashError, match="built for icebreaker"):
        flash(build, "ulx3s-85f", dry_run=True)


def test_cli_dry_run_prints_the_command_and_reads_the_board_from_the_report(tmp_path):
    import typer

    from spikeforge.boards.cli import flash_command

    app = typer.Typer()
    app.command()(flash_command)
    build = _fake_build(tmp_path, "icebreaker")
    res = CliRunner().invoke(app, [str(build), "--dry-run"])
    assert res.exit_code == 0, res.output
    argv = shlex.split(res.output.strip().splitlines()[-1])
    assert argv[1:] == ["-b", "ice40_generic", "--write-flash", str(build / "top.bin")]
    res = CliRunner().invoke(app, [str(tmp_path / "missing"), "--board", "icebreaker", "--dry-run"])
    assert res.exit_code == 2 and "no such folder" in " ".join(res.output.split())
