"""The board protocol served on the host, with the core on a board behind the bus bridge.

``BridgedBoard(bridge, config)`` is the virtual board's command engine (``VirtualBoard``: every
command of docs/protocol.md, every check, NACK code, input slot and RESEND) whose one core is a real
core reached through ``BridgeLink`` -- so ``spikeforge.host.board.Board`` and every ``spikeforge
board`` command run unchanged on an iCEBreaker, whose FPGA is too small for the protocol link. Only
the core is remote: WRITE/READ become bus writes/reads, RUN becomes the bridge's pipelined steps,
LEARNING a CONTROL write, RESET the same zero fills the RTL link's script makes.

The CoreConfig cannot be read from the board (only its hash, CONFIG_HASH): it comes from the build
directory ``spikeforge compile`` wrote (``build=DIR``), a config file or a network file, and is
checked against the core's MAGIC and CONFIG_HASH before anything else happens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeforge.core import protocol as P
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import CoreImage
from spikeforge.core.memory_map import MAGIC, ControlReg, Region, config_hash_word, image_writes
from spikeforge.host.bridge_link import BridgeError, BridgeLink
from spikeforge.host.core_memory import CoreMemory
from spikeforge.host.transfer import write_blocks
from spikeforge.host.virtual_board import StepSlots, VirtualBoard

#: the regions RESET STATE clears (with STEP = 0); parameters, weights and LEARNING stay
_STATE_REGIONS = (Region.NEURON_STATE, Region.X_TRACE, Region.RING)


@dataclass
class RemoteCoreLink(StepSlots):
    """``CoreLink``'s operations (host/virtual_board.py) on a core behind a bus bridge."""

    bridge: BridgeLink
    config: CoreConfig

    def __post_init__(self):
        # only for access checks and the host-held CURRENT_IN slot: never the core's memory
        self.memory = CoreMemory(CoreImage.blank(self.config))
        magic, _, _, _, config_hash = (int(w) for w in self.bridge.read(Region.CONTROL, ControlReg.MAGIC, 5))
        if magic != MAGIC:
            raise BridgeError(f"the core behind the bridge answers MAGIC 0x{magic:08X}, not 0x{MAGIC:08X}: "
                              "the bitstream is not a spikeforge core")
        if config_hash != config_hash_word(self.config):
            raise BridgeError(
                f"the board's core has CoreConfig hash 0x{config_hash:08X} but the given CoreConfig hashes to "
                f"0x{config_hash_word(self.config):08X}: give the build directory of the bitstream on the board "
                "(bridge://PORT?build=DIR, DIR as written by `spikeforge compile`), or flash the bitstream "
                "built for this network")
        self._step = int(self.bridge.read(Region.CONTROL, ControlReg.STEP, 1)[0])

    @property
    def step(self) -> int:
        return self._step

    def validate(self) -> None:
        """The core runs whatever it holds (as the RTL link does): nothing to check here."""

    def write(self, region: int, address: int, words: np.ndarray) -> None:
        words = np.asarray(words, dtype=np.int64) & 0xFFFF_FFFF
        self.bridge.write(region, address, words)
        if region == Region.CONTROL and address <= ControlReg.STEP < address + words.size:
            self._step = int(words[ControlReg.STEP - address])

    def read(self, region: int, address: int, count: int) -> np.ndarray:
        if region == Region.CURRENT_IN:  # the analog inputs of the coming step are held here, as on the link
            return self.memory.read(region, address, count, current_slot=self.currents.get(self._step))
        return self.bridge.read(region, address, count)

    def advance(self, inputs: np.ndarray, currents: np.ndarray | None) -> np.ndarray:
        steps = inputs.shape[0]
        writes = None
        if currents is not None:
            writes = [[(Region.CURRENT_IN, 0, row & 0xFFFF_FFFF)] if row.any() else None for row in currents]
        fired = self.bridge.run([np.flatnonzero(row) for row in inputs], writes, first_step=self._step)
        spikes = np.zeros((steps, self.config.n_neurons), dtype=bool)
        for j, indices in enumerate(fired):
            spikes[j, indices] = True
        self._step = (self._step + steps) & 0xFFFF_FFFF
        return spikes

    def step_once(self, inputs: np.ndarray, currents: np.ndarray | None) -> np.ndarray:
        return self.advance(inputs, currents)[0]

    def set_learning(self, on: bool) -> None:
        self.bridge.write(Region.CONTROL, ControlReg.LEARNING, [int(on)])

    def reset(self, mode: int) -> None:
        blank = CoreImage.blank(self.config)
        if mode == P.ResetMode.STATE:
            writes = [w for w in image_writes(blank) if w[0] in _STATE_REGIONS]
            writes.append((Region.CONTROL, ControlReg.STEP, 0))
        else:
            writes = list(image_writes(blank))
        for region, address, words in write_blocks(writes, P.MAX_WORDS):
            self.write(region, address, np.array(words, dtype=np.int64))


class BridgedBoard(VirtualBoard):
    """The protocol engine of the virtual board with the core of a bus-bridge board behind it.

    ``bridge``: a connected BridgeLink; ``config``: the core's CoreConfig (checked against the board);
    ``baud``: the line rate (IDENTIFY reports it and the core clock, divisor x baud)."""

    def __init__(self, bridge: BridgeLink, config: CoreConfig, *, name: str = "bus-bridge", slots: int = 64,
                 window: int = 4, max_words: int = P.MAX_WORDS, baud: int = 1_000_000):
        super().__init__(config, name=name, slots=slots, window=window, max_words=max_words, baud=baud,
                         engine="golden")
        self.bridge = bridge
        self.links = [RemoteCoreLink(bridge, config)]

    def info(self) -> P.BoardInfo:
        return P.BoardInfo(
            cores=tuple(self.configs), name=self.name, window=self.window,
            clock_hz=int(self.bridge.divisor * self.baud), baud=self.baud, max_words=self.max_words,
            slots=self.slots, flags=P.BoardFlag.FREE_RUNNING if self._free else 0,
        )

    def close(self) -> None:
        super().close()
        self.bridge.port.close()

    def image(self, core: int = 0) -> CoreImage:
        raise NotImplementedError("a bridged board's memory is on the board: read it with Board.read_image()")
