"""The result of ``accel build``: one frozen record, written as ``build_report.json`` and printed
by ``accel build --json`` (the CLI only renders it).

Every speed figure is at ``clock_mhz``, the clock the bitstream really runs at: the board's
oscillator, or the output of the PLL described by ``pll`` (``None`` when the oscillator drives
the design directly), which may differ from ``requested_clock_mhz`` by what the PLL's dividers
cannot make.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

#: ``build_report.json`` format version (2: the real clock, ``pll`` and per-tool seconds).
REPORT_VERSION = 2


@dataclass(frozen=True)
class BuildReport:
    """One ``accel build`` (see module doc). Field names are the JSON keys.

    Members
    -------
    model, scheme, board, device, family : str
    top, top_description : str
        The board top (``selftest`` or ``uart``).
    baud : int or None
        UART bits per second (``uart`` top only); ``uart_divisor`` is clock cycles per bit at
        ``clock_mhz`` and ``uart_inferences_per_s`` what the link allows.
    array : str
        ``ROWSxCOLS``; ``pes`` the processing elements of all stages.
    requested_clock_mhz, clock_mhz : float
        ``--clock`` and the clock the design runs at.
    pll : dict or None
        :meth:`accel.synth.pll.Pll.to_json`: ``input_mhz``, ``output_mhz``, the primitive and
        its dividers.
    fmax_mhz : float or None
        nextpnr's post-route Fmax (the slowest clock); ``timing_met``: it reaches ``clock_mhz``.
    fmax_by_clock : dict
        Clock net -> ``achieved_mhz`` and ``constraint_mhz`` (with a PLL, nextpnr derives the
        constraint from the oscillator's and the dividers: the PLL's output).
    utilization, critical_paths, cells, fit_estimate : dict or list
        nextpnr's and yosys's figures, and the fit check's estimate.
    interval_cycles, latency_cycles : int
    inferences_per_s_at_clock : float
        At ``clock_mhz``; ``inferences_per_s_at_fmax`` at ``fmax_mhz``.
    bitstream : str
    seed : int
        nextpnr's placement seed.
    cached : bool
        The products came from the build cache (``cache_key``, ``build_dir``).
    tool_seconds : float
        The tools' wall time (of the build that made the products, when ``cached``);
        ``tool_stage_seconds`` splits it: ``yosys``, ``nextpnr``, ``pack`` (``None`` for
        products cached before the split existed).
    synthesis_reused : bool or None
        The build that made the products took yosys's output from an earlier build of the
        same design (another nextpnr seed or clock target) and ran nextpnr only; ``None``
        for products cached before synthesis was kept apart.
    seconds : float
        This command's wall time.
    toolchain : dict
        Package versions.
    weights : dict or None
        A plan that streams weights: the weight image written beside the bitstream
        (``image``, its ``flash_offset``, ``bytes``, payload ``crc32``), the memory and the
        streamed stages (:mod:`accel.synth.weights_top`); None otherwise.
    """

    model: str
    scheme: str
    board: str
    device: str
    family: str
    top: str
    top_description: str
    baud: int | None
    uart_divisor: int | None
    uart_inferences_per_s: float | None
    array: str
    pes: int
    requested_clock_mhz: float
    clock_mhz: float
    pll: dict | None
    fmax_mhz: float | None
    fmax_by_clock: dict
    timing_met: bool
    utilization: dict
    critical_paths: list
    cells: dict
    fit_estimate: dict
    interval_cycles: int
    latency_cycles: int
    inferences_per_s_at_clock: float
    inferences_per_s_at_fmax: float | None
    bitstream: str
    seed: int
    cached: bool
    cache_key: str
    build_dir: str
    tool_seconds: float
    tool_stage_seconds: dict | None
    seconds: float
    toolchain: dict
    weights: dict | None = None
    synthesis_reused: bool | None = None

    def to_json(self) -> dict:
        """The report as JSON data (``format``, ``version``, then every field in order)."""
        return {"format": "accel-build", "version": REPORT_VERSION,
                **{f.name: getattr(self, f.name) for f in fields(self)}}
