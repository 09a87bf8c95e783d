"""A sweep's results: CSV, JSON, a Markdown report and matplotlib plots.

Plots (PNG, Agg backend, no display needed): throughput vs LUTs and vs DSPs with the Pareto
front marked (maximise inferences/s, minimise the resource), and Fmax vs array size (in
estimate mode, where there is no Fmax, predicted cycles per inference vs array size).

The estimate's error is reported for every synthesized point as ``(estimate - real) / real``
for LUTs, DSPs and block RAMs, and for throughput: the estimate assumes the requested clock,
the real design runs at its post-route Fmax.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..atomic import atomic_open, atomic_write

#: CSV columns, in order (the JSON has these and a few more: log tails, paths).
COLUMNS = ("name", "array", "rows", "cols", "array_pes", "pes", "pnr_seed", "mode", "status",
           "luts", "luts_available", "ffs", "ffs_available", "dsps", "dsps_available", "brams",
           "brams_available", "fmax_mhz", "clock_mhz", "timing_met", "interval_cycles",
           "latency_cycles", "inferences_per_s", "est_luts", "est_dsps", "est_brams",
           "est_inferences_per_s", "err_luts", "err_dsps", "err_brams", "err_inferences_per_s",
           "tool_seconds", "seconds", "cached", "reused", "reason", "log", "key")
#: Statuses whose resources and throughput are numbers to plot and compare.
MEASURED = ("ok", "timing-failed")
ERRORS = ("luts", "dsps", "brams", "inferences_per_s")
PLOTS = {"luts": "throughput_vs_luts.png", "dsps": "throughput_vs_dsps.png",
         "array": "fmax_vs_array.png", "cycles": "cycles_vs_array.png"}


def pareto_front(records: list[dict], cost: str) -> list[dict]:
    """The points no other point beats: none has at most the ``cost`` and more inferences/s
    (or less cost and as many). Sorted by cost."""
    candidates = [r for r in records if r.get("status") in MEASURED
                  and r.get(cost) is not None and r.get("inferences_per_s")]
    candidates.sort(key=lambda r: (r[cost], -r["inferences_per_s"]))
    front, best = [], 0.0
    for r in candidates:
        if r["inferences_per_s"] > best:
            front.append(r)
            best = r["inferences_per_s"]
    return front


def estimate_error(records: list[dict]) -> dict:
    """Per quantity: how many synthesized points, mean |error| and the signed extreme."""
    summary = {}
    for name in ERRORS:
        errors = [r[f"err_{name}"] for r in records if r.get("status") in MEASURED
                  and r.get("mode") == "synth" and r.get(f"err_{name}") is not None]
        if errors:
            summary[name] = {"points": len(errors),
                             "mean_abs": sum(abs(e) for e in errors) / len(errors),
                             "worst": max(errors, key=abs)}
    return summary


def write_csv(records: list[dict], path: Path) -> None:
    with atomic_open(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in records:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS})


def _fmt(value, spec: str = ",") -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float) and spec == ",":
        spec = ".3g" if abs(value) < 100 else ",.0f"
    return format(value, spec)


def _pct(value) -> str:
    return "-" if value is None else f"{value:+.1%}"


def markdown(doc: dict) -> str:
    """The report: what was swept, the points, the Pareto fronts, the estimate's error."""
    meta, records = doc["meta"], doc["points"]
    synth = meta["mode"] == "synth"
    lines = [f"# Sweep: {meta['model']} ({meta['scheme']}) on {meta['board']}", "",
             f"- arrays {', '.join(meta['arrays'])}"
             + (f"; nextpnr seeds {', '.join(map(str, meta['seeds']))}" if synth else "")
             + f"; clock {meta['clock_mhz']:g} MHz; mode **{meta['mode']}**",
             f"- {len(records)} points: " + ", ".join(f"{n} {s}" for s, n in
                                                       meta["status_counts"].items())
             + f"; {meta['reused']} reused from an earlier run",
             f"- wall time {meta['seconds']:.1f} s; command `{meta['command']}`", ""]
    head = ["point", "PEs", "status", "LUT", "FF", "DSP", "BRAM",
            "Fmax MHz" if synth else "clock MHz", "cycles/inf", "inf/s", "build s"]
    lines += ["## Points", "", "| " + " | ".join(head) + " |",
              "|" + "---|" * len(head)]
    for r in records:
        ok = r.get("status") in MEASURED
        speed = r.get("fmax_mhz") if synth else r.get("clock_mhz")
        build = r.get("tool_seconds") if synth else None
        lines.append("| " + " | ".join([
            r["name"], _fmt(r.get("pes")), r["status"],
            *(_fmt(r.get(k)) if ok or r.get(f"est_{k}") is None
              else _fmt(r.get(f"est_{k}")) + "*" for k in ("luts", "ffs", "dsps", "brams")),
            _fmt(speed, ".1f"), _fmt(r.get("interval_cycles")),
            _fmt(r.get("inferences_per_s") if ok else None),
            _fmt(build, ".1f") + (" (reused)" if r.get("reused") else
                                  " (cached build)" if r.get("cached") else "")])
            + " |")
    if any(r.get("status") not in MEASURED for r in records):
        lines += ["", "\\* the fit estimate (not built); FF is not estimated."]
    for cost, title in (("luts", "LUTs"), ("dsps", "DSPs")):
        front = doc["pareto"][cost]
        lines += ["", f"**Pareto front, inferences/s vs {title}:** "
                  + (", ".join(f"{r['name']} ({_fmt(r[cost])} {title}, "
                               f"{_fmt(r['inferences_per_s'])} inf/s)" for r in front)
                     or "no measured points")]
    problems = [r for r in records if r["status"] in ("no-fit", "failed", "timing-failed")]
    if problems:
        lines += ["", "## Points that did not make it", ""]
        for r in problems:
            reason = r.get("reason") or (f"Fmax {r['fmax_mhz']:.1f} MHz < {r['clock_mhz']:g} "
                                         f"MHz" if r.get("fmax_mhz") else "")
            lines.append(f"- **{r['name']}** {r['status']}: {reason}"
                         + (f" (log: `{r['log']}`)" if r.get("log") else ""))
    if synth:
        lines += ["", "## How far to trust `--estimate`", "",
                  ("Error of the estimate against synthesis, (estimate - real) / real; the "
                   "throughput estimate assumes the design meets the requested clock."), "",
                  "| point | LUT | DSP | BRAM | inf/s |", "|---|---|---|---|---|"]
        for r in records:
            if r.get("status") in MEASURED:
                lines.append(f"| {r['name']} | " + " | ".join(
                    _pct(r.get(f"err_{name}")) if r.get(f"err_{name}") is not None
                    or r.get(name) != 0 else f"{r.get(f'est_{name}')} vs 0"
                    for name in ERRORS) + " |")
        err = doc["estimate_error"]
        lines.append("| mean abs | " + " | ".join(
            f"{err[n]['mean_abs']:.1%}" if n in err else "-" for n in ERRORS) + " |")
    lines += ["", "## Plots", ""]
    for title, name in doc["plots"].items():
        lines.append(f"![{title}]({name})")
    return "\n".join(lines) + "\n"


