"""A behavioural SPI / quad-output NOR flash for ``amaranth.sim``: a testbench that watches the
reader's pins every system clock cycle and plays the flash (SPI mode 0).

It takes in the command and address on IO0 at SCK rising edges (the value held before the
edge), and after the command's dummy clocks drives data on IO1 (or IO0-IO3 for ``0x6B``) after
each falling edge, MSB first, from ``image``. It checks what a real flash would suffer from:
an unknown command, the reader driving a line the flash drives, WP#/HOLD# not high in
single-lane modes, and CS# changing while SCK is high. Stop it by setting ``done``."""

from __future__ import annotations

DUMMY = {0x03: 0, 0x0B: 8, 0x6B: 8}
LANES = {0x03: 1, 0x0B: 1, 0x6B: 4}


class SPIFlashModel:
    def __init__(self, image: bytes, *, command: int):
        self.image = bytes(image)
        self.command = command
        self.dummy, self.lanes = DUMMY[command], LANES[command]
        self.transactions: list[tuple[int, int, int]] = []   # (command, address, bytes read)
        self.done = False

    def _bits(self, addr: int):
        """The data lines' values, one per SCK cycle, from ``addr`` on (wrapping at the end)."""
        per_byte = 8 // self.lanes
        mask = (1 << self.lanes) - 1
        while True:
            byte = self.image[addr % len(self.image)]
            for k in range(per_byte):
                yield byte >> (8 - self.lanes * (k + 1)) & mask
            addr += 1

    def testbench(self, dut):
        async def testbench(ctx):
            prev = {"sck": 0, "cs": 0, "dq_o": 0b1100, "dq_oe": 0b1101}
            rises = cmd = addr = 0
            bits = None
            drive_mask = 0b0010 if self.lanes == 1 else 0b1111
            driving = False
            while not self.done:
                await ctx.tick()
                now = {name: ctx.get(getattr(dut, name)) for name in prev}
                if now["cs"] != prev["cs"]:
                    assert not prev["sck"] and not now["sck"], "CS# changed while SCK was high"
                    if now["cs"]:
                        rises = cmd = addr = 0
                        bits, driving = None, False
                    else:
                        data_cycles = max(0, rises - 32 - self.dummy)
                        self.transactions.append((cmd, addr, data_cycles * self.lanes // 8))
                        driving = False
                if now["cs"]:
                    if self.lanes == 1:
                        assert now["dq_oe"] & 0b1100 == 0b1100 and now["dq_o"] & 0b1100 == 0b1100, \
                            f"WP#/HOLD# not driven high: oe={now['dq_oe']:04b} o={now['dq_o']:04b}"
                    if not prev["sck"] and now["sck"]:              # rising edge
                        rises += 1
                        io0 = prev["dq_o"] & 1
                        if rises <= 8:
                            cmd = cmd << 1 | io0
                        elif rises <= 32:
                            addr = addr << 1 | io0
                        if rises == 32:
                            assert cmd == self.command, f"unexpected command {cmd:#04x}"
                    elif prev["sck"] and not now["sck"]:            # falling edge
                        if rises >= 32 + self.dummy:
                            if bits is None:
                                bits = self._bits(addr)
                            driving = True
                            value = next(bits)
                            ctx.set(dut.dq_i, value << 1 if self.lanes == 1 else value)
                    if driving:
                        assert now["dq_oe"] & drive_mask == 0, \
                            f"reader drives a data line the flash drives: oe={now['dq_oe']:04b}"
                prev = now
        return testbench
