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
  address is ``ft * Kt + kt``; :func:`tile_weights` lays the layer's weights out in that order.
- The column accumulators add the ``Kt`` k-tiles; the requantizer adds the bias and produces
  the layer's int8 output, ``C`` channels per beat; the max pool works on those beats.

All sizes come from the :class:`~accel.plan.plan.StagePlan`; all numbers from the quantized
layer.
"""

from __future__ import annotations

import numpy as np
from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..plan.plan import StagePlan
from ..quant import numerics
from ..quant.qnet import QConv2D, QDense, QMaxPool2D
from .accumulate import ColumnAccumulator
from .layouts import pixel_layout
from .mac_array import MacArrayStream
from .maxpool import MaxPool
from .replay import WindowReplay
from .requantizer import Requantizer
from .window import WindowGenerator

#: The quantized layer's requant mode -> the requantizer's mode.
REQUANT_MODES = {"multiplier": "tflite", "float": "float", "pow2": "pow2"}


def tile_weights(layer: QConv2D | QDense, rows: int, cols: int) -> np.ndarray:
    """The layer's weights as array tiles ``(Ft * Kt, rows, cols)``, tile ``ft * Kt + kt``.

    k-tile ``kt`` of a convolution is tap ``kt // G`` (row-major over ``kh, kw``) and channel
    group ``kt % G`` (``G = ceil(cin / rows)``), i.e. the window generator's beat order; of a
    dense layer it is inputs ``kt * rows ..``. f-tile ``ft`` holds filters ``ft * cols ..``.
    Positions past ``cin`` or ``F`` are zero.
    """
    w = layer.weights
    if isinstance(layer, QDense):
        w = w.reshape(1, 1, *w.shape)  # a 1x1 convolution over the flattened input
    kh, kw, cin, filters = w.shape
    groups = -(-cin // rows)
    f_tiles = -(-filters // cols)
    padded = np.zeros((kh, kw, groups * rows, f_tiles * cols), np.int64)
    padded[:, :, :cin, :filters] = w
    # (kh, kw, G, R, Ft, C) -> (Ft, kh, kw, G, R, C) -> (Ft * Kt, R, C)
    tiles = padded.reshape(kh, kw, groups, rows, f_tiles, cols).transpose(4, 0, 1, 2, 3, 5)
    return tiles.reshape(f_tiles * kh * kw * groups, rows, cols)


def _input_bits(layer) -> int:
    q = layer.input
    return numerics.signed_bits_for(q.qmin - q.zero_point, q.qmax - q.zero_point)


def accumulator_bits(layer: QConv2D | QDense) -> int:
    """Width of the window sums (bias excluded): exact for the layer's actual weights."""
    q = layer.input
    terms = int(np.prod(layer.weights.shape[:-1]))
    lo, hi = numerics.accumulator_range(
        terms=terms, x_range=(q.qmin - q.zero_point, q.qmax - q.zero_point),
        w_range=(int(layer.weights.min()), int(layer.weights.max())))
    return numerics.signed_bits_for(lo, hi)


def _requantizer_args(layer: QConv2D | QDense, channels: int, lanes: int,
                      acc_bits: int) -> dict:
    rq = layer.requant
    mode = REQUANT_MODES[rq.mode]
    args = dict(channels=channels, lanes=lanes, acc_bits=acc_bits, out_bits=layer.output.bits,
                mode=mode, bias=layer.bias.astype(np.int64),
                zero_point=rq.zero_point if mode != "pow2" else 0,
                act_min=rq.act_min, act_max=rq.act_max)
    if mode == "tflite":
        args.update(multiplier=rq.multiplier.astype(np.int64), shift=rq.shift.astype(np.int64))
    elif mode == "float":
        args.update(scale=np.asarray(rq.scale, np.float64))
    else:
        args.update(shift=rq.shift.astype(np.int64))
    return args


class ComputeStage(wiring.Component):
    """A Conv2D or Dense layer, and the max pool fused after it, as a streaming stage.

    Parameters
    ----------
    plan : StagePlan
        Array size, folding and geometry.
    layer : QConv2D or QDense
        The quantized layer (weights, bias, requantization).
    pool : QMaxPool2D or None
        A max pool to fuse after the requantizer.

    Members
    -------
    i : In(stream.Signature(pixel_layout(plan.rows)))
        Input activations, ``rows`` channels per beat (for a Dense layer: the flattened vector,
        ``rows`` values per beat), ``last`` on the frame's final beat.
    o : Out(stream.Signature(pixel_layout(plan.cols)))
        Output activations, ``cols`` channels per beat.
    """

    def __init__(self, *, plan: StagePlan, layer: QConv2D | QDense,
                 pool: QMaxPool2D | None = None):
        if pool is not None and (pool.act_min > layer.requant.act_min
                                 or pool.act_max < layer.requant.act_max):
            raise ValueError(f"pool {pool.name} clamps to [{pool.act_min}, {pool.act_max}], "
                             f"narrower than {layer.name}'s output; put the activation before "
                             f"the pool")
        self.plan, self.layer, self.pool = plan, layer, pool
        self.in_lanes, self.out_lanes = plan.rows, plan.cols
        self.acc_bits = accumulator_bits(layer)
        g, in_bits = plan.geometry, layer.input.bits
        zp = layer.input.zero_point
        # The blocks are built here (not in elaborate) so testbenches can watch them.
        self.window = None
        if isinstance(layer, QConv2D):
            self.window = WindowGenerator(
                height=g.in_h, width=g.in_w, channels=g.in_channels, kernel=g.kernel,
                strides=g.strides, padding=g.padding, lanes=plan.rows, zero_point=zp,
                bits=in_bits)
        self.replay = WindowReplay(lanes=plan.rows, k_tiles=plan.k_tiles,
                                   f_tiles=plan.f_tiles, bits=in_bits)
        self.array = MacArrayStream(
            rows=plan.rows, cols=plan.cols, weights=tile_weights(layer, plan.rows, plan.cols),
            input_bits=_input_bits(layer), weight_bits=layer.weight_bits, tag_bits=3)
        self.accumulator = ColumnAccumulator(cols=plan.cols, acc_bits=self.acc_bits)
        self.requantizer = Requantizer(**_requantizer_args(layer, g.filters, plan.cols,
                                                           self.acc_bits))
        self.maxpool = None
        if pool is not None:
            self.maxpool = MaxPool(
                height=g.out_h, width=g.out_w, channels=g.filters, pool=pool.pool_size,
                strides=pool.strides, padding=pool.padding, lanes=plan.cols,
                bits=layer.output.bits, zero_point=layer.output.zero_point)
        super().__init__({
            "i": In(stream.Signature(pixel_layout(plan.rows, in_bits))),
            "o": Out(stream.Signature(pixel_layout(plan.cols, layer.output.bits))),
        })

    def elaborate(self, platform):
        m = Module()
        kt_n = self.plan.k_tiles
        zp = self.layer.input.zero_point

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
        m.d.comb += [
            array.i.valid.eq(replay.o.valid),
            replay.o.ready.eq(array.i.ready),
            array.i.payload.addr.eq(r.ft * kt_n + r.kt),
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
