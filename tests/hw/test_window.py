# amaranth: UnusedElaboratable=no
"""Block tests of the window generator (amaranth.sim), bit-exact against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from accel.hw.window import WindowGenerator
from accel.spec.shapes import ceil_div, window_2d
from tests.hw.streams import consumer, producer


def pixel_beats(frames: np.ndarray, lanes: int, rng: np.random.Generator, bits: int = 8
                ) -> list[dict]:
    """The input beats of ``frames`` (N, H, W, C); lanes past C carry random junk, which the
    block must replace."""
    n, h, w, c = frames.shape
    groups = ceil_div(c, lanes)
    padded = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (n, h, w, groups * lanes))
    padded[..., :c] = frames
    words = padded.reshape(n * h * w * groups, lanes)
    return [
        {"data": [int(v) for v in word], "last": int(k == len(words) - 1 or
                                                  (k + 1) % (h * w * groups) == 0)}
        for k, word in enumerate(words)
    ]


def expected_windows(frames, kernel, strides, padding, lanes, zero_point) -> np.ndarray:
    """One row per output beat: the lanes, then first, last, frame_last."""
    n, h, w, c = frames.shape
    groups = ceil_div(c, lanes)
    win = window_2d((h, w), kernel, strides, padding)
    (oh, ow), (kh, kw) = win.out_shape, kernel
    pads = win.padding_amounts
    xp = np.full(
        (n, h + pads["top"] + pads["bottom"], w + pads["left"] + pads["right"], groups * lanes),
        zero_point,
        dtype=np.int64,
    )
    xp[:, pads["top"] : pads["top"] + h, pads["left"] : pads["left"] + w, :c] = frames
    rows = []
    for f in range(n):
        for orow in range(oh):
            for ocol in range(ow):
                r, col = orow * strides[0], ocol * strides[1]
                for i in range(kh):
                    for j in range(kw):
                        for g in range(groups):
                            first = i == 0 and j == 0 and g == 0
                            last = i == kh - 1 and j == kw - 1 and g == groups - 1
                            frame_last = last and orow == oh - 1 and ocol == ow - 1
                            rows.append([
                                *xp[f, r + i, col + j, g * lanes : (g + 1) * lanes],
                                first,
                                last,
                                frame_last,
                            ])
    return np.array(rows, dtype=np.int64).reshape(len(rows), lanes + 3)


def _watchdog(cycles: int, what: str):
    async def testbench(ctx):
        for _ in range(cycles):
            await ctx.tick()
        raise AssertionError(f"{what}: still running after {cycles} cycles")

    return testbench


def _convert(p):
    return [*(int(v) for v in p.data), int(p.first), int(p.last), int(p.frame_last)]


def run_window(dut: WindowGenerator, frames: np.ndarray, *, seed: int, gap=0.3, stall=0.3):
    rng = np.random.default_rng(seed)
    beats = pixel_beats(frames, dut.lanes, rng, dut.bits)
    n_out = frames.shape[0] * dut.out_shape[0] * dut.out_shape[1] * dut.beats_per_window
    results: list = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(
        _watchdog(4 * (len(beats) + n_out) + 200, f"seed {seed}"), background=True
    )
    sim.add_testbench(producer(dut.pixels, beats, rng=rng, gap=gap))
    sim.add_testbench(
        consumer(dut.windows, n_out, results, rng=rng, stall=stall, convert=_convert)
    )
    sim.run()
    return np.array(results, dtype=np.int64).reshape(n_out, dut.lanes + 3)


def check(*, seed, height, width, channels, kernel, strides, padding, lanes, frames=2,
          zero_point=None, bits=8, gap=0.3, stall=0.3):
    rng = np.random.default_rng(seed + 1000)
    lo, hi = -(1 << (bits - 1)), 1 << (bits - 1)
    zp = int(rng.integers(lo, hi)) if zero_point is None else zero_point
    x = rng.integers(lo, hi, (frames, height, width, channels))
    dut = WindowGenerator(
        height=height, width=width, channels=channels, kernel=kernel, strides=strides,
        padding=padding, lanes=lanes, zero_point=zp, bits=bits,
    )
    got = run_window(dut, x, seed=seed, gap=gap, stall=stall)
    want = expected_windows(x, dut.kernel, dut.strides, padding, lanes, zp)
    assert np.array_equal(got, want), (
        f"seed {seed}: {height}x{width}x{channels} k={kernel} s={strides} {padding} "
        f"lanes={lanes}: first mismatch at beat {np.argwhere((got != want).any(1))[0][0]}"
    )


def _random_params(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    while True:
        height, width = (int(v) for v in rng.integers(1, 10, 2))
        kernel = tuple(int(v) for v in rng.integers(1, 6, 2))
        strides = tuple(int(v) for v in rng.integers(1, 4, 2))
        padding = str(rng.choice(["valid", "same"]))
        if padding == "valid" and (kernel[0] > height or kernel[1] > width):
            continue
        lanes = int(rng.integers(1, 5))
        channels = int(rng.integers(1, 11))
        win = window_2d((height, width), kernel, strides, padding)
        beats = win.out_shape[0] * win.out_shape[1] * kernel[0] * kernel[1]
        beats *= ceil_div(channels, lanes)
        if beats <= 1500:  # keep each case around a second of simulation
            return dict(height=height, width=width, channels=channels, kernel=kernel,
                        strides=strides, padding=padding, lanes=lanes)


@pytest.mark.parametrize("seed", range(100))
def test_random(seed):
    check(seed=seed, **_random_params(seed))


@pytest.mark.parametrize(
    "params",
    [
        # 3x3 SAME stride 1 (the common conv), C a multiple of lanes.
        dict(height=5, width=6, channels=4, kernel=3, strides=1, padding="same", lanes=2),
        # odd SAME padding: 4x4 kernel, extra pixel bottom/right; C not a multiple of lanes.
        dict(height=5, width=5, channels=3, kernel=4, strides=1, padding="same", lanes=2),
        # SAME with stride 2 on an even size (pad only after) and an odd size.
        dict(height=6, width=7, channels=1, kernel=3, strides=2, padding="same", lanes=1),
        # VALID dropping the last rows/cols (stride 3 leaves a remainder).
        dict(height=9, width=8, channels=2, kernel=2, strides=3, padding="valid", lanes=4),
        # stride larger than the kernel: rows and columns skipped entirely.
        dict(height=7, width=7, channels=2, kernel=1, strides=3, padding="valid", lanes=1),
        # 1x1 kernel, stride 1: one buffered row.
        dict(height=3, width=4, channels=5, kernel=1, strides=1, padding="same", lanes=2),
        # kernel == input size (a dense layer over the image).
        dict(height=4, width=3, channels=3, kernel=(4, 3), strides=1, padding="valid",
             lanes=2),
        # 5x5 SAME on a tiny image: every window mostly padding, pad > stride.
        dict(height=2, width=3, channels=1, kernel=5, strides=1, padding="same", lanes=1),
        # 1x1 image.
        dict(height=1, width=1, channels=3, kernel=3, strides=2, padding="same", lanes=4),
        # asymmetric kernel and strides.
        dict(height=6, width=5, channels=2, kernel=(3, 1), strides=(1, 2), padding="same",
             lanes=1),
        # narrow (4-bit) and wide (16-bit) values.
        dict(height=4, width=5, channels=3, kernel=2, strides=1, padding="same", lanes=2,
             bits=4),
        dict(height=4, width=4, channels=2, kernel=3, strides=2, padding="same", lanes=1,
             bits=16),
    ],
    ids=lambda p: "{height}x{width}x{channels}-k{kernel}-s{strides}-{padding}-l{lanes}".format(
        **p
    ) + f"-b{p.get('bits', 8)}",
)
def test_edges(params):
    check(seed=7, frames=3, **params)


def test_no_stalls():
    # Full speed both sides (exercises the paths where the writer and reader race).
    check(seed=3, height=6, width=5, channels=3, kernel=3, strides=1, padding="same", lanes=2,
          gap=0.0, stall=0.0)
    check(seed=4, height=7, width=7, channels=2, kernel=2, strides=2, padding="valid",
          lanes=2, gap=0.0, stall=0.0)


def _measure(dut: WindowGenerator, frames: np.ndarray) -> tuple[int, int]:
    """(output beats, cycles from the first to the last output beat) with no stalls."""
    rng = np.random.default_rng(0)
    beats = pixel_beats(frames, dut.lanes, rng)
    n_out = frames.shape[0] * dut.out_shape[0] * dut.out_shape[1] * dut.beats_per_window
    cycles: list[int] = []

    async def sink(ctx):
        ctx.set(dut.windows.ready, 1)
        cycle = 0
        while len(cycles) < n_out:
            _, _, valid = await ctx.tick().sample(dut.windows.valid)
            cycle += 1
            if valid:
                cycles.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer(dut.pixels, beats))
    sim.add_testbench(sink)
    sim.run()
    return n_out, cycles[-1] - cycles[0] + 1


def test_throughput():
    # 3x3 SAME over 8x8x4 (2 lanes), two frames: one beat per cycle, the second frame's
    # rows stream in while the first frame's windows go out.
    dut = WindowGenerator(height=8, width=8, channels=4, kernel=3, padding="same", lanes=2)
    x = np.random.default_rng(1).integers(-128, 128, (2, 8, 8, 4))
    beats, cycles = _measure(dut, x)
    # Only the second frame's first rows (need 2 rows before its first window) may cost
    # extra cycles; the buffer holds them while the first frame drains, so there is no gap.
    assert beats / cycles >= 0.99, (beats, cycles)


def test_input_rate_strided():
    # A 1x1 kernel with stride 3 reads one pixel in 9: the input must not be throttled by
    # the output (every skipped pixel is taken at one per cycle).
    dut = WindowGenerator(height=9, width=9, channels=1, kernel=1, strides=3, lanes=1)
    x = np.random.default_rng(2).integers(-128, 128, (2, 9, 9, 1))
    beats, cycles = _measure(dut, x)
    assert beats == 2 * 9
    assert cycles <= 2 * 81 + 10, cycles


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        (dict(height=0), ValueError, r"^height must be a positive integer, not 0$"),
        (dict(width=2.0), TypeError, r"^width must be a positive integer, not 2\.0$"),
        (dict(channels=True), TypeError, r"^channels must be a positive integer, not True$"),
        (dict(kernel=(3, 0)), ValueError,
         r"^kernel must be a positive integer or a pair of them, not \(3, 0\)$"),
        (dict(kernel="3"), TypeError,
         r"^kernel must be a positive integer or a pair of them, not '3'$"),
        (dict(strides=(1, 2, 3)), TypeError,
         r"^strides must be a positive integer or a pair of them, not \(1, 2, 3\)$"),
        (dict(padding="full"), ValueError, r"^padding must be 'valid' or 'same', not 'full'$"),
        (dict(lanes=0), ValueError, r"^lanes must be a positive integer, not 0$"),
        (dict(zero_point=128), ValueError,
         r"^zero_point must be an integer in -128\.\.127, not 128$"),
        (dict(bits=1), ValueError, r"^bits must be an integer >= 2, not 1$"),
        (dict(kernel=5), ValueError,
         r"^kernel \(5, 5\) is larger than the input \(4, 4\) with padding 'valid'$"),
    ],
)
def test_bad_parameters(kwargs, exc, message):
    params = dict(height=4, width=4, channels=1, kernel=3) | kwargs
    with pytest.raises(exc, match=message):
        WindowGenerator(**params)


def test_ports():
    dut = WindowGenerator(height=4, width=4, channels=5, kernel=3, lanes=2, bits=6)
    assert dut.groups == 3 and dut.beats_per_window == 27 and dut.buffer_rows == 3
    assert dut.pixels.payload.shape().size == 2 * 6 + 1
    assert dut.windows.payload.shape().size == 2 * 6 + 3
