"""Channel regrouping: channel-group words of ``lanes_in`` values -> words of ``lanes_out``.

A pixel of ``C`` channels arrives as ``ceil(C / lanes_in)`` beats and leaves as
``ceil(C / lanes_out)`` beats with the same channels in the same order (lane ``k`` of output
beat ``g`` is channel ``g * lanes_out + k``). Examples: a convolution stage that emits 8
channels per beat feeding one that consumes 4, or the network's input stream of single int8
values (``lanes_in = 1``) packed for a stage with 4 lanes.

Buffering scheme
----------------
A shift buffer of ``lanes_in + lanes_out - 1`` values (registers). Each cycle it can deliver one
output beat from its head and append the valid lanes of one input beat at its tail (a pixel's
last input group contributes only its ``C mod lanes_in`` real channels; the don't-care lanes are
dropped). A pixel's last output beat may be short: its missing lanes are filled with
``zero_point``. The next pixel's channels may enter behind a pixel's tail, so a stream moves at
one beat per cycle on the busier side (``max(groups_in, groups_out)`` cycles per pixel).
``i.ready`` depends combinationally on ``o.ready`` (a beat can enter in the cycle one leaves),
through one multiplexer.
With ``lanes_in == lanes_out`` the block is a wire (the last group's unused lanes still get the
zero point).

``last`` is taken from the input beat that ends a pixel and given to the output beat that ends
the same pixel: the final beat of a frame stays the final beat.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from accel.hw.layouts import check_int, pixel_layout
from accel.plan.blocks import RegroupPlan, regroup_latency
from accel.spec.shapes import ceil_div

__all__ = ["ChannelRegroup"]


class ChannelRegroup(wiring.Component):
    """Re-pack the channels of each pixel from ``lanes_in`` to ``lanes_out`` values per beat.

    Parameters
    ----------
    channels : int
        Channels per pixel ``C``, >= 1.
    lanes_in, lanes_out : int
        Values per input and per output beat, >= 1.
    bits : int
        Width of a (signed) value, >= 2.
    zero_point : int
        Fill value of the output lanes past ``channels``.

    Members
    -------
    i : In(stream.Signature(pixel_layout(lanes_in, bits)))
        Pixels as ``ceil(C / lanes_in)`` beats each; ``last`` on a frame's final beat.
    o : Out(stream.Signature(pixel_layout(lanes_out, bits)))
        The same pixels as ``ceil(C / lanes_out)`` beats each; ``last`` preserved.

    Attributes
    ----------
    groups_in, groups_out : int
        Beats per pixel on each side.
    latency : int
        Cycles from the cycle ``i`` takes the input beat that completes an output beat (its
        last values, or a pixel's end) to the cycle that beat is offered on ``o``: 0 when
        ``lanes_in == lanes_out``, else 1 (:func:`accel.plan.blocks.regroup_latency`).
    """

    def __init__(
        self,
        *,
        channels: int,
        lanes_in: int,
        lanes_out: int,
        bits: int = 8,
        zero_point: int = 0,
    ) -> None:
        self.channels = check_int("channels", channels, 1)
        self.lanes_in = check_int("lanes_in", lanes_in, 1)
        self.lanes_out = check_int("lanes_out", lanes_out, 1)
        self.bits = check_int("bits", bits, 2)
        lo, hi = -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        self.zero_point = check_int("zero_point", zero_point, lo, hi)
        self.groups_in = ceil_div(self.channels, self.lanes_in)
        self.groups_out = ceil_div(self.channels, self.lanes_out)
        self.latency = regroup_latency(self.lanes_in, self.lanes_out)
        super().__init__({
            "i": In(stream.Signature(pixel_layout(self.lanes_in, self.bits))),
            "o": Out(stream.Signature(pixel_layout(self.lanes_out, self.bits))),
        })

    @classmethod
    def from_plan(cls, plan: RegroupPlan) -> ChannelRegroup:
        """The block of a :class:`~accel.plan.blocks.RegroupPlan`."""
        return cls(**plan.component_args())

    def elaborate(self, platform):
        m = Module()
        C, Li, Lo, bits = self.channels, self.lanes_in, self.lanes_out, self.bits
        Gi = self.groups_in
        last_in = C - (Gi - 1) * Li  # real channels in a pixel's last input group

        group = Signal(range(Gi))  # input group within the pixel
        end_group = group == Gi - 1
        take = self.i.valid & self.i.ready
        with m.If(take):
            m.d.sync += group.eq(Mux(end_group | self.i.payload.last, 0, group + 1))

        if Li == Lo:
            lanes = []
            for k in range(Lo):
                value = self.i.payload.data[k]
                if k >= last_in:
                    value = Mux(end_group, self.zero_point, value)
                lanes.append(value[:bits])
            m.d.comb += [
                self.o.valid.eq(self.i.valid),
                self.i.ready.eq(self.o.ready),
                self.o.payload.data.eq(Cat(*lanes)),
                self.o.payload.last.eq(self.i.payload.last),
            ]
            return m

        N = Li + Lo - 1
        buf = Signal(N * bits)  # values at positions >= count are zero
        count = Signal(range(N + 1))
        pend = Signal()  # the buffer holds the end of a pixel ...
        tail = Signal(range(N + 1))  # ... at this many values from the head
        pend_last = Signal()  # ... and it ends a frame

        n_in0 = last_in if Gi == 1 else Li
        # Flags of the state, kept in registers (each computed one cycle ahead from the state's
        # next value for every outcome of this cycle's two handshakes, which then only select),
        # so the neighbours' handshakes reach ``i.ready``, ``o.valid`` and the buffer through a
        # multiplexer or two, not through the count comparisons.
        valid = Signal()  # (count >= Lo) | pend: an output beat is ready
        final = Signal()  # pend & (tail <= Lo): the head beat is a pixel's last output beat
        ready_e = Signal()  # i.ready if the head beat leaves this cycle ...
        ready_n = Signal(init=n_in0 <= N)  # ... and if it does not
        m.d.comb += self.o.valid.eq(valid)
        lanes = []
        for k in range(Lo):
            value = buf[k * bits : (k + 1) * bits]
            lanes.append(Mux(final & (tail <= k), self.zero_point, value)[:bits])
        m.d.comb += [
            self.o.payload.data.eq(Cat(*lanes)),
            self.o.payload.last.eq(final & pend_last),
        ]

        emit = self.o.valid & self.o.ready
        n_in = Mux(end_group, last_in, Li)
        incoming = self.i.payload.data.as_value()
        if last_in < Li:  # drop the don't-care lanes of the last group
            keep = Mux(end_group, (1 << (last_in * bits)) - 1, (1 << (Li * bits)) - 1)
            incoming = incoming & keep

        # The buffer after this cycle's output beat leaves (``emit``) or stays: both are worked
        # out from registers, and ``o.ready`` only selects between them, so the consumer's
        # ready reaches ``i.ready`` and the buffer through one multiplexer, not through the
        # count arithmetic and the shifters.
        def after(removed):
            count1 = Signal.like(count, name="count_e")
            buf1 = Signal.like(buf, name="buf_e")
            m.d.comb += [count1.eq(count - removed), buf1.eq(buf >> (removed * bits))]
            return count1, buf1

        count_e, buf_e = after(Mux(final, tail, Lo))
        pend_e = pend & ~final
        m.d.comb += self.i.ready.eq(Mux(emit, ready_e, ready_n))

        # The input group after a beat is taken is the last of its pixel.
        end_taken = Mux(end_group | self.i.payload.last, Gi == 1, group == Gi - 2)

        # Values behind a pixel's end in the buffer, count - tail (meaningful while pend).
        rest = Signal(range(N + 1))
        m.d.sync += rest.eq(Mux(take, Mux(end_group, 0, rest + n_in), rest))

        # The flags compare each register's next value with constants: a value is represented
        # by its test ``value <= K`` for a constant K, so an offset or an added n_in moves the
        # constant instead of costing an adder in front of the comparator.
        def reg(signal, offset):
            # A bound outside the register's range is a constant (and Verilator's lint
            # rejects a comparison that is).
            top = (1 << len(signal)) - 1

            def test(k):
                bound = k - offset
                if bound < 0 or bound >= top:
                    return Const(int(bound >= top), 1)
                return signal <= bound
            return test

        def plus_n(value):
            return lambda k: Mux(end_group, value(k - last_in), value(k - Li))

        def select(cond, a, b):
            return lambda k: Mux(cond, a(k), b(k))

        def zero(k):
            return Const(int(0 <= k), 1)

        def flags(count1, pend1, tail1, rest1, end1):
            # The flags of a state (valid, final, ready_e, ready_n); ready_e is only used
            # while valid, so its value from an empty buffer does not matter.
            def fits(value, k):  # value + n1 <= k
                return Mux(end1, value(k - last_in), value(k - Li))

            final1 = pend1 & tail1(Lo)
            return [~count1(Lo - 1) | pend1, final1,
                    Mux(final1, fits(rest1, N), fits(count1, N + Lo))
                    & ~(end1 & pend1 & ~final1),
                    fits(count1, N) & ~(end1 & pend1)]

        # Each register's next value for both outcomes, taken or not, of both outcomes of
        # the output beat; o.ready selects last.
        def update(emitted, count1, buf1, pend1, tail1, ready):
            taken = self.i.valid & ready
            if_taken = [buf1 | (incoming << (count1 * bits)), count1 + n_in,
                        Mux(end_group, 1, pend1), Mux(end_group, count1 + n_in, tail1),
                        Mux(end_group, self.i.payload.last, pend_last)]
            if_held = [buf1, count1, pend1, tail1, pend_last]
            state = [Mux(taken, t, h) for t, h in zip(if_taken, if_held, strict=True)]
            if emitted:
                count_f = select(final, reg(rest, 0), reg(count, -Lo))
                tail_f = select(pend & ~final, reg(tail, -Lo), reg(tail, 0))
            else:
                count_f, tail_f = reg(count, 0), reg(tail, 0)
            rest_f = reg(rest, 0)
            held = flags(count_f, pend1, tail_f, rest_f, end_group)
            ends = flags(plus_n(count_f), Const(1, 1), plus_n(count_f), zero, end_taken)
            grows = flags(plus_n(count_f), pend1, tail_f, plus_n(rest_f), end_taken)
            flag_values = [Mux(taken, Mux(end_group, e, g), h)
                           for e, g, h in zip(ends, grows, held, strict=True)]
            return state + flag_values

        if_emit = update(True, count_e, buf_e, pend_e, Mux(pend & ~final, tail - Lo, tail), ready_e)
        if_not = update(False, count, buf, pend, tail, ready_n)
        m.d.sync += [reg.eq(Mux(emit, e, n)) for reg, e, n in
                     zip((buf, count, pend, tail, pend_last, valid, final, ready_e, ready_n),
                         if_emit, if_not, strict=True)]
        return m
