"""Cycle by cycle, when the weight tiles of several streamed stages reach their arrays, the
stages sharing one memory through the :class:`~accel.hw.weight_arbiter.WeightArbiter`: the
plan's model of the arbiter on the deterministic memory model, the multi-stream
counterpart of :mod:`.stream_timing` (which follows one stream and is kept for its speed).

What is stepped, every cycle, all from the state at the cycle's start:

- the memory model (:class:`accel.sim.memory_model.MemoryModel`, ``jitter=False``, no gaps):
  a request is taken when it holds fewer than :data:`~.weight_memory.MODEL_QUEUE` and is not
  refreshing, its data may start ``read_latency`` cycles later, one idle cycle between
  bursts, ``refresh_cycles`` busy cycles every ``refresh_period`` from reset;
- the arbiter: while its request register is empty and its owner queue (a ``SyncFIFO`` of
  :attr:`~.weight_memory.WeightMemoryPlan.queue_depth` entries) has room, it takes the
  request of the first port with one waiting, counting from the one after the port it served
  last (port ``k`` is the ``k``-th streamed stage in plan order); the register is held until
  the memory takes it; an owner entry leaves with its request's last word. The response path
  is combinational: the memory's word goes to the head entry's port in the cycle it is sent,
  and that port's ``ready`` is the memory's;
- per port, the :class:`~accel.hw.burst_reader.BurstReader` and the
  :class:`~accel.hw.weight_stream.WeightStream` tile assembler, as
  :class:`~.stream_timing.WeightPath` steps them;
- per stage, its consumer of tiles: a Dense stage's replay at batch 1, or the
  :mod:`accel.hw.batch` replay and output register at batch ``B > 1``, as
  :func:`~.stream_timing.streamed_dense_times` has them (:class:`OfferedTiles` for the
  tests: tiles wanted from given cycles).

A stage's tiles are wanted from cycles that its input times decide, and those come from
the stages before it, which may themselves stream: :func:`frame_times` (called by
:func:`accel.plan.timing.frame_times` for a plan with two or more streamed stages) solves that
by a fixed point. It runs the timing model pass after pass; in a pass every streamed stage's
times come from one joint run of this model with every streamed stage's input as last
known (the previous pass's for stages not yet reached); it stops when a pass leaves every
streamed stage's input as it found it. Such a fixed point is the hardware's behaviour: the
system is strictly causal (a stage's input beat at cycle ``t`` depends on tile takes
before ``t``, a take at cycle ``t`` on requests, hence inputs, before ``t``), so by induction
over the cycles there is only one set of times consistent with every block, and the fixed
point is consistent with every block. Each pass fixes at least the frames whose input the
previous one already had right (a frame's input does not depend on the later frames'), so
the passes needed grow with the frames; after :data:`MAX_PASSES` without one the times are
an estimate (:func:`frame_times` says so, and the plan's ``latency_exact`` is then False).
"""

from __future__ import annotations

import math

from .blocks import REPLAY_FIFO_DEPTH, REPLAY_READ_AHEAD
from .weight_memory import MODEL_QUEUE
from .weights import BATCH_ACCUMULATOR_LATENCY

__all__ = ["MAX_PASSES", "OfferedTiles", "SharedMemory", "frame_times", "shared_exact",
           "streamed_times"]

#: Passes of the timing model :func:`frame_times` runs at most to reach its fixed point.
MAX_PASSES = 24


class _Port:
    """One stage's reader, FIFO and tile assembler (the state :class:`~.stream_timing.
    WeightPath` keeps besides the memory's)."""

    __slots__ = ("burst", "cmd_len", "cmd_valid", "count", "depth", "frame", "inflight",
                 "inner", "k", "out_full", "rx_left", "tx_left")

    def __init__(self, ws):
        self.burst, self.depth = ws.max_burst, ws.fifo_depth
        self.frame, self.k = ws.words_per_image, ws.words_per_tile
        self.tx_left = self.rx_left = 0
        self.cmd_valid, self.cmd_len, self.inflight = False, 0, 0
        self.inner, self.out_full, self.count = 0, False, 0

    def idle(self) -> bool:
        """:meth:`~.stream_timing.WeightPath.idle` without the memory: nothing moves in a
        cycle in which its array wants no tile."""
        if self.cmd_valid or self.inflight:
            return False
        if self.tx_left == 0:
            if self.rx_left == 0:
                return False
        elif self.inner + self.out_full + min(self.tx_left, self.burst) <= self.depth:
            return False
        if self.k > 1 and self.count != self.k - 1:
            return not self.out_full and self.inner == 0
        return self.out_full or self.inner == 0


