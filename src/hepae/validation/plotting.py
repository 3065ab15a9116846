"""Figures of a validation report, drawn with matplotlib + mplhep in an experiment's style.

Each function takes already-filled numbers (histogram contents, edges, statistics) and draws them on
``ax`` (a new figure if not given), returning the figure; :func:`save` writes it as PNG and PDF.
Nothing here reads files, and nothing touches matplotlib's global state: no backend is switched and
no style is set for the session. Figures are made with :class:`matplotlib.figure.Figure` (not
pyplot, so no window and no figure manager), and each style is applied only while its figure is
drawn (``matplotlib.style.context``). matplotlib and mplhep are imported when a :class:`Style` is made.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

STYLES = ("ATLAS", "CMS", "ROOT", "LHCb2")
"""The mplhep experiment styles a report can be drawn in."""
COLORS = {"original": "black", "reconstructed": "tab:red"}


class Style:
    """An mplhep style and its experiment label, applied to every figure of one report.

    Parameters
    ----------
    name : {"ATLAS", "CMS", "ROOT", "LHCb2"}
    text : str
        The label's text after the experiment's name.
    rlabel : str
        The label on the right of the axes.
    """

    def __init__(self, name: str, text: str = "Internal", rlabel: str = "hepae"):
        if name not in STYLES:
            raise ValueError(f"unknown plot style {name!r}; choose one of {', '.join(STYLES)}")
        import matplotlib.style
        import mplhep

        self.name, self.text, self.rlabel = name, text, rlabel
        self._mplhep, self._mpl_style = mplhep, matplotlib.style

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        """The style's rcParams, for what is drawn inside the ``with`` block only."""
        with self._mpl_style.context(getattr(self._mplhep.style, self.name)):
            yield

    def figure(self, ratio: bool = False, **kwargs: Any) -> tuple[Any, Any]:
        """A new figure (not registered with pyplot) and its axes (a main and a ratio panel if ``ratio``)."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=kwargs.pop("figsize", None))
        if ratio:
            return fig, fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1), "hspace": 0.05})
        return fig, fig.subplots()

    def histplot(self, *args: Any, **kwargs: Any) -> Any:
        return self._mplhep.histplot(*args, **kwargs)

    def label(self, ax: Any) -> None:
        labeller = {"ATLAS": self._mplhep.atlas, "CMS": self._mplhep.cms, "LHCb2": self._mplhep.lhcb}.get(self.name)
        if labeller is not None:
            labeller.label(text=self.text, data=False, ax=ax, rlabel=self.rlabel)  # data=False: "Simulation"
        else:
            self._mplhep.label.exp_label(exp="", text=f"Simulation {self.text}", rlabel=self.rlabel, ax=ax)


def save(fig: Any, outdir: Path, stem: str, formats: tuple[str, ...] = ("png", "pdf"),
         style: Style | None = None) -> list[str]:
    """Write ``stem.<format>`` for each format (in ``style``'s settings, if given); returns the file names."""
    names = []
    with style.context() if style is not None else contextlib.nullcontext():
        for suffix in formats:
            fig.savefig(outdir / f"{stem}.{suffix}", dpi=110 if suffix == "png" else None)
            names.append(f"{stem}.{suffix}")
    return names


def _axes(style: Style, ax: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``(figure, ax)``: the given axes' figure, or a new figure."""
    return (ax.figure, ax) if ax is not None else style.figure(**kwargs)


def comparison(style: Style, edges: np.ndarray, original: np.ndarray, reconstructed: np.ndarray, xlabel: str,
               log_x: bool = False, axes: tuple[Any, Any] | None = None) -> Any:
    """Original vs reconstructed distribution, with a reco/orig ratio panel and its statistical error
    (on ``axes``, a main and a ratio panel, if given)."""
    with style.context():
        fig, (ax, rax) = (axes[0].figure, axes) if axes is not None else style.figure(ratio=True)
        _comparison(style, ax, rax, edges, original, reconstructed, xlabel, log_x)
    return fig


def _comparison(style: Style, ax: Any, rax: Any, edges: np.ndarray, original: np.ndarray,
                reconstructed: np.ndarray, xlabel: str, log_x: bool) -> None:
    for name, values in (("original", original), ("reconstructed", reconstructed)):
        style.histplot(values, edges, yerr=np.sqrt(values), ax=ax, label=name, color=COLORS[name],
                        histtype="step" if name == "original" else "errorbar")
    ax.set_ylabel("entries / bin")
    if log_x:  # falling spectra: log-log
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0, top=1.3 * max(float(np.max(original, initial=0)), 1.0))
    ax.legend()
    style.label(ax)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = reconstructed / original
        error = ratio * np.sqrt(1.0 / reconstructed + 1.0 / original)  # as for independent samples
    centers = 0.5 * (edges[1:] + edges[:-1])
    ok = original > 0
    rax.errorbar(centers[ok], ratio[ok], yerr=error[ok], fmt="o", ms=3, color=COLORS["reconstructed"])
    rax.axhline(1.0, color="grey", lw=1)
    close = np.all(np.abs(ratio[ok] - 1.0) < 0.2)
    rax.set_ylim(*((0.8, 1.2) if close else (0.0, 2.0)))
    rax.set_ylabel("reco / orig")
    rax.set_xlabel(xlabel)
    if log_x:
        ax.set_xscale("log")


def residual(style: Style, edges: np.ndarray, counts: np.ndarray, xlabel: str, stats: dict[str, float],
             ax: Any = None) -> Any:
    """A residual distribution annotated with mean ± SEM, σ ± its error, 68 %/99 % widths and max |r|."""
    with style.context():
        fig, ax = _axes(style, ax)
        _residual(style, ax, edges, counts, xlabel, stats)
    return fig


def _residual(style: Style, ax: Any, edges: np.ndarray, counts: np.ndarray, xlabel: str,
              stats: dict[str, float]) -> None:
    style.histplot(counts, edges, yerr=np.sqrt(counts), ax=ax, color=COLORS["reconstructed"], label="reco - orig")
    text = "\n".join([
        f"mean = {stats['mean']:.3g} ± {stats['mean_error']:.2g}",
        f"σ = {stats['std']:.3g} ± {stats['std_error']:.2g}",
        f"68% |r| < {stats['width68']:.3g}",
        f"99% |r| < {stats['width99']:.3g}",
        f"max |r| = {stats['max_abs']:.3g}",
    ])
    ax.text(0.97, 0.80, text, transform=ax.transAxes, ha="right", va="top", fontsize="small")
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("objects / bin")
    ax.set_yscale("log")
    ax.set_ylim(0.5, max(float(np.max(counts, initial=1.0)), 1.0) * 1e3)
    style.label(ax)


def profile(style: Style, edges: np.ndarray, mean: np.ndarray, sigma: np.ndarray, mean_error: np.ndarray,
            count: np.ndarray, xlabel: str, ylabel: str, min_count: int = 10, ax: Any = None) -> Any:
    """Mean and σ of a residual in bins of pT (bins with at least ``min_count`` objects): where the codec is
    worst."""
    with style.context():
        fig, ax = _axes(style, ax)
        _profile(style, ax, edges, mean, sigma, mean_error, count, xlabel, ylabel, min_count)
    return fig


def _profile(style: Style, ax: Any, edges: np.ndarray, mean: np.ndarray, sigma: np.ndarray, mean_error: np.ndarray,
             count: np.ndarray, xlabel: str, ylabel: str, min_count: int) -> None:
    centers = np.sqrt(edges[1:] * edges[:-1]) if edges[0] > 0 else 0.5 * (edges[1:] + edges[:-1])
    ok = np.isfinite(mean) & np.isfinite(mean_error) & (count >= min_count)
    ax.errorbar(centers[ok], mean[ok], yerr=mean_error[ok], fmt="o", ms=3, color="black", label="mean")
    ax.fill_between(centers[ok], (mean - sigma)[ok], (mean + sigma)[ok], color=COLORS["reconstructed"], alpha=0.3,
                    step=None, label="mean ± σ")
    ax.axhline(0.0, color="grey", lw=1)
    if edges[0] > 0:  # log-spaced pT bins
        if not ok.any():  # nothing drawn (too few objects): without limits the log axis cannot be drawn
            ax.set_xlim(edges[0], edges[-1])
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    style.label(ax)


def matrix(style: Style, values: np.ndarray, labels: list[str], title: str, vmin: float = -1.0,
           vmax: float = 1.0, cmap: str = "RdBu_r", annotate: bool = True, ax: Any = None) -> Any:
    """A square matrix (correlations, bin migrations) as a colour map."""
    size = max(6.0, 0.45 * len(labels))
    with style.context():
        fig, ax = _axes(style, ax, figsize=(size + 1.5, size))
        _matrix(fig, ax, values, labels, title, vmin, vmax, cmap, annotate)
    return fig


def _matrix(fig: Any, ax: Any, values: np.ndarray, labels: list[str], title: str, vmin: float, vmax: float,
            cmap: str, annotate: bool) -> None:
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, origin="lower")
    fig.colorbar(image, ax=ax, label=title)
    ticks = np.arange(len(labels))
    if len(labels) <= 40:
        ax.set_xticks(ticks, labels, rotation=90, fontsize="x-small")
        ax.set_yticks(ticks, labels, fontsize="x-small")
    if annotate and len(labels) <= 10:
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize="xx-small")


