"""The first image's timing through the plan, beat by beat (:attr:`NetworkPlan.latency_cycles`).

Every stream is described by the cycle in which each of its beats is taken, counted from the
cycle the input port takes the image's first value (cycle 0). Each block maps the times of the
beats it consumes to the times of the beats it produces from its stated ``latency`` and its
throughput of one beat per cycle:

- input port: value ``k`` at cycle ``k`` (no gaps);
- :class:`~accel.hw.regroup.ChannelRegroup`: an output beat ``latency`` after the input beat
  that completes it, one per cycle; an input beat waits while its values do not fit;
- window generator: a window beat ``latency`` after the input beat it reads (padding taps
  need none), one per cycle, while the replay bank it fills is free; its writer waits while
  the slot of the row it fills is still read (the scheme of :mod:`accel.hw.window`);
- :class:`~accel.hw.replay.WindowReplay`: a window's first replayed beat ``latency`` after its
  last beat, once the previous window's ``Kt * Ft`` beats are out;
- array stream, accumulator, requantizer: fixed latencies (the sum of a window's ``Kt`` beats
  is out ``accumulator.latency`` after its last beat reaches the accumulator);
- max pool: an output row's first beat ``latency`` after the beat that ends its last input
  row, one beat per cycle.

The model assumes the first image, no input gaps and no output stalls, and no backpressure
other than the replay banks, the line buffer's slots and the regroups' buffers: the array
stream, accumulator and requantizer FIFOs are sized never to stall at one beat per cycle, and
a pool takes one beat per cycle when its windows do not overlap (an input beat in ``n``
overlapping windows takes ``n`` cycles, which a stage of ``Kt * Ft >= n`` cycles per beat
hides).
"""

from __future__ import annotations

import math

from ..spec.shapes import ceil_div, window_2d
from .blocks import REPLAY_READ_AHEAD, WINDOW_READ_LATENCY, RegroupPlan, axis_table

__all__ = ["first_image_times", "regroup_times"]


def regroup_times(times: list[int], *, channels: int, lanes_in: int,
                  lanes_out: int) -> tuple[list[int], list[int]]:
    """``(accepted, out)``: when each input beat is taken and each output beat leaves, for input
    beats offered at ``times`` (a beat is offered no earlier than one cycle after the previous
    one was taken). The shift buffer of :class:`~accel.hw.regroup.ChannelRegroup`, a cycle at a
    time: values taken in cycle ``t`` can leave from ``t + 1`` (its ``latency``, 1)."""
    if lanes_in == lanes_out:
        return list(times), list(times)
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
        if emitted:
            out.append(cycle)
        remaining = held[emitted:]
        pend_after = any(remaining)
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
        held = remaining
        cycle += 1
        if k < n and not held:
            cycle = max(cycle, times[k] if not accepted else max(times[k], accepted[-1] + 1))
    return accepted, out


