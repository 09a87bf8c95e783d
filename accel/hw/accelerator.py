"""The whole accelerator: one :class:`~accel.hw.stage.ComputeStage` per Conv2D/Dense layer,
one :class:`~accel.hw.depthwise.DepthwiseStage` per DepthwiseConv2D layer, one
:class:`~accel.hw.pool_stage.PoolStage` per pooling layer not fused into a convolution, one
:class:`~accel.hw.add_stage.AddStage` per residual ``Add``, one
:class:`~accel.hw.concat_merge.ConcatStage` per channel ``Concatenate``.

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

A tensor that two nodes read goes through a :class:`~accel.hw.fork.Fork`, which hands each
beat to both and advances once both have it; the branches meet again at an ``AddStage``
(or a ``ConcatStage``), whose skip buffers the plan sized.

:attr:`Accelerator.stage_outputs` exposes each stage's output stream so that a testbench can
watch them (reading signals across the hierarchy) and locate a mismatch at its first layer.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..plan.blocks import RegroupPlan
from ..plan.concat import ConcatStagePlan
from ..plan.join import AddStagePlan
from ..plan.plan import DepthwiseStagePlan, NetworkPlan, PoolStagePlan, StagePlan
from .add_stage import AddStage
from .concat_merge import ConcatStage
from .depthwise import DepthwiseStage
from .fork import Fork
from .layouts import pixel_layout
from .pool_stage import PoolStage
from .regroup import ChannelRegroup
from .stage import ComputeStage

#: The component of each kind of stage plan.
_STAGE_BUILDERS = {
    StagePlan: lambda plan: ComputeStage(plan=plan),
    DepthwiseStagePlan: DepthwiseStage.from_plan,
    PoolStagePlan: lambda plan: PoolStage(plan=plan),
    AddStagePlan: lambda plan: AddStage(plan=plan),
    ConcatStagePlan: lambda plan: ConcatStage(plan=plan),
}


class Accelerator(wiring.Component):
    """The streaming accelerator of ``plan`` (built from the plan alone).

    Parameters
    ----------
    plan : NetworkPlan
        Its nodes (stages and regroups) are connected by the tensors they name: the input
        port feeds ``plan.input_tensor``, the output port carries ``plan.output_tensor``.
        A tensor read by several nodes goes through a :class:`~accel.hw.fork.Fork`; an
        :class:`~accel.plan.join.AddStagePlan` or a
        :class:`~accel.plan.concat.ConcatStagePlan` reads two tensors.

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
        self.regroups: list[ChannelRegroup] = []
        self.consumers: dict[str, int] = {plan.output_tensor: 1}
        built = {}
        for node in plan.nodes:
            for name in _inputs(node):
                self.consumers[name] = self.consumers.get(name, 0) + 1
            if not isinstance(node, RegroupPlan):
                component = _STAGE_BUILDERS[type(node)](node)
                built[id(node)] = component
                self.nodes.append((f"stage{node.index}", node, component))
            else:
                component = ChannelRegroup.from_plan(node)
                self.nodes.append((f"regroup{len(self.regroups)}", node, component))
                self.regroups.append(component)
        # In the plan's stage order (which the harness's golden values follow).
        self.stages: list = [built[id(stage)] for stage in plan.stages]
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
        # Per tensor, the streams its consumers connect to, in the order they ask for them.
        streams: dict[str, list] = {}
        forks = 0

        def produce(tensor: str, source) -> None:
            nonlocal forks
            count = self.consumers.get(tensor, 0)
            if count <= 1:
                streams[tensor] = [source]
                return
            array = source.payload.shape()["data"].shape
            fork = Fork(outputs=count, lanes=array.length, bits=array.elem_shape.width)
            m.submodules[f"fork{forks}"] = fork
            forks += 1
            wiring.connect(m, source, fork.i)
            streams[tensor] = list(fork.o)

        produce(self.plan.input_tensor, wiring.flipped(self.i))
        for name, node, component in self.nodes:
            m.submodules[name] = component
            ports = (component.inputs if isinstance(component, (AddStage, ConcatStage))
                     else (component.i,))
            for tensor, port in zip(_inputs(node), ports, strict=True):
                wiring.connect(m, streams[tensor].pop(0), port)
            produce(node.output, component.o)
            if not isinstance(node, RegroupPlan) and node.index in self.weight_ports:
                wiring.connect(m, component.weights,
                               wiring.flipped(getattr(self, self.weight_ports[node.index])))
        wiring.connect(m, streams[self.plan.output_tensor].pop(0), wiring.flipped(self.o))
        return m


def _inputs(node) -> tuple[str, ...]:
    return (node.input,) if isinstance(node, RegroupPlan) else tuple(node.inputs)
