"""Timing through the plan, beat by beat: the first image's latency
(:attr:`NetworkPlan.latency_cycles`) and each stage's steady-state period
(:func:`stage_period`, :attr:`NetworkPlan.interval_cycles`).

Every stream is described by the cycle in which each of its beats is taken, counted from the
cycle the input port takes the image's first value (cycle 0). Each block maps the times of the
beats it consumes to the times of the beats it produces from its stated ``latency`` and its
throughput of one beat per cycle:

- input port: value ``k`` at cycle ``k`` (no gaps);
- :class:`~accel.hw.regroup.ChannelRegroup`: an output beat ``latency`` after the input beat
  that completes it, one per cycle; an input beat waits while its values do not fit;
- window generator: a window beat ``latency`` after the input beat it reads (padding taps
  need none), one per cycle, while its consumer takes it (a conv stage's replay bank is
  free; a depthwise stage's PEs take every beat); its writer waits while the slot of the
  row it fills is still read (the scheme of :mod:`accel.hw.window`), rows counted over
  frames, so the next frame's refill is modelled too;
- :class:`~accel.hw.replay.WindowReplay`: a window's first replayed beat ``latency`` after its
  last beat, once the previous window's ``Kt * Ft`` beats are out;
- array stream, accumulator, requantizer: fixed latencies (the sum of a window's ``Kt`` beats
  is out ``accumulator.latency`` after its last beat reaches the accumulator);
- depthwise PEs: output group ``g`` of a pixel ``depthwise.latency`` (PEs, FIFO,
  requantizer) after the beat of its last tap for ``g``;
- max pool and average pool (fused or stand-alone): an input beat taken on its last window
  update (one cycle per window containing it); an output row's first beat ``latency`` after
  the beat that ends its last input row, one beat per cycle;
- global mean: a beat per cycle; group ``g``'s result ``latency`` after the frame's last
  pixel's beat ``g``.

The model assumes the first image, no input gaps and no output stalls, and no backpressure
other than the replay banks, the line buffer's slots and the regroups' buffers: the array
stream, accumulator, requantizer and depthwise FIFOs are sized never to stall at one beat per
cycle, and a pool takes one beat per cycle when its windows do not overlap (an input beat in
``n`` overlapping windows takes ``n`` cycles, which a stage of ``Kt * Ft >= n`` cycles per
beat hides). A pool's row slots are assumed free when a row starts.
"""

from __future__ import annotations

import math

from ..spec.shapes import ceil_div, window_2d
from .blocks import REPLAY_READ_AHEAD, WINDOW_READ_LATENCY, MeanPlan, RegroupPlan, axis_table
from .concat import ConcatStagePlan

__all__ = ["EXACT_KINDS", "first_image_times", "frame_times", "interval", "join_timing_fault",
           "joins_exact", "latency", "output_times",
           "regroup_times",
           "stage_period", "window_period"]

#: The stage kinds this model follows beat by beat (exact latency and period).
EXACT_KINDS = frozenset({"conv2d", "dense", "depthwise_conv2d", "avg_pool2d", "mean",
                         "max_pool2d", "add", "concatenate"})


