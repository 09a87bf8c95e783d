"""The stream ports of a component as its Verilog has them: names and payload bit fields.

:func:`stream_ports` reads a component's signature, so the description cannot drift from the
hardware. The sidecar (:mod:`accel.hw.generate`) carries it for the accelerator's top, and the
block benches write it for the block under test; the cocotb stream driver and monitor
(``sim/streams.py``) bind to a design only through this description.

One port, as JSON::

    {"direction": "in", "valid": "i__valid", "ready": "i__ready", "payload": "i__payload",
     "payload_width": 17,
     "fields": {"data": [0, 15], "last": [16, 16]},
     "elements": {"data": {"offset": 0, "width": 8, "count": 2, "signed": true},
                  "last": {"offset": 16, "width": 1, "count": 1, "signed": false}}}

``fields`` gives each top-level payload field's bit range ``[lo, hi]`` (inclusive);
``elements`` how to pack and unpack it: ``count`` elements of ``width`` bits from ``offset``
(an array field has ``count`` > 1), two's complement when ``signed``.
"""

from __future__ import annotations

from amaranth.hdl import Shape
from amaranth.lib import data, stream, wiring

__all__ = ["stream_ports"]


def _element(offset: int, shape) -> dict:
    if isinstance(shape, data.ArrayLayout):
        elem = Shape.cast(shape.elem_shape)
        return {"offset": offset, "width": elem.width, "count": shape.length,
                "signed": elem.signed}
    cast = Shape.cast(shape)
    return {"offset": offset, "width": cast.width, "count": 1, "signed": cast.signed}


def _payload(shape) -> tuple[int, dict, dict]:
    """Width, field ranges and element descriptions of a payload shape."""
    if isinstance(shape, data.StructLayout):
        fields, elements = {}, {}
        for name, field in shape:
            fields[name] = [field.offset, field.offset + field.width - 1]
            elements[name] = _element(field.offset, field.shape)
        return shape.size, fields, elements
    width = Shape.cast(shape).width
    return width, {"data": [0, width - 1]}, {"data": _element(0, shape)}


def stream_ports(component: wiring.Component) -> dict[str, dict]:
    """Every ``amaranth.lib.stream`` member of ``component``'s signature, by member name, in
    the form above (Amaranth's Verilog names ``<member>__valid`` etc.). ``direction`` is the
    component's: ``in`` for a stream it consumes."""
    ports = {}
    for name, member in component.signature.members.items():
        if not (member.is_signature and isinstance(member.signature, stream.Signature)):
            continue
        sig = member.signature
        width, fields, elements = _payload(sig.members["payload"].shape)
        ports[name] = {
            "direction": "in" if member.flow == wiring.In else "out",
            "valid": f"{name}__valid", "ready": f"{name}__ready", "payload": f"{name}__payload",
            "payload_width": width, "fields": fields, "elements": elements,
        }
    return ports
