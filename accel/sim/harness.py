"""A self-checking simulation harness around the accelerator.

Python cannot touch signals every cycle without making a fast simulator as slow as itself
(TOOLCHAIN.md), so stimulus and checking live in hardware here, and the testbench only waits
for ``done`` and then reads a few results:

- the images are in a ROM and are streamed in with random valid gaps (an LFSR decides);
- the logits are taken with random ready stalls (a second LFSR) and stored in a RAM;
- every stage's output stream is watched where it hands over (valid and ready) and each beat
  is compared with the golden model's value for it (a ROM per stage); the first mismatching
  beat of each stage and the number of mismatches are kept, so a failure is located at the
  layer where it starts;
- a free-running cycle counter timestamps when the first input value was taken and when each
  stage finished each image, so intervals and latencies are measured, not estimated;
- the streamed stages' weight ports are served by one :class:`~accel.sim.memory_model.
  MemoryModel` holding the plan's weight image, with random latency, random gaps and
  refresh pauses, through a :class:`~accel.hw.weight_arbiter.WeightArbiter` when several
  stages stream (as the board top shares the board's memory); words it delivered and words
  asked for outside the image are counted.

Results are read after ``done`` through one asynchronous read port (``rd_sel``, ``rd_addr``
-> ``rd_data``), which needs no clock.
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..hw.accelerator import Accelerator
from ..hw.weight_arbiter import shared_weight_port
from ..plan.weight_memory import weight_memory_plan
from ..plan.weights import image_payload
from .memory_model import MemoryModel

#: What ``rd_sel`` selects.
SEL_OUTPUT, SEL_STAGE_DONE, SEL_MISMATCH, SEL_SCALARS, SEL_FEED_FIRST, SEL_FEED_LAST = range(6)
#: ``SEL_SCALARS`` addresses.
SCALAR_NAMES = ("cycles", "first_input", "outputs", "input_gaps", "output_stalls",
                "weight_words", "weight_errors")


def _lfsr_step(state: Signal) -> Signal:
    """A 16-bit maximal Galois LFSR (taps 0xB400)."""
    return Mux(state[0], (state >> 1) ^ 0xB400, state >> 1)


def stage_words(values: np.ndarray, lanes: int, fill: int) -> np.ndarray:
    """A stage's golden output (N, ..., C) as the beats it is streamed in: (beats, lanes)."""
    n, channels = values.shape[0], values.shape[-1]
    pixels = values.reshape(n, -1, channels)
    groups = -(-channels // lanes)
    padded = np.full((n, pixels.shape[1], groups * lanes), fill, np.int64)
    padded[..., :channels] = pixels
    return padded.reshape(-1, lanes)


class SimHarness(wiring.Component):
    """Drives ``accelerator`` with ``images`` and checks every stage against ``expected``.

    Parameters
    ----------
    accelerator : Accelerator
    images : numpy.ndarray
        int images (N, H, W, C) in the accelerator's input format.
    expected : list of numpy.ndarray
        Per stage, the golden model's output for all images (after the fused pool).
    fills : list of int
        Per stage, the value of lanes past the channel count (the output zero point).
    gap_percent, stall_percent : int
        Probability (0..99) of holding valid / ready low in a cycle.
    memory_gap_percent : int
        Probability (0..99) of a gap in a weight memory's data in a cycle; 0: the deterministic
        memory model (latency exactly the memory's ``read_latency``, its refresh pauses).
    seed : int
        LFSR seed (non-zero after masking to 16 bits).

    Members
    -------
    done : Out(1)
        All logits received.
    rd_sel, rd_stage, rd_addr : In
        Result selection: ``SEL_OUTPUT`` logit ``rd_addr``; ``SEL_STAGE_DONE`` the cycle stage
        ``rd_stage`` finished image ``rd_addr``; ``SEL_MISMATCH`` stage ``rd_stage``'s mismatch
        count, first bad beat, its value and the expected value (``rd_addr`` 0..3);
        ``SEL_SCALARS`` the values named in :data:`SCALAR_NAMES`; ``SEL_FEED_FIRST`` /
        ``SEL_FEED_LAST`` the cycle stage ``rd_stage``'s array took the first / last beat of
        image ``rd_addr``.
    rd_data : Out(max(64, widest stage word))
    """

    def __init__(self, *, accelerator: Accelerator, images: np.ndarray,
                 expected: list[np.ndarray], fills: list[int], gap_percent: int = 20,
                 stall_percent: int = 20, seed: int = 1, memory_gap_percent: int = 2):
        self.accelerator = accelerator
        self.memory_gap = memory_gap_percent
        self.images = np.asarray(images).reshape(-1)
        self.n_images = len(images)
        self.expected = [stage_words(e, s.out_lanes, f) for e, s, f in
                         zip(expected, accelerator.stages, fills, strict=True)]
        self.n_outputs = int(np.prod(expected[-1].shape))
        self.gap, self.stall = gap_percent, stall_percent
        self.seed = (seed & 0xFFFF) or 1
        n_stages = len(accelerator.stages)
        self.addr_depth = max(self.n_outputs, self.n_images, len(SCALAR_NAMES), 4)
        self.data_width = max([64] + [s.out_lanes * s.plan.out_bits
                                      for s in accelerator.stages])
        super().__init__({
            "done": Out(1),
            "rd_sel": In(3),
            "rd_stage": In(range(max(n_stages, 2))),
            "rd_addr": In(range(self.addr_depth)),
            "rd_data": Out(self.data_width),
        })

    def elaborate(self, platform):
        m = Module()
        acc = self.accelerator
        m.submodules.accelerator = acc
        cycles = Signal(48)
        m.d.sync += cycles.eq(cycles + 1)

        # --- stimulus: the images with random gaps ---
        lfsr_in = Signal(16, init=self.seed)
        lfsr_out = Signal(16, init=(self.seed ^ 0x5A5A) or 1)
        m.d.sync += [lfsr_in.eq(_lfsr_step(lfsr_in)), lfsr_out.eq(_lfsr_step(lfsr_out))]
        threshold_in = self.gap * 65536 // 100
        threshold_out = self.stall * 65536 // 100
        in_bits = acc.input_bits
        m.submodules.images = images = memory.Memory(
            shape=unsigned(in_bits), depth=len(self.images),
            init=[int(v) & ((1 << in_bits) - 1) for v in self.images])
        img_rd = images.read_port(domain="comb")
        frame_len = len(self.images) // self.n_images
        index = Signal(range(len(self.images) + 1))
        first_input = Signal(48)
        input_gaps = Signal(32)
        gap = lfsr_in < threshold_in
        active = index < len(self.images)
        m.d.comb += [
            img_rd.addr.eq(index),
            acc.i.valid.eq(active & ~gap),
            acc.i.payload.data[0].eq(img_rd.data),
            acc.i.payload.last.eq(index % frame_len == frame_len - 1),
        ]
        with m.If(acc.i.valid & acc.i.ready):
            m.d.sync += index.eq(index + 1)
            with m.If(index == 0):
                m.d.sync += first_input.eq(cycles)
        with m.If(active & gap):
            m.d.sync += input_gaps.eq(input_gaps + 1)

        # --- the logits, with random stalls, into a RAM ---
        out_bits = acc.output_bits
        m.submodules.outputs = outputs = memory.Memory(
            shape=unsigned(out_bits), depth=self.n_outputs, init=[])
        out_wr = outputs.write_port()
        out_rd = outputs.read_port(domain="comb")
        received = Signal(range(self.n_outputs + 1))
        output_stalls = Signal(32)
        stall = lfsr_out < threshold_out
        m.d.comb += [
            acc.o.ready.eq(~stall & (received < self.n_outputs)),
            out_wr.addr.eq(received),
            out_wr.data.eq(acc.o.payload.data[0]),
            out_wr.en.eq(acc.o.valid & acc.o.ready),
            self.done.eq(received == self.n_outputs),
        ]
        with m.If(acc.o.valid & acc.o.ready):
            m.d.sync += received.eq(received + 1)
        with m.If(acc.o.valid & stall):
            m.d.sync += output_stalls.eq(output_stalls + 1)

        # --- every stage: compare each beat with the golden model, timestamp each image ---
        done_reads, feed_first_reads, feed_last_reads = [], [], []
        mismatch_info = []  # per stage: count, first index, first got, first want
        for s, (stage, words) in enumerate(zip(acc.stages, self.expected, strict=True)):
            lanes, bits = stage.out_lanes, stage.plan.out_bits
            width = lanes * bits
            packed = [sum((int(v) & ((1 << bits) - 1)) << (bits * k) for k, v in enumerate(w))
                      for w in words]
            rom = memory.Memory(shape=unsigned(width), depth=len(packed), init=packed)
            m.submodules[f"expect{s}"] = rom
            rom_rd = rom.read_port(domain="comb")
            done_ram = memory.Memory(shape=unsigned(48), depth=self.n_images, init=[])
            m.submodules[f"done{s}"] = done_ram
            done_wr = done_ram.write_port()
            done_reads.append(done_ram.read_port(domain="comb"))
            beat = Signal(range(len(packed) + 1), name=f"beat{s}")
            frame = Signal(range(self.n_images + 1), name=f"frame{s}")
            count = Signal(32, name=f"mismatches{s}")
            first_index = Signal(32, init=0xFFFFFFFF, name=f"first_bad{s}")
            first_got = Signal(width, name=f"first_got{s}")
            first_want = Signal(width, name=f"first_want{s}")
            o = stage.o
            got = Cat(*(o.payload.data[k] for k in range(lanes)))
            fire = o.valid & o.ready
            m.d.comb += [rom_rd.addr.eq(beat), done_wr.addr.eq(frame),
                         done_wr.data.eq(cycles), done_wr.en.eq(fire & o.payload.last)]
            with m.If(fire):
                m.d.sync += beat.eq(beat + 1)
                with m.If((beat >= len(packed)) | (got != rom_rd.data)):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == 0):
                        m.d.sync += [first_index.eq(beat), first_got.eq(got),
                                     first_want.eq(rom_rd.data)]
                with m.If(o.payload.last):
                    m.d.sync += frame.eq(frame + 1)
            mismatch_info.append((count, first_index, first_got, first_want))

            # When the stage's array took the first and the last beat of each image: its own
            # busy span, to check the cycle model stage by stage.
            feed, frame_end = stage.feed
            feed_fire = feed.valid & feed.ready
            feed_frame = Signal(range(self.n_images + 1), name=f"feed_frame{s}")
            in_frame = Signal(name=f"in_frame{s}")
            spans = []
            for which in ("first", "last"):
                ram = memory.Memory(shape=unsigned(48), depth=self.n_images, init=[])
                m.submodules[f"feed_{which}{s}"] = ram
                spans.append(ram.write_port())
                (feed_first_reads if which == "first" else feed_last_reads).append(
                    ram.read_port(domain="comb"))
            m.d.comb += [
                spans[0].addr.eq(feed_frame), spans[0].data.eq(cycles),
                # Beats past the last image (a generator running ahead) must not wrap around.
                spans[0].en.eq(feed_fire & ~in_frame & (feed_frame < self.n_images)),
                spans[1].addr.eq(feed_frame), spans[1].data.eq(cycles),
                spans[1].en.eq(feed_fire & frame_end & (feed_frame < self.n_images)),
            ]
            with m.If(feed_fire):
                m.d.sync += in_frame.eq(~frame_end)
                with m.If(frame_end):
                    m.d.sync += feed_frame.eq(feed_frame + 1)

        # --- the weight memory: one model, every streamed stage's port on it (through the
        # arbiter when several stream), as the board top wires it (accel.synth.weights_top) ---
        weight_words, weight_errors = Signal(32), Signal(32)
        sent, errors = 0, 0
        if acc.weight_ports:
            mp = weight_memory_plan(acc.plan)
            streams = [acc.plan.stages[index].streamed for index in mp.stages]
            ws = streams[0]
            words = np.frombuffer(image_payload(streams), f"<u{ws.word_bits // 8}")
            model = MemoryModel(words=words, base=0, addr_width=mp.addr_bits,
                                max_burst=mp.max_burst, word_width=mp.word_bits,
                                seed=self.seed ^ 0x1357, gap_percent=self.memory_gap,
                                # No gaps: the deterministic memory the plan's timing follows
                                # (accel.plan.stream_timing), at the board memory's latency.
                                **({"jitter": False, "min_latency": mp.memory.read_latency,
                                    "refresh_period": mp.memory.refresh_period,
                                    "refresh_cycles": mp.memory.refresh_cycles}
                                   if self.memory_gap == 0 else {}))
            m.submodules.memory = model
            wiring.connect(m, shared_weight_port(m, acc, mp), model.port)
            sent, errors = model.words_sent, model.errors
        m.d.comb += [weight_words.eq(sent), weight_errors.eq(errors)]

        # --- readout ---
        scalars = [cycles, first_input, received, input_gaps, output_stalls, weight_words,
                   weight_errors]
        m.d.comb += out_rd.addr.eq(self.rd_addr)
        for rd in (*done_reads, *feed_first_reads, *feed_last_reads):
            m.d.comb += rd.addr.eq(self.rd_addr)
        with m.Switch(self.rd_sel):
            with m.Case(SEL_OUTPUT):
                m.d.comb += self.rd_data.eq(out_rd.data)
            for sel, reads in ((SEL_STAGE_DONE, done_reads), (SEL_FEED_FIRST, feed_first_reads),
                               (SEL_FEED_LAST, feed_last_reads)):
                with m.Case(sel):
                    with m.Switch(self.rd_stage):
                        for s, rd in enumerate(reads):
                            with m.Case(s):
                                m.d.comb += self.rd_data.eq(rd.data)
            with m.Case(SEL_MISMATCH):
                with m.Switch(Cat(self.rd_addr[:2], self.rd_stage)):
                    for s, info in enumerate(mismatch_info):
                        for k, value in enumerate(info):
                            with m.Case(s * 4 + k):
                                m.d.comb += self.rd_data.eq(value)
            with m.Case(SEL_SCALARS):
                with m.Switch(self.rd_addr):
                    for k, value in enumerate(scalars):
                        with m.Case(k):
                            m.d.comb += self.rd_data.eq(value)
        return m
