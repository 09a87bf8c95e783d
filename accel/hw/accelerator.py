"""The whole accelerator: one :class:`~accel.hw.stage.ComputeStage` per Conv2D/Dense layer,
one :class:`~accel.hw.depthwise.DepthwiseStage` per DepthwiseConv2D layer, one
:class:`~accel.hw.pool_stage.PoolStage` per pooling layer not fused into a convolution.

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

A stage whose weights stream from external memory (``StagePlan.streamed``) has no weight ROMs;
the accelerator exposes its memory port as ``weights<N>`` (``N`` the stage index): a
``mem_cmd`` stream of burst requests out and a ``mem_rsp`` stream of words in, exactly
:class:`~accel.hw.burst_reader.BurstReader`'s memory side, each port addressing the same
memory (the weight image of :func:`accel.plan.weights.image_payload`). A board top connects
them to its memory controller; the simulation harness to a memory model.

:attr:`Accelerator.stage_outputs` exposes each stage's output stream so that a testbench can
watch them (reading signals across the hierarchy) and locate a mismatch at its first layer.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..plan.blocks import RegroupPlan
from ..plan.plan import DepthwiseStagePlan, NetworkPlan, PoolStagePlan, StagePlan
from .depthwise import DepthwiseStage
from .layouts import pixel_layout
from .pool_stage import PoolStage
from .regroup import ChannelRegroup
from .stage import ComputeStage

#: The component of each kind of stage plan.
_STAGE_BUILDERS = {
    StagePlan: lambda plan: ComputeStage(plan=plan),
    DepthwiseStagePlan: DepthwiseStage.from_plan,
    PoolStagePlan: lambda plan: PoolStage(plan=plan),
}


class Accelerator(wiring.Component):
    """The streaming accelerator of ``plan`` (built from the plan alone).

    Parameters
    ----------
    plan : NetworkPlan
        Its nodes (stages and regroups) are connected by the tensors they name: the input
        port feeds ``plan.input_tensor``, the output port carries ``plan.output_tensor``.
        Every tensor must have exactly one consumer (forks and joins are not built yet).

    Members
    -------
    i : In(stream.Signature(pixel_layout(1, plan.input_bits)))
        Image values, one per beat.
    o : Out(stream.Signature(pixel_layout(1, plan.output_bits)))
        Logits, one per beat.
    weights<N> : Out(weight_port_signature(...))
        One per streamed stage ``N`` (see module doc).
    """

    def __init__(self, plan: NetworkPlan):
        self.plan = plan
        self.nodes: list[tuple[str, object, object]] = []  # (submodule name, plan, component)
        self.stages: list[ComputeStage | DepthwiseStage | PoolStage] = []
        self.regroups: list[ChannelRegroup] = []
        consumers: dict[str, int] = {}
        for node in plan.nodes:
            inputs = (node.input,) if isinstance(node, RegroupPlan) else node.inputs
            for name in inputs:
                consumers[name] = consumers.get(name, 0) + 1
                if consumers[name] > 1:
                    raise ValueError(f"tensor {name!r} feeds more than one node; forks are "
                                     f"not supported by this accelerator yet")
            if not isinstance(node, RegroupPlan):
                component = _STAGE_BUILDERS[type(node)](node)
                self.stages.append(component)
                self.nodes.append((f"stage{node.index}", node, component))
            else:
                component = ChannelRegroup.from_plan(node)
                self.nodes.append((f"regroup{len(self.regroups)}", node, component))
                self.regroups.append(component)
        self.input_bits, self.output_bits = plan.input_bits, plan.output_bits
        members = {
            "i": In(stream.Signature(pixel_layout(1, self.input_bits))),
            "o": Out(stream.Signature(pixel_layout(1, self.output_bits))),
        }
        self.weight_ports = {}  # stage index -> member name
        for stage in self.stages:
            if getattr(stage, "weight_stream", None) is not None:
                name = f"weights{stage.plan.index}"
                self.weight_ports[stage.plan.index] = name
                members[name] = Out(stage.signature.members["weights"].signature)
        super().__init__(members)

    @property
    def stage_outputs(self) -> list:
        """Each stage's output stream (for testbench monitors)."""
        return [stage.o for stage in self.stages]

    def elaborate(self, platform):
        m = Module()
        streams = {self.plan.input_tensor: wiring.flipped(self.i)}
        for name, node, component in self.nodes:
            m.submodules[name] = component
            inputs = (node.input,) if isinstance(node, RegroupPlan) else node.inputs
            (source,) = inputs  # one input per node until joins are built
            wiring.connect(m, streams.pop(source), component.i)
            streams[node.output] = component.o
            if not isinstance(node, RegroupPlan) and node.index in self.weight_ports:
                wiring.connect(m, component.weights,
                               wiring.flipped(getattr(self, self.weight_ports[node.index])))
        wiring.connect(m, streams.pop(self.plan.output_tensor), wiring.flipped(self.o))
        return m
