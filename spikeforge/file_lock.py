"""An exclusive lock on a file, so parallel processes (pytest-xdist workers, two CLI runs) building the
same cached artefact -- a simulator build, a bitstream, a Yosys census -- build it once."""

import fcntl
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def locked(path: Path):
    """Hold an exclusive flock on ``path`` (created, with its folder, if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