class SharedMemory:
    """The memory model and the arbiter with one :class:`_Port` per stream (see module doc),
    stepped a cycle at a time by :meth:`run`.

    Parameters
    ----------
    streams : sequence of StreamedWeights
        The streamed stages' weights in arbiter port order (plan order); they share one
        ``memory``.
    queue_depth : int
        The arbiter's owner queue (:attr:`~.weight_memory.WeightMemoryPlan.queue_depth`).
    """

    def __init__(self, streams, *, queue_depth: int, start: int = 0):
        memory = streams[0].memory
        self.latency = memory.read_latency
        self.period, self.busy = memory.refresh_period, memory.refresh_cycles
        self.queue_depth = queue_depth
        self.ports = [_Port(ws) for ws in streams]
        self.t, self.phase = start, 0
        self.queue: list[tuple[int, int, int]] = []  # (length, first data cycle, port)
        self.active, self.left, self.owner = False, 0, 0
        self.arb_valid, self.arb_len, self.arb_port = False, 0, 0
        self.last = len(streams) - 1  # the arbiter's last served port (its reset value)
        self.owned = 0  # owner queue entries

    def idle(self) -> bool:
        """Nothing is requested, queued or answered and no port moves without a want."""
        return not (self.active or self.queue or self.arb_valid) and \
            all(p.idle() for p in self.ports)

    def step(self, wants: list[bool]) -> list[bool]:  # noqa: C901 - one cycle of every block
        """One cycle; ``wants[k]``: port ``k``'s array (or output register) takes a tile if
        one is offered. Returns which took one."""
        t = self.t
        refresh = self.period and self.phase < self.busy
        queue, ports = self.queue, self.ports
        # memory: its command side takes the arbiter's register; its data side
        fire = self.arb_valid and not refresh and len(queue) < MODEL_QUEUE
        answer = None
        pop = False
        if self.active:
            if not refresh:
                p = ports[self.owner]
                if p.inner != p.depth - 1 and p.rx_left:
                    answer = p
        else:
            pop = bool(queue) and t >= queue[0][1]
        # arbiter: the first waiting port after the last served
        grant = -1
        if not self.arb_valid and self.owned < self.queue_depth:
            n = len(ports)
            for j in range(1, n + 1):
                k = (self.last + j) % n
                if ports[k].cmd_valid:
                    grant = k
                    break
        taken = []
        for k, p in enumerate(ports):
            # reader (frame, request), FIFO, assembler: from the cycle's start
            frame = p.tx_left == 0 and p.rx_left == 0
            length = min(p.tx_left, p.burst)
            issue = not p.cmd_valid and p.tx_left != 0 and \
                p.inner + p.out_full + p.inflight + length <= p.depth
            want = wants[k]
            if p.k == 1:
                full = True
                got = p.out_full and want
                r_en = got
            else:
                full = p.count == p.k - 1
                got = p.out_full and full and want
                r_en = not full or want
            do_read = p.out_full and r_en
            inner_read = p.inner != 0 and (not p.out_full or r_en)
            if k == grant:
                cmd_len = p.cmd_len
                p.cmd_valid = False
            if frame:
                p.tx_left = p.rx_left = p.frame
            if issue:
                p.cmd_valid, p.cmd_len = True, length
                p.tx_left -= length
                p.inflight += length
            word = answer is p
            if word:
                p.rx_left -= 1
                p.inflight -= 1
            p.inner += word - inner_read
            if inner_read:
                p.out_full = True
            elif r_en:
                p.out_full = False
            if do_read and p.k > 1:
                p.count = 0 if full else p.count + 1
            taken.append(got)
        if fire:
            queue.append((self.arb_len, t + self.latency, self.arb_port))
        if pop:
            self.left, _, self.owner = queue.pop(0)
            self.active = True
        if answer is not None:
            self.left -= 1
            if self.left == 0:
                self.active = False
                self.owned -= 1
        if grant >= 0:
            self.arb_valid, self.arb_len, self.arb_port = True, cmd_len, grant
            self.last = grant
            self.owned += 1
        elif fire:
            self.arb_valid = False
        self.phase = (self.phase + 1) % self.period if self.period else 0
        self.t = t + 1
        return taken

    def wait(self, until: int) -> None:
        """Advance to cycle ``until`` at once (only while :meth:`idle` and no array wants a
        tile before then)."""
        if until > self.t:
            if self.period:
                self.phase = (self.phase + until - self.t) % self.period
            self.t = until

    def run(self, consumers: list) -> None:
        """Step until every consumer is :attr:`done` (its port keeps prefetching, as the
        hardware's does, while the others finish), skipping the cycles in which nothing but
        the time would change."""
        while not all(c.done for c in consumers):
            t = self.t
            wants = [c.wants(t) for c in consumers]
            if not any(wants) and self.idle():
                until = min(c.wake(t) for c in consumers)
                if until > t:
                    self.wait(until)
                    continue
            for c, got in zip(consumers, self.step(wants), strict=True):
                c.update(t, got)


