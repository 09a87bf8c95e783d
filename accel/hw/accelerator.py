"""The whole accelerator: one :class:`~accel.hw.stage.ComputeStage` per Conv2D/Dense layer.

::

    pixels (1 int8 per beat) -> regroup -> stage 0 -> regroup -> stage 1 -> ... -> regroup
        -> logits (1 int8 per beat)

The input is the image in raster order, channels innermost, one value per beat, ``last`` on
the image's final value; images may follow each other with no gap. The output is the last
compute layer's int8 values (the logits; a final softmax is not in hardware), one per beat,
``last`` on each image's final value.

Between stages, :class:`~accel.hw.regroup.ChannelRegroup` converts channel-group words from
one stage's ``C`` lanes to the next stage's ``R`` lanes. Before a Dense stage the whole image
is one "pixel" of ``h * w * c`` channels (the stream is already in flatten order), so the
words are first split per pixel into single values and then packed ``R`` at a time.

:attr:`Accelerator.stage_outputs` exposes each stage's output stream so that a testbench can
watch them (reading signals across the hierarchy) and locate a mismatch at its first layer.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..plan.plan import NetworkPlan
from ..quant.qnet import QConv2D, QDense, QMaxPool2D, QuantizedNetwork
from .layouts import pixel_layout
from .regroup import ChannelRegroup
from .stage import ComputeStage


class Accelerator(wiring.Component):
    """The streaming accelerator for ``qnet`` as planned by ``plan``.

    Parameters
    ----------
    plan : NetworkPlan
    qnet : QuantizedNetwork

    Members
    -------
    i : In(stream.Signature(pixel_layout(1, input_bits)))
        Image values, one per beat.
    o : Out(stream.Signature(pixel_layout(1, output_bits)))
        Logits, one per beat.
    """

    def __init__(self, *, plan: NetworkPlan, qnet: QuantizedNetwork):
        self.plan, self.qnet = plan, qnet
        layers = {layer.name: layer for layer in qnet.layers}
        self.stages: list[ComputeStage] = []
        self.regroups: list[ChannelRegroup] = []
        # (channels per "pixel", lanes) of the stream arriving at each point
        channels, lanes = qnet.input_shape[-1], 1
        bits = qnet.input.bits
        for stage_plan in plan.stages:
            layer = layers[stage_plan.layer]
            pool = layers[stage_plan.pool] if stage_plan.pool else None
            assert isinstance(layer, (QConv2D, QDense))
            assert pool is None or isinstance(pool, QMaxPool2D)
            if isinstance(layer, QDense):
                chain = self._regroups_to_vector(channels, lanes, stage_plan.rows,
                                                 stage_plan.geometry.in_channels, bits,
                                                 layer.input.zero_point)
            else:
                chain = self._regroup(channels, lanes, stage_plan.rows, bits,
                                      layer.input.zero_point)
            stage = ComputeStage(plan=stage_plan, layer=layer, pool=pool)
            self.regroups.append(chain)
            self.stages.append(stage)
            channels, lanes, bits = stage_plan.geometry.filters, stage_plan.cols, \
                layer.output.bits
        last_layer = layers[plan.stages[-1].layer]
        self.output_regroup = self._regroup(channels, lanes, 1, bits,
                                            last_layer.output.zero_point)
        self.input_bits, self.output_bits = qnet.input.bits, bits
        super().__init__({
            "i": In(stream.Signature(pixel_layout(1, self.input_bits))),
            "o": Out(stream.Signature(pixel_layout(1, self.output_bits))),
        })

    @staticmethod
    def _regroup(channels, lanes_in, lanes_out, bits, fill) -> list[ChannelRegroup]:
        if lanes_in == lanes_out:
            return []
        return [ChannelRegroup(channels=channels, lanes_in=lanes_in, lanes_out=lanes_out,
                               bits=bits, zero_point=fill)]

    @classmethod
    def _regroups_to_vector(cls, channels, lanes_in, lanes_out, length, bits, fill):
        # Split every pixel into single values (dropping its padding lanes), then pack the
        # whole flattened image ``lanes_out`` values per beat.
        return (cls._regroup(channels, lanes_in, 1, bits, fill)
                + cls._regroup(length, 1, lanes_out, bits, fill))

    @property
    def stage_outputs(self) -> list:
        """Each stage's output stream (for testbench monitors)."""
        return [stage.o for stage in self.stages]

    def elaborate(self, platform):
        m = Module()
        current = wiring.flipped(self.i)
        for index, (chain, stage) in enumerate(zip(self.regroups, self.stages, strict=True)):
            for k, regroup in enumerate(chain):
                m.submodules[f"regroup{index}_{k}"] = regroup
                wiring.connect(m, current, regroup.i)
                current = regroup.o
            m.submodules[f"stage{index}"] = stage
            wiring.connect(m, current, stage.i)
            current = stage.o
        for k, regroup in enumerate(self.output_regroup):
            m.submodules[f"regroup_out{k}"] = regroup
            wiring.connect(m, current, regroup.i)
            current = regroup.o
        wiring.connect(m, current, wiring.flipped(self.o))
        return m
