"""Shape math against a brute-force sliding-window count (hypothesis) and TensorFlow's rules."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accel.spec.shapes import axis_window, window_2d


def brute_force_positions(size, kernel, stride, pad_before, pad_after):
    """Slide a window over the padded axis one step at a time and count where it fits."""
    padded = pad_before + size + pad_after
    return [p for p in range(0, padded, stride) if p + kernel <= padded]


@given(
    size=st.integers(1, 64), kernel=st.integers(1, 9), stride=st.integers(1, 5),
    padding=st.sampled_from(["valid", "same"]),
)
def test_axis_window_matches_brute_force(size, kernel, stride, padding):
    if padding == "valid" and kernel > size:
        with pytest.raises(ValueError, match=r"^window \d+ is larger than the input \d+"):
            axis_window(size, kernel, stride, padding)
        return
    a = axis_window(size, kernel, stride, padding)
    positions = brute_force_positions(size, kernel, stride, a.pad_before, a.pad_after)
    assert len(positions) == a.out
    # TensorFlow's documented output sizes.
    expected = math.ceil(size / stride) if padding == "same" else math.ceil(
        (size - kernel + 1) / stride)
    assert a.out == expected
    if padding == "same":
        # The odd pixel goes after; padding never exceeds what the last window needs.
        assert a.pad_after - a.pad_before in (0, 1)
        assert a.pad_before + a.pad_after == max((a.out - 1) * stride + kernel - size, 0)
        assert a.pad_before + a.pad_after < kernel
    else:
        assert a.pad_before == a.pad_after == 0
    # Every window overlaps the real input, and start() agrees with the brute force.
    for i, p in enumerate(positions):
        assert a.start(i) == p - a.pad_before
        assert a.start(i) < size and a.start(i) + kernel > 0


def test_tensorflow_examples():
    # Hand-checked against tf.nn.conv2d / max_pool2d output shapes.
    assert window_2d((28, 28), (3, 3), (1, 1), "same").out_shape == (28, 28)
    assert window_2d((28, 28), (2, 2), (2, 2), "valid").out_shape == (14, 14)
    assert window_2d((7, 7), (2, 2), (2, 2), "valid").out_shape == (3, 3)
    assert window_2d((7, 7), (2, 2), (2, 2), "same").out_shape == (4, 4)
    w = window_2d((10, 11), (4, 3), (3, 2), "same")
    assert w.out_shape == (4, 6)
    # rows: total (4-1)*3 + 4 - 10 = 3 -> 1 top, 2 bottom; cols: (6-1)*2 + 3 - 11 = 2 -> 1, 1
    assert w.padding_amounts == {"top": 1, "bottom": 2, "left": 1, "right": 1}
    assert window_2d((16, 16), (3, 3), (2, 2), "valid").out_shape == (7, 7)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 3, 1, "same"), r"^size must be a positive integer, not 0$"),
        ((5, -1, 1, "same"), r"^kernel must be a positive integer, not -1$"),
        ((5, 3, 0, "valid"), r"^stride must be a positive integer, not 0$"),
        ((5, 3, 1, "full"), r"^padding must be 'valid' or 'same', not 'full'$"),
        ((2, 3, 1, "valid"), r"^window 3 is larger than the input 2 with padding 'valid'$"),
    ],
)
def test_axis_window_errors(args, message):
    with pytest.raises(ValueError, match=message):
        axis_window(*args)
