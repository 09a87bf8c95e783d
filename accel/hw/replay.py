"""Window replay: buffer one window and send it through the array once per f-tile.

A stage's array computes ``C`` output channels per pass over a window; a layer with ``F``
filters needs ``Ft = ceil(F / C)`` passes (f-tiles). :class:`WindowReplay` stores the ``Kt``
beats of a window (``Kt = kh * kw * ceil(cin / lanes)``, each ``lanes`` channel values) and
replays them ``Ft`` times, tagging every beat with its k-tile and f-tile, which is all the
array needs to pick its weights (``addr = ft * Kt + kt``) and the accumulator needs to know
where a sum starts and ends.

Two banks (ping-pong): while one bank is replayed, the next window fills the other, so the
output runs at one beat per cycle without gaps as long as windows arrive at least as fast as
they are replayed (``Kt`` beats in per ``Kt * Ft`` beats out). A Dense layer's "window" is the
whole flattened input vector, so this buffer is also the dense stage's input buffer.

Memory: ``2 * Kt`` words of ``lanes * bits`` bits in one :class:`amaranth.lib.memory.Memory`
(block RAM), read synchronously; the memory's output register and the output register hold
the two beats in flight through an output stall.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..plan.blocks import REPLAY_LATENCY, ReplayPlan
from .layouts import check_int, pixel_layout


def replay_layout(*, lanes: int, k_tiles: int, f_tiles: int, bits: int = 8
                  ) -> data.StructLayout:
    """One replayed beat: ``data`` (``lanes`` values), its k-tile ``kt`` and f-tile ``ft``, the
    array's weight address ``addr = ft * Kt + kt``, ``first`` (kt == 0), ``last``
    (kt == Kt - 1) and ``frame_last`` (the frame's last beat)."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(bits), lanes),
        "kt": range(max(k_tiles, 2)),
        "ft": range(max(f_tiles, 2)),
        "addr": range(max(k_tiles * f_tiles, 2)),
        "first": 1,
        "last": 1,
        "frame_last": 1,
    })


