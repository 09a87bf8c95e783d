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
known (the previous pass's for stages not yet reached; in the first pass, a stage before
such a one runs alone); it stops at the first pass whose every streamed stage's times came
from the joint run on the inputs the pass ended with. Such a fixed point is the hardware's
behaviour: the system is strictly causal (a stage's input beat at cycle ``t`` depends on tile
takes before ``t``, a take at cycle ``t`` on requests, hence inputs, before ``t``), so by
induction over the cycles only one set of times is consistent with every block, and the
fixed point is consistent with every block. A frame's input is typically right from the pass
after the one that got the frame before it right (2 to 5 passes on the test networks and the
seed network over three images); after :data:`MAX_PASSES` without the fixed point the times
are an estimate (:func:`frame_times` says so, and the plan's ``latency_exact`` is then
False).

The passes' joint runs differ only from some frame of a stage's input on, so a run resumes
from the last one's snapshots (:class:`_Runs`): it is the same up to the first cycle at which
a read of an input frame decides something else (a first beat's offer, a bank's full cycle).
The other stages' times are kept by input from pass to pass.
"""

from __future__ import annotations

import copy
import math

from .blocks import REPLAY_FIFO_DEPTH, REPLAY_READ_AHEAD
from .weight_memory import MODEL_QUEUE
from .weights import BATCH_ACCUMULATOR_LATENCY

__all__ = ["MAX_PASSES", "OfferedTiles", "SharedMemory", "frame_times", "shared_exact",
           "streamed_times"]

#: Passes of the timing model :func:`frame_times` runs at most to reach its fixed point.
MAX_PASSES = 24
#: Cycles between the snapshots of a joint run that a run on other inputs may resume from.
SNAPSHOT_CYCLES = 1024


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

    def copy(self) -> SharedMemory:
        """A copy to resume from (:func:`streamed_times`)."""
        new = copy.copy(self)
        new.ports = [copy.copy(p) for p in self.ports]
        new.queue = list(self.queue)
        return new

    def run(self, consumers: list, snapshots: list | None = None) -> None:
        """Step until every consumer is :attr:`done` (its port keeps prefetching, as the
        hardware's does, while the others finish), skipping the cycles in which nothing but
        the time would change.

        With ``snapshots`` (a list), the state is appended to it every
        :data:`SNAPSHOT_CYCLES` cycles and before consumers read a frame (a batch) of their
        input: ``(readers, memory, consumers, decided)``, ``decided[k]`` what reader ``k``'s
        read decided (:meth:`_Batch1.behaviour`). A run on other inputs resumes from one
        (:class:`_Runs`)."""
        due = self.t if snapshots is not None else math.inf
        pending = True  # a consumer may be due to read, or done
        while True:
            if pending or self.t >= due:
                if snapshots is not None:
                    snapshot = ([k for k, c in enumerate(consumers) if c.reads], self.copy(),
                                [c.snapshot() for c in consumers], {})
                    snapshots.append(snapshot)
                    due = self.t + SNAPSHOT_CYCLES
                for k, c in enumerate(consumers):
                    if c.reads:
                        c.read()
                        if snapshots is not None:
                            snapshot[3][k] = c.behaviour()
                if all(c.done for c in consumers):
                    return
            pending = self._steps(consumers, due)

    def _steps(self, consumers: list, due: float) -> bool:  # noqa: C901 - :meth:`step`, inlined
        """:meth:`step` cycle after cycle with the state in locals (the planner spends its
        time here), skipping idle cycles (:meth:`idle`), until a consumer is due to read or
        done (True) or cycle ``due`` (False)."""
        ports = self.ports
        n = len(ports)
        latency, period, busy = self.latency, self.period, self.busy
        queue_depth, queue = self.queue_depth, self.queue
        t, phase = self.t, self.phase
        active, left, owner = self.active, self.left, self.owner
        arb_valid, arb_len, arb_port = self.arb_valid, self.arb_len, self.arb_port
        last, owned = self.last, self.owned
        order = [[(a + j) % n for j in range(1, n + 1)] for a in range(n)]
        wanting = [c.wants for c in consumers]
        updates = [c.update for c in consumers]
        pairs = list(zip(ports, wanting, updates, strict=True))
        event = False
        while t < due:
            wants = [w(t) for w in wanting]
            if not (active or queue or arb_valid) and not any(wants) and \
                    all(p.idle() for p in ports):
                until = min(c.wake(t) for c in consumers)
                if until > t:
                    if until > due:
                        until = due
                    if period:
                        phase = (phase + until - t) % period
                    t = until
                    continue
            refresh = period and phase < busy
            fire = arb_valid and not refresh and len(queue) < MODEL_QUEUE
            answer = None
            pop = False
            if active:
                if not refresh:
                    p = ports[owner]
                    if p.inner != p.depth - 1 and p.rx_left:
                        answer = p
            else:
                pop = bool(queue) and t >= queue[0][1]
            grant = None
            if not arb_valid and owned < queue_depth:
                for k in order[last]:
                    if ports[k].cmd_valid:
                        grant = k
                        break
            for k, (p, _, update) in enumerate(pairs):
                tx_left = p.tx_left
                length = tx_left if tx_left < p.burst else p.burst
                inner, out_full = p.inner, p.out_full
                issue = not p.cmd_valid and tx_left != 0 and \
                    inner + out_full + p.inflight + length <= p.depth
                want = wants[k]
                if p.k == 1:
                    got = out_full and want
                    full, r_en = True, got
                else:
                    full = p.count == p.k - 1
                    got = out_full and full and want
                    r_en = not full or want
                if k == grant:
                    arb_len = p.cmd_len
                    p.cmd_valid = False
                if tx_left == 0 and p.rx_left == 0:
                    p.tx_left = p.rx_left = p.frame
                if issue:
                    p.cmd_valid, p.cmd_len = True, length
                    p.tx_left -= length
                    p.inflight += length
                if inner and (r_en or not out_full):
                    inner -= 1
                    p.out_full = True
                elif r_en:
                    p.out_full = False
                if answer is p:
                    p.rx_left -= 1
                    p.inflight -= 1
                    inner += 1
                p.inner = inner
                if out_full and r_en and p.k > 1:
                    p.count = 0 if full else p.count + 1
                if update(t, got):
                    event = True
            if fire:
                # (a request is forwarded only from a full register, taken only into an
                # empty one: ``arb_len`` is still the forwarded one's)
                queue.append((arb_len, t + latency, arb_port))
            if pop:
                left, _, owner = queue.pop(0)
                active = True
            if answer is not None:
                left -= 1
                if left == 0:
                    active = False
                    owned -= 1
            if grant is not None:
                arb_valid, arb_port, last = True, grant, grant
                owned += 1
            elif fire:
                arb_valid = False
            phase = (phase + 1) % period if period else 0
            t += 1
            if event:
                break
        self.t, self.phase = t, phase
        self.active, self.left, self.owner = active, left, owner
        self.arb_valid, self.arb_len, self.arb_port = arb_valid, arb_len, arb_port
        self.last, self.owned = last, owned
        return event


class OfferedTiles:
    """A consumer that wants tile ``b`` from cycle ``offers[b]`` on, and from the cycle after
    tile ``b - 1`` was taken, until taken; :attr:`times` the cycles they were."""

    reads = ()

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

    def update(self, t: int, got: bool) -> bool:
        """Advance past cycle ``t``; True if that made it :attr:`done` or due to read."""
        if got:
            self.times.append(t)
            self.done = len(self.times) == len(self.offers)
            return self.done
        return False


class _Consumer:
    """What :class:`_Batch1` and :class:`_Batched` share: snapshots that copy only what
    changes in place (their lists only grow, so a snapshot keeps their lengths)."""

    _lists: tuple[str, ...] = ()

    def snapshot(self):
        new = copy.copy(self)
        new.reads = list(self.reads)
        new._lengths = [len(getattr(self, name)) for name in self._lists]
        return new

    def restored(self):
        """A live consumer from a :meth:`snapshot`."""
        new = copy.copy(self)
        new.reads = list(self.reads)
        for name, length in zip(self._lists, self._lengths, strict=True):
            setattr(new, name, getattr(self, name)[:length])
        return new


class _Batch1(_Consumer):
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
        self.unit = self.kt  # input beats per read
        self.done = self.frames == 0
        self.reads = [] if self.done else [(0, None)]  # frames whose input is read next
        self.next = math.inf

    _lists = ("accepted", "out", "ends")

    def behaviour(self) -> tuple:
        """What a read decides besides the accepted cycles (which only the result reads):
        the frame's first beat's offer."""
        return (self.next,)

    @staticmethod
    def diverges(old: tuple, new: tuple) -> int:
        """The first cycle in which a read deciding ``new`` instead of ``old`` can change
        anything: the earlier offer (nothing is wanted before it)."""
        return min(old[0], new[0])

    def patch(self, redone: _Batch1) -> None:
        """Take the first-beat offer of ``redone`` (the same read on other inputs) while
        its frame has not started."""
        if self.b == 0 and len(self.ends) == len(redone.ends) and not self.reads:
            self.next = redone.next

    def read(self) -> None:
        """Take the next frame's input: its beats' acceptance and its first beat's offer."""
        self.reads = []
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

    def update(self, t: int, got: bool) -> bool:
        """Advance past cycle ``t``; True if that made it :attr:`done` or due to read."""
        if not got:
            return False
        self.b += 1
        self.next = t + 1
        if self.b % self.kt == 0:
            self.out.append(t + self.tail)
        if self.b != self.beats:
            return False
        self.b = 0
        self.ends.append(t)
        if len(self.ends) == self.frames:
            self.done = True
        else:
            self.reads = [(len(self.ends), None)]
        return True

    def result(self) -> tuple[list[int], list[int]]:
        return self.accepted, self.out


class _Batched(_Consumer):
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
        self.unit = self.per_batch  # input beats per read
        # batches whose input is read next, each with the cycle its bank is free from
        self.reads = [(g, 0) for g in range(min(2, self.batches))]
        self.level, self.inflight, self.oreg, self.uses = 0, False, False, 0
        self.issued = self.fired = 0
        self.fires: list[int] = []
        self.done = self.batches == 0

    _lists = ("accepted", "full_at", "fires")

    def behaviour(self) -> tuple:
        """What a read decides besides the accepted cycles: when the banks are full."""
        return tuple(self.full_at)

    @staticmethod
    def diverges(old: tuple, new: tuple) -> int:
        """The first cycle in which reads deciding ``new`` instead of ``old`` can change
        anything: the earlier of the first bank-full cycles that differ (a bank is only
        compared with the time)."""
        return min(min(a, b) for a, b in zip(old, new, strict=True) if a != b)

    def patch(self, redone: _Batched) -> None:
        """Take the bank-full cycles of ``redone`` (the same reads on other inputs)."""
        self.full_at = list(redone.full_at)

    def read(self) -> None:
        """Take the next batches' input into their banks."""
        accepted = self.accepted
        for g, free in self.reads:
            for t in self.offered[g * self.per_batch:(g + 1) * self.per_batch]:
                accepted.append(max(t, free, accepted[-1] + 1 if accepted else 0))
            self.full_at.append(accepted[-1] + 1)
        self.reads = []

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

    def update(self, t: int, got: bool) -> bool:
        """Advance past cycle ``t``; True if that made it :attr:`done` or due to read."""
        event = False
        if got:
            self.oreg = True
        elif self._o_ready:
            self.oreg = False
        if self._fire:
            self.fires.append(t)
            self.fired += 1
            self.uses = 0 if self.uses == self.b_n - 1 else self.uses + 1
            if self.fired == self.batches * self.beats:
                self.done = event = True
        self.level += self.inflight - self._fire
        self.inflight = self._issue
        if self._issue:
            self.issued += 1
            g = (self.issued - 1) // self.beats
            if self.issued % self.beats == 0 and g + 2 < self.batches:
                self.reads.append((g + 2, t + 1))
                event = True
        return event

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
    return _Runs(plan).times(tuple(tuple(v) for v in offered))


class _Runs:
    """Joint runs of :class:`SharedMemory` on one plan's streamed stages, by their inputs.

    A run on other inputs than the last run's is the same as it up to the first read of an
    input frame (a batch) whose read decides something else (:meth:`_Batch1.behaviour`:
    the accepted cycles alone change nothing else): it resumes from the last run's state
    before that read, and if there is none, is the last run with other accepted cycles."""

    def __init__(self, plan):
        from .weight_memory import weight_memory_plan

        self.plan = plan
        self.stages = plan.streamed_stages
        self.queue_depth = weight_memory_plan(plan).queue_depth
        self.results: dict = {}
        self.last = None  # (inputs, snapshots) of the last run

    def times(self, key: tuple) -> list[tuple[list[int], list[int]]]:
        """Per stage, ``(accepted, out)`` with stage ``k``'s input offered at ``key[k]``."""
        if key in self.results:
            return self.results[key]
        if self.last is None:
            memory = SharedMemory([s.streamed for s in self.stages],
                                  queue_depth=self.queue_depth)
            consumers = [(_Batched if s.streamed.batch > 1 else _Batch1)(s, list(v))
                         for s, v in zip(self.stages, key, strict=True)]
            snapshots: list = []
        else:
            resumed = self._resume(key)
            if resumed is None:
                return self.results[key]
            memory, consumers, snapshots = resumed
        memory.run(consumers, snapshots)
        self.last = (key, snapshots)
        self.results[key] = result = [c.result() for c in consumers]
        return result

    def _resume(self, key: tuple):
        """Where the run on ``key`` leaves the last run (class doc): ``(memory, consumers,
        snapshots)`` to run on from, or None (and its result filed) if it never does.

        The last run's reads are redone on ``key`` in order; the first that decides
        otherwise makes a difference from cycle ``diverges`` on, and the reads before that
        cycle are redone too (any of them may also decide otherwise, from an earlier cycle).
        The run resumes from the last snapshot not after that cycle, with every read before
        it redone (the accepted cycles, and what the reads decided)."""
        old, snapshots = self.last
        accepted = [None] * len(key)  # per consumer, once a read is redone: on ``key``
        redone: list = [None] * len(key)  # the consumer of its last redone read
        limit = math.inf
        resume = None
        kept = []  # the snapshots, with what their reads decide on ``key``
        for i, (readers, saved_memory, saved, decided) in enumerate(snapshots):
            if saved_memory.t > limit:
                break
            resume = (i, list(accepted), list(redone))
            now = {}
            for k in readers:
                c = saved[k].restored()
                if accepted[k] is not None:
                    c.accepted = list(accepted[k])  # the resume point keeps its own
                    c.patch(redone[k])  # what its earlier reads decided on ``key``
                c.offered = key[k]
                c.read()
                now[k] = c.behaviour()
                if now[k] != decided[k]:
                    limit = min(limit, c.diverges(decided[k], now[k]))
                accepted[k], redone[k] = c.accepted, c
            kept.append((readers, saved_memory, saved, now))
        if math.isinf(limit):  # the same run, other accepted cycles
            self.results[key] = [(a if a is not None else was[0], was[1])
                                 for a, was in zip(accepted, self.results[old], strict=True)]
            self.last = (key, kept)
            return None
        i, accepted, redone = resume
        memory = snapshots[i][1].copy()
        consumers = []
        for k, saved in enumerate(snapshots[i][2]):
            c = saved.restored()
            c.offered = list(key[k])
            if accepted[k] is not None:
                c.accepted = list(accepted[k])
                c.patch(redone[k])
            consumers.append(c)
        return memory, consumers, kept[:i]


class _Passes:
    """The fixed point's state across passes (see module doc): each streamed stage's input
    as the last pass left it (the guess for the stages a pass has not reached yet), the
    joint runs (:class:`_Runs`), and the other stages' times by input (most are the same
    pass after pass)."""

    def __init__(self, plan):
        self.stages = plan.streamed_stages
        self.position = {id(s): k for k, s in enumerate(self.stages)}
        self.last: list[tuple[int, ...] | None] = [None] * len(self.stages)
        self.runs = _Runs(plan)
        self.memo: dict = {}
        self.start()

    def start(self) -> None:
        self.current: dict[int, tuple[int, ...]] = {}
        self.used: dict[int, tuple] = {}  # the inputs of each stage's latest times

    def stage_times(self, stage, offered: list[int]) -> tuple[list[int], list[int]]:
        """``stage``'s ``(accepted, out)``: a streamed stage's from the joint run with the
        others' inputs as last known (a stage may be asked again in a pass, with its
        regroup's backpressure); another's from :func:`accel.plan.timing._stage_times`."""
        k = self.position.get(id(stage))
        if k is None:
            key = (id(stage), tuple(offered))
            if key not in self.memo:
                from .timing import _stage_times

                self.memo[key] = _stage_times(stage, offered)
            return self.memo[key]
        self.current[k] = tuple(offered)
        key = tuple(self.current.get(j, self.last[j]) for j in range(len(self.stages)))
        if any(v is None for v in key):
            # The first pass, a stage after this one not reached yet: this one alone (its
            # input is right, so the next pass starts from a good guess).
            from .stream_timing import streamed_dense_times

            self.used[k] = None
            return streamed_dense_times(stage, offered)
        self.used[k] = key
        return self.runs.times(key)[k]

    def finish(self) -> bool:
        """End a pass: whether every stage's times came from the joint run on the inputs
        the pass ended with (the fixed point)."""
        final = tuple(self.current.get(j) for j in range(len(self.stages)))
        settled = all(self.used.get(k) == final for k in range(len(self.stages)))
        self.last = list(final)
        self.start()
        return settled


def frame_times(plan, run_pass) -> tuple[object, int | None]:
    """The fixed point (module doc): ``run_pass(stage_times)`` is one pass of the timing
    model, ``stage_times(stage, offered)`` giving a stage's ``(accepted, out)``. Returns the
    last pass's result and the passes it took to reach the fixed point (None: not reached
    in :data:`MAX_PASSES`, an estimate)."""
    passes = _Passes(plan)
    result = None
    for n in range(MAX_PASSES):
        result = run_pass(passes.stage_times)
        if passes.finish():
            return result, n + 1
    return result, None
