"""The host side of the UART top's protocol (``accel.host``) and ``accel run``, without a board.

:class:`FakeBoard` stands in for the serial port: it parses what the host writes the way
``UartTop`` does (bytes before the sync byte ignored, then one image) and answers with the golden
model's logits, optionally corrupted, cut short or not at all.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import serial
from click.testing import CliRunner

from accel.cli import main
from accel.errors import AccelError
from accel.host import link
from accel.host.board import link_logits, quantized_images, run_images
from accel.quant import golden
from accel.quant.load import load_quantized_model

from .paths import EXAMPLES

DIGITS = EXAMPLES / "digits"
MODEL = DIGITS / "digits_small.tflite"


@pytest.fixture(scope="module")
def qnet():
    return load_quantized_model(MODEL)


@pytest.fixture(scope="module")
def images(qnet):
    x, _ = quantized_images(qnet, np.load(DIGITS / "digits_test_x.npy")[:12])
    return x


class FakeBoard:
    """A pyserial-like port with the board behind it (see module doc).

    ``answer(image, response) -> bytes`` may rewrite each correct response.
    """

    def __init__(self, qnet, answer=lambda image, response: response, inside: int | None = None):
        self.qnet, self.answer = qnet, answer
        self.size = int(np.prod(qnet.input_shape))
        self.received = bytearray()
        # ``inside``: left by an interrupted host after this many bytes of an image
        self.image: bytearray | None = None if inside is None else bytearray(range(inside))
        self.out = bytearray()
        self.requests = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.received += data
        for byte in data:
            if self.image is None:
                if byte == link.SYNC_IN:
                    self.image = bytearray()
                continue
            self.image.append(byte)
            if len(self.image) == self.size:
                image = np.frombuffer(bytes(self.image), np.int8).reshape(self.qnet.input_shape)
                logits = golden.run(self.qnet, image)[self.qnet.logits_layer.name].ravel()
                self.out += self.answer(image, link.encode_response(logits))
                self.requests += 1
                self.image = None
        return len(data)

    def read(self, size: int = 1) -> bytes:
        data, self.out = bytes(self.out[:size]), self.out[size:]
        return data

    def reset_input_buffer(self) -> None:
        self.out.clear()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def golden_logits(qnet, images):
    return golden.run(qnet, images)[qnet.logits_layer.name].reshape(len(images), -1)


# --- framing ------------------------------------------------------------------------------------

def test_request_is_sync_then_image_in_raster_order():
    image = np.arange(-6, 6).reshape(2, 3, 2)
    data = link.encode_request(link.image_bytes(image))
    assert data[0] == 0xA5 and len(data) == 13
    assert list(data[1:]) == [v & 0xFF for v in image.ravel()]  # channels innermost


def test_response_round_trip_and_first_argmax():
    logits = np.array([-128, 5, 127, 3, 127], np.int8)
    data = link.encode_response(logits)
    assert data == bytes([0x5A, 0x80, 5, 127, 3, 127, 2])
    answer = link.decode_response(data, 5)
    assert np.array_equal(answer.logits, logits) and answer.argmax == 2


@pytest.mark.parametrize(("data", "pattern"), [
    (bytes([0x5A, 1, 2, 0]), r"^answer has 4 bytes, expected 5 \(0x5a, 3 logits, argmax\)$"),
    (bytes([0xA5, 1, 2, 3, 0]), r"^answer starts with 0xa5, expected the header 0x5a$"),
    (bytes([0x5A, 1, 2, 3, 3]), r"^answer's argmax byte is 3, but there are only 3 logits$"),
])
def test_decode_response_errors(data, pattern):
    with pytest.raises(AccelError, match=pattern):
        link.decode_response(data, 3)


def test_image_bytes_rejects_floats_and_wide_values():
    with pytest.raises(AccelError, match=r"^image values must be integers \(quantized\)"):
        link.image_bytes(np.zeros(4, np.float32))
    with pytest.raises(AccelError, match=r"^image values span \[0, 128\], outside int8"):
        link.image_bytes(np.array([0, 128]))


# --- one exchange over a port ------------------------------------------------------------------

def test_run_image_against_fake_board_is_bit_exact(qnet, images):
    board = FakeBoard(qnet)
    want = golden_logits(qnet, images)
    for image, logits in zip(images, want, strict=True):
        answer = link.run_image(board, link.image_bytes(image), 10)
        assert np.array_equal(answer.logits, logits) and answer.argmax == logits.argmax()
    assert board.requests == len(images)
    assert len(board.received) == len(images) * 65


def test_run_image_discards_stale_bytes(qnet, images):
    board = FakeBoard(qnet)
    board.out += b"\x5a\x01\x02"  # the rest of an answer an interrupted run left behind
    answer = link.run_image(board, link.image_bytes(images[0]), 10)
    assert np.array_equal(answer.logits, golden_logits(qnet, images[:1])[0])


def test_run_image_times_out_on_a_silent_board(qnet, images):
    board = FakeBoard(qnet, answer=lambda image, response: b"")
    with pytest.raises(AccelError,
                       match=r"^timed out waiting for the answer header 0x5a: got 0 of 1 bytes$"):
        link.run_image(board, link.image_bytes(images[0]), 10, timeout=0.05)


def test_run_image_times_out_on_a_short_answer(qnet, images):
    board = FakeBoard(qnet, answer=lambda image, response: response[:4])
    with pytest.raises(AccelError, match=r"^timed out waiting for 10 logits and the argmax: "
                                         r"got 3 of 11 bytes \([0-9a-f ]+\)$"):
        link.run_image(board, link.image_bytes(images[0]), 10, timeout=0.05)


def test_run_image_over_pyserial_loopback_reports_the_echo(images):
    """``loop://`` echoes the request: the first byte back is 0xA5, not the header."""
    port = serial.serial_for_url("loop://", timeout=0.01)
    with pytest.raises(AccelError, match=r"^answer starts with 0xa5, expected the header 0x5a"):
        link.run_image(port, link.image_bytes(images[0]), 10)


