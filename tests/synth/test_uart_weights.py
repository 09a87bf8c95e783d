# amaranth: UnusedElaboratable=no
"""The UART weight load in amaranth.sim: byte-level framing (junk before the sync byte, valid
gaps, answer and write stalls): a good image is written and answered 0x03, a corrupted byte is
answered 0x01, a bad header 0x00 with nothing written, and a second good image after them is
written from word 0 again (the corrupted image's words are written too: only the answer
says not to use them)."""

from __future__ import annotations

import numpy as np

from accel.synth.uart_weights import SYNC_LOAD, SYNC_LOADED, UartWeightLoad
from accel.synth.weight_image import HEADER_BYTES, pack_weight_image
from tests.hw.streams import run_simulation, stream_get, stream_put

OFFSET = 0x20000


def test_loads_over_the_link():
    seed = 31
    rng = np.random.default_rng(seed)
    dut = UartWeightLoad(flash_offset=OFFSET, word_width=16, dst_addr_width=10,
                         max_length=512)
    first = rng.integers(0, 256, 60, dtype=np.uint8).tobytes()
    second = rng.integers(0, 256, 36, dtype=np.uint8).tobytes()
    corrupt = bytearray(pack_weight_image(first, word_width=16, flash_offset=OFFSET))
    corrupt[HEADER_BYTES + 7] ^= 0x80
    bad_header = pack_weight_image(first, word_width=16, flash_offset=0)
    loads = [(pack_weight_image(first, word_width=16, flash_offset=OFFSET), [1, 3]),
             (bytes(corrupt), [1, 1]),
             (bad_header, [0]),
             (pack_weight_image(second, word_width=16, flash_offset=OFFSET), [1, 3])]
    answers, writes = [], []
    expected_writes = [(k // 2, int.from_bytes(p[k:k + 2], "little"))
                       for p in (first, bytes(corrupt[HEADER_BYTES:]), second)
                       for k in range(0, len(p), 2)]

    async def send(ctx, data):
        for byte in data:
            if rng.random() < 0.3:
                await ctx.tick().repeat(int(rng.integers(1, 4)))
            await stream_put(ctx, dut.i, byte)

    async def answer(ctx):
        got = [await stream_get(ctx, dut.o) for _ in range(2)]
        assert got[0] == SYNC_LOADED, f"seed {seed}: answer starts {got[0]:#04x}"
        return got[1]

    async def host(ctx):
        for image, statuses in loads:
            await send(ctx, bytes([0x00, 0xA5, 0x13, SYNC_LOAD]) + image[:HEADER_BYTES])
            answers.append(await answer(ctx))
            if statuses[0]:
                await send(ctx, image[HEADER_BYTES:])
                answers.append(await answer(ctx))
                await ctx.tick().until(~dut.busy)
                answers.append(("loaded", ctx.get(dut.loaded)))

    async def memory(ctx):
        for _ in expected_writes:
            if rng.random() < 0.3:
                await ctx.tick().repeat(int(rng.integers(1, 3)))
            payload = await stream_get(ctx, dut.writes)
            writes.append((payload.addr, payload.data))

    run_simulation(dut, [host, memory], max_cycles=50_000)
    assert answers == [1, 3, ("loaded", 1), 1, 1, ("loaded", 0), 0, 1, 3, ("loaded", 1)], \
        f"seed {seed}"
    assert writes == expected_writes, f"seed {seed}"
