"""Whole-word writes into SDRAM through a LiteDRAM native user port: the write-stream side of
:class:`accel.hw.litedram_port.LiteDRAMReader`, so the power-up loader
(:class:`~accel.hw.flash_image_loader.FlashImageLoader`) fills SDRAM as it fills SPRAM.
Modelled on the inline writer of ``sim/litedram/top.py``, with the data decoupled from the
command by a small FIFO (as LiteDRAM's own DMA writer does), so a write goes every cycle the
controller takes one.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .litedram_port import native_port_signature
from .weight_loader import write_layout

__all__ = ["LiteDRAMWriter"]


class LiteDRAMWriter(wiring.Component):
    """Writes each ``(addr, data)`` from ``writes`` as one native-port write command (all byte
    enables set) and its data word, in order.

    Parameters
    ----------
    addr_width : int
        Word address bits of the port (25 for 32 MB of 16-bit words).
    data_width : int
        Port data width in bits, a multiple of 8.
    data_depth : int
        Write data words that may wait for the controller after their command went.

    Members
    -------
    writes : In(stream.Signature(write_layout(addr_width, data_width)))
    port : Out(native_port_signature(addr_width, data_width))
        ``rdata`` is never read (``rdata.ready`` low); give the writer the port, or its own
        port of the core, while it runs.
    idle : Out(1)
        No command or data is waiting: every write taken has been handed to the controller.
    """

    def __init__(self, *, addr_width: int = 25, data_width: int = 16, data_depth: int = 4):
        for name, value in (("addr_width", addr_width), ("data_width", data_width),
                            ("data_depth", data_depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if data_width % 8:
            raise ValueError(f"data_width must be a multiple of 8, not {data_width!r}")
        self.addr_width, self.data_width, self.data_depth = addr_width, data_width, data_depth
        super().__init__({
            "writes": In(stream.Signature(write_layout(addr_width, data_width))),
            "port": Out(native_port_signature(addr_width, data_width)),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.data = data = fifo.SyncFIFOBuffered(width=self.data_width,
                                                         depth=self.data_depth)
        cmd = self.port.cmd
        # The command register frees up in the cycle the controller takes it.
        free = ~cmd.valid | cmd.ready
        m.d.comb += [
            self.writes.ready.eq(free & data.w_rdy),
            data.w_en.eq(self.writes.valid & self.writes.ready),
            data.w_data.eq(self.writes.payload.data),
            self.port.wdata.valid.eq(data.r_rdy),
            self.port.wdata.payload.data.eq(data.r_data),
            self.port.wdata.payload.we.eq((1 << self.data_width // 8) - 1),
            data.r_en.eq(self.port.wdata.ready),
            self.port.rdata.ready.eq(0),
            self.idle.eq(~cmd.valid & ~data.r_rdy),
        ]
        with m.If(cmd.valid & cmd.ready):
            m.d.sync += cmd.valid.eq(0)
        with m.If(self.writes.valid & self.writes.ready):
            m.d.sync += [cmd.valid.eq(1), cmd.payload.addr.eq(self.writes.payload.addr),
                         cmd.payload.we.eq(1)]
        return m
