"""Every block's stated ``latency``, measured in ``amaranth.sim`` with a producer that offers a
beat every cycle and a consumer that is always ready (the conditions of the plan's latency
model, :mod:`accel.plan.timing`). The array stream and the requantizer are measured in their
own tests (``test_mac_array.py``, ``test_requantizer.py``)."""

import pytest

from accel.hw.accumulate import ColumnAccumulator
from accel.hw.maxpool import MaxPool
from accel.hw.regroup import ChannelRegroup
from accel.hw.replay import WindowReplay
from accel.hw.window import WindowGenerator
from accel.plan.blocks import (
    POOL_LATENCY,
    REPLAY_LATENCY,
    WINDOW_LATENCY,
    AccumulatorPlan,
    regroup_latency,
)

from .timing import transfer_cycles


def pixels(n: int, lanes: int = 1) -> list[dict]:
    return [{"data": [(k + j) % 100 for j in range(lanes)], "last": 0} for k in range(n)]


def test_window_latency_from_the_pixel_a_beat_waits_for():
    # 3x3 input, 5 channels one per beat, 2x2 kernel: the first window's beats 0..4 read the
    # first pixel's groups, beats 10..14 wait for the second row's first pixel (input beats
    # 15..19), each offered ``latency`` after its pixel's beat was taken.
    dut = WindowGenerator(height=3, width=3, channels=5, kernel=2, lanes=1)
    assert dut.latency == WINDOW_LATENCY == 4
    taken, given, _ = transfer_cycles(dut, dut.pixels, dut.windows, pixels(45), 20)
    assert given[0] - taken[0] == dut.latency
    assert [given[10 + g] - taken[15 + g] for g in range(5)] == [dut.latency] * 5


def test_replay_latency_and_back_to_back_windows():
    # Two windows of Kt = 4 beats, each replayed Ft = 2 times: the first replay starts
    # ``latency`` after the first window's last beat; the second window (in the free bank)
    # follows the first's 8 beats with no gap.
    dut = WindowReplay(lanes=1, k_tiles=4, f_tiles=2, bits=8)
    assert dut.latency == REPLAY_LATENCY == 3
    taken, given, _ = transfer_cycles(dut, dut.i, dut.o, pixels(8), 16)
    assert taken == list(range(8))
    assert given[0] - taken[3] == dut.latency
    assert given == list(range(given[0], given[0] + 16))


def test_accumulator_latency():
    dut = ColumnAccumulator(cols=2, acc_bits=16)
    assert dut.latency == AccumulatorPlan(cols=2, acc_bits=16).latency == 1
    beats = [{"y": [k, -k], "first": int(k % 3 == 0), "last": int(k % 3 == 2), "frame_last": 0}
             for k in range(6)]
    taken, given, out = transfer_cycles(dut, dut.i, dut.o, beats, 2)
    assert [g - taken[k] for g, k in zip(given, (2, 5), strict=True)] == [dut.latency] * 2
    assert [list(o.data) for o in out] == [[3, -3], [12, -12]]


@pytest.mark.parametrize(("channels", "lanes_in", "lanes_out"),
                         [(3, 1, 3), (5, 2, 3), (4, 4, 1), (3, 2, 2)])
def test_regroup_latency(channels, lanes_in, lanes_out):
    # The first output beat is offered ``latency`` after the input beat that completes it.
    dut = ChannelRegroup(channels=channels, lanes_in=lanes_in, lanes_out=lanes_out)
    assert dut.latency == regroup_latency(lanes_in, lanes_out)
    assert dut.latency == (0 if lanes_in == lanes_out else 1)
    completes = (min(lanes_out, channels) - 1) // lanes_in  # input beat holding its last value
    taken, given, _ = transfer_cycles(dut, dut.i, dut.o, pixels(4 * dut.groups_in, lanes_in),
                                      dut.groups_out)
    assert given[0] - taken[completes] == dut.latency


@pytest.mark.parametrize("channels", [3, 5])
def test_maxpool_latency(channels):
    # 6x6 pooled 2x2: a pooled row's first beat is offered ``latency`` after the beat that ends
    # its last input row; its 3 * channels beats follow one per cycle.
    dut = MaxPool(height=6, width=6, channels=channels, pool=2, lanes=1)
    assert dut.latency == POOL_LATENCY == 10  # 5 read-modify-write stages, 1, 4 to emit
    row = 6 * channels
    taken, given, _ = transfer_cycles(dut, dut.i, dut.o, pixels(6 * row), 9 * channels)
    for o in range(3):
        first = given[o * 3 * channels]
        assert first - taken[(2 * o + 2) * row - 1] == dut.latency
        assert given[o * 3 * channels:(o + 1) * 3 * channels] == \
            list(range(first, first + 3 * channels))
