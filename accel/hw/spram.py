"""The iCE40 UltraPlus single-port RAM (``SB_SPRAM256KA``, 16 K x 16 bits, four on a UP5K) and
wider/deeper memories built from several of them.

On an iCE40 UltraPlus platform the primitive is instantiated; everywhere else (``amaranth.sim``,
Verilog for other tools, other families) an ``amaranth.lib.memory`` model with the same timing
stands in: a read returns its word one cycle after the address (the output register of the
primitive), and a write stores the nibbles whose mask bit is set.
"""

from __future__ import annotations

from amaranth import Cat, ClockSignal, Const, Instance, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SPRAM_DEPTH", "SPRAM_WIDTH", "SPRAM", "SPRAMArray", "SPRAMBurstMemory",
           "is_ice40_ultraplus"]

#: Words and bits per word of one ``SB_SPRAM256KA``.
SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16


def is_ice40_ultraplus(platform) -> bool:
    """Whether ``platform`` is an Amaranth iCE40 UltraPlus platform (the family with SPRAM)."""
    from amaranth.vendor import SiliconBluePlatform

    return (isinstance(platform, SiliconBluePlatform)
            and str(getattr(platform, "device", "")).startswith("iCE40UP"))


def _check_primitive(primitive):
    if not (primitive is None or isinstance(primitive, bool)):
        raise TypeError(f"primitive must be None, True or False, not {primitive!r}")


class SPRAM(wiring.Component):
    """One ``SB_SPRAM256KA``: 16 K words of 16 bits, one port, one-cycle read latency.

    Parameters
    ----------
    primitive : bool or None
        ``True`` instantiates ``SB_SPRAM256KA``, ``False`` uses the memory model, ``None``
        (default) instantiates the primitive only when elaborated for an iCE40 UltraPlus
        platform.

    Members
    -------
    addr : In(14)
        Word address.
    en : In(1)
        Chip select: nothing happens in a cycle where it is low, and ``r_data`` holds.
    w_en : In(1)
        With ``en``, write ``w_data`` to ``addr`` (nibbles selected by ``w_mask``); without it,
        read ``addr``.
    w_data : In(16)
        Write data.
    w_mask : In(4)
        Nibble write enables: bit ``i`` writes ``w_data[4*i:4*i+4]`` (two set bits per byte give
        byte writes).
    r_data : Out(16)
        The word read in the previous cycle (``latency`` = 1); it holds until the next read.
        After a write the primitive's output is undefined until the next read, so readers must
        not rely on it (the model holds it).
    """

    latency = 1

    def __init__(self, *, primitive: bool | None = None):
        _check_primitive(primitive)
        self._primitive = primitive
        super().__init__({
            "addr": In(14),
            "en": In(1),
            "w_en": In(1),
            "w_data": In(SPRAM_WIDTH),
            "w_mask": In(4),
            "r_data": Out(SPRAM_WIDTH),
        })

    def elaborate(self, platform):
        m = Module()
        primitive = self._primitive
        if primitive is None:
            primitive = is_ice40_ultraplus(platform)
        if primitive:
            m.submodules.spram = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=self.addr, i_DATAIN=self.w_data, i_MASKWREN=self.w_mask,
                i_WREN=self.w_en, i_CHIPSELECT=self.en, i_CLOCK=ClockSignal("sync"),
                i_STANDBY=Const(0), i_SLEEP=Const(0),
                i_POWEROFF=Const(1),  # active low: 1 keeps the array powered
                o_DATAOUT=self.r_data)
        else:
            m.submodules.mem = mem = memory.Memory(shape=SPRAM_WIDTH, depth=SPRAM_DEPTH, init=[])
            wr = mem.write_port(granularity=4)
            rd = mem.read_port(transparent_for=())
            m.d.comb += [
                wr.addr.eq(self.addr), wr.data.eq(self.w_data),
                wr.en.eq(Mux(self.en & self.w_en, self.w_mask, 0)),
                rd.addr.eq(self.addr), rd.en.eq(self.en & ~self.w_en),
                self.r_data.eq(rd.data),
            ]
        return m


