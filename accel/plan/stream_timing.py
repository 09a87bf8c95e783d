"""Cycle by cycle, when a streamed stage's weight tiles reach its array: the plan's model of the
deterministic memory model (:class:`accel.sim.memory_model.MemoryModel` with ``jitter=False``
and no gaps: each request's data may start ``read_latency`` cycles after it was taken, one
idle cycle between bursts, the memory's ``refresh_cycles`` busy cycles every
``refresh_period`` from reset, :data:`MODEL_QUEUE` requests queued: all from the plan's
:class:`~accel.plan.weights.ExternalMemory`, the board's memory description), the
:class:`~accel.hw.burst_reader.BurstReader` (a request registered only when its words fit the
``SyncFIFOBuffered`` beside those in flight, one request every two cycles at most, the next
frame once the last one's words are all in) and the :class:`~accel.hw.weight_stream.WeightStream`
tile assembler (``words_per_tile - 1`` words held, the last passed through as the array takes
the tile).

Where the plan's ExternalMemory differs from the board's real memory (the ULX3S's LiteDRAM,
whose rate is the measured ``words_per_cycle``), this is exact against the model only.

:func:`streamed_dense_times` replaces the Dense stage's one-beat-per-cycle replay with beats
that also wait for their tiles (a beat is taken when both the replay offers it and its tile is
there; at batch ``B`` the :mod:`accel.hw.batch` replay and accumulator), which makes
:attr:`~accel.plan.plan.NetworkPlan.latency_cycles` and
:attr:`~accel.plan.plan.NetworkPlan.interval_cycles` exact for one streamed stage at any
batch against that memory. The memory starts with the harness, ``MEMORY_START`` cycles before the
input port takes the first value (plan cycle 0). Several streamed stages on one memory (through
the :class:`~accel.hw.weight_arbiter.WeightArbiter`) are :mod:`.shared_stream_timing`'s.
"""

from __future__ import annotations

from .blocks import REPLAY_FIFO_DEPTH, REPLAY_READ_AHEAD
from .weight_memory import MODEL_QUEUE
from .weights import BATCH_ACCUMULATOR_LATENCY

__all__ = ["MEMORY_START", "WeightPath", "streamed_dense_times", "streamed_exact",
           "streams_exact"]

#: Plan cycle of the memory model's (and the reader's) first cycle after reset.
MEMORY_START = 0


def streamed_exact(stage) -> bool:
    """Whether :func:`streamed_dense_times` follows ``stage`` exactly: a streamed Dense stage
    (any batch)."""
    ws = getattr(stage, "streamed", None)
    return ws is not None and stage.window is None and stage.maxpool is None


def streams_exact(plan) -> bool:
    """Whether ``plan``'s weight streams are in the cycle model: every streamed stage
    :func:`streamed_exact`, and where two or more share the memory through the arbiter
    (:mod:`.shared_stream_timing`) on one memory, the timing model's fixed point reached
    (:attr:`~accel.plan.plan.NetworkPlan.streams_settled`)."""
    from .shared_stream_timing import shared_exact

    stages = plan.streamed_stages
    if len(stages) <= 1:
        return all(streamed_exact(s) for s in stages)
    return shared_exact(plan) and plan.streams_settled


