"""The host side of the UART board top's protocol (:mod:`accel.synth.uart_top`).

::

    host -> board:  0xA5, then the image's h * w * c int8 bytes (raster order, channels innermost)
    board -> host:  0x5A, then the int8 logits, then the argmax (one unsigned byte)
    host -> board:  0xA7 (between images; tops built with a status byte)
    board -> host:  0x5C, then the status byte

The framing functions are pure (:func:`encode_request`, :func:`encode_response`,
:func:`decode_response`); :func:`resync` realigns a board that an interrupted host left inside
an image, and :func:`run_image` does one exchange, both over any object with pyserial's
``write(bytes)`` and ``read(n)`` (``read`` returns at most ``n`` bytes, fewer when its own read
timeout expires), so tests can stand in a fake board for the serial port. Everything the link
can get wrong (a short answer, a wrong header byte, a port error) is an
:class:`~accel.errors.AccelError` with a one-line message.
"""

from __future__ import annotations

import time
from typing import NamedTuple, Protocol

import numpy as np

from ..errors import AccelError

SYNC_IN = 0xA5
SYNC_OUT = 0x5A
#: Status request and its answer's header (a top built with a status byte, e.g. the weight
#: memory's: :data:`accel.synth.sdram_weights.STATUS_BITS`): 0xA7 -> 0x5C, status.
SYNC_STATUS = 0xA7
SYNC_STATUS_OUT = 0x5C
#: The link carries 8-bit values; a model whose input or logits are wider cannot use it.
LINK_BITS = 8


class SerialLike(Protocol):
    def write(self, data: bytes, /) -> int | None: ...

    def read(self, size: int = 1, /) -> bytes: ...


class Response(NamedTuple):
    """One decoded answer: the ``logits`` (int8) and the board's ``argmax``."""

    logits: np.ndarray
    argmax: int


def image_bytes(image: np.ndarray) -> bytes:
    """The wire form of one quantized image: its values as int8 two's complement bytes, in
    C order (raster order, channels innermost for an ``(h, w, c)`` image)."""
    values = np.asarray(image)
    if not np.issubdtype(values.dtype, np.integer):
        raise AccelError(f"image values must be integers (quantized), not {values.dtype}")
    if values.size and (values.min() < -128 or values.max() > 127):
        raise AccelError(f"image values span [{values.min()}, {values.max()}], outside int8 "
                         f"[-128, 127]")
    return values.astype(np.int8).tobytes(order="C")


def encode_request(data: bytes) -> bytes:
    """Host -> board: the sync byte, then the image bytes (see :func:`image_bytes`)."""
    return bytes([SYNC_IN]) + bytes(data)


def encode_response(logits: np.ndarray) -> bytes:
    """Board -> host, as the board sends it: the sync byte, the int8 logits and the index of
    the first largest logit. (For testbenches and fake boards.)"""
    values = np.asarray(logits).ravel()
    if not np.issubdtype(values.dtype, np.integer) or values.size == 0 or values.size > 256 \
            or values.min() < -128 or values.max() > 127:
        raise ValueError(f"logits must be 1 to 256 int8 values, not {values!r}")
    return bytes([SYNC_OUT]) + values.astype(np.int8).tobytes() + bytes([int(values.argmax())])


def response_length(n_logits: int) -> int:
    """Bytes in an answer carrying ``n_logits`` logits."""
    return n_logits + 2


def decode_response(data: bytes, n_logits: int) -> Response:
    """Parse one answer of exactly ``response_length(n_logits)`` bytes."""
    data = bytes(data)
    if len(data) != response_length(n_logits):
        raise AccelError(f"answer has {len(data)} bytes, expected {response_length(n_logits)} "
                         f"(0x{SYNC_OUT:02x}, {n_logits} logits, argmax)")
    if data[0] != SYNC_OUT:
        raise AccelError(f"answer starts with 0x{data[0]:02x}, expected the header "
                         f"0x{SYNC_OUT:02x}")
    argmax = data[-1]
    if argmax >= n_logits:
        raise AccelError(f"answer's argmax byte is {argmax}, but there are only {n_logits} "
                         f"logits")
    return Response(np.frombuffer(data[1:-1], dtype=np.int8).copy(), argmax)