def migration(style: Style, edges: np.ndarray, fraction: np.ndarray, label: str, log: bool, ax: Any = None) -> Any:
    """Where the objects of each original bin end up: the row-normalized bin-migration matrix."""
    with style.context():
        fig, ax = _axes(style, ax, figsize=(8.5, 7))
        _migration(style, fig, ax, edges, fraction, label, log)
    return fig


def _migration(style: Style, fig: Any, ax: Any, edges: np.ndarray, fraction: np.ndarray, label: str,
               log: bool) -> None:
    mesh = ax.pcolormesh(edges, edges, fraction, cmap="viridis", vmin=0.0, vmax=1.0)
    fig.colorbar(mesh, ax=ax, label="fraction of the original bin")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(f"reconstructed {label}")
    ax.set_ylabel(f"original {label}")
    style.label(ax)


_OVERVIEW_BRANCHES = 40
"""Branches an overview of bounds shows (those that come closest to their bounds)."""


def bound_overview(style: Style, names: list[str], ratios: np.ndarray, ax: Any = None) -> Any:
    """The largest error of each branch in units of its bound (at most 1: the guarantee), closest first."""
    shown = min(len(names), _OVERVIEW_BRANCHES)
    with style.context():
        fig, ax = _axes(style, ax, figsize=(8.5, max(4.0, 0.22 * shown + 1.5)))
        positions = np.arange(shown)
        values = np.asarray(ratios[:shown], dtype=float)
        ax.barh(positions, values, color=np.where(values <= 1.0, "tab:blue", "tab:red"), height=0.7)
        ax.axvline(1.0, color="black", lw=1, ls="--", label="bound")
        ax.set_yticks(positions, [n if len(n) <= 40 else "…" + n[-39:] for n in names[:shown]], fontsize="xx-small")
        ax.invert_yaxis()
        ax.set_xlim(0.0, max(1.1, float(values.max(initial=0.0)) * 1.05))
        ax.set_xlabel("max |reco − orig| / bound")
        more = len(names) - shown
        ax.set_title(f"{len(names)} lossy branches" + (f" ({more} more below these)" if more > 0 else ""),
                     fontsize="small")
        ax.legend(loc="lower right")
    return fig


def bound_residual(style: Style, edges: np.ndarray, counts: np.ndarray, xlabel: str, rule: str, max_ratio: float,
                   ax: Any = None) -> Any:
    """The distribution of ``(reco − orig) / bound`` of one branch: within ±1 everywhere by the guarantee."""
    with style.context():
        fig, ax = _axes(style, ax)
        style.histplot(counts, edges, yerr=np.sqrt(counts), ax=ax, color=COLORS["reconstructed"])
        for x in (-1.0, 1.0):
            ax.axvline(x, color="black", lw=1, ls="--")
        ax.text(0.97, 0.80, f"rule {rule}\nmax |error| / bound = {max_ratio:.3f}", transform=ax.transAxes,
                ha="right", va="top", fontsize="small")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("values / bin")
        ax.set_yscale("log")
        ax.set_ylim(0.5, max(float(np.max(counts, initial=1.0)), 1.0) * 1e3)
        style.label(ax)
    return fig
