# amaranth: UnusedElaboratable=no
"""Block tests of the max-pooling unit (amaranth.sim), bit-exact against a NumPy max pool."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from accel.hw.maxpool import MaxPool
from accel.spec.shapes import ceil_div, window_2d
from tests.hw.streams import consumer, producer
from tests.hw.test_window import pixel_beats


def numpy_maxpool(x: np.ndarray, pool, strides, padding) -> np.ndarray:
    """TF max pooling of ``x`` (N, H, W, C): padding never wins (it is below every value)."""
    n, h, w, c = x.shape
    win = window_2d((h, w), pool, strides, padding)
    pads = win.padding_amounts
    low = np.iinfo(np.int64).min
    xp = np.pad(
        x.astype(np.int64),
        ((0, 0), (pads["top"], pads["bottom"]), (pads["left"], pads["right"]), (0, 0)),
        constant_values=low,
    )
    oh, ow = win.out_shape
    out = np.empty((n, oh, ow, c), dtype=np.int64)
    for o in range(oh):
        for q in range(ow):
            r, col = o * strides[0], q * strides[1]
            out[:, o, q] = xp[:, r : r + pool[0], col : col + pool[1]].max(axis=(1, 2))
    assert (out != low).all()
    return out


def expected_words(y: np.ndarray, lanes: int, zero_point: int) -> np.ndarray:
    """Rows of (lanes..., last) for pooled frames ``y`` (N, OH, OW, C)."""
    n, oh, ow, c = y.shape
    groups = ceil_div(c, lanes)
    padded = np.full((n, oh, ow, groups * lanes), zero_point, dtype=np.int64)
    padded[..., :c] = y
    words = padded.reshape(-1, lanes)
    last = np.zeros((len(words), 1), dtype=np.int64)
    last[oh * ow * groups - 1 :: oh * ow * groups] = 1
    return np.hstack([words, last])


def _watchdog(cycles: int, what: str):
    async def testbench(ctx):
        for _ in range(cycles):
            await ctx.tick()
        raise AssertionError(f"{what}: still running after {cycles} cycles")

    return testbench


def run_pool(dut: MaxPool, frames: np.ndarray, *, seed: int, gap=0.3, stall=0.3):
    rng = np.random.default_rng(seed)
    beats = pixel_beats(frames, dut.lanes, rng, dut.bits)
    n_out = frames.shape[0] * dut.out_shape[0] * dut.out_shape[1] * dut.groups
    updates = dut.pool[0] * dut.pool[1] // (dut.strides[0] * dut.strides[1]) + 1
    results: list = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(
        _watchdog(4 * (len(beats) * updates + n_out) + 200, f"seed {seed}"), background=True
    )
    sim.add_testbench(producer(dut.i, beats, rng=rng, gap=gap))
    sim.add_testbench(consumer(
        dut.o, n_out, results, rng=rng, stall=stall,
        convert=lambda p: [*(int(v) for v in p.data), int(p.last)],
    ))
    sim.run()
    return np.array(results, dtype=np.int64).reshape(n_out, dut.lanes + 1)


def check(*, seed, height, width, channels, pool, strides=None, padding="valid", lanes=1,
          frames=2, bits=8, gap=0.3, stall=0.3):
    rng = np.random.default_rng(seed + 1000)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    zp = int(rng.integers(lo, hi, endpoint=True))
    x = rng.integers(lo, hi, (frames, height, width, channels), endpoint=True)
    corner = rng.random(x.shape) < 0.2  # the ends of the range must win and lose correctly
    x[corner] = rng.choice([lo, hi], corner.sum())
    dut = MaxPool(height=height, width=width, channels=channels, pool=pool, strides=strides,
                  padding=padding, lanes=lanes, zero_point=zp, bits=bits)
    got = run_pool(dut, x, seed=seed, gap=gap, stall=stall)
    want = expected_words(numpy_maxpool(x, dut.pool, dut.strides, padding), lanes, zp)
    assert np.array_equal(got, want), (
        f"seed {seed}: {height}x{width}x{channels} pool={pool} s={strides} {padding} "
        f"lanes={lanes}: first mismatch at beat {np.argwhere((got != want).any(1))[0][0]}"
    )


def _random_params(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    while True:
        height, width = (int(v) for v in rng.integers(1, 10, 2))
        pool = tuple(int(v) for v in rng.integers(1, 5, 2))
        strides = tuple(int(v) for v in rng.integers(1, 4, 2))
        padding = str(rng.choice(["valid", "same"]))
        if padding == "valid" and (pool[0] > height or pool[1] > width):
            continue
        return dict(height=height, width=width, channels=int(rng.integers(1, 11)), pool=pool,
                    strides=strides, padding=padding, lanes=int(rng.integers(1, 5)))


@pytest.mark.parametrize("seed", range(80))
def test_random(seed):
    check(seed=seed, **_random_params(seed))


@pytest.mark.parametrize(
    "params",
    [
        dict(height=8, width=8, channels=4, pool=2, lanes=2),  # the usual 2x2/2
        dict(height=7, width=7, channels=3, pool=2, lanes=2),  # VALID drops row/col 6
        dict(height=7, width=7, channels=3, pool=2, padding="same", lanes=2),  # SAME keeps it
        dict(height=9, width=9, channels=2, pool=3, strides=2, lanes=1),  # overlapping 3x3/2
        dict(height=6, width=5, channels=2, pool=3, strides=1, padding="same", lanes=2),
        dict(height=5, width=5, channels=1, pool=2, strides=1, padding="same", lanes=1),
        dict(height=9, width=8, channels=5, pool=2, strides=3, lanes=4),  # skipped pixels
        dict(height=4, width=6, channels=3, pool=(4, 6), lanes=2),  # global max pool
        dict(height=1, width=1, channels=2, pool=3, strides=2, padding="same", lanes=1),
        dict(height=5, width=4, channels=1, pool=(1, 3), strides=(2, 1), padding="same"),
        dict(height=6, width=6, channels=3, pool=2, lanes=2, bits=4),
        dict(height=5, width=6, channels=2, pool=3, strides=2, padding="same", bits=16),
    ],
    ids=lambda p: "{height}x{width}x{channels}-p{pool}-s{}-{}-b{}".format(
        p.get("strides"), p.get("padding", "valid"), p.get("bits", 8), **p
    ),
)
def test_edges(params):
    check(seed=11, frames=3, **params)


def test_no_stalls():
    check(seed=5, height=8, width=6, channels=3, pool=2, lanes=2, gap=0.0, stall=0.0)
    check(seed=6, height=7, width=7, channels=2, pool=3, strides=1, padding="same", lanes=1,
          gap=0.0, stall=0.0)


def test_throughput():
    # A non-overlapping pool takes one input beat per cycle: the 2x2/2 unit keeps pace with a
    # producer that never pauses, and the pooled rows drain while the next rows arrive.
    dut = MaxPool(height=8, width=8, channels=4, pool=2, lanes=2)
    x = np.random.default_rng(3).integers(-128, 128, (2, 8, 8, 4))
    beats = pixel_beats(x, 2, np.random.default_rng(0))
    taken: list[int] = []
    outputs: list[int] = []

    async def source(ctx):
        ctx.set(dut.i.valid, 1)
        cycle = 0
        for beat in beats:
            ctx.set(dut.i.payload, beat)
            while True:
                _, _, ready = await ctx.tick().sample(dut.i.ready)
                cycle += 1
                if ready:
                    taken.append(cycle)
                    break
        ctx.set(dut.i.valid, 0)

    results: list = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(consumer(dut.o, 2 * 4 * 4 * 2, results,
                               convert=lambda p: outputs.append(1)))
    sim.run()
    assert len(taken) == len(beats)
    assert taken[-1] - taken[0] + 1 == len(beats), (len(beats), taken[-1] - taken[0] + 1)


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        (dict(height=-1), ValueError, r"^height must be a positive integer, not -1$"),
        (dict(pool=(2, 0)), ValueError,
         r"^pool must be a positive integer or a pair of them, not \(2, 0\)$"),
        (dict(strides=1.5), TypeError,
         r"^strides must be a positive integer or a pair of them, not 1\.5$"),
        (dict(padding=None), TypeError, r"^padding must be 'valid' or 'same', not None$"),
        (dict(lanes="2"), TypeError, r"^lanes must be a positive integer, not '2'$"),
        (dict(bits=4, zero_point=8), ValueError,
         r"^zero_point must be an integer in -8\.\.7, not 8$"),
        (dict(pool=5), ValueError,
         r"^pool \(5, 5\) is larger than the input \(4, 4\) with padding 'valid'$"),
    ],
)
def test_bad_parameters(kwargs, exc, message):
    params = dict(height=4, width=4, channels=1, pool=2) | kwargs
    with pytest.raises(exc, match=message):
        MaxPool(**params)


def test_attributes():
    dut = MaxPool(height=9, width=9, channels=5, pool=3, strides=2, lanes=2)
    assert dut.out_shape == (4, 4) and dut.groups == 3 and dut.slots == 3
    assert MaxPool(height=8, width=8, channels=1, pool=2).slots == 2


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5])
def test_read_modify_write_forwarding(channels):
    # One beat per cycle, one channel per beat: a word is updated again 1 to 5 cycles after
    # its last update, so the reads that cannot see the last four writes yet take them from
    # the write pipeline. Each window's maximum is its first pixel, and the
    # word's older contents (nothing, or the previous frame's larger maximum) must lose.
    x = np.zeros((2, 4, 6, channels), dtype=np.int64)
    x[:, 0::2, 0::2] = 100 - np.arange(channels)
    x[:, 0::2, 1::2] = -50
    x[:, 1::2, 0::2] = -60
    x[:, 1::2, 1::2] = -70
    x[1] -= 10
    dut = MaxPool(height=4, width=6, channels=channels, pool=2, lanes=1)
    got = run_pool(dut, x, seed=0, gap=0.0, stall=0.0)
    want = expected_words(numpy_maxpool(x, (2, 2), (2, 2), "valid"), 1, 0)
    assert np.array_equal(got, want), channels


@pytest.mark.parametrize("order", ["rising", "falling", "zigzag", "random"])
@pytest.mark.parametrize("stalls", [0.0, 0.4])
def test_back_to_back_updates_of_one_word(order, stalls):
    # A 4x3 pool over a 4x3 image with one channel: all 12 beats of a frame update one word,
    # one cycle apart at full rate, so every merge after the first uses the previous beat's
    # maximum, still in the write stage (the loop that holds no comparator: the beat is
    # compared with that beat's value and with what it merged, and the previous choice picks).
    # The running maximum moves on every beat (rising), never (falling), every other beat
    # (zigzag) or at random, over three frames whose maxima differ.
    n = 12
    ramp = np.arange(n) * 20 - 120
    seq = {"rising": ramp, "falling": ramp[::-1],
           "zigzag": np.where(np.arange(n) % 2, -ramp[::-1], ramp),
           "random": np.random.default_rng(9).integers(-128, 128, n)}[order]
    x = np.stack([seq, seq - 7, seq[::-1]]).reshape(3, 4, 3, 1)
    x = np.clip(x, -128, 127)
    dut = MaxPool(height=4, width=3, channels=1, pool=(4, 3), lanes=1)
    got = run_pool(dut, x, seed=7, gap=stalls, stall=stalls)
    want = expected_words(numpy_maxpool(x, (4, 3), (4, 3), "valid"), 1, 0)
    assert np.array_equal(got, want), (order, stalls, got[:, 0], want[:, 0])


def test_input_side_does_not_wait_for_the_consumer():
    # The pooled rows go to an output FIFO that the pool fills only as far as its credits
    # allow, so with o never ready the pool still takes every input beat while it has free
    # slots (two pooled rows here: the whole 4x4 frame), and offers the first pooled beat.
    dut = MaxPool(height=4, width=4, channels=1, pool=2)
    beats = pixel_beats(np.arange(16).reshape(1, 4, 4, 1), 1, np.random.default_rng(0))
    seen: dict = {}

    async def testbench(ctx):
        ctx.set(dut.o.ready, 0)
        ctx.set(dut.i.valid, 1)
        for n, beat in enumerate(beats):
            ctx.set(dut.i.payload, beat)
            for _ in range(3):
                _, _, ready = await ctx.tick().sample(dut.i.ready)
                if ready:
                    break
            else:
                raise AssertionError(f"beat {n} not taken with o not ready")
        ctx.set(dut.i.valid, 0)
        for _ in range(dut.latency + 2):
            await ctx.tick()
        seen["valid"] = ctx.get(dut.o.valid)
        seen["first"] = int(ctx.get(dut.o.payload.data[0]))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == {"valid": 1, "first": 5}