class SPRAMArray(wiring.Component):
    """A ``width`` x ``depth`` single-port memory made of ``SPRAM`` blocks: ``width // 16``
    blocks side by side per bank and ``depth // 16384`` banks selected by the high address bits.

    Parameters
    ----------
    width : int
        Bits per word, a positive multiple of 16.
    depth : int
        Words, a positive multiple of 16384.
    max_blocks : int
        How many ``SB_SPRAM256KA`` the device has (4 on the iCE40UP5K); more blocks are an error.
    primitive : bool or None
        As for :class:`SPRAM`.

    Members
    -------
    addr : In(range(depth))
    en : In(1)
    w_en : In(1)
    w_data : In(width)
    w_mask : In(width // 4)
        Nibble write enables, bit ``i`` for ``w_data[4*i:4*i+4]``.
    r_data : Out(width)
        The word read in the previous cycle (``latency`` = 1), held until the next read.
    """

    latency = 1

    def __init__(self, *, width: int, depth: int, max_blocks: int = 4,
                 primitive: bool | None = None):
        if not isinstance(width, int) or width <= 0 or width % SPRAM_WIDTH:
            raise ValueError(f"width must be a positive multiple of {SPRAM_WIDTH}, not {width!r}")
        if not isinstance(depth, int) or depth <= 0 or depth % SPRAM_DEPTH:
            raise ValueError(f"depth must be a positive multiple of {SPRAM_DEPTH}, not {depth!r}")
        if not isinstance(max_blocks, int) or max_blocks <= 0:
            raise ValueError(f"max_blocks must be a positive integer, not {max_blocks!r}")
        _check_primitive(primitive)
        self.lanes = width // SPRAM_WIDTH
        self.banks = depth // SPRAM_DEPTH
        self.blocks = self.lanes * self.banks
        if self.blocks > max_blocks:
            raise ValueError(f"a {width} x {depth} memory needs {self.blocks} SPRAM blocks, "
                             f"more than max_blocks={max_blocks}")
        self.width, self.depth = width, depth
        self._primitive = primitive
        super().__init__({
            "addr": In(range(depth)),
            "en": In(1),
            "w_en": In(1),
            "w_data": In(width),
            "w_mask": In(width // 4),
            "r_data": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        bank = self.addr[14:] if self.banks > 1 else Const(0, 1)
        # The bank of the last read picks the output: r_data belongs to the previous cycle.
        r_bank = Signal.like(bank)
        with m.If(self.en & ~self.w_en):
            m.d.sync += r_bank.eq(bank)
        bank_data = []
        for b in range(self.banks):
            lanes = []
            for lane in range(self.lanes):
                blk = SPRAM(primitive=self._primitive)
                m.submodules[f"spram_b{b}_l{lane}"] = blk
                m.d.comb += [
                    blk.addr.eq(self.addr[:14]),
                    blk.en.eq(self.en & (bank == b)),
                    blk.w_en.eq(self.w_en),
                    blk.w_data.eq(self.w_data[lane * 16:(lane + 1) * 16]),
                    blk.w_mask.eq(self.w_mask[lane * 4:(lane + 1) * 4]),
                ]
                lanes.append(blk.r_data)
            bank_data.append(Cat(*lanes))
        out = bank_data[0]
        for b in range(1, self.banks):
            out = Mux(r_bank == b, bank_data[b], out)
        m.d.comb += self.r_data.eq(out)
        return m


class SPRAMBurstMemory(wiring.Component):
    """An :class:`SPRAMArray` behind the burst request/response interface of the other weight
    memories (so a :class:`~accel.hw.burst_reader.BurstReader` streams from it), plus a write
    stream to load it: SPRAM has no initial contents in the bitstream, so weights arrive at
    power-up (e.g. from the SPI flash).

    Reads go first; a write waits while a burst is being read. Under backpressure the read
    word is held in a register, so a write in between cannot disturb it.

    Parameters
    ----------
    width, depth, max_blocks, primitive
        As for :class:`SPRAMArray`.
    max_burst : int
        The longest read request, in words.

    Members
    -------
    cmd : In(stream.Signature(burst_request_layout(addr_width, max_burst)))
        Read ``length`` words from ``addr``.
    rsp : Out(stream.Signature(width))
        The words, in order.
    writes : In(stream.Signature(StructLayout({"addr": addr_width, "data": width})))
        Whole-word writes.
    """

    def __init__(self, *, width: int, depth: int, max_burst: int = 64, max_blocks: int = 4,
                 primitive: bool | None = None):
        from .burst_reader import burst_request_layout

        if not isinstance(max_burst, int) or isinstance(max_burst, bool) or max_burst <= 0:
            raise ValueError(f"max_burst must be a positive integer, not {max_burst!r}")
        self._array = SPRAMArray(width=width, depth=depth, max_blocks=max_blocks,
                                 primitive=primitive)
        self.width, self.depth, self.max_burst = width, depth, max_burst
        self.addr_width = (depth - 1).bit_length()
        super().__init__({
            "cmd": In(stream.Signature(burst_request_layout(self.addr_width, max_burst))),
            "rsp": Out(stream.Signature(width)),
            "writes": In(stream.Signature(data.StructLayout(
                {"addr": unsigned(self.addr_width), "data": unsigned(width)}))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = self._array
        addr = Signal(self.addr_width)
        left = Signal(range(self.max_burst + 1))
        fresh = Signal()                   # array.r_data is the word of the last read
        held = Signal(self.width)
        m.d.comb += self.cmd.ready.eq(left == 0)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [addr.eq(self.cmd.payload.addr), left.eq(self.cmd.payload.length)]

        # A read is issued when its word will have a place: rsp empty, or being taken now.
        read = Signal()
        m.d.comb += read.eq((left != 0) & (~self.rsp.valid | self.rsp.ready))
        write = Signal()
        m.d.comb += [write.eq(~read & self.writes.valid), self.writes.ready.eq(write)]
        m.d.comb += [
            array.en.eq(read | write), array.w_en.eq(write),
            array.addr.eq(Mux(write, self.writes.payload.addr, addr)),
            array.w_data.eq(self.writes.payload.data),
            array.w_mask.eq(Const(-1, self.width // 4)),
        ]
        with m.If(read):
            m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
        m.d.sync += fresh.eq(read)
        with m.If(fresh):
            m.d.sync += held.eq(array.r_data)
        m.d.comb += self.rsp.payload.eq(Mux(fresh, array.r_data, held))
        with m.If(read):
            m.d.sync += self.rsp.valid.eq(1)
        with m.Elif(self.rsp.ready):
            m.d.sync += self.rsp.valid.eq(0)
        return m
