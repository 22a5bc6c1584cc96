"""The sPyNNaker configuration, written by spikeforge so the user never meets NoConfigFoundException.

sPyNNaker reads its machine settings from a *user* config file it looks for in /etc/xdg, ~/.config
and ~ (``.spynnaker.cfg``); without one it writes a template to ~/.spynnaker.cfg and stops. A
``spynnaker.cfg`` in the working directory overrides the user file. spikeforge therefore runs
sPyNNaker in its own run folder (``.cache/spinnaker/run-*/``) holding a ``spynnaker.cfg`` written from
the user's choice:

- ``virtual=True``: a virtual 48-chip SpiNNaker-1 board (``virtual_board = True, version = 5``); the
  whole mapping runs, nothing is loaded or run (there is no emulator);
- ``host="192.168.240.1"`` (+ ``version``, default 5): a board on the network;
- ``spalloc="https://spinnaker.cs.man.ac.uk/spalloc/"`` (+ ``spalloc_user``): a machine from a spalloc server;
- ``config_file=path``: the user's own sPyNNaker config, copied into the run folder as is.

When the user has no user-level file, the run folder also gets an (empty) ``.spynnaker.cfg`` and
``XDG_CONFIG_HOME`` points at it while sPyNNaker starts, so nothing is written to the home directory.
A user who already has a configured ~/.spynnaker.cfg (a machine or spalloc server in it) may run
without options: that file is used, as sPyNNaker itself would.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

#: Where run folders go (relative to the working directory unless absolute).
DEFAULT_RUN_ROOT = Path(".cache") / "spinnaker"
#: SpiNNaker board versions sPyNNaker knows: 3 = SpiNN-3 (4 chips), 5 = SpiNN-5 (48 chips).
VERSIONS = (3, 5)


class SpiNNakerConfigError(ValueError):
    """No way to reach a SpiNNaker machine was given; the message lists the options."""


NO_MACHINE_MESSAGE = (
    "no SpiNNaker machine configured for a real run. Choose one of: "
    "--virtual (map onto a virtual board: placements, routing and quantised weights, but no spikes); "
    "--spinnaker-host <board IP> [--spinnaker-version 5] (a board on your network); "
    "--spalloc <server URL> (a machine from a spalloc server, e.g. the Manchester service); "
    "--spinnaker-config <file> (your own sPyNNaker config file). "
    "In Python: simulate(..., virtual=True | spinnaker_host=... | spalloc=... | config_file=...)"
)


@dataclass(frozen=True)
class SpiNNakerTarget:
    """Where sPyNNaker should run: exactly one of virtual, host, spalloc, config_file, user_file."""

    virtual: bool = False
    host: str | None = None
    version: int = 5
    spalloc: str | None = None
    spalloc_user: str | None = None
    config_file: Path | None = None
    user_file: Path | None = None  # an existing, configured ~/.spynnaker.cfg

    @property
    def description(self) -> str:
        if self.virtual:
            return f"virtual SpiNNaker board (version {self.version})"
        if self.host:
            return f"SpiNNaker board at {self.host} (version {self.version})"
        if self.spalloc:
            return f"spalloc server {self.spalloc}"
        if self.config_file:
            return f"sPyNNaker config {self.config_file}"
        return f"sPyNNaker user config {self.user_file}"


def user_config_files() -> list[Path]:
    """The user-level sPyNNaker config files that exist, where sPyNNaker looks for them."""
    try:  # sPyNNaker asks appdirs (installed with it); without it, the same XDG rules by hand
        import appdirs

        site, user = appdirs.site_config_dir(), appdirs.user_config_dir()
    except ImportError:
        site = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(os.pathsep)[0]
        user = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    candidates = [Path(site) / ".spynnaker.cfg", Path(user) / ".spynnaker.cfg",
                  Path(os.path.expanduser("~")) / ".spynnaker.cfg"]
    seen, out = set(), []
    for p in candidates:
        if p.is_file() and p.resolve() not in seen:
            seen.add(p.resolve())
            out.append(p)
    return out


def _configured_machine(path: Path) -> bool:
    """Whether a sPyNNaker config names a machine (the template sPyNNaker writes does not)."""
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
    except configparser.Error:
        return False
    if not parser.has_section("Machine"):
        return False
    m = {k.lower(): v.strip() for k, v in parser.items("Machine")}
    named = lambda key: m.get(key, "None") not in ("", "None", "none")
    return named("machine_name") or named("spalloc_server") or m.get("virtual_board", "").lower() == "true"


def resolve_target(*, virtual: bool = False, host: str | None = None, version: int | None = None,
                   spalloc: str | None = None, spalloc_user: str | None = None,
                   config_file=None) -> SpiNNakerTarget:
    """Check the user's choice and return the target; raise SpiNNakerConfigError if there is none."""
    chosen = [name for name, given in (("virtual", virtual), ("spinnaker_host", host), ("spalloc", spalloc),
                                       ("config_file", config_file)) if given]
    if len(chosen) > 1:
        raise SpiNNakerConfigError(f"choose one SpiNNaker target, got {', '.join(chosen)}")
    if version is not None and version not in VERSIONS:
        raise SpiNNakerConfigError(f"SpiNNaker version {version!r}: use 5 (SpiNN-5, 48 chips) or 3 (SpiNN-3, 4 chips)")
    v = 5 if version is None else int(version)
    if virtual:
        return SpiNNakerTarget(virtual=True, version=v)
    if host:
        return SpiNNakerTarget(host=str(host), version=v)
    if spalloc:
        return SpiNNakerTarget(spalloc=str(spalloc), spalloc_user=spalloc_user)
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise SpiNNakerConfigError(f"{path}: no such sPyNNaker config file")
        return SpiNNakerTarget(config_file=path)
    for path in user_config_files():
        if _configured_machine(path):
            return SpiNNakerTarget(user_file=path)
    raise SpiNNakerConfigError(NO_MACHINE_MESSAGE)


