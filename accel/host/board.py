"""``accel run``: images through a board running the UART top, checked against the golden model.

The model is needed on the host for three things: the input quantization (float images are
quantized exactly as ``accel predict`` does), the number of logits in an answer, and, with
``check``, the golden model's logits that the board's must equal bit for bit.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..errors import AccelError
from ..quant import golden
from ..quant.predict import quantize_inputs
from ..quant.qnet import QuantizedNetwork
from .link import LINK_BITS, SerialLike, image_bytes, resync, run_image

#: pyserial's per-read timeout: short, so that ``run_image``'s own deadline is kept.
READ_TIMEOUT_S = 0.05


def link_logits(qnet: QuantizedNetwork) -> int:
    """Logits per answer for ``qnet``; a model the 8-bit link cannot carry is an error."""
    layer = qnet.logits_layer
    if qnet.input.bits > LINK_BITS or layer.output.bits > LINK_BITS:
        raise AccelError(f"{qnet.name}: the UART link carries int{LINK_BITS} values, but the "
                         f"model's input is int{qnet.input.bits} and its logits "
                         f"({layer.name}) are int{layer.output.bits}")
    index = qnet.layers.index(layer)
    count = math.prod(qnet.network.infos[index].output_shape)
    if count > 256:
        raise AccelError(f"{qnet.name}: {layer.name} has {count} output values; the UART "
                         f"top's argmax byte allows at most 256 logits")
    return count


def open_port(url: str, baud: int):
    """A pyserial port for a device path (``/dev/ttyUSB1``, ``COM3``) or a pyserial URL
    (``loop://``, ``socket://host:port``, ``rfc2217://...``)."""
    import serial

    try:
        return serial.serial_for_url(url, baudrate=baud, timeout=READ_TIMEOUT_S)
    except (OSError, ValueError) as e:  # SerialException is an OSError
        raise AccelError(f"cannot open serial port {url}: {e}") from None


def quantized_images(qnet: QuantizedNetwork, x: np.ndarray) -> tuple[np.ndarray, str]:
    """``x`` (one image or a batch, float or int) as an int batch of the model's input."""
    q, kind = quantize_inputs(qnet, x)
    return golden.check_input(qnet, q), kind


def run_images(qnet: QuantizedNetwork, images: np.ndarray, port: SerialLike, *,
               timeout: float = 2.0, check: bool = False, settle: float = 0.25) -> dict:
    """Send every image of the int batch ``images`` and collect the answers; JSON-ready.

    First the board is brought in step (:func:`~accel.host.link.resync`, waiting ``settle``
    seconds of quiet; ``stale_bytes`` says how much an interrupted earlier run left behind).
    With ``check``, each image's logits and argmax are compared with the golden model's
    (``match`` per image, ``mismatches`` overall); a mismatch is data, not an error.
    """
    n_logits = link_logits(qnet)
    want = None
    if check:
        want = golden.run(qnet, images)[qnet.logits_layer.name].reshape(len(images), -1)
    stale = resync(port, math.prod(qnet.input_shape), settle=settle)
    results = []
    start = time.perf_counter()
    for index, image in enumerate(images):
        try:
            answer = run_image(port, image_bytes(image), n_logits, timeout=timeout)
        except AccelError as e:
            raise AccelError(f"image {index}: {e}") from None
        entry = {"index": index, "logits": answer.logits.tolist(), "class": answer.argmax}
        if want is not None:
            entry["golden_logits"] = want[index].tolist()
            entry["golden_class"] = int(want[index].argmax())
            entry["match"] = bool(np.array_equal(answer.logits, want[index])
                                  and answer.argmax == entry["golden_class"])
        results.append(entry)
    seconds = time.perf_counter() - start
    data = {"model": qnet.name, "images": len(results), "logits": n_logits,
            "stale_bytes": stale, "seconds": seconds,
            "images_per_s": len(results) / seconds if seconds else None, "results": results}
    if check:
        data["mismatches"] = sum(not r["match"] for r in results)
        data["bit_exact"] = data["mismatches"] == 0
    return data
