"""PLL parameters for the board tops: the nearest clock each family's PLL makes from the board's
oscillator, and the Amaranth instance that makes it.

One function per family computes the divider settings; each searches the dividers exactly as
the vendor-side tool of the open flow does, so the same request gives the same settings:

* ECP5 ``EHXPLLL`` as Project Trellis's ``ecppll``: ``f_out = f_in / CLKI_DIV * CLKFB_DIV``
  (feedback from ``CLKOP``), ``f_vco = f_out * CLKOP_DIV``; PFD 3.125-400 MHz, VCO 400-800 MHz,
  output 10-400 MHz; ``CLKI_DIV`` and ``CLKOP_DIV`` 1-128, ``CLKFB_DIV`` 1-80; of equally near
  outputs, the one whose VCO is nearest 600 MHz.
* iCE40 ``SB_PLL40_PAD`` / ``SB_PLL40_CORE`` as IceStorm's ``icepll`` (simple feedback):
  ``f_pfd = f_in / (DIVR + 1)`` 10-133 MHz, ``f_vco = f_pfd * (DIVF + 1)`` 533-1066 MHz,
  ``f_out = f_vco / 2**DIVQ`` 16-275 MHz; DIVR 0-15, DIVF 0-127, DIVQ 1-6; input 10-133 MHz;
  ``FILTER_RANGE`` from the PFD frequency.
* Gowin ``rPLL`` (GW1NR-9 C6/I5) as Apicula's ``gowin_pll``: ``f_out = f_in * (FBDIV_SEL + 1) /
  (IDIV_SEL + 1)``, ``f_vco = f_out * ODIV_SEL``; PFD 3-400 MHz, VCO 400-1200 MHz (exclusive),
  output 3.125-600 MHz (exclusive); IDIV_SEL and FBDIV_SEL 0-63, ODIV_SEL one of 2, 4, 8, 16,
  32, 48, 64, 80, 96, 112, 128.

Sources: Lattice FPGA-TN-02200 (ECP5 sysCLOCK), FPGA-TN-02052 (iCE40 sysCLOCK PLL), Gowin UG286
and DS117; the searches and ranges of ``ecppll.cpp`` (prjtrellis), ``icepll.cc`` (icestorm) and
``apycula/gowin_pll.py``, which the tests run as oracles.

:class:`PllClock` is the board top's clock: it feeds the oscillator pin to the PLL, drives the
``sync`` domain from the PLL output and holds ``sync`` in reset until the PLL has locked (and,
as Amaranth's own iCE40 clock does for the block RAMs, 15 us longer).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from amaranth import ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import FFSynchronizer, ResetSynchronizer

from ..errors import AccelError

__all__ = ["Pll", "PllClock", "choose_clock", "ecp5_phase_output", "ecp5_pll", "gowin_pll",
           "ice40_pll"]

# A requested clock this close (MHz) to the oscillator uses the oscillator directly.
_SAME_MHZ = 1e-6


@dataclass(frozen=True)
class Pll:
    """One PLL setting.

    Members
    -------
    family : str
        ``ecp5``, ``ice40`` or ``gowin``.
    primitive : str
        The vendor cell: ``EHXPLLL``, ``SB_PLL40_PAD``, ``rPLL``.
    input_mhz, requested_mhz, output_mhz : float
        Oscillator, request, and the frequency the setting really makes.
    pfd_mhz, vco_mhz : float
        Phase detector and VCO frequencies (within the family's ranges).
    params : dict
        The primitive's divider parameters (name -> int), as the instance gets them.
    """

    family: str
    primitive: str
    input_mhz: float
    requested_mhz: float
    output_mhz: float
    pfd_mhz: float
    vco_mhz: float
    params: dict = field(default_factory=dict)

    @property
    def phase_deg(self) -> float | None:
        """The phase by which the ECP5 secondary output ``CLKOS`` lags ``CLKOP`` (see
        :func:`ecp5_phase_output`), or None without one."""
        p = self.params
        if "CLKOS_DIV" not in p:
            return None
        steps = p["CLKOS_CPHASE"] - p["CLKOP_CPHASE"] + (p["CLKOS_FPHASE"] - p["CLKOP_FPHASE"]) / 8
        return 360 * steps / p["CLKOS_DIV"]

    @property
    def error_mhz(self) -> float:
        """How far ``output_mhz`` is from the request (signed)."""
        return self.output_mhz - self.requested_mhz

    def to_json(self) -> dict:
        """The report's ``"pll"`` object."""
        return {"primitive": self.primitive, "input_mhz": self.input_mhz,
                "requested_mhz": self.requested_mhz, "output_mhz": round(self.output_mhz, 6),
                "pfd_mhz": round(self.pfd_mhz, 6), "vco_mhz": round(self.vco_mhz, 6),
                "params": dict(self.params)}


def _check_input(family: str, input_mhz: float, low: float, high: float) -> None:
    if not low <= input_mhz <= high:
        raise AccelError(f"{family} PLL: input clock {input_mhz:g} MHz is outside "
                         f"{low:g}-{high:g} MHz")


def _check_request(output_mhz: float) -> None:
    if not (isinstance(output_mhz, (int, float)) and math.isfinite(output_mhz)
            and output_mhz > 0):
        raise AccelError(f"--clock must be a positive frequency in MHz, not {output_mhz!r}")


def ecp5_pll(input_mhz: float, output_mhz: float) -> Pll:
    """The ``EHXPLLL`` setting nearest ``output_mhz`` from ``input_mhz`` (see module doc)."""
    _check_request(output_mhz)
    _check_input("ECP5", input_mhz, 8, 400)
    # ecppll computes in single precision, and its tie-break (the VCO nearest 600 MHz) sees
    # float32 errors: emulate them, so that the settings are ecppll's, bit for bit.
    f32 = np.float32
    want = f32(output_mhz)
    best = None
    for refclk_div in range(1, 129):
        pfd = f32(input_mhz) / f32(refclk_div)
        if not 3.125 <= pfd <= 400:
            continue
        for feedback_div in range(1, 81):
            for output_div in range(1, 129):
                vco = pfd * f32(feedback_div) * f32(output_div)
                if not 400 <= vco <= 800:
                    continue
                fout = vco / f32(output_div)
                if not 10 <= fout <= 400:
                    continue
                error = abs(fout - want)
                if best is None or error < best[0] or (
                        error == best[0] and abs(vco - f32(600)) < abs(best[5] - f32(600))):
                    best = (error, refclk_div, feedback_div, output_div, pfd, vco)
    if best is None:
        raise AccelError(f"ECP5 PLL cannot make any clock from {input_mhz:g} MHz")
    _, refclk_div, feedback_div, output_div, _, vco32 = best
    pfd = input_mhz / refclk_div
    fout = pfd * feedback_div
    # ecppll shifts the primary output by half its period ("Lattice seems to do this"), in
    # VCO cycles, computed as it does (a float nanosecond figure times the VCO frequency,
    # truncated): for an even divider that is one VCO cycle short of half, e.g. 2 for 6.
    half = f32(0.5 / (float(vco32 / f32(output_div)) * 1e6))
    cphase = int(float(half) * (float(vco32) * 1e6))
    return Pll(family="ecp5", primitive="EHXPLLL", input_mhz=input_mhz,
               requested_mhz=output_mhz, output_mhz=fout, pfd_mhz=pfd,
               vco_mhz=fout * output_div,
               params={"CLKI_DIV": refclk_div, "CLKFB_DIV": feedback_div,
                       "CLKOP_DIV": output_div, "CLKOP_CPHASE": cphase, "CLKOP_FPHASE": 0})


def ecp5_phase_output(pll: Pll, phase_deg: float) -> Pll:
    """``pll`` with its secondary output ``CLKOS`` enabled: the primary's frequency, lagging it
    by ``phase_deg`` (0 <= phase < 360), e.g. an SDRAM clock pin.

    The output dividers count VCO cycles; ``CPHASE`` delays an output by whole VCO cycles and
    ``FPHASE`` by eighths of one (Lattice FPGA-TN-02200, static phase shift), so the phase
    resolution is ``45 / CLKOP_DIV`` degrees. The settings are ``ecppll --phase1``'s: the
    shift in VCO cycles (computed in its float precision), truncated to eighths, added to the
    primary's ``CPHASE``. :attr:`Pll.phase_deg` is the phase that results.
    """
    if pll.primitive != "EHXPLLL":
        raise AccelError(f"a phase-shifted second output needs an ECP5 EHXPLLL, "
                         f"not {pll.primitive}")
    if not (isinstance(phase_deg, (int, float)) and math.isfinite(phase_deg)
            and 0 <= phase_deg < 360):
        raise AccelError(f"PLL phase must be in [0, 360) degrees, not {phase_deg!r}")
    f32 = np.float32
    p = pll.params
    div = p["CLKOP_DIV"]
    # As ecppll: float variables, double arithmetic (its literals are doubles).
    vco32 = f32(f32(pll.input_mhz) / f32(p["CLKI_DIV"])) * f32(p["CLKFB_DIV"]) * f32(div)
    freq32 = vco32 / f32(div)
    shift_ns = f32(1 / (float(freq32) * 1e6) * phase_deg / 360.0)
    count = f32(float(shift_ns) * (float(vco32) * 1e6))
    coarse = int(count)
    fine = int((float(count) - coarse) * 8)
    params = {**p, "CLKOS_DIV": div, "CLKOS_CPHASE": coarse + p["CLKOP_CPHASE"],
              "CLKOS_FPHASE": fine}
    return dataclasses.replace(pll, params=params)


def ice40_filter_range(pfd_mhz: float) -> int:
    """The loop filter setting for a PFD frequency (icepll's table)."""
    for limit, setting in ((17, 1), (26, 2), (44, 3), (66, 4), (101, 5)):
        if pfd_mhz < limit:
            return setting
    return 6


def ice40_pll(input_mhz: float, output_mhz: float, *, pad: bool = True) -> Pll:
    """The ``SB_PLL40_PAD`` (``pad``: the oscillator pin feeds the PLL directly) or
    ``SB_PLL40_CORE`` setting nearest ``output_mhz`` (see module doc)."""
    _check_request(output_mhz)
    _check_input("iCE40", input_mhz, 10, 133)
    best = None
    for divr in range(16):
        pfd = input_mhz / (divr + 1)
        if not 10 <= pfd <= 133:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not 533 <= vco <= 1066:
                continue
            for divq in range(1, 7):
                fout = vco / 2 ** divq
                if not 16 <= fout <= 275:
                    continue
                if best is None or abs(fout - output_mhz) < abs(best[-1] - output_mhz):
                    best = (divr, divf, divq, pfd, vco, fout)
    if best is None:
        raise AccelError(f"iCE40 PLL cannot make any clock from {input_mhz:g} MHz")
    divr, divf, divq, pfd, vco, fout = best
    return Pll(family="ice40", primitive="SB_PLL40_PAD" if pad else "SB_PLL40_CORE",
               input_mhz=input_mhz, requested_mhz=output_mhz, output_mhz=fout, pfd_mhz=pfd,
               vco_mhz=vco, params={"DIVR": divr, "DIVF": divf, "DIVQ": divq,
                                    "FILTER_RANGE": ice40_filter_range(pfd)})


_GOWIN_ODIV = (2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128)


def gowin_pll(input_mhz: float, output_mhz: float) -> Pll:
    """The GW1NR-9 C6/I5 ``rPLL`` setting nearest ``output_mhz`` (see module doc)."""
    _check_request(output_mhz)
    _check_input("Gowin", input_mhz, 3, 400)
    best = None
    for idiv in range(64):
        pfd = input_mhz / (idiv + 1)
        if not 3 <= pfd <= 400:
            continue
        for fbdiv in range(64):
            fout = input_mhz * (fbdiv + 1) / (idiv + 1)
            if not 3.125 < fout < 600:
                continue
            for odiv in _GOWIN_ODIV:
                vco = input_mhz * (fbdiv + 1) * odiv / (idiv + 1)
                if not 400 < vco < 1200:
                    continue
                if best is None or abs(fout - output_mhz) < abs(best[-1] - output_mhz):
                    best = (idiv, fbdiv, odiv, pfd, vco, fout)
    if best is None:
        raise AccelError(f"Gowin PLL cannot make any clock from {input_mhz:g} MHz")
    idiv, fbdiv, odiv, pfd, vco, fout = best
    return Pll(family="gowin", primitive="rPLL", input_mhz=input_mhz,
               requested_mhz=output_mhz, output_mhz=fout, pfd_mhz=pfd, vco_mhz=vco,
               params={"IDIV_SEL": idiv, "FBDIV_SEL": fbdiv, "ODIV_SEL": odiv})


_FAMILY_PLL = {"ecp5": ecp5_pll, "ice40": ice40_pll, "gowin": gowin_pll}


def choose_clock(family: str, oscillator_mhz: float, requested_mhz: float) -> Pll | None:
    """How a board with an ``oscillator_mhz`` oscillator makes ``requested_mhz``: ``None`` when
    the oscillator itself is the nearest clock (a request equal to it, or one the PLL can only
    miss by more), else the family's nearest PLL setting."""
    _check_request(requested_mhz)
    if abs(requested_mhz - oscillator_mhz) <= _SAME_MHZ:
        return None
    if family not in _FAMILY_PLL:
        raise AccelError(f"no PLL for the {family} family; --clock must be the oscillator, "
                         f"{oscillator_mhz:g} MHz")
    pll = _FAMILY_PLL[family](oscillator_mhz, requested_mhz)
    if abs(pll.error_mhz) >= abs(requested_mhz - oscillator_mhz):
        return None
    return pll


class PllClock(Elaboratable):
    """The ``sync`` clock domain of a board top, from the oscillator through ``pll``.

    ``sync`` is held in reset (synchronously released) until the PLL reports lock, plus 15 us
    (the iCE40 block RAMs read as zeros for about 3 us after configuration; the same margin as
    Amaranth's own iCE40 clock), and while the board's reset button (if any) is pressed.
    nextpnr derives the output's timing constraint from the oscillator pin's constraint and the
    PLL's dividers (iCE40, ECP5); the Gowin flow passes it as ``--freq``
    (:func:`accel.synth.build.build_options`).

    Parameters
    ----------
    pll : Pll
    top : Elaboratable
        The design to clock; it uses the ``sync`` domain and requests its own pins.
    phase_domain : str or None
        With an ECP5 ``pll`` that has a secondary output (:func:`ecp5_phase_output`), a
        reset-less clock domain of this name driven by it, for ``top`` to use.

    Members
    -------
    locked : Signal
        The PLL's lock output.
    """

    #: Reset is held this long after lock.
    HOLD_S = 15e-6

    def __init__(self, *, pll: Pll, top: Elaboratable, phase_domain: str | None = None):
        if not isinstance(pll, Pll):
            raise TypeError(f"pll must be a Pll, not {pll!r}")
        if phase_domain is not None and pll.phase_deg is None:
            raise ValueError(f"phase_domain {phase_domain!r} needs a PLL with a phase-shifted "
                             f"second output (ecp5_phase_output)")
        self.phase_domain = phase_domain
        self.pll = pll
        self.top = top
        self.locked = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.top = self.top
        pll = self.pll
        clk = Signal(name="pll_out")
        clk_phase = None
        if self.phase_domain is not None:
            # Reset-less: only an output pin's ODDR runs on it (e.g. the SDRAM clock).
            clk_phase = Signal(name="pll_out_phase")
            m.domains += ClockDomain(self.phase_domain, reset_less=True)
            m.d.comb += ClockSignal(self.phase_domain).eq(clk_phase)
        pin = platform.request(platform.default_clk, dir="-")
        if pll.primitive == "SB_PLL40_PAD":
            instance = Instance("SB_PLL40_PAD", io_PACKAGEPIN=pin.io, **_ice40_params(pll),
                                o_PLLOUTGLOBAL=clk, o_LOCK=self.locked)
        else:
            m.submodules.clk_buf = clk_buf = io.Buffer("i", pin)
            if pll.primitive == "SB_PLL40_CORE":
                instance = Instance("SB_PLL40_CORE", i_REFERENCECLK=clk_buf.i,
                                    **_ice40_params(pll), o_PLLOUTGLOBAL=clk,
                                    o_LOCK=self.locked)
            elif pll.primitive == "EHXPLLL":
                instance = _ecp5_instance(pll, clk_buf.i, clk, self.locked, clk_phase)
            elif pll.primitive == "rPLL":
                instance = _gowin_instance(pll, clk_buf.i, clk, self.locked)
            else:  # pragma: no cover - Pll values come from this module
                raise ValueError(f"unknown PLL primitive {pll.primitive!r}")
        m.submodules.pll = instance

        # Lock is asynchronous to the output clock: synchronize it, then count HOLD_S.
        m.domains.pll = ClockDomain("pll", reset_less=True, local=True)
        m.d.comb += ClockSignal("pll").eq(clk)
        locked = Signal()
        m.submodules.lock_sync = FFSynchronizer(self.locked, locked, o_domain="pll")
        hold = max(1, math.ceil(self.HOLD_S * pll.output_mhz * 1e6))
        timer = Signal(range(hold + 1))
        ready = Signal()
        with m.If(~locked):
            m.d.pll += [timer.eq(0), ready.eq(0)]
        with m.Elif(timer == hold):
            m.d.pll += ready.eq(1)
        with m.Else():
            m.d.pll += timer.eq(timer + 1)

        reset = ~ready
        if platform.default_rst is not None:
            m.submodules.rst_buf = rst_buf = io.Buffer(
                "i", platform.request(platform.default_rst, dir="-"))
            reset = reset | rst_buf.i
        m.domains.sync = ClockDomain("sync")
        m.d.comb += ClockSignal("sync").eq(clk)
        m.submodules.reset_sync = ResetSynchronizer(reset, domain="sync")
        return m


def _ice40_params(pll: Pll) -> dict:
    p = pll.params
    return {"p_FEEDBACK_PATH": "SIMPLE", "p_DIVR": Const(p["DIVR"], 4),
            "p_DIVF": Const(p["DIVF"], 7), "p_DIVQ": Const(p["DIVQ"], 3),
            "p_FILTER_RANGE": Const(p["FILTER_RANGE"], 3),
            "i_RESETB": Const(1), "i_BYPASS": Const(0)}


def _ecp5_instance(pll: Pll, clk_in, clk_out, locked, clk_phase=None) -> Instance:
    p = pll.params
    secondary = {}
    if "CLKOS_DIV" in p:
        secondary = {"a_FREQUENCY_PIN_CLKOS": f"{pll.output_mhz:g}", "p_CLKOS_ENABLE": "ENABLED",
                     "p_CLKOS_DIV": p["CLKOS_DIV"], "p_CLKOS_CPHASE": p["CLKOS_CPHASE"],
                     "p_CLKOS_FPHASE": p["CLKOS_FPHASE"],
                     "o_CLKOS": clk_phase if clk_phase is not None else Signal()}
    # Attributes and fixed settings as ecppll writes them.
    return Instance(
        "EHXPLLL", **secondary,
        a_FREQUENCY_PIN_CLKI=f"{pll.input_mhz:g}", a_FREQUENCY_PIN_CLKOP=f"{pll.output_mhz:g}",
        a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
        a_MFG_GMCREF_SEL="2",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
        p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
        p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
        p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"],
        p_CLKOP_CPHASE=p["CLKOP_CPHASE"], p_CLKOP_FPHASE=p["CLKOP_FPHASE"],
        p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p["CLKFB_DIV"],
        i_RST=Const(0), i_STDBY=Const(0), i_CLKI=clk_in, i_CLKFB=clk_out,
        i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(1),
        i_PHASESTEP=Const(1), i_PHASELOADREG=Const(1), i_PLLWAKESYNC=Const(0),
        i_ENCLKOP=Const(0), o_CLKOP=clk_out, o_LOCK=locked)


def _gowin_instance(pll: Pll, clk_in, clk_out, locked) -> Instance:
    p = pll.params
    # Ports and parameters as gowin_pll writes them for the GW1NR-9 (rPLL, static dividers).
    return Instance(
        "rPLL",
        p_FCLKIN=f"{pll.input_mhz:g}", p_IDIV_SEL=p["IDIV_SEL"], p_FBDIV_SEL=p["FBDIV_SEL"],
        p_ODIV_SEL=p["ODIV_SEL"],
        i_CLKIN=clk_in, i_CLKFB=Const(0), i_RESET=Const(0), i_RESET_P=Const(0),
        i_FBDSEL=Const(0, 6), i_IDSEL=Const(0, 6), i_ODSEL=Const(0, 6), i_PSDA=Const(0, 4),
        i_DUTYDA=Const(0, 4), i_FDLY=Const(0, 4),
        o_CLKOUT=clk_out, o_LOCK=locked, o_CLKOUTP=Signal(), o_CLKOUTD=Signal(),
        o_CLKOUTD3=Signal())
