"""Depthwise convolution stage (TFLite ``DEPTHWISE_CONV_2D``, per-channel int8), streaming.

::

    pixels --> WindowGenerator --> x - zp --> PE[0..P-1] (multiply, accumulate over taps
           in time) --> FIFO --> Requantizer --> pixels

Mapping, and why
----------------
A depthwise layer has no reduction over input channels: output channel ``c * m + j`` (``j <
m``, the depth multiplier) is the sum over the ``kh * kw`` taps of input channel ``c`` alone.
The Conv2D mapping (rows reduce input channels, columns are filters, ``x`` shared along a row)
would put one useful product in each column, ``1 / R`` of the array busy.

Here the ``R x C`` multipliers are ``P = L * m`` processing elements, ``L = floor(R * C / m)``
(``lanes``), and **PEs are output channels; taps are reduced in time, inside each PE**:

- The window generator streams each window as ``kh * kw * G`` beats (tap-major, then channel
  group ``g``; ``G = ceil(cin / L)``), ``L`` input channels per beat, one beat per cycle.
- PE ``p`` takes lane ``p // m`` of every beat (input channel ``g * L + p // m``), multiplies
  it by its own weight for (tap, group) -- the weight of output channel ``g * L * m + p`` --
  and adds it to that output's partial sum. So each input value feeds the ``m`` PEs of its
  output channels in the cycle it arrives, every PE does a useful MAC on every beat, and an
  output pixel's ``G`` channel groups leave in order, ``L * m`` consecutive output channels
  each: already the channel-group order of the next stage, no reordering.
- The partial sums of the ``G`` groups of the window in flight live in a ``G``-word memory
  (read-modify-write in the beat's cycle, transparent read), so the generator's interleaving of
  groups inside a tap costs nothing.

Why not rows = taps (a column reducing ``R`` taps of one channel per cycle)? It needs ``R``
taps per cycle from the line buffer, i.e. ``R`` read ports or ``R`` copies of it; the line
buffer we have gives one (tap, group) word per cycle, and with the taps reduced in time it is
exactly the bandwidth the PEs consume. The price is that ``R`` and ``C`` have no dataflow
meaning here (only ``R * C`` counts: PE ``(r, c)`` is ``p = r * C + c``; no sums flow between
PEs), and a layer cannot use more than ``cin * m`` PEs.

Cycles and utilization
----------------------
Per output pixel (:func:`depthwise_cycles`, without stalls)::

    cycles_per_pixel = kh * kw * ceil(cin / L),      L = floor(R * C / m)
    cycles_per_frame = out_h * out_w * cycles_per_pixel

    utilization = kh*kw*cin*m / (cycles_per_pixel * R * C)     (depthwise_utilization)
                = (cin * m) / (ceil(cin / L) * R * C)

1 when ``m`` divides ``R * C`` and ``L`` divides ``cin``; the loss is the unused
``R * C - L * m`` multipliers (not built) and the empty lanes of the last channel group.
The PEs take exactly ``cycles_per_frame`` beats per frame, one per cycle while the window
generator has them. Back to back, a frame's period is that plus the window generator's refill
at the frame boundary: 0 in most geometries (the generator fills the next frame's first rows
while the last windows of a frame are read), a few cycles where its ``kh + sh - 1`` rows cannot
hold them (VALID padding with a stride below the kernel: 1 cycle for 6x5, 2x3 kernel, stride
(1, 2); 5 for 5x4, 3x2, stride 1; measured in ``tests/hw/test_depthwise.py``). The formula
leaves that out (it is the PEs' busy cycles); the plan's interval includes it
(:func:`accel.plan.timing.window_period`).

Latency
-------
``latency`` cycles from the window beat of an output pixel's last tap and group ``g`` being
accepted by the PEs to output beat ``g`` valid at ``o`` (consumer ready): 4 PE stages (operand
and weight ROM, multiplier inputs, product, accumulate), the FIFO write, 1 FIFO cycle, then the
requantizer's latency. Backpressure: the PEs never stall; a credit counter admits a beat that
completes an output only when the FIFO has room for it. With the current requantizer
(latency 11, double rounding) ``latency`` is 17.

Cost (ECP5, ``tests/synth/test_depthwise_synth.py``)
----------------------------------------------------
12x12x16, 3x3 SAME, m = 1 on 2 x 4: the PEs take 8 MULT18X18D (one each), 277 LUT4, 123 CCU2C,
593 FF, 38 DPR16X4 (weight ROM and partial sums); the line buffer 2 DP16KD. The per-lane
:class:`~accel.hw.requantizer.Requantizer` costs 4 MULT18X18D a lane (32 of the stage's 40)
and 3,174 FF, yet the stage emits ``G`` output beats every ``kh * kw * G`` cycles: a
requantizer ``kh * kw`` times narrower, behind a lane serializer, would keep up; not done here.
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from accel.hw.layouts import check_int, check_padding, check_pair, pixel_layout
from accel.hw.requantizer import Requantizer
from accel.hw.window import WindowGenerator
from accel.plan.blocks import (
    DEPTHWISE_FIFO_DEPTH,
    DEPTHWISE_PE_STAGES,
    DepthwisePlan,
    depthwise_frame_cycles,
    depthwise_lane_count,
)
from accel.quant import numerics
from accel.spec.shapes import ceil_div, window_2d

__all__ = ["DepthwiseStage", "depthwise_cycles", "depthwise_lanes", "depthwise_utilization"]

#: Register stages from a beat accepted by the PEs to its sum's FIFO write.
_PE_STAGES = DEPTHWISE_PE_STAGES
#: Output beats the FIFO between the PEs and the requantizer holds.
_FIFO_DEPTH = DEPTHWISE_FIFO_DEPTH


def depthwise_lanes(*, rows: int, cols: int, depth_multiplier: int) -> int:
    """Input channels per beat ``L = floor(rows * cols / depth_multiplier)`` (>= 1 required)."""
    rows = check_int("rows", rows, 1)
    cols = check_int("cols", cols, 1)
    m = check_int("depth_multiplier", depth_multiplier, 1)
    if rows * cols < m:
        raise ValueError(f"rows * cols must be at least depth_multiplier {m}, "
                         f"not {rows} * {cols}")
    return depthwise_lane_count(rows, cols, m)


def depthwise_cycles(*, height: int, width: int, channels: int, kernel, strides=1,
                     padding: str = "valid", depth_multiplier: int = 1, rows: int,
                     cols: int) -> int:
    """Cycles per frame of a :class:`DepthwiseStage` without stalls (the planner's model):
    ``out_h * out_w * kh * kw * ceil(channels / L)``, ``L`` = :func:`depthwise_lanes`."""
    kh, kw = check_pair("kernel", kernel)
    lanes = depthwise_lanes(rows=rows, cols=cols, depth_multiplier=depth_multiplier)
    win = window_2d((check_int("height", height, 1), check_int("width", width, 1)),
                    (kh, kw), check_pair("strides", strides), check_padding(padding))
    return depthwise_frame_cycles(win.out_shape, (kh, kw), check_int("channels", channels, 1),
                                  lanes)


def depthwise_utilization(*, channels: int, depth_multiplier: int = 1, rows: int,
                          cols: int) -> float:
    """Useful MACs per multiplier-cycle of the ``rows x cols`` budget:
    ``cin * m / (ceil(cin / L) * rows * cols)`` (independent of the kernel and the image)."""
    lanes = depthwise_lanes(rows=rows, cols=cols, depth_multiplier=depth_multiplier)
    cin = check_int("channels", channels, 1)
    return cin * depth_multiplier / (ceil_div(cin, lanes) * rows * cols)


def _int_param(name: str, value: object, shape: tuple[int, ...], lo: int, hi: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an array of integers, not {value!r}")
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, not {arr.shape}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"{name} must lie in {lo}..{hi}, not values in "
                         f"{int(arr.min())}..{int(arr.max())}")
    return arr


class DepthwiseStage(wiring.Component):
    """A DEPTHWISE_CONV_2D layer (int8, per-channel requantization) as a streaming stage.

    Parameters
    ----------
    height, width, channels : int
        Input image size and input channels ``cin``, >= 1.
    kernel : int or (int, int)
        ``(kh, kw)``.
    strides : int or (int, int)
        ``(sh, sw)``; default 1.
    padding : str
        ``"valid"`` or ``"same"``; padding taps are the input zero point (contribute 0).
    depth_multiplier : int
        ``m >= 1``: output channel ``c * m + j`` reads input channel ``c``.
    rows, cols : int
        The multiplier budget ``R x C``; ``L * m`` PEs are built (see the module documentation).
    weights : array of int, shape (kh, kw, cin * m) or (1, kh, kw, cin * m)
        int8 filter in TFLite's layout, values in -128..127.
    bias : array of int, shape (cin * m,)
        int32 bias.
    multiplier, shift : array of int, shape (cin * m,)
        Per-channel Q31 multipliers and TFLite shifts
        (:func:`accel.quant.tflite_kernels.depthwise_multipliers`).
    input_zero_point, output_zero_point : int
        int8 zero points.
    act_min, act_max : int
        Fused activation clamp, int8; default the whole range.

    Members
    -------
    i : In(stream.Signature(pixel_layout(lanes)))
        Input pixels in raster order, ``lanes`` channels per beat (``ceil(cin / lanes)`` beats
        per pixel), frames back to back; ``last`` is ignored (positions are counted).
    o : Out(stream.Signature(pixel_layout(lanes * depth_multiplier)))
        Output pixels in raster order, ``lanes * m`` channels per beat (``ceil(cin / lanes)``
        beats per pixel; lanes past ``cin * m`` hold the output zero point), ``last`` on the
        final beat of a frame.

    Attributes
    ----------
    lanes : int
        ``L = floor(rows * cols / m)``.
    pes : int
        Multipliers built, ``L * m``.
    groups : int
        ``G = ceil(cin / L)``.
    out_shape : (int, int)
        Output rows and columns.
    acc_bits : int
        Width of the window sums (exact for these weights, bias excluded).
    cycles : int
        :func:`depthwise_cycles`: cycles per frame without stalls.
    latency : int
        Cycles from the PEs accepting an output pixel's last-tap beat of group ``g`` to
        output beat ``g`` valid at ``o``.
    """

    def __init__(self, *, height: int, width: int, channels: int, kernel, strides=1,
                 padding: str = "valid", depth_multiplier: int = 1, rows: int, cols: int,
                 weights, bias, multiplier, shift, input_zero_point: int,
                 output_zero_point: int, act_min: int = -128, act_max: int = 127) -> None:
        self.plan = None
        self.height = check_int("height", height, 1)
        self.width = check_int("width", width, 1)
        self.channels = check_int("channels", channels, 1)
        self.kernel = check_pair("kernel", kernel)
        self.strides = check_pair("strides", strides)
        self.padding = check_padding(padding)
        self.depth_multiplier = m = check_int("depth_multiplier", depth_multiplier, 1)
        self.rows = check_int("rows", rows, 1)
        self.cols = check_int("cols", cols, 1)
        self.lanes = depthwise_lanes(rows=self.rows, cols=self.cols, depth_multiplier=m)
        self.input_zero_point = check_int("input_zero_point", input_zero_point, -128, 127)
        self.output_zero_point = check_int("output_zero_point", output_zero_point, -128, 127)
        kh, kw = self.kernel
        cout = self.channels * m
        w = np.asarray(weights)
        if w.ndim == 4 and w.shape[0] == 1:
            w = w[0]
        self.weights = _int_param("weights", w, (kh, kw, cout), -128, 127)
        self.bias = _int_param("bias", bias, (cout,), -(2**31), 2**31 - 1)
        lo, hi = numerics.accumulator_range(
            terms=kh * kw, x_range=(-128 - self.input_zero_point, 127 - self.input_zero_point),
            w_range=(min(int(self.weights.min()), 0), max(int(self.weights.max()), 0)))
        acc_bits = max(numerics.signed_bits_for(lo, hi), 2)
        window = WindowGenerator(
            height=self.height, width=self.width, channels=self.channels, kernel=self.kernel,
            strides=self.strides, padding=self.padding, lanes=self.lanes,
            zero_point=self.input_zero_point, bits=8)
        requantizer = Requantizer(
            channels=cout, lanes=self.lanes * m, acc_bits=acc_bits, out_bits=8, mode="tflite",
            bias=self.bias, multiplier=multiplier, shift=shift,
            zero_point=self.output_zero_point, act_min=act_min, act_max=act_max)
        self._finish(window=window, requantizer=requantizer, acc_bits=acc_bits)

    @classmethod
    def from_plan(cls, plan) -> DepthwiseStage:
        """The stage of a :class:`~accel.plan.plan.DepthwiseStagePlan` (its window, PE and
        requantizer sub-plans; the quantized layer is not needed)."""
        pe: DepthwisePlan = plan.depthwise
        self = cls.__new__(cls)
        self.plan = plan
        g = plan.geometry
        self.height, self.width, self.channels = g.in_h, g.in_w, g.in_channels
        self.kernel, self.strides, self.padding = g.kernel, g.strides, g.padding
        self.depth_multiplier = pe.depth_multiplier
        self.rows, self.cols, self.lanes = pe.rows, pe.cols, pe.lanes
        self.input_zero_point, self.output_zero_point = pe.input_zero_point, plan.out_zero_point
        self.weights, self.bias = pe.weights, plan.requant.bias
        self._finish(window=WindowGenerator.from_plan(plan.window),
                     requantizer=Requantizer.from_plan(plan.requant), acc_bits=pe.acc_bits)
        if (self.cycles, self.latency) != (pe.cycles, pe.latency):  # pragma: no cover
            raise ValueError(f"plan: cycles/latency {pe.cycles}/{pe.latency} differ from the "
                             f"block's {self.cycles}/{self.latency}")
        return self

    def _finish(self, *, window: WindowGenerator, requantizer: Requantizer,
                acc_bits: int) -> None:
        m = self.depth_multiplier
        kh, kw = self.kernel
        self.pes = self.lanes * m
        self.groups = ceil_div(self.channels, self.lanes)
        self.acc_bits = acc_bits
        # Built here (not in elaborate) so that testbenches can watch them.
        self.window = window
        self.out_shape = self.window.out_shape
        self.requantizer = requantizer
        self.cycles = depthwise_frame_cycles(self.out_shape, (kh, kw), self.channels,
                                             self.lanes)
        # The PE stages end in the FIFO write; SyncFIFOBuffered's output is valid 2 cycles
        # after it (tested in test_latency).
        self.latency = _PE_STAGES + 2 + self.requantizer.latency
        self.in_lanes, self.out_lanes = self.lanes, self.pes
        # The PEs take the frame's last beat (window beats carry frame_last all through the
        # frame's last window).
        self.frame_end = Signal()
        super().__init__({
            "i": In(stream.Signature(pixel_layout(self.lanes, 8))),
            "o": Out(stream.Signature(pixel_layout(self.pes, 8))),
        })

    @property
    def feed(self) -> tuple:
        """``(stream, frame_end)``: the window beats the PEs take, and the beat that ends a
        frame (for a testbench timing the stage's busy span)."""
        return self.window.windows, self.frame_end

    def weight_rom(self) -> list[list[int]]:
        """ROM word ``t * G + g`` (tap ``t`` row-major, group ``g``): the ``P`` weights of
        output channels ``g * P .. g * P + P - 1`` (0 past ``cin * m``)."""
        kh, kw = self.kernel
        P, G = self.pes, self.groups
        cout = self.channels * self.depth_multiplier
        padded = np.zeros((kh * kw, G * P), np.int64)
        padded[:, :cout] = self.weights.reshape(kh * kw, cout)
        return padded.reshape(kh * kw * G, P).tolist()

    def elaborate(self, platform):
        m = Module()
        L, P, G, mult = self.lanes, self.pes, self.groups, self.depth_multiplier
        K = self.kernel[0] * self.kernel[1]
        acc_bits, zp = self.acc_bits, self.input_zero_point

        m.submodules.window = window = self.window
        wiring.connect(m, wiring.flipped(self.i), window.pixels)
        beats = window.windows

        m.submodules.weights = rom = memory.Memory(
            shape=data.ArrayLayout(signed(8), P), depth=K * G, init=self.weight_rom())
        rom_rd = rom.read_port()
        sums_layout = data.ArrayLayout(signed(acc_bits), P)
        m.submodules.sums = sums = memory.Memory(shape=sums_layout, depth=G, init=[])
        sums_wr = sums.write_port()
        # Transparent: beat n + G reads its group's sum in the cycle beat n writes it (G = 1).
        sums_rd = sums.read_port(transparent_for=(sums_wr,))

        m.submodules.fifo = out_fifo = fifo.SyncFIFOBuffered(
            width=P * acc_bits + 1, depth=_FIFO_DEPTH)

        # Position of the beat offered: tap t, group g; beat index t * G + g is the ROM address.
        tap = Signal(range(K))
        group = Signal(range(G))
        beat = Signal(range(K * G))
        completes = tap == K - 1  # this beat finishes group g of an output pixel
        m.d.comb += self.frame_end.eq(beats.payload.frame_last & completes & (group == G - 1))

        credits = Signal(range(_FIFO_DEPTH + 1))
        deliver = out_fifo.r_rdy & out_fifo.r_en
        m.d.comb += beats.ready.eq(~completes | (credits < _FIFO_DEPTH))
        take = beats.valid & beats.ready
        m.d.sync += credits.eq(credits + (take & completes) - deliver)
        with m.If(take):
            last_g = group == G - 1
            m.d.sync += [
                group.eq(Mux(last_g, 0, group + 1)),
                beat.eq(Mux(beat == K * G - 1, 0, beat + 1)),
            ]
            with m.If(last_g):
                m.d.sync += tap.eq(Mux(completes, 0, tap + 1))
        m.d.comb += [rom_rd.addr.eq(beat), rom_rd.en.eq(1)]

        def reg(value, name, shape=None):
            sig = Signal(value.shape() if shape is None else shape, name=name, reset_less=True)
            m.d.sync += sig.eq(value)
            return sig

        # Sideband: valid, first tap, last tap, frame end, group; carried stage by stage.
        side_layout = data.StructLayout({
            "first": 1, "last": 1, "frame_last": 1, "group": range(G)})
        valid = [take]
        side = [Cat(tap == 0, completes, beats.payload.frame_last, group)]
        for n in range(_PE_STAGES):
            valid.append(Signal(name=f"valid{n + 1}"))
            m.d.sync += valid[-1].eq(valid[-2])
            side.append(reg(side[-1], f"side{n + 1}"))
        s2 = data.View(side_layout, side[2])
        s3 = data.View(side_layout, side[3])
        s4 = data.View(side_layout, side[4])

        # Stage 1: x - zp per lane (9 bits), ROM word for (tap, group).
        xs = [reg(beats.payload.data[k] - zp, f"x{k}", signed(9)) for k in range(L)]
        # Stage 2: multiplier operands. Stage 3: product, and the group's partial sum read.
        m.d.comb += [sums_rd.addr.eq(s2.group), sums_rd.en.eq(1)]
        totals = []
        for p in range(P):
            x2 = reg(xs[p // mult], f"pe{p}_x")
            w2 = reg(rom_rd.data[p], f"pe{p}_w", signed(8))
            product = reg(x2 * w2, f"pe{p}_product", signed(17))
            # Stage 4: accumulate (the first tap starts from 0).
            total = Signal(signed(acc_bits), name=f"pe{p}_sum")
            m.d.comb += total.eq(Mux(s3.first, 0, sums_rd.data[p]) + product)
            totals.append(total)
        m.d.comb += [
            sums_wr.addr.eq(s3.group),
            sums_wr.en.eq(valid[3]),
            sums_wr.data.eq(Cat(*totals)),
        ]
        done = reg(Cat(*totals), "sums_done")
        m.d.comb += [
            out_fifo.w_en.eq(valid[4] & s4.last),
            out_fifo.w_data.eq(Cat(done, s4.frame_last)),
        ]

        m.submodules.requant = requant = self.requantizer
        m.d.comb += [
            requant.i.valid.eq(out_fifo.r_rdy),
            out_fifo.r_en.eq(requant.i.ready),
            requant.i.payload.data.eq(out_fifo.r_data[: P * acc_bits]),
            requant.i.payload.last.eq(out_fifo.r_data[P * acc_bits]),
        ]
        wiring.connect(m, requant.o, wiring.flipped(self.o))
        return m
