"""PNG figures of bench reports (matplotlib, Agg backend; ``pip install 'tvexport[bench]'``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_output, refuse_empty
from ..errors import TvexportError, missing
from .report import check_report_paths

__all__ = ["check_plot_path", "plot_ratio_grid", "plot_report", "report_figure", "require_matplotlib"]

COLORS = {"tvconv": "#d62728", "dwconv": "#1f77b4", "dense": "#7f7f7f"}


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or the standard install hint."""
    try:
        import matplotlib
    except ImportError:
        raise missing("matplotlib", what="--plot", extra="bench") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


# Suffixes of other image and document formats: named as such in the message, and replaced by .png in the hint.
_OTHER_FORMATS = (".svg", ".svgz", ".pdf", ".jpg", ".jpeg", ".gif", ".webp", ".tif", ".tiff", ".bmp", ".eps", ".ps")


_EMPTY_HINT = "name it plot.png"  # for an empty plot name


def check_plot_path(path: str | Path, *, what: str = "path") -> None:
    """Refuse a plot file whose name does not end in .png (``what``: its name in messages, e.g.
    ``"--plot"``): the plots are PNG images, and PNG bytes in a .svg or .jpg open as a broken file.
    An empty name, or one with no file name (``.``, ``..``, ``/``), is refused too."""
    refuse_empty(path, what=what, hint=_EMPTY_HINT)  # Path("") would be "."
    path = Path(path)
    if path.suffix.lower() == ".png":
        return
    if path.name in ("", ".", ".."):  # Path(".").name is "": appending .png would make the hidden ".png"
        raise TvexportError(f"{what} {path} names a directory, not a file", hint=f"name a file in it: {path / 'plot.png'}")
    bare = (".png", *_OTHER_FORMATS)  # names that are a suffix alone: to Path, a hidden file with no suffix
    if path.name.lower() in bare:
        raise TvexportError(f"{what} {path}: {path.name} is a suffix alone, a hidden file with no name (an unset variable?)", hint="name it plot.png")
    other = path.suffix.lower() in _OTHER_FORMATS
    if not other:
        fixed = f"{path.name}.png"
    elif path.stem.lower() in bare:  # ".png.svg": with_suffix would give the hidden ".png.png"
        fixed = "plot.png"
    else:  # "x.png.svg": x.png, not x.png.png
        fixed = path.stem if Path(path.stem).suffix.lower() == ".png" else path.with_suffix(".png").name
    said = f", and {path.suffix} names another format" if other else ""
    raise TvexportError(f"{what} {path}: the plot is a PNG image{said}", hint=f"name it {fixed}")


def _check_plot_output(path: str | Path, *, inputs: Mapping[str, str | Path | None] | None, force: bool) -> None:
    """``plot_report``'s and ``plot_ratio_grid``'s checks of ``path``, before anything is drawn. The
    empty name first: check_report_paths would tell to leave out a path these functions require."""
    refuse_empty(path, what="path", hint=_EMPTY_HINT)
    check_report_paths({"path": path}, inputs=inputs, force=force)
    check_plot_path(path)