def regroup_times(times: list[int], *, channels: int, lanes_in: int, lanes_out: int,
                  ready: list[int] | None = None) -> tuple[list[int], list[int]]:
    """``(accepted, out)``: when each input beat is taken and each output beat leaves, for input
    beats offered at ``times`` (a beat is offered no earlier than one cycle after the previous
    one was taken) and output beat ``j`` taken no earlier than ``ready[j]`` (default: when
    offered). The shift buffer of :class:`~accel.hw.regroup.ChannelRegroup`, a cycle at a
    time: values taken in cycle ``t`` can leave from ``t + 1`` (its ``latency``, 1)."""
    if lanes_in == lanes_out:
        if ready is None:
            return list(times), list(times)
        out = []
        for t, r in zip(times, ready, strict=True):
            out.append(max(t, r, out[-1] + 1 if out else 0))
        return out, out
    groups_in = ceil_div(channels, lanes_in)
    last_in = channels - (groups_in - 1) * lanes_in
    capacity = lanes_in + lanes_out - 1
    accepted, out = [], []
    # The buffer: the values held (each with the pixel-end flag of its position).
    held = []  # list of booleans: value ends its pixel
    k, n = 0, len(times)
    cycle = times[0] if times else 0
    group = 0
    while k < n or held:
        # Output this cycle (from the buffer's state at the start of the cycle).
        emitted = 0
        if held:
            end = next((j for j, e in enumerate(held[:lanes_out]) if e), None)
            if end is not None:
                emitted = end + 1
            elif len(held) >= lanes_out:
                emitted = lanes_out
        # The next cycle in which something can happen, when nothing does in this one (the
        # state holds until then, so the model jumps there).
        wake = []
        if emitted and ready is not None and ready[len(out)] > cycle:
            wake.append(ready[len(out)])
            emitted = 0  # the consumer is not ready for it yet
        if emitted:
            out.append(cycle)
        remaining = held[emitted:]
        pend_after = any(remaining)
        took = False
        if k < n:
            offered = times[k] if not accepted else max(times[k], accepted[-1] + 1)
            end_group = group == groups_in - 1
            n_in = last_in if end_group else lanes_in
            if offered <= cycle and len(remaining) + n_in <= capacity and \
                    not (end_group and pend_after):
                accepted.append(cycle)
                remaining = remaining + [False] * (n_in - 1) + [end_group]
                group = 0 if end_group else group + 1
                k += 1
                took = True
            elif offered > cycle:
                wake.append(offered)
        held = remaining
        cycle += 1
        if not emitted and not took and wake:
            cycle = max(cycle, min(wake))
    return accepted, out


def _window_times(wp, offered: list[int], *, frames: int = 1, replay=None):
    """The window generator of ``wp`` over ``frames`` frames back to back, input beat ``b``
    offered at ``offered[b]``: ``(accepted, beats, issue)``, when it takes each input beat,
    when each window beat is offered on ``windows``, and (with a ``replay`` of ``(beats,
    latency)``: a :class:`~accel.hw.replay.WindowReplay` replaying each window ``beats``
    cycles) the cycle each window's first replayed beat enters the array stream; without a
    replay the consumer takes every beat when offered.

    Rows and output rows are counted over all frames (input row ``f * H + r``), as the
    generator's slots and its ``ahead`` counter do, so the refill at a frame boundary (the
    next frame's first rows waiting for slots the last windows still read) is modelled."""
    geo = window_2d((wp.height, wp.width), wp.kernel, wp.strides, wp.padding)
    kh, kw = wp.kernel
    nr = wp.buffer_rows
    groups, width, height = wp.groups, wp.width, wp.height
    out_h, out_w = geo.out_shape
    rlow = [max(geo.rows.start(o), 0) for o in range(out_h)]
    c0s = [geo.cols.start(p) for p in range(out_w)]
    # Per input row ro of a frame: the first output row of the frame with rlow > ro (out_h:
    # the next frame's first), and the last with rlow == ro (None if there is none).
    first_after = [next((o for o in range(out_h) if rlow[o] > ro), out_h)
                   for ro in range(height)]
    last_same = [max((o for o in range(out_h) if rlow[o] == ro), default=None)
                 for ro in range(height)]
    current: list[int] = []  # the cycle window w becomes the reader's current window
    accepted: list[int] = []
    per_frame = height * width * groups

    def window_current(o_global: int, p: int) -> int | None:
        w = o_global * out_w + p
        return current[w] if w < len(current) else None

    def unblock(r: int, c: int) -> int:
        # The writer fills row r in the slot of row r - NR: free once the reader's current
        # output row no longer needs that row, or (the last output row that needs it) left
        # of its window.
        old = r - nr
        if old < 0:
            return 0
        fo, ro = divmod(old, height)
        times = []
        t = window_current(fo * out_h + first_after[ro], 0)
        if t is not None:
            times.append(t)
        o = last_same[ro]
        if o is not None:
            for p in range(out_w):
                if c0s[p] > c:
                    t = window_current(fo * out_h + o, p)
                    if t is not None:
                        times.append(t)
                    break
        return min(times) if times else 0

    def take(upto: int) -> None:
        while len(accepted) <= upto:
            b = len(accepted)
            pixel = b // groups
            r, c = divmod(pixel, width)  # r counts rows over all frames
            t = offered[b] if not accepted else max(offered[b], accepted[-1] + 1)
            accepted.append(max(t, unblock(r, c)))

    beats: list[int] = []
    issue: list[int] = []
    prev_beat = None
    for f in range(frames):
        for orow in range(out_h):
            r0 = geo.rows.start(orow)
            for ocol in range(out_w):
                w = len(current)
                current.append(0 if prev_beat is None else prev_beat - WINDOW_READ_LATENCY + 1)
                free = 0
                if replay is not None and w >= 2:
                    # The bank of window w - 2 is free the cycle after its last read, which
                    # is REPLAY_READ_AHEAD cycles before that beat is offered.
                    free = issue[w - 2] + replay[0] - REPLAY_READ_AHEAD
                c0 = c0s[ocol]
                for i in range(kh):
                    for j in range(kw):
                        r, c = r0 + i, c0 + j
                        inside = 0 <= r < height and 0 <= c < width
                        for g in range(groups):
                            # The reader's first read is in cycle 0 at the earliest.
                            t = max(free, WINDOW_READ_LATENCY if prev_beat is None
                                    else prev_beat + 1)
                            if inside:
                                b = f * per_frame + (r * width + c) * groups + g
                                take(b)
                                t = max(t, accepted[b] + wp.latency)
                            beats.append(t)
                            prev_beat = t
                if replay is not None:
                    start = prev_beat + replay[1]
                    if issue:
                        start = max(start, issue[-1] + replay[0])
                    issue.append(start)
    take(len(offered) - 1)
    return accepted, beats, issue