def _read_exactly(port: SerialLike, size: int, deadline: float, what: str) -> bytes:
    data = bytearray()
    while len(data) < size:
        if time.monotonic() > deadline:
            raise AccelError(f"timed out waiting for {what}: got {len(data)} of {size} bytes"
                             + (f" ({data.hex(' ')})" if data else ""))
        data += _io(port.read, size - len(data))
    return bytes(data)


def _io(call, *args):
    """``call(*args)`` with pyserial's exceptions (``SerialException`` is an ``OSError``)
    turned into one-line errors."""
    try:
        return call(*args)
    except OSError as e:
        raise AccelError(f"serial port error: {e}") from None


def resync(port: SerialLike, image_size: int, *, settle: float = 0.25,
           limit: float = 5.0) -> int:
    """Bring the board back in step with the host; returns how many stale bytes came back.

    A request cut short (an interrupted host) leaves the board inside an image, where a new
    sync byte is just a pixel value, so the next request would be misframed. One image's worth
    of filler (``0x00``, never the sync byte) fixes that: a board in step ignores it, a board
    inside an image takes what it lacks and answers that image. Then everything that comes
    back until the line has been quiet for ``settle`` seconds is dropped (a board that keeps
    sending for ``limit`` seconds is an error: a wrong baud rate, or not our board).
    """
    _io(port.write, bytes(image_size))
    flush = getattr(port, "flush", None)
    if flush is not None:
        _io(flush)
    dropped = 0
    start = quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < settle:
        chunk = _io(port.read, 256)
        if chunk:
            dropped += len(chunk)
            quiet_since = time.monotonic()
            if quiet_since - start > limit:
                raise AccelError(f"the board keeps sending without being asked ({dropped} bytes "
                                 f"in {limit:g} s): is the baud rate right?")
    return dropped


def run_image(port: SerialLike, data: bytes, n_logits: int, *, timeout: float = 2.0) -> Response:
    """Send one image (``data`` from :func:`image_bytes`) and read its answer.

    Stale input is discarded first (``reset_input_buffer`` when the port has one). ``timeout``
    (seconds) counts from when the request has been written; the port's own read timeout should
    be short (pyserial's ``timeout``, e.g. 0.1 s) so that a silent board is noticed in time. A
    first byte other than the header fails at once, without waiting for the rest.
    """
    if not timeout > 0:
        raise AccelError(f"--timeout must be a positive number of seconds, not {timeout!r}")
    reset = getattr(port, "reset_input_buffer", None)
    if reset is not None:
        _io(reset)
    _io(port.write, encode_request(data))
    flush = getattr(port, "flush", None)
    if flush is not None:
        _io(flush)  # pyserial: wait until the request is on the wire
    deadline = time.monotonic() + timeout
    head = _read_exactly(port, 1, deadline, f"the answer header 0x{SYNC_OUT:02x}")
    if head[0] != SYNC_OUT:
        raise AccelError(f"answer starts with 0x{head[0]:02x}, expected the header "
                         f"0x{SYNC_OUT:02x} (is the board running the uart top at this baud "
                         f"rate?)")
    rest = _read_exactly(port, response_length(n_logits) - 1, deadline,
                         f"{n_logits} logits and the argmax")
    return decode_response(head + rest, n_logits)


def read_status(port: SerialLike, *, timeout: float = 2.0) -> int:
    """Ask a top built with a status byte for it (``0xA7`` -> ``0x5C``, status); stale input
    is discarded first. Call it between images (the board answers after any answer it is
    sending)."""
    if not timeout > 0:
        raise AccelError(f"--timeout must be a positive number of seconds, not {timeout!r}")
    reset = getattr(port, "reset_input_buffer", None)
    if reset is not None:
        _io(reset)
    _io(port.write, bytes([SYNC_STATUS]))
    flush = getattr(port, "flush", None)
    if flush is not None:
        _io(flush)
    deadline = time.monotonic() + timeout
    answer = _read_exactly(port, 2, deadline, f"the status answer 0x{SYNC_STATUS_OUT:02x}")
    if answer[0] != SYNC_STATUS_OUT:
        raise AccelError(f"status answer starts with 0x{answer[0]:02x}, expected "
                         f"0x{SYNC_STATUS_OUT:02x} (was the top built with a status byte?)")
    return answer[1]