def _save(fig: Any, path: Path, *, force: bool) -> Path:
    plt = require_matplotlib()
    try:
        with atomic_output(path, force=force) as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def _plain_log_axis(ax: Any, *, minor_labels: bool = False) -> None:
    """Log y scale with plain-number tick labels (minor ones only where they do not crowd a decade)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    clear = FuncFormatter(lambda v, _: "" if v <= 0 or abs(math.log10(v) - round(math.log10(v))) < 0.06 else f"{v:g}")
    ax.yaxis.set_minor_formatter(clear if minor_labels else NullFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)


def _log_ratio_axis(ax: Any) -> None:
    """Log scale (2x faster and 2x slower equally far from 1) with plain-number ticks."""
    _plain_log_axis(ax, minor_labels=True)


def _latency_panel(ax: Any, report: Mapping[str, Any]) -> None:
    labels = [n["label"] for n in report["networks"]]
    cases = report["cases"]
    width = 0.8 / len(labels)
    for j, label in enumerate(labels):
        xs, med, lo, hi = [], [], [], []
        for i, case in enumerate(cases):
            r = next((r for r in case["results"] if r["network"] == label), None)
            if r is None:
                continue
            st = r["stats"]
            xs.append(i + (j - (len(labels) - 1) / 2) * width)
            med.append(st["median_s"] * 1e3)
            lo.append((st["median_s"] - st["p10_s"]) * 1e3)
            hi.append((st["p90_s"] - st["median_s"]) * 1e3)
        bars = ax.bar(xs, med, width, yerr=[lo, hi], capsize=2, label=label, color=COLORS.get(label), alpha=0.85,
                      error_kw={"elinewidth": 0.8, "alpha": 0.6})
        # Bars start at zero on a linear axis (a log axis makes bar lengths meaningless); each
        # carries its value at its top, so bars too short to see next to slower ones still read.
        vertical = len(cases) * len(labels) > 8
        for bar, m in zip(bars, med):
            ax.annotate(f"{m:.3g}", (bar.get_x() + bar.get_width() / 2, m), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7, rotation=90 if vertical else 0,
                        bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    ax.set_xticks(range(len(cases)), [f"{c['backend']}\nbatch {c['batch']}" for c in cases], fontsize=8)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.12)  # room for the labels
    ax.set_ylabel("latency, ms (median, p10-p90)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def _ratio_panel(ax: Any, report: Mapping[str, Any]) -> None:
    cases = report["cases"]
    labels = [n["label"] for n in report["networks"]]
    for j, base in enumerate(labels[1:]):
        xs, med, lo, hi = [], [], [], []
        for i, case in enumerate(cases):
            q = next((q for q in case["ratios"] if q["denominator"] == base), None)
            if q is None:
                continue
            xs.append(i + 0.1 * j)
            med.append(q["median"])
            lo.append(q["median"] - q["p10"])
            hi.append(q["p90"] - q["median"])
        ax.errorbar(xs, med, yerr=[lo, hi], fmt="o", capsize=3, color=COLORS.get(base), label=f"{labels[0]} / {base}")
        for x, m in zip(xs, med):
            ax.annotate(f"{m:.2f}", (x, m), xytext=(6, 0), textcoords="offset points", va="center", fontsize=7)
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    _log_ratio_axis(ax)
    ax.set_xticks(range(len(cases)), [f"{c['backend']}\nbatch {c['batch']}" for c in cases], fontsize=8)
    ax.set_ylabel("latency ratio (median, p10-p90 of rounds)\n< 1: TV faster")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def _layer_panel(ax: Any, report: Mapping[str, Any]) -> None:
    first = report["layers"][0]
    rows = [r for r in report["layers"] if r["backend"] == first["backend"] and r["batch"] == first["batch"]]
    xs = range(len(rows))
    ax.plot(xs, [r["tv"]["stats"]["median_s"] * 1e6 for r in rows], "o-", color=COLORS["tvconv"], label="TV layer")
    ax.plot(xs, [r["tv"]["floor_s"] * 1e6 if r["tv"]["floor_s"] else float("nan") for r in rows], "--", color=COLORS["tvconv"], alpha=0.6, label="TV memory floor")
    if any(r["dw"] for r in rows):
        ax.plot(xs, [r["dw"]["stats"]["median_s"] * 1e6 if r["dw"] else float("nan") for r in rows], "s-", color=COLORS["dwconv"], label="DW layer")
        ax.plot(xs, [r["dw"]["floor_s"] * 1e6 if r["dw"] and r["dw"]["floor_s"] else float("nan") for r in rows], "--", color=COLORS["dwconv"], alpha=0.6, label="DW memory floor")
    _plain_log_axis(ax)
    ax.set_xticks(list(xs), [f"{r['channels']}c {r['h']}x{r['w']} s{r['stride']}" for r in rows], rotation=60, fontsize=7)
    ax.set_ylabel("us")
    ax.set_title(f"per layer, {first['backend']} batch {first['batch']}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3, which="both")


def plot_report(
    report: Mapping[str, Any], path: str | Path, *, force: bool = False, inputs: Mapping[str, str | Path | None] | None = None,
) -> Path:
    """Latency per backend and batch (TV vs baselines, p10-p90 whiskers), the paired TV/baseline
    ratios, and the per-layer view (time vs memory floor) when the report has one. ``path`` is
    refused as for ``write_reports``, e.g. when it is one of ``inputs`` (name in messages -> file)."""
    _check_plot_output(path, inputs=inputs, force=force)
    return _save(report_figure(report), Path(path), force=force)


def report_figure(report: Mapping[str, Any]) -> Any:
    """The matplotlib figure ``plot_report`` writes (close it with ``plt.close``)."""
    plt = require_matplotlib()
    panels = 3 if report["layers"] else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels + max(0, len(report["cases"]) - 4) * 0.8, 4.8))
    _latency_panel(axes[0], report)
    _ratio_panel(axes[1], report)
    if panels == 3:
        _layer_panel(axes[2], report)
    s = report["settings"]
    fig.suptitle(f"{report['arch']['name']}: {s['device']} {s['dtype']}, {s['threads']} threads, {report['machine']['cpu']}", fontsize=10)
    return fig


def plot_ratio_grid(
    reports: Sequence[Mapping[str, Any]], path: str | Path, *, force: bool = False, title: str | None = None,
    inputs: Mapping[str, str | Path | None] | None = None,
) -> Path:
    """One panel per report (architecture): paired TV/DWConv ratio against batch, a line per backend.
    ``path`` is refused as for ``write_reports``, e.g. when it is one of ``inputs`` (name in messages
    -> file, e.g. the saved reports plotted)."""
    _check_plot_output(path, inputs=inputs, force=force)
    plt = require_matplotlib()
    n = len(reports)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.2), squeeze=False, sharey=True)
    for ax, report in zip(axes[0], reports):
        backends = list(dict.fromkeys(c["backend"] for c in report["cases"]))
        for b in backends:
            pts = [(c["batch"], q) for c in report["cases"] if c["backend"] == b for q in c["ratios"] if q["denominator"] == "dwconv"]
            if not pts:
                continue
            xs = [p[0] for p in pts]
            med = [p[1]["median"] for p in pts]
            ax.errorbar(xs, med, yerr=[[m - p[1]["p10"] for m, p in zip(med, pts)], [p[1]["p90"] - m for m, p in zip(med, pts)]],
                        fmt="o-", capsize=3, label=b)
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        _log_ratio_axis(ax)
        ax.set_xscale("log", base=2)
        ax.set_xticks([c["batch"] for c in report["cases"]], [str(c["batch"]) for c in report["cases"]])
        ax.set_xlabel("batch")
        ax.set_title(report["arch"]["name"], fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("TV / DWConv latency (median, p10-p90)\n< 1: TV faster")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, Path(path), force=force)