class WeightPath:
    """The memory model, the burst reader and the tile assembler of one streamed stage,
    stepped a cycle at a time (see module doc). :meth:`take` advances until the array takes
    the next tile."""

    def __init__(self, ws, *, start: int = MEMORY_START):
        self.t = start
        self.latency, self.burst = ws.memory.read_latency, ws.max_burst
        self.period, self.busy = ws.memory.refresh_period, ws.memory.refresh_cycles
        self.depth, self.frame = ws.fifo_depth, ws.words_per_image
        self.k = ws.words_per_tile
        # memory model
        self.queue: list[tuple[int, int]] = []  # (length, first cycle its data may start)
        self.active, self.left, self.phase = False, 0, 0
        # burst reader
        self.tx_left = self.rx_left = 0
        self.cmd_valid, self.cmd_len, self.inflight = False, 0, 0
        self.inner, self.out_full = 0, False  # SyncFIFOBuffered: its memory, its output reg
        # tile assembler
        self.count = 0

    def step(self, wants: bool) -> bool:  # noqa: C901 - one cycle of three blocks
        """One cycle; ``wants``: the array offers the beat that takes the next tile. Returns
        whether it took it."""
        refresh = self.period > 0 and self.phase < self.busy
        cmd_ready = len(self.queue) < MODEL_QUEUE and not refresh
        pop = not self.active and len(self.queue) > 0 and self.t >= self.queue[0][1]
        rsp_valid = self.active and not refresh
        frame = self.tx_left == 0 and self.rx_left == 0
        length = min(self.tx_left, self.burst)
        level = self.inner + self.out_full
        issue = not self.cmd_valid and self.tx_left != 0 and \
            level + self.inflight + length <= self.depth
        cmd_fire = self.cmd_valid and cmd_ready
        take = rsp_valid and self.inner != self.depth - 1 and self.rx_left != 0
        # the assembler and the FIFO's read side
        if self.k == 1:
            full, tile_valid = True, self.out_full
        else:
            full = self.count == self.k - 1
            tile_valid = self.out_full and full
        taken = tile_valid and wants
        r_en = taken if self.k == 1 else (not full or wants)
        do_read = self.out_full and r_en
        inner_read = self.inner != 0 and (not self.out_full or r_en)
        # memory model registers
        if cmd_fire:
            self.queue.append((self.cmd_len, self.t + self.latency))
        if pop:
            self.active, self.left = True, self.queue.pop(0)[0]
        if take:
            if self.left == 1:
                self.active = False
            self.left -= 1
        self.phase = (self.phase + 1) % self.period if self.period else 0
        # reader registers
        if frame:
            self.tx_left = self.rx_left = self.frame
        if issue:
            self.cmd_valid, self.cmd_len = True, length
            self.tx_left -= length
        if cmd_fire:
            self.cmd_valid = False
        if take:
            self.rx_left -= 1
        self.inflight += (length if issue else 0) - take
        # FIFO and assembler registers
        self.inner += take - inner_read
        if inner_read:
            self.out_full = True
        elif r_en:
            self.out_full = False
        if do_read and self.k > 1:
            self.count = 0 if full else self.count + 1
        self.t += 1
        return taken

    def idle(self) -> bool:
        """Whether a cycle in which the array does not want a tile changes nothing but the
        time (and the refresh phase): no request queued, answered or registered, none the
        reader may register (its FIFO too full for the next burst), no word in flight and
        none the FIFO or the assembler may move. Refresh busy cycles only hold a request or an
        answer, of which there are none, so this holds until the array wants a tile."""
        if self.active or self.queue or self.cmd_valid or self.inflight:
            return False
        level = self.inner + self.out_full
        if self.tx_left == 0:
            if self.rx_left == 0:  # the reader starts the next frame
                return False
        elif level + min(self.tx_left, self.burst) <= self.depth:  # it registers a burst
            return False
        if self.k > 1 and self.count != self.k - 1:  # the assembler reads the FIFO
            return not self.out_full and self.inner == 0
        return self.out_full or self.inner == 0

    def wait(self, until: int) -> None:
        """Advance to cycle ``until`` at once: only while :meth:`idle` and the array does not
        want a tile before then (those cycles change nothing else)."""
        if until > self.t:
            if self.period:
                self.phase = (self.phase + until - self.t) % self.period
            self.t = until

    def take(self, offered: int) -> int:
        """The cycle the array takes the next tile, its beat offered from cycle ``offered``
        on (and held until taken)."""
        return self.takes(offered, 1)[0]

    def takes(self, first: int, n: int) -> list[int]:  # noqa: C901 - step, inlined
        """The cycles the array takes the next ``n`` tiles: the first's beat offered from
        cycle ``first`` on, each next one's from the cycle after the one before was taken.

        Exactly :meth:`step` a cycle at a time, with the state in locals (the planner spends
        its time here), and the cycles before ``first`` in which the path is :meth:`idle`
        skipped at once (:meth:`wait`)."""
        if self.t < first and self.idle():
            self.wait(first)
        latency, burst, period, busy = self.latency, self.burst, self.period, self.busy
        depth, frame, k = self.depth, self.frame, self.k
        last_count, last_slot = k - 1, depth - 1
        queue = self.queue
        t, phase, active, left = self.t, self.phase, self.active, self.left
        tx_left, rx_left, inflight = self.tx_left, self.rx_left, self.inflight
        cmd_valid, cmd_len = self.cmd_valid, self.cmd_len
        inner, out_full, count = self.inner, self.out_full, self.count
        times: list[int] = []
        wants = t >= first
        while True:
            refresh = period and phase < busy
            # memory model
            if cmd_valid and not refresh and len(queue) < MODEL_QUEUE:
                cmd_valid = False
                queue.append((cmd_len, t + latency))
                fired = True
            else:
                fired = False
            take = False
            if active:
                if not refresh and inner != last_slot and rx_left:
                    take = True
                    if left == 1:
                        active = False
                    left -= 1
            elif queue and (len(queue) > 1 or not fired) and t >= queue[0][1]:
                active, left = True, queue.pop(0)[0]
            phase = (phase + 1) % period if period else 0
            # burst reader
            if tx_left:
                if not cmd_valid and not fired:
                    length = tx_left if tx_left < burst else burst
                    if inner + out_full + inflight + length <= depth:
                        cmd_valid, cmd_len = True, length
                        tx_left -= length
                        inflight += length
            elif not rx_left:
                tx_left = rx_left = frame
            # FIFO and tile assembler
            if k == 1:
                taken = out_full and wants
                if inner and (taken or not out_full):
                    inner -= 1
                    out_full = True
                elif taken:
                    out_full = False
            else:
                full = count == last_count
                taken = out_full and full and wants
                r_en = wants or not full
                if out_full and r_en:
                    count = 0 if full else count + 1
                if inner and (r_en or not out_full):
                    inner -= 1
                    out_full = True
                elif r_en:
                    out_full = False
            if take:
                rx_left -= 1
                inflight -= 1
                inner += 1
            t += 1
            if taken:
                times.append(t - 1)
                if len(times) == n:
                    break
                wants = True
            elif not wants:
                if t >= first:
                    wants = True
                elif not (active or queue or cmd_valid or inflight) and (
                        inner + out_full + min(tx_left, burst) > depth if tx_left
                        else rx_left) and (
                        not (out_full or inner) if k > 1 and count != last_count
                        else out_full or not inner):
                    # idle (see :meth:`idle`) until the beat is offered: skip there
                    if period:
                        phase = (phase + first - t) % period
                    t, wants = first, True
        self.t, self.phase, self.active, self.left = t, phase, active, left
        self.tx_left, self.rx_left, self.inflight = tx_left, rx_left, inflight
        self.cmd_valid, self.cmd_len = cmd_valid, cmd_len
        self.inner, self.out_full, self.count = inner, out_full, count
        return times