def test_serial_exceptions_become_one_line_errors(images):
    class Unplugged:
        def write(self, data):
            raise serial.SerialException("write failed: [Errno 5] Input/output error")

        def read(self, size=1):
            return b""

    with pytest.raises(AccelError, match=r"^serial port error: write failed: \[Errno 5\]"):
        link.run_image(Unplugged(), link.image_bytes(images[0]), 10)


def test_run_images_check_flags_a_wrong_logit(qnet, images):
    board = FakeBoard(qnet)
    data = run_images(qnet, images[:6], board, check=True, settle=0.01)
    assert data["bit_exact"] and data["mismatches"] == 0
    assert data["stale_bytes"] == 0 and board.requests == 6  # the filler was ignored

    def flip_image_3(image, response):  # one bit of the second logit, for one image only
        if not np.array_equal(image, images[3]):
            return response
        return response[:2] + bytes([response[2] ^ 1]) + response[3:]

    data = run_images(qnet, images[:6], FakeBoard(qnet, answer=flip_image_3), check=True,
                      settle=0.01)
    assert data["mismatches"] == 1 and not data["bit_exact"]
    assert [r["match"] for r in data["results"]] == [True, True, True, False, True, True]


def test_resync_realigns_a_board_left_inside_an_image(qnet, images):
    """Without the filler, the request would complete the cut image and the answer would be
    that image's; with it, the stale answer (12 bytes) is dropped and every answer is right."""
    board = FakeBoard(qnet, inside=20)
    data = run_images(qnet, images[:4], board, check=True, settle=0.01)
    assert data["bit_exact"] and data["stale_bytes"] == 12 and board.requests == 5

    unaligned = FakeBoard(qnet, inside=20)
    answer = link.run_image(unaligned, link.image_bytes(images[0]), 10)
    assert not np.array_equal(answer.logits, golden_logits(qnet, images[:1])[0])