class WindowReplay(wiring.Component):
    """Replays each window of ``k_tiles`` beats ``f_tiles`` times.

    Parameters
    ----------
    lanes : int
        Values per beat (the array's rows).
    k_tiles : int
        Beats per window (Kt).
    f_tiles : int
        Replays per window (Ft).
    bits : int
        Width of each value.

    Members
    -------
    i : In(stream.Signature(pixel_layout(lanes, bits)))
        Window beats, ``k_tiles`` per window; ``last`` marks the frame's final beat.
    o : Out(stream.Signature(replay_layout(...)))
        For every window, ``f_tiles`` passes of its ``k_tiles`` beats, in order.

    Attributes
    ----------
    latency : int
        Cycles from the cycle ``i`` takes a window's last beat to the cycle the window's first
        replayed beat is offered on ``o``, when the previous window's passes are out and ``o``
        is ready; the ``k_tiles * f_tiles`` beats follow one per cycle
        (:data:`accel.plan.blocks.REPLAY_LATENCY`).
    """

    def __init__(self, *, lanes: int, k_tiles: int, f_tiles: int, bits: int = 8):
        self.lanes = check_int("lanes", lanes, 1)
        self.k_tiles = check_int("k_tiles", k_tiles, 1)
        self.f_tiles = check_int("f_tiles", f_tiles, 1)
        self.bits = check_int("bits", bits, 2)
        self.latency = REPLAY_LATENCY
        super().__init__({
            "i": In(stream.Signature(pixel_layout(self.lanes, self.bits))),
            "o": Out(stream.Signature(replay_layout(lanes=self.lanes, k_tiles=self.k_tiles,
                                                    f_tiles=self.f_tiles, bits=self.bits))),
        })

    @classmethod
    def from_plan(cls, plan: ReplayPlan) -> WindowReplay:
        """The block of a stage's :class:`~accel.plan.blocks.ReplayPlan`."""
        return cls(**plan.component_args())

    def elaborate(self, platform):
        m = Module()
        kt_n, ft_n = self.k_tiles, self.f_tiles
        word = data.ArrayLayout(signed(self.bits), self.lanes)
        m.submodules.mem = mem = memory.Memory(shape=word, depth=2 * kt_n, init=[])
        wr = mem.write_port()
        rd = mem.read_port(domain="sync", transparent_for=())
        layout = replay_layout(lanes=self.lanes, k_tiles=kt_n, f_tiles=ft_n, bits=self.bits)

        full = Signal(2)  # bank b holds a complete window
        frame_end = Signal(2)  # bank b's window ends the frame

        # Both sides keep their memory address in a counter and their "last beat" tests in
        # registers (set from the counters' values before they move), so neither the block
        # RAM's address nor the handshakes wait on an adder or a comparator.

        # --- write side: fill the free bank, Kt beats per window ---
        w_bank = Signal()
        w_ptr = Signal(range(2 * kt_n))  # w_bank * Kt + (beats of the window so far)
        w_end = Signal(init=kt_n == 1)  # the next beat is its window's last
        take = self.i.valid & self.i.ready
        # i.ready is ~full[w_bank], kept in a register (updated from the values both take
        # next), so a stage's input handshake starts at a flip-flop.
        i_ready = Signal(init=1)
        m.d.comb += [
            self.i.ready.eq(i_ready),
            wr.addr.eq(w_ptr),
            wr.data.eq(self.i.payload.data),
            wr.en.eq(take),
        ]
        set_full = Signal(2)
        with m.If(take):
            m.d.sync += w_ptr.eq(Mux(w_end & w_bank, 0, w_ptr + 1))
            with m.If(w_end):
                m.d.sync += [w_bank.eq(~w_bank), w_end.eq(kt_n == 1)]
                m.d.comb += set_full.bit_select(w_bank, 1).eq(1)
                m.d.sync += frame_end.bit_select(w_bank, 1).eq(self.i.payload.last)
            with m.Else():
                m.d.sync += w_end.eq((w_ptr == kt_n - 2) | (w_ptr == 2 * kt_n - 2))

        # --- read side: replay the full bank Ft times, one read per cycle ---
        r_bank = Signal()
        r_ptr = Signal(range(2 * kt_n))  # r_bank * Kt + r_kt: the read address
        r_kt = Signal(range(kt_n))
        r_ft = Signal(range(ft_n))
        r_first = Signal(init=1)  # r_kt == 0
        last_kt = Signal(init=kt_n == 1)  # r_kt == Kt - 1
        last_ft = Signal(init=ft_n == 1)  # r_ft == Ft - 1
        # ft * Kt + kt, counted: computed from the replay's output, the multiply-add sat
        # between the output and the array's input register.
        r_addr = Signal(range(max(kt_n * ft_n, 2)))
        # The read side is a two-stage pipeline, address -> block RAM (``v1``, ``meta``) ->
        # output register (``o``), where a stage moves on when the next is free or moves on
        # itself: a stall holds the beats in both, and an empty stage still fills, so after a
        # stall the held beats follow one per cycle, as a FIFO's would (the plan's stream
        # timing counts on it), without a FIFO's storage and read multiplexers.
        v1 = Signal()
        meta = Signal(layout)  # the beat whose data the memory's output register holds
        advance2 = ~self.o.valid | self.o.ready
        advance1 = ~v1 | advance2
        r_full = Signal()  # full[r_bank]
        # r_full with the beat's place in its pass, in registers (kept equal to the products),
        # so that each read-side enable is one LUT of the output handshake and one register,
        # and each next value a choice among registers: the beat is within its pass
        # (rf_mid), ends it (rf_end), ends the bank's last pass (rf_last); rf_kt is either end.
        rf_mid, rf_end, rf_last, rf_kt = Signal(), Signal(), Signal(), Signal()
        issue = advance1 & r_full
        issue_kt, switch = advance1 & rf_kt, advance1 & rf_last
        m.d.comb += [rd.addr.eq(r_ptr), rd.en.eq(advance1)]
        clear_full = Signal(2)
        with m.If(advance1):
            m.d.sync += v1.eq(issue)
        with m.If(issue):
            m.d.sync += [
                meta.kt.eq(r_kt), meta.ft.eq(r_ft), meta.addr.eq(r_addr), meta.first.eq(r_first),
                meta.last.eq(last_kt),
                meta.frame_last.eq(last_kt & last_ft & frame_end.bit_select(r_bank, 1)),
                r_kt.eq(Mux(rf_mid, r_kt + 1, 0)), r_first.eq(~rf_mid),
                r_ptr.eq(Mux(rf_mid, r_ptr + 1,
                             Mux(rf_end, r_ptr - (kt_n - 1), Mux(r_bank, 0, kt_n)))),
                r_addr.eq(Mux(rf_last, 0, r_addr + 1)),
            ]
        with m.If(issue_kt):
            m.d.sync += r_ft.eq(Mux(rf_last, 0, r_ft + 1))
        with m.If(switch):
            m.d.sync += r_bank.eq(~r_bank)
            m.d.comb += clear_full.bit_select(r_bank, 1).eq(1)
        last_kt_n = Mux(issue, Mux(last_kt, kt_n == 1, r_kt == kt_n - 2), last_kt)
        last_ft_n = Mux(issue & last_kt, Mux(last_ft, ft_n == 1, r_ft == ft_n - 2), last_ft)
        full_next = (full | set_full) & ~clear_full
        r_full_n = full_next.bit_select(r_bank ^ switch, 1)
        w_bank_next = Mux(take & w_end, ~w_bank, w_bank)
        m.d.sync += [full.eq(full_next), i_ready.eq(~full_next.bit_select(w_bank_next, 1)),
                     r_full.eq(r_full_n), last_kt.eq(last_kt_n), last_ft.eq(last_ft_n),
                     rf_mid.eq(r_full_n & ~last_kt_n), rf_end.eq(r_full_n & last_kt_n & ~last_ft_n),
                     rf_last.eq(r_full_n & last_kt_n & last_ft_n), rf_kt.eq(r_full_n & last_kt_n)]

        with m.If(advance2):
            m.d.sync += [self.o.valid.eq(v1), self.o.payload.eq(meta),
                         self.o.payload.data.eq(rd.data)]
        return m
