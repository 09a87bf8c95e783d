"""The ``orangecrab-25f`` target (see :mod:`accel.synth.boards` for its capacities and platform)."""

from accel.synth.boards import get_board

BOARD = get_board("orangecrab-25f")


def platform():
    """A fresh amaranth-boards platform instance for this board."""
    return BOARD.make_platform()