def config_text(target: SpiNNakerTarget) -> str:
    """The spynnaker.cfg for ``target`` (the user's own file verbatim for ``config_file``)."""
    if target.config_file:
        return Path(target.config_file).read_text()
    lines = ["# written by spikeforge (host/spinnaker_config.py) for this run", ""]
    # every machine option is set, so a ~/.spynnaker.cfg naming another machine cannot mix in
    if target.virtual:
        lines += ["[Machine]", "virtual_board = True", f"version = {target.version}", "machine_name = None",
                  "spalloc_server = None"]
    elif target.host:
        lines += ["[Machine]", "virtual_board = False", f"machine_name = {target.host}", f"version = {target.version}",
                  "spalloc_server = None"]
    elif target.spalloc:
        lines += ["[Machine]", "virtual_board = False", "machine_name = None", f"spalloc_server = {target.spalloc}"]
        if target.spalloc_user:
            lines += [f"spalloc_user = {target.spalloc_user}"]
    # reports: keep the text reports (placements, routing) and skip the network graph (needs graphviz)
    lines += ["", "[Reports]", "write_network_graph = False", ""]
    # spikeforge routes sPyNNaker's logging itself (console: warnings; run log: everything)
    lines += ["[Logging]", "instantiate = False", ""]
    return "\n".join(lines)


def new_run_folder(root=None) -> Path:
    """A fresh folder for one sPyNNaker run under ``root`` (default .cache/spinnaker)."""
    root = Path(root) if root is not None else DEFAULT_RUN_ROOT
    root = root if root.is_absolute() else Path.cwd() / root
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        folder = root / f"run-{stamp}-{os.getpid()}-{k}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a run folder under {root}")


@contextlib.contextmanager
def spinnaker_session(target: SpiNNakerTarget, run_root=None):
    """Write the config into a new run folder, change into it (and point XDG_CONFIG_HOME at it when
    the user has no user-level file) while the body runs; yield the folder."""
    folder = new_run_folder(run_root)
    (folder / "spynnaker.cfg").write_text(config_text(target))
    old_cwd = Path.cwd()
    old_xdg = os.environ.get("XDG_CONFIG_HOME")
    needs_user_file = target.user_file is None and not user_config_files()
    if needs_user_file:
        xdg = folder / "xdg"
        xdg.mkdir()
        (xdg / ".spynnaker.cfg").write_text("# empty: the settings are in ../spynnaker.cfg (spikeforge)\n")
        os.environ["XDG_CONFIG_HOME"] = str(xdg)
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(old_cwd)
        if needs_user_file:
            if old_xdg is None:
                os.environ.pop("XDG_CONFIG_HOME", None)
            else:
                os.environ["XDG_CONFIG_HOME"] = old_xdg
