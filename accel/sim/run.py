"""Build the self-checking harness for a model and read its results, on any simulator.

:func:`build_harness` computes the golden model's per-stage outputs and wraps the accelerator
in a :class:`~accel.sim.harness.SimHarness`. :func:`readout` lists the reads that collect the
results after ``done``; the amaranth.sim backend here and the cocotb testbench
(:mod:`accel.sim.cocotb_tb`) perform exactly those reads, and :func:`decode` turns the raw
values into a :class:`SimResult` with per-layer cycles and the first mismatch located.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import AccelError
from ..hw.accelerator import Accelerator
from ..plan.plan import NetworkPlan
from ..quant import golden
from ..quant.qnet import QuantizedNetwork
from .harness import (
    SCALAR_NAMES,
    SEL_FEED_FIRST,
    SEL_FEED_LAST,
    SEL_MISMATCH,
    SEL_OUTPUT,
    SEL_SCALARS,
    SEL_STAGE_DONE,
    SimHarness,
)


@dataclass(frozen=True)
class Mismatch:
    """One stage's mismatch count and, when there are any, where the first one is.

    Members
    -------
    layer : str
        The stage's output layer (its pool, if fused).
    count : int
        Beats of the stage that differed from the golden model.
    beat, image, row, col, channel : int or None
        The first bad beat: its index in the stage's output stream, and the image, pixel and
        first channel it carries (None when ``count`` is 0).
    got, want : tuple of int
        The beat's lanes as the hardware produced them and as the golden model has them.
    """

    layer: str
    count: int
    beat: int | None = None
    image: int | None = None
    row: int | None = None
    col: int | None = None
    channel: int | None = None
    got: tuple[int, ...] = ()
    want: tuple[int, ...] = ()

    def to_json(self) -> dict:
        """``layer`` and ``count``, and the location fields when ``count`` is not 0."""
        if not self.count:
            return {"layer": self.layer, "count": self.count}
        return {"layer": self.layer, "count": self.count, "beat": self.beat,
                "image": self.image, "row": self.row, "col": self.col,
                "channel": self.channel, "got": list(self.got), "want": list(self.want)}


@dataclass
class HarnessCase:
    """A harness and what is needed to interpret its results."""

    harness: SimHarness
    plan: NetworkPlan
    qnet: QuantizedNetwork
    images: np.ndarray
    golden: dict[str, np.ndarray]
    stage_names: list[str]


@dataclass
class SimResult:
    """What a simulation measured.

    Members
    -------
    outputs : numpy.ndarray
        The logits the hardware returned, (N, units), int.
    bit_exact : bool
        Every beat of every stage matched the golden model.
    mismatches : list of Mismatch
        One per stage, in stage order.
    stage_done : numpy.ndarray
        (stages, N): cycle at which each stage finished each image.
    feed_span : numpy.ndarray
        (stages, N): cycles from the first to the last array beat of each image, per stage
        (the stage's own time per image, stalls included).
    scalars : dict
        ``cycles``, ``first_input``, ``outputs``, ``input_gaps``, ``output_stalls``.
    run : SimRun or None
        The simulator run, when it was one (:func:`accel.sim.cocotb_run.run_cocotb`).
    """

    outputs: np.ndarray
    bit_exact: bool
    mismatches: list[Mismatch]
    stage_done: np.ndarray
    feed_span: np.ndarray
    scalars: dict
    run: SimRun | None = None

    def first_mismatch(self) -> Mismatch | None:
        return next((m for m in self.mismatches if m.count), None)


def build_harness(qnet: QuantizedNetwork, plan: NetworkPlan, images: np.ndarray, *,
                  seed: int = 1, gap_percent: int = 20, stall_percent: int = 20,
                  memory_gap_percent: int | None = None) -> HarnessCase:
    """The accelerator for ``plan`` inside a harness loaded with ``images`` (int, N first).
    Streamed weights come from memory models with ``memory_gap_percent`` random data gaps
    (default: a tenth of ``gap_percent``) besides their latency and refresh pauses."""
    images = golden.check_input(qnet, images)
    outputs = golden.run(qnet, images)
    accelerator = Accelerator(plan)
    names = [s.pool or s.layer for s in plan.stages]
    expected = [outputs[name] for name in names]
    fills = [stage.plan.out_zero_point for stage in accelerator.stages]
    harness = SimHarness(accelerator=accelerator, images=images, expected=expected,
                         fills=fills, gap_percent=gap_percent, stall_percent=stall_percent,
                         seed=seed,
                         memory_gap_percent=(gap_percent // 10 if memory_gap_percent is None
                                             else memory_gap_percent))
    return HarnessCase(harness, plan, qnet, images, outputs, names)


def readout(case: HarnessCase) -> list[tuple[str, int, int, int]]:
    """The reads that collect every result: ``(key, rd_sel, rd_stage, rd_addr)``."""
    h = case.harness
    reads = [(f"out{i}", SEL_OUTPUT, 0, i) for i in range(h.n_outputs)]
    for s in range(len(case.plan.stages)):
        reads += [(f"done{s}_{n}", SEL_STAGE_DONE, s, n) for n in range(h.n_images)]
        reads += [(f"mis{s}_{k}", SEL_MISMATCH, s, k) for k in range(4)]
        reads += [(f"feed_first{s}_{n}", SEL_FEED_FIRST, s, n) for n in range(h.n_images)]
        reads += [(f"feed_last{s}_{n}", SEL_FEED_LAST, s, n) for n in range(h.n_images)]
    reads += [(name, SEL_SCALARS, 0, k) for k, name in enumerate(SCALAR_NAMES)]
    return reads


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _unpack(value: int, lanes: int, bits: int) -> list[int]:
    return [_signed(value >> (bits * k), bits) for k in range(lanes)]


def decode(case: HarnessCase, raw: dict[str, int]) -> SimResult:
    """Turn the values read per :func:`readout` into a :class:`SimResult`."""
    h, acc = case.harness, case.harness.accelerator
    n = h.n_images
    out_bits = acc.output_bits
    outputs = np.array([_signed(raw[f"out{i}"], out_bits) for i in range(h.n_outputs)])
    outputs = outputs.reshape(n, -1)
    mismatches = []
    for s, stage in enumerate(acc.stages):
        lanes, bits = stage.out_lanes, stage.plan.out_bits
        count = int(raw[f"mis{s}_0"])
        if not count:
            mismatches.append(Mismatch(layer=case.stage_names[s], count=0))
            continue
        beat = raw[f"mis{s}_1"]
        channels = case.plan.stages[s].geometry.filters
        groups = -(-channels // lanes)
        pixel, group = divmod(beat, groups)
        out_h, out_w = case.golden[case.stage_names[s]].shape[1:3] \
            if case.golden[case.stage_names[s]].ndim == 4 else (1, 1)
        image, pixel = divmod(pixel, out_h * out_w)
        mismatches.append(Mismatch(
            layer=case.stage_names[s], count=count, beat=int(beat), image=int(image),
            row=int(pixel // out_w), col=int(pixel % out_w), channel=int(group * lanes),
            got=tuple(_unpack(raw[f"mis{s}_2"], lanes, bits)),
            want=tuple(_unpack(raw[f"mis{s}_3"], lanes, bits))))

    def table(key: str) -> np.ndarray:
        return np.array([[raw[f"{key}{s}_{i}"] for i in range(n)]
                         for s in range(len(acc.stages))])

    stage_done = table("done")
    feed_span = table("feed_last") - table("feed_first") + 1
    scalars = {name: int(raw[name]) for name in SCALAR_NAMES}
    golden_logits = case.golden[case.plan.output_layer].reshape(n, -1)
    # A weight word asked for outside the plan's layout is a failure even if the sums
    # happened to match.
    bit_exact = all(m.count == 0 for m in mismatches) and np.array_equal(
        outputs, golden_logits) and scalars["weight_errors"] == 0
    return SimResult(outputs=outputs, bit_exact=bit_exact, mismatches=mismatches,
                     stage_done=stage_done, feed_span=feed_span, scalars=scalars)


def run_amaranth(case: HarnessCase, *, max_cycles: int = 2_000_000,
                 platform=None) -> SimResult:
    """Simulate ``case`` in amaranth.sim (Python; fine for small networks), elaborated for
    ``platform`` (None; or an object whose ``family`` names the FPGA family, for the blocks
    whose form depends on it, as a board build elaborates them)."""
    from amaranth.hdl import Fragment
    from amaranth.sim import Simulator

    h = case.harness
    raw: dict[str, int] = {}

    async def bench(ctx):
        for _ in range(max_cycles):
            if ctx.get(h.done):
                break
            await ctx.tick()
        else:
            raise TimeoutError(f"the accelerator did not finish within {max_cycles} cycles")
        for key, sel, stage, addr in readout(case):
            ctx.set(h.rd_sel, sel)
            ctx.set(h.rd_stage, stage)
            ctx.set(h.rd_addr, addr)
            await ctx.delay(1e-9)
            raw[key] = ctx.get(h.rd_data)

    sim = Simulator(h if platform is None else Fragment.get(h, platform))
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return decode(case, raw)


@dataclass(frozen=True)
class LayerTiming:
    """One stage's cycles, measured and predicted.

    Members
    -------
    layer, pool : str, str or None
        The stage's layer and the pooling layer fused after it.
    array : tuple of int
        The stage's (rows, cols) array.
    predicted_cycles : int
        The plan's cycles per image for the stage.
    measured_cycles : int
        The median over images of the cycles from the first to the last array beat (for a
        batched streamed stage: over batches, divided by the batch).
    interval_at_stage : float or None
        Mean cycles between the stage finishing consecutive images (None for one image); at
        batch ``B``, from the end of the first batch to the end of the last, per image (None
        for one batch).
    mismatches : int
        Beats of the stage that differed from the golden model.
    """

    layer: str
    pool: str | None
    array: tuple[int, int]
    predicted_cycles: int
    measured_cycles: int
    interval_at_stage: float | None
    mismatches: int

    @property
    def measured_vs_predicted(self) -> float:
        return self.measured_cycles / self.predicted_cycles

    def to_json(self) -> dict:
        return {"layer": self.layer, "pool": self.pool, "array": list(self.array),
                "predicted_cycles": self.predicted_cycles,
                "measured_cycles": self.measured_cycles,
                "measured_vs_predicted": self.measured_vs_predicted,
                "interval_at_stage": self.interval_at_stage, "mismatches": self.mismatches}


@dataclass(frozen=True)
class SimRun:
    """How a simulator run went: which simulator, whether large ROMs were loaded from hex
    files, and the wall seconds of the Verilog conversion, the build and the run."""

    simulator: str
    rom_files: bool
    convert_s: float
    build_s: float
    run_s: float

    def to_json(self) -> dict:
        return {"convert_s": round(self.convert_s, 3), "build_s": round(self.build_s, 3),
                "run_s": round(self.run_s, 3), "simulator": self.simulator,
                "rom_files": self.rom_files}


@dataclass(frozen=True)
class SimReport:
    """What ``accel sim`` measured, against what the plan predicts (``accel sim --json`` is
    :meth:`to_json`).

    Members
    -------
    model, array : str
        The network's name and the largest array (``RxC``).
    bit_exact : bool
        Every beat of every stage and every logit matched the golden model.
    images, mismatches : int
        Images simulated; mismatching beats over all stages.
    first_mismatch : Mismatch or None
        The first stage with a mismatch.
    cycles_per_inference : float or None
        The measured steady-state interval (mean cycles between the last stage finishing
        consecutive images; at batch ``B``, from the end of the first batch to the end of
        the last, per image); None for one image (one batch).
    predicted_interval_cycles, predicted_latency_cycles : int
        The plan's interval and latency.
    input_limited_cycles : float
        Cycles per image the input port needs with the random gaps this run inserted.
    latency_cycles : int
        Cycles from the first input value to the last stage finishing the first image.
    ideal_cycles : float
        Total MACs over PEs.
    pes, total_cycles, input_gaps, output_stalls : int
        PEs in the design; the cycles the run took; the gap and stall cycles inserted.
    layers : tuple of LayerTiming
        Per stage, in stage order.
    predictions : tuple of int
        The argmax of each image's logits.
    accuracy : float or None
        Fraction of ``predictions`` equal to the labels (:meth:`with_accuracy`).
    run : SimRun or None
        The simulator run (None for amaranth.sim).
    weight_words : int
        Words the weight memory models delivered (0 when nothing streams).
    stream_cycles : int
        The plan's bandwidth bound per inference (:attr:`NetworkPlan.stream_cycles`).
    predicted_cycles_per_inference : float or None
        ``cycles_per_inference`` as the plan's timing model has this run (its images, the
        same statistic): for a run without input gaps, output stalls or memory gaps, of a
        plan whose timing is exact (:attr:`NetworkPlan.latency_exact`), where it must equal
        the measured one (with streamed weights each image's interval depends on where it
        falls in the memory model's refresh period); else None.
    image_done : tuple of int
        Per image, the cycle its last output beat left, counted from the cycle the first
        input value was taken (the plan's cycle 0): ``image_done[0]`` is
        ``latency_cycles``, and the differences are the images' intervals, which the plan's
        :attr:`~accel.plan.plan.NetworkPlan.interval_cycles` (the third image's, at batch B
        the third batch's per image) is one of.
    """

    model: str
    array: str
    bit_exact: bool
    images: int
    mismatches: int
    first_mismatch: Mismatch | None
    cycles_per_inference: float | None
    predicted_interval_cycles: int
    input_limited_cycles: float
    latency_cycles: int
    predicted_latency_cycles: int
    ideal_cycles: float
    pes: int
    total_cycles: int
    input_gaps: int
    output_stalls: int
    layers: tuple[LayerTiming, ...]
    predictions: tuple[int, ...]
    accuracy: float | None = None
    run: SimRun | None = None
    weight_words: int = 0
    stream_cycles: int = 0
    predicted_cycles_per_inference: float | None = None
    image_done: tuple[int, ...] = ()

    @property
    def utilization(self) -> float | None:
        """Ideal over measured cycles per inference."""
        return self.ideal_cycles / self.cycles_per_inference if self.cycles_per_inference \
            else None

    def with_accuracy(self, labels) -> SimReport:
        """This report with ``accuracy`` against ``labels`` (one per image)."""
        labels = np.asarray(labels)
        if labels.shape != (self.images,):
            raise AccelError(f"labels: need one label per image ({self.images}), not an "
                             f"array of shape {labels.shape}")
        return replace(self, accuracy=float((np.asarray(self.predictions) == labels).mean()))

    def to_json(self) -> dict:
        """One JSON-ready object; ``accuracy`` only when known, the run's fields flattened."""
        data = {
            "model": self.model, "array": self.array, "bit_exact": self.bit_exact,
            "images": self.images, "mismatches": self.mismatches,
            "first_mismatch": self.first_mismatch.to_json() if self.first_mismatch else None,
            "cycles_per_inference": self.cycles_per_inference,
            "predicted_interval_cycles": self.predicted_interval_cycles,
            "input_limited_cycles": self.input_limited_cycles,
            "latency_cycles": self.latency_cycles,
            "predicted_latency_cycles": self.predicted_latency_cycles,
            "ideal_cycles": self.ideal_cycles, "utilization": self.utilization,
            "pes": self.pes, "total_cycles": self.total_cycles, "input_gaps": self.input_gaps,
            "output_stalls": self.output_stalls,
            "layers": [layer.to_json() for layer in self.layers],
            "predictions": list(self.predictions),
            "weight_words": self.weight_words, "stream_cycles": self.stream_cycles,
            "predicted_cycles_per_inference": self.predicted_cycles_per_inference,
            "image_done": list(self.image_done),
        }
        if self.accuracy is not None:
            data["accuracy"] = self.accuracy
        if self.run is not None:
            data.update(self.run.to_json())
        return data


def report(case: HarnessCase, result: SimResult, run: SimRun | None = None) -> SimReport:
    """The measured figures of ``result`` against ``case``'s plan. ``run`` defaults to the one
    :func:`accel.sim.cocotb_run.run_cocotb` leaves in ``result.run``."""
    plan = case.plan
    n = case.harness.n_images
    # A batched streamed stage finishes its B images together: intervals are measured over
    # whole batches (from the first batch's end), and its array span is a batch's.
    batch = plan.batch
    finished = result.stage_done[-1]

    def per_image(done) -> float | None:
        return float(done[-1] - done[batch - 1]) / (n - batch) if n > batch else None

    def span(s, stage) -> int:
        if getattr(stage, "streamed", None) is None or batch == 1:
            return int(np.median(result.feed_span[s]))
        return int(np.median(result.feed_span[s][:n // batch]) / batch)

    interval = per_image(finished)
    h = case.harness
    predicted = None
    if n > batch and plan.latency_exact and h.gap == 0 and h.stall == 0 and h.memory_gap == 0:
        from ..plan.timing import frame_times

        out = frame_times(plan, n)[plan.output_stage.output]
        predicted = per_image([out[(i + 1) * (len(out) // n) - 1] for i in range(n)])
    layers = tuple(
        LayerTiming(layer=stage.layer, pool=stage.pool, array=(stage.rows, stage.cols),
                    predicted_cycles=stage.cycles, measured_cycles=span(s, stage),
                    interval_at_stage=per_image(result.stage_done[s]),
                    mismatches=result.mismatches[s].count)
        for s, stage in enumerate(plan.stages))
    return SimReport(
        model=case.qnet.name, array=f"{plan.max_rows}x{plan.max_cols}",
        bit_exact=bool(result.bit_exact), images=n,
        mismatches=int(sum(m.count for m in result.mismatches)),
        first_mismatch=result.first_mismatch(), cycles_per_inference=interval,
        predicted_interval_cycles=plan.interval_cycles,
        # The input port carries one value per cycle; random input gaps stretch that.
        input_limited_cycles=(plan.input_cycles * n + result.scalars["input_gaps"]) / n,
        latency_cycles=int(finished[0] - result.scalars["first_input"]),
        predicted_latency_cycles=plan.latency_cycles, ideal_cycles=plan.ideal_cycles,
        pes=plan.pes, total_cycles=result.scalars["cycles"],
        input_gaps=result.scalars["input_gaps"], output_stalls=result.scalars["output_stalls"],
        layers=layers, predictions=tuple(int(p) for p in result.outputs.argmax(axis=1)),
        run=run if run is not None else result.run,
        weight_words=result.scalars["weight_words"], stream_cycles=plan.stream_cycles,
        predicted_cycles_per_inference=predicted,
        image_done=tuple(int(d - result.scalars["first_input"]) for d in finished))
