"""The boards spikeforge builds bitstreams for: platform, part, clocks, UART, and what the chip holds.

Every board is one :class:`Board` record. The Amaranth platform comes from amaranth-boards (it has all
three: ICEBreakerPlatform, ULX3S_85F_Platform, CmodA7_35Platform), so pins and I/O standards are the
community-checked ones. The resource totals are the data-sheet numbers of the part; the capacity
model (boards/capacity.py) and the report compare against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class BoardError(ValueError):
    """An unknown board name; the message lists the known ones."""


@dataclass(frozen=True)
class Resources:
    """What one FPGA holds. ``luts`` counts the family's logic unit as nextpnr/Vivado report it
    (iCE40: logic cells = LUT4 + FF; ECP5: LUT4; 7 series: LUT6)."""

    luts: int
    ffs: int
    bram_tiles: int          # block RAM tiles of ``bram_tile_bits`` each
    bram_tile_bits: int
    dsps: int
    spram_tiles: int = 0     # iCE40 UP single-port RAM, 256 Kbit each
    spram_tile_bits: int = 256 * 1024
    plls: int = 1

    @property
    def bram_bits(self) -> int:
        return self.bram_tiles * self.bram_tile_bits

    @property
    def spram_bits(self) -> int:
        return self.spram_tiles * self.spram_tile_bits


@dataclass(frozen=True)
class Board:
    """One board: ``name`` is what ``--board`` takes."""

    name: str
    title: str
    family: str              # ice40 | ecp5 | xc7
    part: str                # as the vendor writes it
    platform_module: str
    platform_class: str
    clock_resource: str
    clock_hz: float
    default_clock_hz: float  # the core clock a build aims for unless --clock says otherwise
    resources: Resources
    bitstream: str           # file the flow writes: top.bin or top.bit
    openfpgaloader: tuple[str, ...]   # board selection options for openFPGALoader
    leds: int = 2
    notes: str = ""
    #: widths (bits) of one word of the memory the weights live in; lanes are chosen to fill one
    weight_memory_width: int = 16
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def platform(self, **kwargs):
        """A fresh Amaranth platform object (one per build: platforms are single-use)."""
        import importlib

        module = importlib.import_module(self.platform_module)
        return getattr(module, self.platform_class)(**kwargs)

    @property
    def nextpnr(self) -> str | None:
        return {"ice40": "nextpnr-ice40", "ecp5": "nextpnr-ecp5"}.get(self.family)

    @property
    def open_toolchain(self) -> bool:
        """True when the YoWASP tools build this board (iCE40, ECP5); 7 series needs Vivado."""
        return self.family in ("ice40", "ecp5")

    def to_dict(self) -> dict:
        r = self.resources
        return {
            "name": self.name, "title": self.title, "family": self.family, "part": self.part,
            "clock_hz": self.clock_hz, "default_clock_hz": self.default_clock_hz,
            "resources": {"luts": r.luts, "ffs": r.ffs, "bram_tiles": r.bram_tiles,
                          "bram_tile_bits": r.bram_tile_bits, "spram_tiles": r.spram_tiles,
                          "dsps": r.dsps},
        }


ICEBREAKER = Board(
    name="icebreaker",
    title="1BitSquared iCEBreaker",
    family="ice40",
    part="iCE40UP5K-SG48",
    platform_module="amaranth_boards.icebreaker",
    platform_class="ICEBreakerPlatform",
    clock_resource="clk12",
    clock_hz=12e6,
    default_clock_hz=24e6,
    # 5,280 logic cells, 30 EBR of 4 Kbit, 4 SPRAM of 256 Kbit, 8 SB_MAC16
    resources=Resources(luts=5280, ffs=5280, bram_tiles=30, bram_tile_bits=4096, dsps=8, spram_tiles=4),
    bitstream="top.bin",
    openfpgaloader=("-b", "ice40_generic"),
    notes="iCE40 UltraPlus: the weights go to SPRAM (1 Mbit), everything else to 4 Kbit EBR.",
    weight_memory_width=16,
    aliases=("icebreaker-up5k", "ice40"),
)

ULX3S_85F = Board(
    name="ulx3s-85f",
    title="Radiona ULX3S 85F",
    family="ecp5",
    part="LFE5U-85F-6BG381C",
    platform_module="amaranth_boards.ulx3s",
    platform_class="ULX3S_85F_Platform",
    clock_resource="clk25",
    clock_hz=25e6,
    # the routed core reaches 26-36 MHz on the LFE5U-85F-6 (benchmarks/RESULTS.md, Boards): 25 MHz is
    # met by every configuration measured; --clock asks for more when a build's report shows the margin
    default_clock_hz=25e6,
    # 83,640 LUT4, 208 DP16KD of 18 Kbit, 156 MULT18X18D
    resources=Resources(luts=83640, ffs=83640, bram_tiles=208, bram_tile_bits=18 * 1024, dsps=156, plls=4),
    bitstream="top.bit",
    openfpgaloader=("-b", "ulx3s"),
    leds=8,
    notes="ECP5: DP16KD block RAM is 36 bits wide in pseudo-dual-port mode.",
    weight_memory_width=36,
    aliases=("ulx3s", "ulx3s85", "ecp5"),
)

CMOD_A7_35T = Board(
    name="cmod-a7-35t",
    title="Digilent Cmod A7-35T",
    family="xc7",
    part="xc7a35tcpg236-1",
    platform_module="amaranth_boards.cmod_a7",
    platform_class="CmodA7_35Platform",
    clock_resource="clk12",
    clock_hz=12e6,
    # not timed here (no Vivado on the build machine). NeuroCoreX runs at 100 MHz on this part; our core
    # reaches 26-36 MHz on ECP5-6, and Artix-7-1 fabric is roughly 2x faster, so 50 MHz is the default a
    # first build is expected to meet; Vivado's timing report says whether --clock 100 does
    default_clock_hz=50e6,
    # 20,800 LUT6, 41,600 FF, 50 RAMB36 (36 Kbit), 90 DSP48E1
    resources=Resources(luts=20800, ffs=41600, bram_tiles=50, bram_tile_bits=36 * 1024, dsps=90, plls=5),
    bitstream="top.bit",
    openfpgaloader=("-b", "cmoda7_35t"),
    notes="Artix-7: built by Vivado (no open-source place and route here); RAMB36 is 72 bits wide in SDP mode.",
    weight_memory_width=36,
    aliases=("cmoda7", "cmod-a7", "xc7a35t", "neurocorex"),
)

BOARDS: dict[str, Board] = {b.name: b for b in (ICEBREAKER, ULX3S_85F, CMOD_A7_35T)}


def get_board(name: str) -> Board:
    """The board called ``name`` (or one of its aliases), case-insensitive."""
    if isinstance(name, Board):
        return name
    key = str(name).strip().lower().replace("_", "-")
    for board in BOARDS.values():
        if key == board.name or key in board.aliases:
            return board
    raise BoardError(
        f"unknown board {name!r}; spikeforge builds for: "
        + ", ".join(f"{b.name} ({b.title}, {b.part})" for b in BOARDS.values())
    )