def test_resync_gives_up_on_a_babbling_port():
    class Babbling:
        def write(self, data):
            return len(data)

        def read(self, size=1):
            return b"\xff" * size

    with pytest.raises(AccelError, match=r"^the board keeps sending without being asked \(\d+ "
                                         r"bytes in 0.05 s\): is the baud rate right\?$"):
        # settle far above limit: a babbling port must fail however long the test process is
        # descheduled between two reads (a 10 ms settle made it flaky on a loaded machine).
        link.resync(Babbling(), 64, settle=1.0, limit=0.05)


def test_link_rejects_wide_models():
    wide = load_quantized_model(DIGITS / "digits_small.keras", scheme="pow2", act_bits=12,
                                calibration=DIGITS / "digits_calib_x.npy")
    with pytest.raises(AccelError, match=r"the UART link carries int8 values, but the model's "
                                         r"input is int12 and its logits \(dense\) are int12$"):
        link_logits(wide)


# --- accel run ----------------------------------------------------------------------------------

@pytest.fixture
def fake_port(monkeypatch, qnet):
    """``serial.serial_for_url`` returns a :class:`FakeBoard`; ``fake_port.answer`` may be set
    before the command runs."""
    opened = []

    class Factory:
        answer = staticmethod(lambda image, response: response)
        inside = None

        def __call__(self, url, **kwargs):
            board = FakeBoard(qnet, answer=self.answer, inside=self.inside)
            opened.append((url, kwargs, board))
            return board

    factory = Factory()
    factory.opened = opened
    monkeypatch.setattr(serial, "serial_for_url", factory)
    return factory


