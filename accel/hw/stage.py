"""One compute stage of the accelerator: a Conv2D or Dense layer (with its fused max pool).

::

    pixels --> [WindowGenerator] --> WindowReplay --> offset/addr --> MacArrayStream
           --> ColumnAccumulator --> Requantizer --> [MaxPool] --> pixels

- The window generator (convolutions only) turns the input pixels, ``R`` channels per beat,
  into the ``Kt = kh * kw * ceil(cin / R)`` beats of each window. A Dense layer's window is its
  whole input vector, which arrives in flatten order already, so it goes straight to the replay
  buffer.
- :class:`~accel.hw.replay.WindowReplay` sends every window through the array once per f-tile.
- The input zero point is subtracted here (``x - zp``, 9 bits for int8) and the array's weight
  address is ``ft * Kt + kt``.
- The column accumulators add the ``Kt`` k-tiles; the requantizer adds the bias and produces
  the layer's int8 output, ``C`` channels per beat; the max pool works on those beats.

All sizes and all numbers (weights, requantization constants) come from the
:class:`~accel.plan.plan.StagePlan`; :func:`~accel.plan.lower.tile_weights` lays the layer's
weights out in the array's address order.

Streamed weights
----------------
When the plan streams the layer's weights (``plan.streamed``, a Dense layer), the PEs have no
ROMs: a :class:`~accel.hw.weight_stream.WeightStream` reads the tiles from external memory
through the stage's ``weights`` port, in the order the replay sends the beats (address
``ft * Kt + kt`` ascending), and each replayed beat enters the array together with the next
tile; a beat waits for its tile and a tile for its beat. At ``batch > 1`` the replay and the
accumulator are :mod:`~accel.hw.batch`'s: each tile enters the array once per image of the
batch, and the sums leave image by image.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..plan.lower import accumulator_bits, tile_weights
from ..plan.plan import StagePlan
from .accumulate import ColumnAccumulator
from .batch import BatchAccumulator, BatchReplay
from .layouts import pixel_layout
from .mac_array import MacArrayStream
from .maxpool import MaxPool
from .replay import WindowReplay
from .requantizer import Requantizer
from .weight_stream import WeightStream, weight_port_signature
from .window import WindowGenerator

__all__ = ["ComputeStage", "accumulator_bits", "tile_weights"]


class ComputeStage(wiring.Component):
    """A Conv2D or Dense layer, and the max pool fused after it, as a streaming stage.

    Parameters
    ----------
    plan : StagePlan
        Everything: geometry, folding, widths, the tiled weights and the requantizer's
        constants (the quantized layer is not needed).

    Members
    -------
    i : In(stream.Signature(pixel_layout(plan.rows, plan.in_bits)))
        Input activations, ``rows`` channels per beat (for a Dense layer: the flattened vector,
        ``rows`` values per beat), ``last`` on the frame's final beat.
    o : Out(stream.Signature(pixel_layout(plan.cols, plan.out_bits)))
        Output activations, ``cols`` channels per beat.
    weights : Out(weight_port_signature(...))
        Only when ``plan.streamed``: the weight memory's port (``mem_cmd`` out, ``mem_rsp``
        in; :class:`~accel.hw.burst_reader.BurstReader`'s memory side), reading the words at
        ``plan.streamed.base`` onward, one frame of ``words_per_image`` per batch of
        ``plan.streamed.batch`` images.
    """

    def __init__(self, *, plan: StagePlan):
        self.plan = plan
        self.in_lanes, self.out_lanes = plan.rows, plan.cols
        self.acc_bits = plan.accumulator.acc_bits
        # The blocks are built here (not in elaborate) so testbenches can watch them.
        self.window = None if plan.window is None else WindowGenerator.from_plan(plan.window)
        ws = plan.streamed
        if ws is not None and ws.batch > 1:
            # Each weight tile serves the batch's images in turn (accel.hw.batch).
            self.replay = BatchReplay(**plan.replay.component_args(), batch=ws.batch)
            self.accumulator = BatchAccumulator(**plan.accumulator.component_args(),
                                                batch=ws.batch, f_tiles=plan.f_tiles)
        else:
            self.replay = WindowReplay.from_plan(plan.replay)
            self.accumulator = ColumnAccumulator.from_plan(plan.accumulator)
        self.array = MacArrayStream.from_plan(plan.array)
        self.requantizer = Requantizer.from_plan(plan.requant)
        self.maxpool = None if plan.maxpool is None else MaxPool.from_plan(plan.maxpool)
        self.weight_stream = (None if ws is None
                              else WeightStream(plan=ws, lanes=plan.rows * plan.cols))
        members = {
            "i": In(stream.Signature(pixel_layout(plan.rows, plan.in_bits))),
            "o": Out(stream.Signature(pixel_layout(plan.cols, plan.out_bits))),
        }
        if ws is not None:
            members["weights"] = Out(weight_port_signature(
                addr_width=ws.addr_bits, max_burst=ws.max_burst, word_width=ws.word_bits))
        super().__init__(members)

    @property
    def feed(self) -> tuple:
        """``(stream, frame_end)``: the beats the array takes, and the beat that ends a frame
        (a batch, at ``batch > 1``), for a testbench timing the stage's busy span."""
        return self.array.i, self.array.i.payload.tag[2]

    def elaborate(self, platform):
        m = Module()
        zp = self.plan.in_zero_point

        # 1. windows (a Dense layer's window is its whole input vector)
        if self.window is not None:
            m.submodules.window = window = self.window
            wiring.connect(m, wiring.flipped(self.i), window.pixels)
            source = window.windows
            source_last = window.windows.payload.frame_last
        else:
            source = self.i
            source_last = self.i.payload.last

        # 2. replay each window once per f-tile
        m.submodules.replay = replay = self.replay
        m.d.comb += [
            replay.i.valid.eq(source.valid),
            replay.i.payload.data.eq(source.payload.data),
            replay.i.payload.last.eq(source_last),
            source.ready.eq(replay.i.ready),
        ]

        # 3. subtract the input zero point, address the weight tile, through the array
        m.submodules.array = array = self.array
        r = replay.o.payload
        if self.weight_stream is None:
            m.d.comb += [array.i.valid.eq(replay.o.valid), replay.o.ready.eq(array.i.ready)]
        else:
            m.submodules.weight_stream = tiles = self.weight_stream
            wiring.connect(m, tiles.mem, wiring.flipped(self.weights))
            # A tile serves the batch's images, one beat each, and is taken with the last.
            batch = self.plan.streamed.batch
            done = 1
            if batch > 1:
                uses = Signal(range(batch))
                done = uses == batch - 1
                with m.If(array.i.valid & array.i.ready):
                    m.d.sync += uses.eq(Mux(done, 0, uses + 1))
            m.d.comb += [
                array.i.valid.eq(replay.o.valid & tiles.o.valid),
                replay.o.ready.eq(array.i.ready & tiles.o.valid),
                tiles.o.ready.eq(array.i.ready & replay.o.valid & done),
                array.i.payload.w.eq(tiles.o.payload),
            ]
        m.d.comb += [
            array.i.payload.addr.eq(r.addr),
            array.i.payload.tag.eq(r.first | (r.last << 1) | (r.frame_last << 2)),
        ]
        for lane in range(self.plan.rows):
            m.d.comb += array.i.payload.x[lane].eq(r.data[lane] - zp)

        # 4. add the k-tiles of each (pixel, f-tile)
        m.submodules.acc = acc = self.accumulator
        tag = array.o.payload.tag
        m.d.comb += [
            acc.i.valid.eq(array.o.valid),
            array.o.ready.eq(acc.i.ready),
            acc.i.payload.first.eq(tag[0]),
            acc.i.payload.last.eq(tag[1]),
            acc.i.payload.frame_last.eq(tag[2]),
        ]
        for c in range(self.plan.cols):
            m.d.comb += acc.i.payload.y[c].eq(array.o.payload.y[c])

        # 5. bias, requantization, activation clamp; 6. the fused max pool
        m.submodules.requant = requant = self.requantizer
        wiring.connect(m, acc.o, requant.i)
        out = requant.o
        if self.maxpool is not None:
            m.submodules.pool = self.maxpool
            wiring.connect(m, requant.o, self.maxpool.i)
            out = self.maxpool.o
        wiring.connect(m, out, wiring.flipped(self.o))
        return m
