# amaranth: UnusedElaboratable=no
"""hw/ports.py: stream port descriptions read from a component's signature."""

import numpy as np
from amaranth import signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from accel.hw.mac_array import MacArrayStream
from accel.hw.ports import stream_ports


def test_struct_payloads_with_array_fields():
    dut = MacArrayStream(rows=2, cols=3, weights=np.ones((2, 2, 3), int), tag_bits=2)
    ports = stream_ports(dut)
    assert set(ports) == {"i", "o"}
    i, o = ports["i"], ports["o"]
    assert (i["direction"], o["direction"]) == ("in", "out")
    assert (i["valid"], i["ready"], i["payload"]) == ("i__valid", "i__ready", "i__payload")
    x_bits = dut.i.payload.shape()["x"].shape.elem_shape.width
    assert i["elements"]["x"] == {"offset": 0, "width": x_bits, "count": 2, "signed": True}
    assert i["fields"]["x"] == [0, 2 * x_bits - 1]
    assert i["elements"]["tag"]["width"] == 2 and not i["elements"]["tag"]["signed"]
    assert i["payload_width"] == dut.i.payload.shape().size
    assert o["elements"]["y"]["count"] == 3 and o["elements"]["y"]["signed"]
    assert o["fields"]["tag"][1] == o["payload_width"] - 1


def test_plain_payloads_and_other_members():
    class Block(wiring.Component):
        def __init__(self):
            super().__init__({"src": In(stream.Signature(signed(12))),
                              "dst": Out(stream.Signature(5)), "busy": Out(1)})

        def elaborate(self, platform):  # pragma: no cover - never elaborated
            raise NotImplementedError

    ports = stream_ports(Block())
    assert set(ports) == {"src", "dst"}  # `busy` is no stream
    assert ports["src"]["fields"] == {"data": [0, 11]}
    assert ports["src"]["elements"]["data"] == {"offset": 0, "width": 12, "count": 1,
                                                "signed": True}
    assert ports["dst"]["payload_width"] == 5 and ports["dst"]["direction"] == "out"