class OfferedTiles:
    """A consumer that wants tile ``b`` from cycle ``offers[b]`` on, and from the cycle after
    tile ``b - 1`` was taken, until taken; :attr:`times` the cycles they were."""

    def __init__(self, offers: list[int]):
        self.offers, self.times = list(offers), []
        self.done = not offers

    def wants(self, t: int) -> bool:
        return not self.done and t >= self._from()

    def _from(self) -> int:
        b = len(self.times)
        return max(self.offers[b], self.times[-1] + 1) if self.times else self.offers[0]

    def wake(self, t: int) -> float:
        return math.inf if self.done else self._from()

    def update(self, t: int, got: bool) -> None:
        if got:
            self.times.append(t)
            self.done = len(self.times) == len(self.offers)


class _Batch1:
    """A streamed Dense stage at batch 1 (:func:`~.stream_timing._batch1_times`): frame
    ``f``'s beats go into the bank frame ``f - 2`` left; its first beat is offered
    ``replay.latency`` after its input's last and after the previous frame's last, each next
    one from the cycle after the one before was taken."""

    def __init__(self, stage, offered: list[int]):
        self.stage, self.offered = stage, offered
        self.kt, self.beats = stage.k_tiles, stage.k_tiles * stage.f_tiles
        self.frames = len(offered) // self.kt
        self.tail = stage.array.latency + stage.accumulator.latency + stage.requant.latency
        self.accepted: list[int] = []
        self.out: list[int] = []
        self.ends: list[int] = []
        self.b = 0
        self.done = self.frames == 0
        if not self.done:
            self._frame()

    def _frame(self) -> None:
        f, kt, accepted, ends = len(self.ends), self.kt, self.accepted, self.ends
        free = ends[f - 2] + 1 - REPLAY_READ_AHEAD if f >= 2 else 0
        for t in self.offered[f * kt:(f + 1) * kt]:
            accepted.append(max(t, free, accepted[-1] + 1 if accepted else 0))
        start = accepted[-1] + self.stage.replay.latency
        self.next = max(start, ends[-1] + 1) if ends else start

    def wants(self, t: int) -> bool:
        return not self.done and t >= self.next

    def wake(self, t: int) -> float:
        return math.inf if self.done else self.next

    def update(self, t: int, got: bool) -> None:
        if not got:
            return
        self.b += 1
        self.next = t + 1
        if self.b % self.kt == 0:
            self.out.append(t + self.tail)
        if self.b == self.beats:
            self.b = 0
            self.ends.append(t)
            if len(self.ends) == self.frames:
                self.done = True
            else:
                self._frame()

    def result(self) -> tuple[list[int], list[int]]:
        return self.accepted, self.out


