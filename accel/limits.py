"""Size checks before work: what a network will cost, estimated from its inferred shapes.

A spec can declare a (100000, 100000, 3) input or a Dense layer of 10**12 units in a few bytes;
without these checks ``--seed`` would allocate until memory runs out and the golden model would
run for hours. :func:`check_network` estimates, from :attr:`Network.infos` alone (no arrays),
the parameters, the activations held for a batch, the im2col buffer of the largest convolution
and the multiply-accumulates, and refuses above the limits below with one line. The limits keep
every command under about 1 GB and a few minutes; the largest example networks use under a
tenth of each.
"""

from __future__ import annotations

from .errors import AccelError

#: Weights of the whole network (each held as int64 and, while quantizing, as float64).
MAX_PARAMS = 16_000_000
#: Bytes of activations held at once for the batch (every layer's output is kept, as int64).
MAX_ACTIVATION_BYTES = 512 * 1024 * 1024
#: Multiply-accumulates of one command over its whole batch (the golden model in NumPy).
MAX_TOTAL_MACS = 20_000_000_000
#: Images the golden model processes at once (``golden.BATCH_CHUNK``), for the im2col estimate.
CHUNK = 32


def check_network(network, context: str, *, images: int = 1, what: str = "images") -> None:
    """Refuse ``network`` run on ``images`` inputs if it would exceed the limits above.

    Parameters
    ----------
    network : accel.spec.Network
        Its shapes must already be inferred (any :class:`Network` is).
    context : str
        The file (or option) the network came from, for the message.
    images : int
        Batch size of the command (calibration images, inputs).
    what : str
        What the batch is, for the message.
    """
    infos = network.infos
    params = sum(info.params for info in infos)
    if params > MAX_PARAMS:
        raise AccelError(f"{context}: {params:,} parameters, more than accel handles "
                         f"({MAX_PARAMS:,})")
    per_image = _elements(network.input_shape) + sum(_elements(i.output_shape) for i in infos)
    im2col = max((info.macs // max(info.output_shape[-1], 1) for info in infos), default=0)
    held = 8 * (images * per_image + min(images, CHUNK) * im2col)
    if held > MAX_ACTIVATION_BYTES:
        raise AccelError(f"{context}: {images:,} {what} need about {held / 2**20:,.0f} MiB of "
                         f"activations ({per_image:,} values per image), more than accel "
                         f"allows ({MAX_ACTIVATION_BYTES / 2**20:,.0f} MiB)")
    macs = images * sum(info.macs for info in infos)
    if macs > MAX_TOTAL_MACS:
        raise AccelError(f"{context}: {images:,} {what} need {macs:,} multiply-accumulates, "
                         f"more than accel runs in one command ({MAX_TOTAL_MACS:,})")


def _elements(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
