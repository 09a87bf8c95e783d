"""Board targets: thin wrappers over :mod:`accel.synth.boards`, where the registry lives (the
CLI needs it, and ``accel`` never imports from this folder).

>>> from boards import icebreaker
>>> icebreaker.BOARD.dsps
8
"""

from accel.synth.boards import BOARDS, Board, get_board

__all__ = ["BOARDS", "Board", "get_board"]
