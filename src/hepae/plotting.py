"""Figures of a validation report, drawn with matplotlib + mplhep in an experiment's style.

Each function takes already-filled numbers (histogram contents, edges, statistics) and returns a
matplotlib figure; :func:`save` writes it as PNG and PDF. Nothing here reads files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import numpy as np  # noqa: E402

from hepae.validation import STYLES  # noqa: E402

_LABELLERS = {"ATLAS": mplhep.atlas, "CMS": mplhep.cms, "LHCb2": mplhep.lhcb}
COLORS = {"original": "black", "reconstructed": "tab:red"}


class Style:
    """An mplhep style and its experiment label, applied to every figure of one report."""

    def __init__(self, name: str, text: str = "Internal", rlabel: str = "hepae"):
        if name not in STYLES:
            raise ValueError(f"unknown plot style {name!r}; choose one of {', '.join(STYLES)}")
        self.name, self.text, self.rlabel = name, text, rlabel

    def figure(self, ratio: bool = False, **kwargs: Any) -> tuple[plt.Figure, Any]:
        plt.style.use(getattr(mplhep.style, self.name))
        if ratio:
            return plt.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1), "hspace": 0.05}, **kwargs)
        return plt.subplots(**kwargs)

    def label(self, ax: Any) -> None:
        labeller = _LABELLERS.get(self.name)
        if labeller is not None:
            labeller.label(text=self.text, data=False, ax=ax, rlabel=self.rlabel)  # data=False: "Simulation"
        else:
            mplhep.label.exp_label(exp="", text=f"Simulation {self.text}", rlabel=self.rlabel, ax=ax)


def save(fig: plt.Figure, outdir: Path, stem: str, formats: tuple[str, ...] = ("png", "pdf")) -> list[str]:
    """Write ``stem.<format>`` for each format; returns the file names."""
    names = []
    for suffix in formats:
        fig.savefig(outdir / f"{stem}.{suffix}", dpi=110 if suffix == "png" else None)
        names.append(f"{stem}.{suffix}")
    plt.close(fig)
    return names


def comparison(style: Style, edges: np.ndarray, original: np.ndarray, reconstructed: np.ndarray, xlabel: str,
               log_x: bool = False) -> plt.Figure:
    """Original vs reconstructed distribution, with a reco/orig ratio panel and its statistical error."""
    fig, (ax, rax) = style.figure(ratio=True)
    for name, values in (("original", original), ("reconstructed", reconstructed)):
        mplhep.histplot(values, edges, yerr=np.sqrt(values), ax=ax, label=name, color=COLORS[name],
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
    return fig


def residual(style: Style, edges: np.ndarray, counts: np.ndarray, xlabel: str, stats: dict[str, float]) -> plt.Figure:
    """A residual distribution annotated with mean ± SEM, σ ± its error, 68 %/99 % widths and max |r|."""
    fig, ax = style.figure()
    mplhep.histplot(counts, edges, yerr=np.sqrt(counts), ax=ax, color=COLORS["reconstructed"], label="reco - orig")
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
    return fig


def profile(style: Style, edges: np.ndarray, mean: np.ndarray, sigma: np.ndarray, mean_error: np.ndarray,
            count: np.ndarray, xlabel: str, ylabel: str, min_count: int = 10) -> plt.Figure:
    """Mean and σ of a residual in bins of pT (bins with at least ``min_count`` objects): where the codec is
    worst."""
    fig, ax = style.figure()
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
    return fig


def matrix(style: Style, values: np.ndarray, labels: list[str], title: str, vmin: float = -1.0,
           vmax: float = 1.0, cmap: str = "RdBu_r", annotate: bool = True) -> plt.Figure:
    """A square matrix (correlations, bin migrations) as a colour map."""
    size = max(6.0, 0.45 * len(labels))
    fig, ax = style.figure(figsize=(size + 1.5, size))
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
    return fig


def migration(style: Style, edges: np.ndarray, fraction: np.ndarray, label: str, log: bool) -> plt.Figure:
    """Where the objects of each original bin end up: the row-normalized bin-migration matrix."""
    fig, ax = style.figure(figsize=(8.5, 7))
    mesh = ax.pcolormesh(edges, edges, fraction, cmap="viridis", vmin=0.0, vmax=1.0)
    fig.colorbar(mesh, ax=ax, label="fraction of the original bin")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(f"reconstructed {label}")
    ax.set_ylabel(f"original {label}")
    style.label(ax)
    return fig