def plot(doc: dict, out_dir: Path) -> dict:
    """Write the PNG plots; returns ``{title: file name}``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    meta, records = doc["meta"], doc["points"]
    measured = [r for r in records if r.get("status") in MEASURED and r.get("inferences_per_s")]
    speed = "at Fmax" if meta["mode"] == "synth" else f"at {meta['clock_mhz']:g} MHz (estimate)"
    written = {}
    for cost, label in (("luts", "LUTs"), ("dsps", "DSPs (hardware multipliers)")):
        fig = Figure(figsize=(6.4, 4.4), layout="constrained")
        ax = fig.add_subplot()
        good = [r for r in measured if r["status"] == "ok"]
        slow = [r for r in measured if r["status"] != "ok"]
        ax.scatter([r[cost] for r in good], [r["inferences_per_s"] for r in good],
                   color="tab:blue", label="points")
        if slow:
            ax.scatter([r[cost] for r in slow], [r["inferences_per_s"] for r in slow],
                       color="tab:orange", marker="x", label="timing not met")
        front = doc["pareto"][cost]
        if front:
            ax.step([r[cost] for r in front], [r["inferences_per_s"] for r in front],
                    where="post", color="tab:red", linewidth=1)
            ax.scatter([r[cost] for r in front], [r["inferences_per_s"] for r in front],
                       s=120, facecolors="none", edgecolors="tab:red", label="Pareto front")
        for r in measured:
            ax.annotate(r["name"], (r[cost], r["inferences_per_s"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
        values = [r["inferences_per_s"] for r in measured]
        if values and max(values) > 20 * min(values):
            ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(f"inferences/s {speed}")
        ax.set_title(f"{meta['model']} on {meta['board']}: throughput vs {label.split()[0]}")
        ax.grid(alpha=0.3)
        if measured:
            ax.legend(fontsize=8)
        fig.savefig(out_dir / PLOTS[cost], dpi=110)
        written[f"throughput vs {label.split()[0]}"] = PLOTS[cost]
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    arrays = sorted({(r["array_pes"], r["array"]) for r in records})
    position = {name: i for i, (_, name) in enumerate(arrays)}
    if meta["mode"] == "synth":
        for r in measured:
            ax.scatter(position[r["array"]], r["fmax_mhz"],
                       color="tab:blue" if r["status"] == "ok" else "tab:orange")
        ax.axhline(meta["clock_mhz"], color="tab:red", linestyle="--", linewidth=1,
                   label=f"requested clock {meta['clock_mhz']:g} MHz")
        ax.set_ylabel("post-route Fmax (MHz)")
        ax.set_title(f"{meta['model']} on {meta['board']}: Fmax vs array size")
        ax.legend(fontsize=8)
        name, title = PLOTS["array"], "Fmax vs array size"
    else:
        fitting = [r for r in records if r.get("interval_cycles")]
        ax.scatter([position[r["array"]] for r in fitting],
                   [r["interval_cycles"] for r in fitting],
                   c=["tab:blue" if r["status"] == "ok" else "tab:gray" for r in fitting])
        ax.set_yscale("log")
        ax.set_ylabel("predicted cycles per inference (gray: does not fit)")
        ax.set_title(f"{meta['model']} on {meta['board']}: cycles vs array size")
        name, title = PLOTS["cycles"], "cycles vs array size"
    ax.set_xticks(range(len(arrays)), [a for _, a in arrays])
    ax.set_xlabel("array (largest per stage)")
    ax.grid(alpha=0.3)
    fig.savefig(out_dir / name, dpi=110)
    written[title] = name
    return written


def write_reports(doc: dict, out_dir: str | Path) -> dict:
    """Write ``results.csv``, ``results.json``, the plots and ``report.md`` into ``out_dir``;
    returns the file names written."""
    out = Path(out_dir)
    doc["pareto"] = {cost: pareto_front(doc["points"], cost) for cost in ("luts", "dsps")}
    doc["estimate_error"] = estimate_error(doc["points"])
    doc["plots"] = plot(doc, out)
    doc["files"] = {"csv": "results.csv", "json": "results.json", "report": "report.md",
                    "plots": list(doc["plots"].values())}
    write_csv(doc["points"], out / "results.csv")
    serial = {**doc, "pareto": {cost: [r["name"] for r in front]
                                for cost, front in doc["pareto"].items()}}
    atomic_write(out / "results.json", json.dumps(serial, indent=1) + "\n")
    atomic_write(out / "report.md", markdown(doc))
    return doc["files"]