class _Batched:
    """A streamed Dense stage at batch ``B > 1`` (:func:`~.stream_timing._batched_times`,
    a cycle at a time): the replay issues a batch's beats into its FIFO once the batch's bank
    is full, the array fires a beat when the replay offers one and the output register holds
    its tile, which it releases with the batch's last image's beat (the port's ``wants``)."""

    def __init__(self, stage, offered: list[int]):
        ws = stage.streamed
        self.stage, self.offered = stage, offered
        self.b_n, kt, ft = ws.batch, stage.k_tiles, stage.f_tiles
        self.per_batch = self.b_n * kt
        self.batches = len(offered) // self.per_batch
        self.beats = self.per_batch * ft
        self.accepted: list[int] = []
        self.full_at: list[int] = []
        for g in range(min(2, self.batches)):
            self._accept(g, 0)
        self.level, self.inflight, self.oreg, self.uses = 0, False, False, 0
        self.issued = self.fired = 0
        self.fires: list[int] = []
        self.done = self.batches == 0

    def _accept(self, g: int, free: int) -> None:
        accepted = self.accepted
        for t in self.offered[g * self.per_batch:(g + 1) * self.per_batch]:
            accepted.append(max(t, free, accepted[-1] + 1 if accepted else 0))
        self.full_at.append(accepted[-1] + 1)

    def wants(self, t: int) -> bool:
        g = self.issued // self.beats
        self._issue = g < self.batches and t >= self.full_at[g] and \
            self.level + self.inflight < REPLAY_FIFO_DEPTH
        replay_valid = self.level > 0
        self._fire = replay_valid and self.oreg
        self._o_ready = replay_valid and self.uses == self.b_n - 1
        return (not self.oreg) or self._o_ready

    def wake(self, t: int) -> float:
        """Waiting for the next batch's bank with the tile in hand changes nothing until it
        is full."""
        g = self.issued // self.beats
        if self.done:
            return math.inf
        if g < self.batches and self.oreg and not self.level and not self.inflight:
            return max(self.full_at[g], t)
        return t

    def update(self, t: int, got: bool) -> None:
        if got:
            self.oreg = True
        elif self._o_ready:
            self.oreg = False
        if self._fire:
            self.fires.append(t)
            self.fired += 1
            self.uses = 0 if self.uses == self.b_n - 1 else self.uses + 1
        self.level += self.inflight - self._fire
        self.inflight = self._issue
        if self._issue:
            self.issued += 1
            g = (self.issued - 1) // self.beats
            if self.issued % self.beats == 0 and g + 2 < self.batches:
                self._accept(g + 2, t + 1)
        self.done = self.fired == self.batches * self.beats

    def result(self) -> tuple[list[int], list[int]]:
        stage = self.stage
        out: list[int] = []
        previous = -1
        for g in range(self.batches):
            reached = self.fires[(g + 1) * self.beats - 1] + stage.array.latency
            first = max(reached + 1, previous + 1)
            for j in range(self.b_n * stage.f_tiles):
                out.append(first + j + BATCH_ACCUMULATOR_LATENCY - 1 + stage.requant.latency)
            previous = first + self.b_n * stage.f_tiles - 1
        return self.accepted, out


def shared_exact(plan) -> bool:
    """Whether this model follows ``plan``'s streams: two or more streamed stages, all Dense
    (any batch) on one memory."""
    from .stream_timing import streamed_exact

    stages = plan.streamed_stages
    return len(stages) >= 2 and all(streamed_exact(s) for s in stages) and \
        len({s.streamed.memory for s in stages}) == 1


def streamed_times(plan, offered: list[list[int]]) -> list[tuple[list[int], list[int]]]:
    """Per streamed stage of ``plan`` (plan order), ``(accepted, out)`` when its input beats
    are offered at ``offered[k]``: all of them stepped together on the shared memory."""
    from .weight_memory import weight_memory_plan

    stages = plan.streamed_stages
    memory = SharedMemory([s.streamed for s in stages],
                          queue_depth=weight_memory_plan(plan).queue_depth)
    consumers = [(_Batched if s.streamed.batch > 1 else _Batch1)(s, times)
                 for s, times in zip(stages, offered, strict=True)]
    memory.run(consumers)
    return [c.result() for c in consumers]


class _Passes:
    """The fixed point's state across passes (see module doc): each streamed stage's input as
    last known, and the joint runs already made (a pass usually repeats the last one)."""

    def __init__(self, plan):
        self.plan = plan
        self.stages = plan.streamed_stages
        self.position = {id(s): k for k, s in enumerate(self.stages)}
        self.known: list[tuple[int, ...] | None] = [None] * len(self.stages)
        self.runs: dict = {}
        self.moved = False

    def times(self, stage, offered: list[int]) -> tuple[list[int], list[int]]:
        k = self.position[id(stage)]
        mine = tuple(offered)
        if self.known[k] != mine:
            self.known[k] = mine
            self.moved = True
        if any(v is None for v in self.known):
            # The first pass: the stages after this one are not reached yet; this one alone
            # (its input is right, so the next pass starts from a good guess).
            from .stream_timing import streamed_dense_times

            return streamed_dense_times(stage, offered)
        key = tuple(self.known)
        if key not in self.runs:
            self.runs[key] = streamed_times(self.plan, [list(v) for v in key])
        return self.runs[key][k]


def frame_times(plan, run_pass) -> tuple[object, int | None]:
    """The fixed point (module doc): ``run_pass(times)`` is one pass of the timing model,
    with ``times(stage, offered)`` giving a streamed stage's ``(accepted, out)``. Returns the
    last pass's result and the passes it took to reach the fixed point (None: not reached
    in :data:`MAX_PASSES`, an estimate)."""
    passes = _Passes(plan)
    result = None
    for n in range(MAX_PASSES):
        passes.moved = False
        result = run_pass(passes.times)
        if n > 0 and not passes.moved:
            return result, n + 1
    return result, None