def _conv_feeds(stage, offered: list[int]) -> tuple[list[int], list[int]]:
    """``(accepted, issue)`` for a conv stage whose input beats are offered at ``offered``:
    when the window generator takes each input beat, and the cycle each window's first
    replayed beat enters the array stream (``Kt * Ft`` consecutive beats follow)."""
    wp = stage.window
    geo = window_2d((wp.height, wp.width), wp.kernel, wp.strides, wp.padding)
    kh, kw = wp.kernel
    nr = wp.buffer_rows
    groups, width = wp.groups, wp.width
    out_h, out_w = geo.out_shape
    beats = stage.k_tiles * stage.f_tiles
    rlow = [max(geo.rows.start(o), 0) for o in range(out_h)]
    c0s = [geo.cols.start(p) for p in range(out_w)]
    current = []  # the cycle window w becomes the reader's current window
    accepted: list[int] = []

    def unblock(r: int, c: int) -> int:
        # The writer fills row r in the slot of row r - NR: free once the reader's current
        # output row no longer needs that row, or (last such output row) left of its window.
        old = r - nr
        if old < 0:
            return 0
        later = [o for o in range(out_h) if rlow[o] > old]
        times = [current[later[0] * out_w]] if later else []
        same = [o for o in range(out_h) if rlow[o] == old]
        if same and (not later or later[0] == same[-1] + 1):
            o = same[-1]
            times += [current[o * out_w + p] for p in range(out_w) if c0s[p] > c]
        return min(times) if times else 0

    def take(upto: int) -> None:
        while len(accepted) <= upto:
            b = len(accepted)
            r, c = divmod(b // groups, width)
            t = offered[b] if not accepted else max(offered[b], accepted[-1] + 1)
            accepted.append(max(t, unblock(r, c)))

    issue, prev_beat = [], None
    for orow in range(out_h):
        for ocol in range(out_w):
            w = len(issue)
            current.append(0 if prev_beat is None else prev_beat - WINDOW_READ_LATENCY + 1)
            # The bank of window w - 2 is free the cycle after its last read, which is
            # REPLAY_READ_AHEAD cycles before that beat is offered.
            free = issue[w - 2] + beats - REPLAY_READ_AHEAD if w >= 2 else 0
            r0, c0 = geo.rows.start(orow), c0s[ocol]
            for i in range(kh):
                for j in range(kw):
                    r, c = r0 + i, c0 + j
                    inside = 0 <= r < wp.height and 0 <= c < width
                    for g in range(groups):
                        # The reader's first read is in cycle 0 at the earliest.
                        t = max(free, WINDOW_READ_LATENCY if prev_beat is None
                                else prev_beat + 1)
                        if inside:
                            b = (r * width + c) * groups + g
                            take(b)
                            t = max(t, accepted[b] + wp.latency)
                        prev_beat = t
            start = prev_beat + stage.replay.latency
            if issue:
                start = max(start, issue[-1] + beats)
            issue.append(start)
    take(len(offered) - 1)
    return accepted, issue


def _estimated_stage_times(stage, times: list[int]) -> tuple[list[int], list[int]]:
    """An estimate for the stage kinds this model does not follow beat by beat yet (depthwise
    and stand-alone pooling stages): the stage takes its input as offered, and its output beats
    are spread evenly over its cycles per frame, none before the input it needs (in proportion)
    plus the stage's pipeline latency. Not exact: :attr:`NetworkPlan.latency_exact` says so."""
    g = stage.geometry
    beats = g.out_h * g.out_w * ceil_div(g.filters, stage.out_lanes)
    latency = sum(stage.latencies.values()) if hasattr(stage, "latencies") else 0
    spacing = stage.cycles / beats
    start = times[0] + latency
    out, n = [], len(times)
    for k in range(beats):
        needed = times[min(n - 1, math.ceil((k + 1) * n / beats) - 1)] + latency
        t = max(start + round(k * spacing), needed, out[-1] + 1 if out else 0)
        out.append(t)
    return list(times), out


def _stage_times(stage, times: list[int]) -> tuple[list[int], list[int]]:
    """``(accepted, out)``: when ``stage`` takes each input beat offered at ``times``, and when
    it offers each output beat."""
    if not hasattr(stage, "k_tiles"):  # a depthwise or stand-alone pooling stage
        return _estimated_stage_times(stage, times)
    kt, ft = stage.k_tiles, stage.f_tiles
    if stage.window is None:  # Dense: the window is the whole input vector
        accepted = list(times)
        feeds = [times[-1] + stage.replay.latency]
    else:
        accepted, feeds = _conv_feeds(stage, times)
    tail = (kt - 1) + stage.array.latency + stage.accumulator.latency + stage.requant.latency
    out = [feed + f * kt + tail for feed in feeds for f in range(ft)]
    ws = getattr(stage, "streamed", None)
    if ws is not None:
        # An estimate: the prefetch FIFO is full when the vector arrives, then the words come
        # at the memory's rate; f-tile f's last beat needs word (f + 1) * Kt * words_per_tile.
        (feed,) = feeds
        out = [max(feed + f * kt,
                   feed + math.ceil(max((f + 1) * kt * ws.words_per_tile - ws.fifo_depth, 0)
                                    / ws.memory.words_per_cycle) - (kt - 1)) + tail
               for f in range(ft)]
    if stage.maxpool is None:
        return accepted, out
    pool = stage.maxpool
    height, width = pool.height, pool.width
    groups = ceil_div(pool.channels, pool.lanes)
    window = window_2d((height, width), pool.pool, pool.strides, pool.padding)
    rows, cols = axis_table(window.rows), axis_table(window.cols)
    out_h, out_w = pool.out_shape
    # The pool takes a beat on its last update: one cycle per window that contains it (one
    # if none). A slower pool holds the requantizer back; the stage's FIFOs keep it fed.
    taken = []
    for b, t in enumerate(out):
        r, c = divmod(b // groups, width)
        updates = max(rows[r][1] * cols[c][1], 1)
        start = t if not taken else max(t, taken[-1] + 1)
        taken.append(start + updates - 1)
    emitted, prev = [], None
    row_beats = width * groups
    done = 0  # output rows complete so far
    for r in range(height):
        end = taken[(r + 1) * row_beats - 1]
        for _ in range(rows[r][4]):
            for _ in range(out_w * groups):
                t = end + pool.latency if prev is None else max(end + pool.latency, prev + 1)
                emitted.append(t)
                prev = t
            done += 1
    assert done == out_h
    return accepted, emitted


def _add_times(stage, first: list[int], second: list[int]) -> list[int]:
    """An estimate for an Add stage: beat ``k`` of the sum leaves ``latency`` after both input
    beats ``k`` are there (a skip buffer adds its one cycle), one beat per cycle. Not exact
    (the fork's waits are not followed): :attr:`NetworkPlan.latency_exact` says so."""
    from .join import ADD_LATENCY, SKIP_LATENCY

    out: list[int] = []
    for a, b in zip(first, second, strict=True):
        t = max(a + (SKIP_LATENCY if stage.skip_depths[0] else 0),
                b + (SKIP_LATENCY if stage.skip_depths[1] else 0))
        if out:
            t = max(t, out[-1] + 1 - ADD_LATENCY)
        out.append(t + ADD_LATENCY)
    return out


def first_image_times(plan) -> dict[str, list[int]]:
    """Per tensor of ``plan``, the cycle each of its beats is taken, for the first image."""
    times = {plan.input_tensor: list(range(math.prod(plan.input_shape)))}
    for node in plan.nodes:
        if isinstance(node, RegroupPlan):
            accepted, out = regroup_times(times[node.input], channels=node.channels,
                                          lanes_in=node.lanes_in, lanes_out=node.lanes_out)
            times[node.input] = accepted
            times[node.output] = out
        elif len(node.inputs) == 2:
            times[node.output] = _add_times(node, *(times[name] for name in node.inputs))
        else:
            times[node.inputs[0]], times[node.output] = _stage_times(node,
                                                                     times[node.inputs[0]])
    return times