def accel(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_error(result, pattern):
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("accel: error: "), result.stderr
    assert re.search(pattern, lines[0]), lines[0]


def test_cli_run_float_batch_checked(tmp_path, fake_port, qnet):
    x = np.load(DIGITS / "digits_test_x.npy")[:8]
    np.save(tmp_path / "x.npy", x)
    result = accel("run", "--port", "/dev/ttyFAKE0", "--baud", 230400, MODEL, tmp_path / "x.npy",
                   "--check", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["bit_exact"] and data["images"] == 8 and data["input_kind"] == "float, quantized"
    assert data["port"] == "/dev/ttyFAKE0" and data["baud"] == 230400
    url, kwargs, board = fake_port.opened[0]
    assert url == "/dev/ttyFAKE0" and kwargs["baudrate"] == 230400 and board.closed
    predicted = json.loads(accel("predict", MODEL, tmp_path / "x.npy", "--json").stdout)
    assert [r["class"] for r in data["results"]] == predicted["predictions"]


def test_cli_run_single_int8_image_prints_logits_and_class(tmp_path, fake_port, qnet, images):
    np.save(tmp_path / "one.npy", images[5].astype(np.int8))
    result = accel("run", "--port", "loop://", MODEL, tmp_path / "one.npy", "--check")
    assert result.exit_code == 0, result.output
    want = golden_logits(qnet, images[5:6])[0]
    lines = result.stdout.splitlines()
    assert lines[0] == f"image 0: class {want.argmax()}  logits {want.tolist()}  ok"
    assert re.match(r"^digits_small: 1 images \(int input\) over loop:// at 115,200 baud", lines[1])
    assert lines[2] == "bit-exact with the golden model"


def test_cli_run_after_an_interrupted_run(tmp_path, fake_port, images):
    np.save(tmp_path / "x.npy", images[:3])
    fake_port.inside = 40
    result = accel("run", "--port", "fake", MODEL, tmp_path / "x.npy", "--check")
    assert result.exit_code == 0, result.output
    assert re.search(r"^\(dropped 12 stale bytes: the board was still inside an image from an "
                     r"interrupted run\)$", result.stdout, re.M)
    assert "bit-exact with the golden model" in result.stdout


def test_cli_run_wrong_logit_fails_check(tmp_path, fake_port, images):
    np.save(tmp_path / "x.npy", images[:4])
    fake_port.answer = staticmethod(
        lambda image, response: response[:3] + bytes([response[3] ^ 0x40]) + response[4:])
    result = accel("run", "--port", "fake", MODEL, tmp_path / "x.npy")
    assert result.exit_code == 0, result.output  # without --check, the board is believed
    result = accel("run", "--port", "fake", MODEL, tmp_path / "x.npy", "--check")
    assert result.exit_code == 1, result.output
    assert "MISMATCH" in result.stdout and "4 of 4 images differ" in result.stdout
    assert re.match(r"^accel: image 0: board logits \[.*\] class \d+ != golden \[.*\] class \d+$",
                    result.stderr.strip())


def test_cli_run_garbage_answer_is_one_line_error(tmp_path, fake_port, images):
    np.save(tmp_path / "x.npy", images[:2])
    fake_port.answer = staticmethod(lambda image, response: b"\x00garbage")
    result = accel("run", "--port", "fake", MODEL, tmp_path / "x.npy")
    assert_error(result, r"^accel: error: fake: image 0: answer starts with 0x00, expected the "
                         r"header 0x5a \(is the board running the uart top at this baud rate\?\)$")


def test_cli_run_silent_board_times_out(tmp_path, fake_port, images):
    np.save(tmp_path / "x.npy", images[:1])
    fake_port.answer = staticmethod(lambda image, response: b"")
    result = accel("run", "--port", "fake", "--timeout", "0.05", MODEL, tmp_path / "x.npy")
    assert_error(result, r"^accel: error: fake: image 0: timed out waiting for the answer "
                         r"header 0x5a: got 0 of 1 bytes$")


def test_cli_run_pyserial_loopback_is_a_bad_header(tmp_path, images):
    """No monkeypatching: pyserial's own ``loop://`` echoes the request back."""
    np.save(tmp_path / "x.npy", images[:1])
    result = accel("run", "--port", "loop://", MODEL, tmp_path / "x.npy")
    assert_error(result, r"^accel: error: loop://: image 0: answer starts with 0xa5")


def test_cli_run_no_such_port(tmp_path, images):
    np.save(tmp_path / "x.npy", images[:1])
    result = accel("run", "--port", tmp_path / "ttyNOPE", MODEL, tmp_path / "x.npy")
    assert_error(result, r"^accel: error: cannot open serial port .*ttyNOPE: .*No such file")


def test_cli_run_wrong_image_shape(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 16, 16, 1), np.float32))
    result = accel("run", "--port", "loop://", MODEL, tmp_path / "x.npy")
    assert_error(result, r"^accel: error: input shape \(16, 16, 1\) does not match the model "
                         r"input \(8, 8, 1\)")


class _StatusPort:
    """A port whose board answers every status request with ``answer``."""

    def __init__(self, answer: bytes):
        self.answer, self.out, self.written = answer, bytearray(b"\x5a\x01"), bytearray()

    def write(self, data: bytes) -> int:
        self.written += data
        self.out += self.answer * data.count(link.SYNC_STATUS)
        return len(data)

    def read(self, size: int = 1) -> bytes:
        data, self.out = bytes(self.out[:size]), self.out[size:]
        return data

    def reset_input_buffer(self) -> None:
        self.out.clear()


def test_read_status():
    port = _StatusPort(bytes([link.SYNC_STATUS_OUT, 0x3D]))
    assert link.read_status(port) == 0x3D         # the stale bytes before were discarded
    assert port.written == bytes([0xA7])
    with pytest.raises(AccelError, match=r"^status answer starts with 0x5a, expected 0x5c "
                                         r"\(was the top built with a status byte\?\)$"):
        link.read_status(_StatusPort(b"\x5a\x00"))
    with pytest.raises(AccelError, match=r"^timed out waiting for the status answer 0x5c: "
                                         r"got 0 of 2 bytes$"):
        link.read_status(_StatusPort(b""), timeout=0.05)