def streamed_dense_times(stage, offered: list[int]) -> tuple[list[int], list[int]]:
    """:func:`_batch1_times` or :func:`_batched_times`, by the stage's batch."""
    if stage.streamed.batch > 1:
        return _batched_times(stage, offered)
    return _batch1_times(stage, offered)


def _batch1_times(stage, offered: list[int]) -> tuple[list[int], list[int]]:
    """``(accepted, out)`` of a streamed Dense stage at batch 1 (:func:`streamed_exact`):
    the replay of :func:`accel.plan.timing._dense_feeds`, each beat also waiting for its tile
    from :class:`WeightPath`; an output beat the array, accumulator and requantizer latencies
    after the last k-tile's beat of its f-tile."""
    kt, ft = stage.k_tiles, stage.f_tiles
    beats = kt * ft
    tail = stage.array.latency + stage.accumulator.latency + stage.requant.latency
    path = WeightPath(stage.streamed)
    accepted: list[int] = []
    out: list[int] = []
    ends: list[int] = []  # the cycle each frame's last beat was taken
    for f in range(len(offered) // kt):
        # A frame's beats go into the bank frame f - 2 read (free once its read-ahead ends).
        free = ends[f - 2] + 1 - REPLAY_READ_AHEAD if f >= 2 else 0
        for t in offered[f * kt:(f + 1) * kt]:
            accepted.append(max(t, free, accepted[-1] + 1 if accepted else 0))
        start = accepted[-1] + stage.replay.latency
        beat = max(start, ends[-1] + 1) if ends else start
        # Beat b is offered from max(beat + b, the cycle after beat b - 1 was taken): that is
        # the cycle after, as every beat is taken no earlier than offered.
        taken = path.takes(beat, beats)
        out += [t + tail for t in taken[kt - 1::kt]]
        ends.append(taken[-1])
    return accepted, out


def _batched_times(stage, offered: list[int]) -> tuple[list[int], list[int]]:
    """``(accepted, out)`` of a streamed Dense stage at batch ``B > 1``, cycle by cycle
    (:mod:`accel.hw.batch`): the :class:`~accel.hw.batch.BatchReplay` takes a batch's
    ``B * Kt`` input beats into the bank batch ``g - 2`` left (free the cycle after its last
    beat was issued), issues a beat a cycle while its bank is full and its
    ``REPLAY_FIFO_DEPTH`` FIFO has room (offered two cycles after issue); the array takes a
    beat when the replay offers it and the weight stream's output register holds its tile,
    which it releases with the batch's last image's beat. The
    :class:`~accel.hw.batch.BatchAccumulator` files the sums and offers a batch's
    ``B * Ft`` of them image by image, one a cycle, its ``latency`` after the batch's last
    beat reached it; an output beat is its sum's offer plus the requantizer's latency."""
    ws = stage.streamed
    b_n, kt, ft = ws.batch, stage.k_tiles, stage.f_tiles
    per_batch = b_n * kt
    batches = len(offered) // per_batch
    beats = per_batch * ft
    path = WeightPath(ws)
    accepted: list[int] = []
    full_at: list[int] = []  # the cycle each batch's bank is full (readable)

    def accept(g: int, free: int) -> None:
        for t in offered[g * per_batch:(g + 1) * per_batch]:
            accepted.append(max(t, free, accepted[-1] + 1 if accepted else 0))
        full_at.append(accepted[-1] + 1)

    for g in range(min(2, batches)):
        accept(g, 0)
    level, inflight, oreg, uses = 0, False, False, 0
    issued = fired = 0  # beats issued and taken by the array, over all batches
    fires: list[int] = []
    while fired < batches * beats:
        t = path.t
        g = issued // beats
        if g < batches and t < full_at[g] and oreg and not level and not inflight \
                and path.idle():
            # Waiting for the next batch's bank with the tile in hand: nothing but time
            # changes until it is full.
            path.wait(full_at[g])
            t = path.t
        issue = g < batches and t >= full_at[g] and level + inflight < REPLAY_FIFO_DEPTH
        replay_valid = level > 0
        fire = replay_valid and oreg
        o_ready = replay_valid and uses == b_n - 1
        loaded = path.step((not oreg) or o_ready)
        if loaded:
            oreg = True
        elif o_ready:
            oreg = False
        if fire:
            fires.append(t)
            fired += 1
            uses = 0 if uses == b_n - 1 else uses + 1
        level += inflight - fire
        inflight = issue
        if issue:
            issued += 1
            if issued % beats == 0 and g + 2 < batches:  # bank g is free from t + 1
                accept(g + 2, t + 1)
    acc_latency = BATCH_ACCUMULATOR_LATENCY
    out: list[int] = []
    previous = -1  # the cycle the accumulator issued the previous batch's last sum
    for g in range(batches):
        reached = fires[(g + 1) * beats - 1] + stage.array.latency
        first = max(reached + 1, previous + 1)  # its first read issued
        for j in range(b_n * ft):
            out.append(first + j + acc_latency - 1 + stage.requant.latency)
        previous = first + b_n * ft - 1
    return accepted, out