def _pool_times(pool, offered: list[int]) -> tuple[list[int], list[int]]:
    """``(taken, out)`` of a :class:`~accel.hw.maxpool.MaxPool` or
    :class:`~accel.hw.avgpool.AvgPool` (``pool``: its :class:`~accel.plan.blocks.PoolPlan`
    or :class:`~accel.plan.blocks.AvgPoolPlan`) whose input beats, of whole frames, are
    offered at ``offered``.

    The pool takes a beat on its last update: one cycle per window that contains it (one if
    none). An output row's first beat is offered ``pool.latency`` after the beat that ends its
    last input row, the others one per cycle, rows in order."""
    height, width = pool.height, pool.width
    groups = ceil_div(pool.channels, pool.lanes)
    window = window_2d((height, width), pool.pool, pool.strides, pool.padding)
    rows, cols = axis_table(window.rows), axis_table(window.cols)
    out_h, out_w = pool.out_shape
    per_frame = height * width * groups
    taken: list[int] = []
    for b, t in enumerate(offered):
        r, c = divmod(b % per_frame // groups, width)
        updates = max(rows[r][1] * cols[c][1], 1)
        start = t if not taken else max(t, taken[-1] + 1)
        taken.append(start + updates - 1)
    emitted: list[int] = []
    prev = None
    row_beats = width * groups
    for f in range(len(offered) // per_frame):
        done = 0  # output rows of the frame complete so far
        for r in range(height):
            end = taken[f * per_frame + (r + 1) * row_beats - 1] + pool.latency
            for _ in range(rows[r][4]):
                for _ in range(out_w * groups):
                    prev = end if prev is None else max(end, prev + 1)
                    emitted.append(prev)
                done += 1
        assert done == out_h
    return taken, emitted


def _mean_times(mean, offered: list[int]) -> tuple[list[int], list[int]]:
    """``(taken, out)`` of a :class:`~accel.hw.avgpool.GlobalMean` (``mean``: its
    :class:`~accel.plan.blocks.MeanPlan`): a beat per cycle, the result of group ``g`` offered
    ``mean.latency`` after the frame's last pixel's beat ``g``. A final-pixel beat waits while
    ``mean.credits`` results are in its pipeline and output FIFO."""
    groups = ceil_div(mean.channels, mean.lanes)
    per_frame = mean.height * mean.width * groups
    taken: list[int] = []
    out: list[int] = []
    for b, t in enumerate(offered):
        t = t if not taken else max(t, taken[-1] + 1)
        if b % per_frame >= per_frame - groups:
            # Results taken before cycle t and not yet delivered (a delivery in cycle d
            # frees its credit from cycle d + 1).
            while len(out) >= mean.credits and out[-mean.credits] >= t:
                t = out[-mean.credits] + 1
            taken.append(t)
            out.append(max(t + mean.latency, out[-1] + 1) if out else t + mean.latency)
        else:
            taken.append(t)
    return taken, out


def _depthwise_times(stage, offered: list[int]) -> tuple[list[int], list[int]]:
    """``(accepted, out)`` of a depthwise stage: the PEs take every window beat when offered;
    group ``g`` of an output pixel is offered ``depthwise.latency`` (the PEs, their FIFO and
    the requantizer) after the beat of the pixel's last tap for that group."""
    window = stage.window
    frames = len(offered) // (window.height * window.width * window.groups)
    accepted, beats, _ = _window_times(window, offered, frames=frames)
    taps = window.kernel[0] * window.kernel[1]
    groups = window.groups
    per_window = taps * groups
    latency = stage.depthwise.latency
    out = [beats[w + (taps - 1) * groups + g] + latency
           for w in range(0, len(beats), per_window) for g in range(groups)]
    return accepted, out


def _dense_feeds(stage, offered: list[int]) -> tuple[list[int], list[int]]:
    """``(accepted, issue)`` of a Dense stage's replay, its window the whole input vector
    (``Kt`` beats a frame): a frame's beats go into the bank that frame ``f - 2`` left (free
    the cycle after its last read); its replays start ``replay.latency`` after its last beat,
    once the previous frame's ``Kt * Ft`` beats are out."""
    beats = stage.k_tiles * stage.f_tiles
    accepted: list[int] = []
    issue: list[int] = []
    for f in range(len(offered) // stage.k_tiles):
        free = issue[f - 2] + beats - REPLAY_READ_AHEAD if f >= 2 else 0
        for t in offered[f * stage.k_tiles:(f + 1) * stage.k_tiles]:
            accepted.append(max(t, free, accepted[-1] + 1 if accepted else 0))
        start = accepted[-1] + stage.replay.latency
        issue.append(max(start, issue[-1] + beats) if issue else start)
    return accepted, issue


def _stage_times(stage, times: list[int]) -> tuple[list[int], list[int]]:
    """``(accepted, out)``: when ``stage`` takes each input beat offered at ``times`` (whole
    frames, back to back), and when it offers each output beat."""
    if hasattr(stage, "depthwise"):
        return _depthwise_times(stage, times)
    if hasattr(stage, "unit"):  # a stand-alone pooling stage
        if isinstance(stage.unit, MeanPlan):
            return _mean_times(stage.unit, times)
        return _pool_times(stage.unit, times)
    from .stream_timing import streamed_dense_times, streamed_exact

    if streamed_exact(stage):  # a Dense stage's beats wait for their tiles, cycle by cycle
        return streamed_dense_times(stage, times)
    kt, ft = stage.k_tiles, stage.f_tiles
    if stage.window is None:  # Dense: the window is the whole input vector
        accepted, feeds = _dense_feeds(stage, times)
    else:
        window = stage.window
        frames = len(times) // (window.height * window.width * window.groups)
        accepted, _, feeds = _window_times(window, times, frames=frames,
                                           replay=(kt * ft, stage.replay.latency))
    tail = (kt - 1) + stage.array.latency + stage.accumulator.latency + stage.requant.latency
    out = [feed + f * kt + tail for feed in feeds for f in range(ft)]
    ws = getattr(stage, "streamed", None)
    if ws is not None:
        # An estimate: the prefetch FIFO is full when the vector arrives, then the words come
        # at the memory's rate; f-tile f's last beat needs word (f + 1) * Kt * words_per_tile.
        # A batch of B images shares each word, which this follows as the average image: a
        # B-th of the words per image (the interval is right, a batch's first image is
        # really out later, when its whole batch is: latency_exact is False).
        out = [max(feed + f * kt,
                   feed + math.ceil(max((f + 1) * kt * ws.words_per_tile / ws.batch
                                        - ws.fifo_depth, 0) / ws.memory.words_per_cycle)
                   - (kt - 1)) + tail for feed in feeds for f in range(ft)]
    if stage.maxpool is None:
        return accepted, out
    return accepted, _pool_times(stage.maxpool, out)[1]


def _add_times(stage, first: list[int], second: list[int]) -> list[int]:
    """When an Add stage offers each beat of its sum, its inputs' beats offered at ``first``
    and ``second``: a buffered input's beat reaches the merge
    :data:`~accel.plan.join.SKIP_LATENCY` after it is offered, the merge takes a pair when
    both are there (one pair per cycle) and offers the sum ``latency`` later.

    This assumes the fork before the join never waits, the skip buffers never fill and the
    reader never holds the merge's pipeline full; :func:`joins_exact` checks all three on
    the modelled times."""
    return [t + stage.latencies["add"] for t in _merge_takes(stage, first, second)]


def _fork_side(offered: list[int], other: list[int]) -> list[int]:
    """When a skip buffer fed by a :class:`~accel.hw.fork.Fork` takes each beat, the beats
    offered to the fork at ``offered`` and taken by its other reader at ``other``: the fork
    has beat ``k`` once both readers have taken beat ``k - 1`` (the buffer takes a beat as
    soon as the fork has it while it has room, :func:`joins_exact`)."""
    taken: list[int] = []
    for k, t in enumerate(offered):
        if k:
            t = max(t, other[k - 1] + 1, taken[-1] + 1)
        taken.append(t)
    return taken


def _merge_takes(stage, first: list[int], second: list[int]) -> list[int]:
    """The cycle the merge takes each pair (see :func:`_add_times`)."""
    from .join import SKIP_LATENCY

    takes: list[int] = []
    for a, b in zip(first, second, strict=True):
        t = max(a + (SKIP_LATENCY if stage.skip_depths[0] else 0),
                b + (SKIP_LATENCY if stage.skip_depths[1] else 0))
        if takes:
            t = max(t, takes[-1] + 1)
        takes.append(t)
    return takes


def _concat_takes(stage, first: list[int], second: list[int]) -> tuple[list[int], list[int]]:
    """When a Concatenate's merge takes each beat of its first and second input, their beats
    offered at ``first`` and ``second``: each input's beat reaches the merge
    :data:`~accel.plan.join.SKIP_LATENCY` after it is offered (through its skip buffer), and
    the merge takes, one beat per cycle, a pixel's beats of the first input, then of the
    second. Assumes the skip buffers never fill and the reader never holds the merge's output
    register (:func:`join_timing_fault` checks both)."""
    from .join import SKIP_LATENCY

    ga, gb = stage.groups
    delay = [SKIP_LATENCY if depth else 0 for depth in stage.skip_depths]
    takes: tuple[list[int], list[int]] = ([], [])
    last = -1
    for p in range(len(first) // ga):
        for n, (offered, g) in enumerate(((first, ga), (second, gb))):
            for t in offered[p * g:(p + 1) * g]:
                last = max(t + delay[n], last + 1)
                takes[n].append(last)
    return takes


def _concat_times(stage, first: list[int], second: list[int]) -> list[int]:
    """When a Concatenate offers each output beat (:func:`_concat_takes`), in output order."""
    ga, gb = stage.groups
    takes_a, takes_b = _concat_takes(stage, first, second)
    out = []
    for p in range(len(takes_a) // ga):
        out += takes_a[p * ga:(p + 1) * ga] + takes_b[p * gb:(p + 1) * gb]
    return [t + stage.latencies["concat"] for t in out]


def join_timing_fault(plan) -> str | None:
    """None if the timing model's assumptions about forks and joins hold for ``plan`` over
    :data:`_PERIOD_FRAMES` images back to back (True for a plan without joins): where two
    stages read a forked tensor, each is done with every beat before the next is offered (so
    the fork never holds a beat back from one for the other; a fork an Add reads directly is
    followed beat by beat, :func:`_fork_side`); no skip buffer holds more than its depth (a
    beat enters only after the beat ``depth`` places earlier has left for the merge, a cycle
    to spare); and no Add's pipeline
    fills (pair ``k`` is taken only after its reader has taken sum ``k - latency``). Where one
    fails, which (a one-line reason): the model's times are then estimates, and
    :attr:`NetworkPlan.latency_exact` says so (:func:`joins_exact`)."""
    joins = [s for s in plan.stages if len(s.inputs) == 2]
    if not joins:
        return None
    record: dict = {}
    offered = frame_times(plan, _PERIOD_FRAMES, record=record)
    readers: dict[str, dict[int, list[int]]] = {}
    for (tensor, reader), accepted in record["accepted"].items():
        readers.setdefault(tensor, {})[reader] = accepted
    add_ids = {id(s) for s in joins}
    for tensor, by_reader in readers.items():
        if len(by_reader) < 2 or add_ids & by_reader.keys():
            continue  # not a fork, or one the model follows (a join reads it directly)
        # Two stages read the fork: each must be done with a beat before the next is offered
        # (else the fork would hold the next beat back from the other).
        off = offered[tensor]
        for acc in by_reader.values():
            if any(acc[k - 1] >= off[k] for k in range(1, len(off))):
                return f"the fork of {tensor} waits for a reader"
    for stage in joins:
        if isinstance(stage, ConcatStagePlan):
            fault = _concat_fault(stage, record, readers)
            if fault:
                return fault
            continue
        takes = record["takes"][stage.output]
        for depth, tensor in zip(stage.skip_depths, stage.inputs, strict=True):
            entered = record["accepted"][(tensor, id(stage))]
            if depth and any(entered[k] <= takes[k - depth] for k in range(depth, len(takes))):
                return f"{stage.layer}: the skip buffer on {tensor} fills"
        latency = stage.latencies["add"]
        for acc in readers.get(stage.output, {}).values():
            if any(takes[k] <= acc[k - latency] for k in range(latency, len(takes))):
                return f"{stage.layer}: its reader holds the merge pipeline full"
    return None


def _concat_fault(stage, record: dict, readers: dict) -> str | None:
    """:func:`join_timing_fault`'s checks of one Concatenate: no skip buffer holds more than
    its depth, and its reader takes output beat ``k - 1`` no later than the merge takes beat
    ``k`` (else the output register would hold the merge)."""
    per_input = record["takes"][stage.output]
    for depth, tensor, takes in zip(stage.skip_depths, stage.inputs, per_input, strict=True):
        entered = record["accepted"][(tensor, id(stage))]
        if depth and any(entered[k] <= takes[k - depth] for k in range(depth, len(takes))):
            return f"{stage.layer}: the skip buffer on {tensor} fills"
    takes = sorted(per_input[0] + per_input[1])
    for acc in readers.get(stage.output, {}).values():
        if any(acc[k - 1] > takes[k] for k in range(1, len(takes))):
            return f"{stage.layer}: its reader holds the merge"
    return None


def joins_exact(plan) -> bool:
    """Whether :func:`join_timing_fault` finds none."""
    return join_timing_fault(plan) is None


#: Frames run back to back to find a period: from the second frame's end to the third's (the
#: first frame starts with every buffer empty).
_PERIOD_FRAMES = 3


def window_period(window, *, replay: tuple[int, int] | None = None) -> int:
    """Cycles between the ends of two frames of a window generator (``window``: its
    :class:`~accel.plan.blocks.WindowPlan`) in steady state, its input always offered: with
    ``replay=(beats, latency)`` as the replay of a conv stage takes its windows (``beats =
    Kt * Ft`` cycles each), else (a depthwise stage's PEs) one beat per cycle. At least the
    frame's windows' beats; more where the line buffer's ``kh + sh - 1`` rows cannot take the
    next frame's first rows while the last windows are read (VALID padding with a stride below
    the kernel): the refill at the frame boundary. In a network, an input slower than that
    can stretch the refill further (:func:`frame_times` models both)."""
    n_in = window.height * window.width * window.groups
    _, beats, issue = _window_times(window, [0] * (_PERIOD_FRAMES * n_in),
                                    frames=_PERIOD_FRAMES, replay=replay)
    ends = issue if replay is not None else beats
    per_frame = len(ends) // _PERIOD_FRAMES
    return ends[-1] - ends[-1 - per_frame]


def stage_period(stage) -> int:
    """Steady-state cycles per frame of ``stage`` on its own, its input always offered and its
    output always taken: its ``cycles``, or its window generator's period
    (:func:`window_period`) where the refill at the frame boundary makes that longer."""
    window = getattr(stage, "window", None)
    if window is None:  # Dense and pooling stages read each beat once, as it comes
        return stage.cycles
    replay = None if hasattr(stage, "depthwise") else (stage.k_tiles * stage.f_tiles,
                                                        stage.replay.latency)
    return max(window_period(window, replay=replay), stage.cycles)


def frame_times(plan, frames: int = 1, *, record: dict | None = None,
                status: dict | None = None) -> dict[str, list[int]]:
    """Per tensor of ``plan``, the cycle each of its beats is taken, for ``frames`` images
    streamed back to back (the input port takes value ``k`` of the stream in cycle ``k``).

    With ``record`` (a dict), returns the cycles each tensor's beats are *offered* instead, and
    fills ``record["accepted"][(tensor, reader)]`` with when each reader takes them and
    ``record["takes"][add output]`` with when each Add's merge takes each pair
    (:func:`joins_exact`).

    Where two or more streamed stages share the weight memory, their times come from the
    fixed point of :func:`.shared_stream_timing.frame_times` (passes of this model);
    ``status["settled"]`` (with a ``status`` dict) says whether it was reached (else the
    times are an estimate) and ``status["passes"]`` how many passes ran."""
    from .shared_stream_timing import frame_times as shared_frame_times
    from .shared_stream_timing import shared_exact

    if not shared_exact(plan):
        return _frame_times_pass(plan, frames, record, _stage_times)
    result, passes = shared_frame_times(
        plan, lambda stage_times: _frame_times_pass(plan, frames, record, stage_times))
    if status is not None:
        status["settled"], status["passes"] = passes is not None, passes
    return result


def _frame_times_pass(plan, frames: int, record: dict | None, stage_times) -> dict:
    """One pass of :func:`frame_times`, a stage's times from ``stage_times`` (what
    :func:`_stage_times` gives, or the shared memory's fixed point's)."""
    accepted_by: dict = {}
    takes_of: dict = {}
    if record is not None:
        record["accepted"], record["takes"] = accepted_by, takes_of
    times = {plan.input_tensor: list(range(frames * math.prod(plan.input_shape)))}
    offered = dict(times)  # per tensor, when its producer offers each beat
    producers = {}
    for node in plan.nodes:
        if isinstance(node, RegroupPlan):
            accepted, out = regroup_times(offered[node.input], channels=node.channels,
                                          lanes_in=node.lanes_in, lanes_out=node.lanes_out)
            times[node.input] = accepted
            accepted_by[(node.input, id(node))] = accepted
            offered[node.output] = times[node.output] = out
            producers[node.output] = node
            continue
        if len(node.inputs) == 2:  # a join: its inputs are taken as they are offered
            sources = []
            for name in node.inputs:
                other = [acc for (tensor, reader), acc in accepted_by.items()
                         if tensor == name and reader != id(node)]
                # An input the fork feeds directly gets each beat once the fork has it: once
                # the other reader has taken the one before.
                sources.append(_fork_side(offered[name], other[0]) if other else offered[name])
                accepted_by[(name, id(node))] = sources[-1]
            if isinstance(node, ConcatStagePlan):
                takes_of[node.output] = _concat_takes(node, *sources)
                offered[node.output] = times[node.output] = _concat_times(node, *sources)
            else:
                takes_of[node.output] = _merge_takes(node, *sources)
                offered[node.output] = times[node.output] = _add_times(node, *sources)
            continue
        tensor = node.inputs[0]
        accepted, out = stage_times(node, offered[tensor])
        regroup = producers.get(tensor)
        # A stage that takes a beat later than offered holds its regroup back, and the
        # regroup the stream before it (the input port, whose values then arrive later): run
        # the regroup again with the stage's acceptance until neither moves (both only move
        # later).
        while regroup is not None and accepted != offered[tensor]:
            before, out_before = times[regroup.input], offered[tensor]
            upstream, offered[tensor] = regroup_times(
                offered[regroup.input], channels=regroup.channels,
                lanes_in=regroup.lanes_in, lanes_out=regroup.lanes_out, ready=accepted)
            times[regroup.input] = upstream
            accepted_by[(regroup.input, id(regroup))] = upstream
            accepted, out = stage_times(node, offered[tensor])
            if upstream == before and offered[tensor] == out_before:
                break
        times[tensor] = accepted
        accepted_by[(tensor, id(node))] = accepted
        offered[node.output] = times[node.output] = out
    if record is not None:
        return offered
    return times


def first_image_times(plan) -> dict[str, list[int]]:
    """Per tensor of ``plan``, the cycle each of its beats is taken, for the first image."""
    return frame_times(plan, 1)


def output_times(plan, *, status: dict | None = None) -> list[int]:
    """When the output stage offers each beat, :data:`_PERIOD_FRAMES` batches of images
    (``plan.batch`` each) back to back (:func:`frame_times`): what :func:`latency` and
    :func:`interval` read. The first batch's beats are the same as for that batch alone: no
    beat of the model waits for a later one (except where streamed stages share the weight
    memory: a later image's weights may then delay an earlier one's, and the first batch's
    beats are those with the next ones following, as ``accel sim`` measures them)."""
    frames = _PERIOD_FRAMES * plan.batch
    return frame_times(plan, frames, status=status)[plan.output_stage.output]


def latency(plan, out: list[int] | None = None) -> int:
    """The first image's last output beat (:attr:`NetworkPlan.latency_cycles`): at batch
    ``B``, out with its batch. ``out``: :func:`output_times`, if already known."""
    if out is None:
        out = output_times(plan)
    return out[len(out) // (_PERIOD_FRAMES * plan.batch) - 1]


def interval(plan, out: list[int] | None = None) -> int:
    """The steady-state cycles per inference of ``plan``, images back to back with no input
    gaps or output stalls: the cycles between the last output beats of the second and third
    images (:func:`frame_times`). At batch ``B`` (a batched streamed stage): over three
    batches, the third's cycles per image (rounded up). ``out``: :func:`output_times`, if
    already known."""
    batch = plan.batch
    frames = _PERIOD_FRAMES * batch
    if out is None:
        out = output_times(plan)
    per_frame = len(out) // frames
    return math.ceil((out[-1] - out[-1 - per_frame * batch]) / batch)
