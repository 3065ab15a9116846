"""validate: how well a reconstructed file reproduces the original, as numbers and as plots.

Original and reconstructed objects are paired one to one (same events, same order), so the primary
fidelity numbers are paired: per variable the residual quantiles and the bin-migration fraction
(objects that change histogram bin). Distribution tests (χ²/ndf, Kolmogorov–Smirnov distance, 1-D
Wasserstein distance) come second: on paired data a 1 % smear passes them easily. Everything is filled
in streaming chunks with hist/boost-histogram; binning is chosen from the first chunk of the original
(log-spaced for pT, m, E-like variables, linear for η, φ and bounded ones; values outside go to the
overflow bins, and the exact statistics do not depend on binning).
"""

from __future__ import annotations

import html
import json
import math
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import numpy as np
import uproot
import vector

from hepae.container import ContainerReader
from hepae.errors import (
    CodecError,
    ContainerFormatError,
    FeatureSetError,
    HepaeError,
    InputFileError,
    OutputFileError,
)
from hepae.features import FeatureSet, list_featuresets, load_featureset
from hepae.io.sources import DEFAULT_STEP_SIZE, PathArg, default_table, open_source
from hepae.io.tensors import check_collection
from hepae.io.writing import output_errors
from hepae.progress import progress_bar
from hepae.quality.residuals import ResidualAccumulator, open_pair, paired_chunks
from hepae.validation import plotting
from hepae.validation.branches import RATIO_EDGES, BranchErrors, compare_branches, float_branches, select_branches
from hepae.validation.plotting import STYLES
from hepae.validation.thresholds import DEFAULT_THRESHOLDS

"""mplhep experiment styles a report can be drawn in."""
_BINS, _FINE_BINS, _RESIDUAL_BINS, _PROFILE_BINS = 50, 2000, 100, 15

vector.register_awkward()


def chi2_ndf(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """χ² of two histograms of unweighted counts (as for independent samples: ``Σ (a-b)² / (a+b)`` over
    the bins either fills) and its degrees of freedom (those bins minus one, at least 1)."""
    used = (a + b) > 0
    chi2 = float(((a - b) ** 2 / np.where(used, a + b, 1.0))[used].sum())
    return chi2, max(int(used.sum()) - 1, 1)


def _axis(name: str, label: str, values: np.ndarray, log: bool, bins: int = _BINS) -> hist.axis.Regular:
    """Binning for a variable from a sample of its values."""
    finite = values[np.isfinite(values)]
    positive = finite[finite > 0]
    if log and len(positive) > 1 and positive.max() > positive.min():
        low, high = np.quantile(positive, 0.001) * 0.8, positive.max() * 1.2
        return hist.axis.Regular(bins, low, high, transform=hist.axis.transform.log, name=name, label=label)
    if name == "phi" and len(finite) and np.abs(finite).max() <= math.pi:
        return hist.axis.Regular(bins, -math.pi, math.pi, name=name, label=label)
    low, high = (float(finite.min()), float(finite.max())) if len(finite) else (-1.0, 1.0)
    margin = 0.02 * (high - low) if high > low else 1.0
    return hist.axis.Regular(bins, low - margin, high + margin, name=name, label=label)


def _like(axis: hist.axis.Regular, bins: int) -> hist.axis.Regular:
    edges = axis.edges
    transform = hist.axis.transform.log if axis.transform is not None else None
    return hist.axis.Regular(bins, edges[0], edges[-1], transform=transform, name=axis.name, label=axis.label)


def _xlabel(column: Any) -> str:
    return column.label or (f"{column.name} [{column.unit}]" if column.unit else column.name)


class _Variable:
    """Every histogram of one variable."""

    def __init__(self, column: Any, original: np.ndarray, residual: np.ndarray, pt_axis: hist.axis.Regular | None):
        self.column = column
        log = column.residual == "relative"
        self.axis = _axis(column.name, _xlabel(column), original, log)
        self.original = hist.Hist(self.axis)
        self.reconstructed = hist.Hist(self.axis)
        fine = _like(self.axis, _FINE_BINS)
        self.fine_original, self.fine_reconstructed = hist.Hist(fine), hist.Hist(fine)
        self.migration = hist.Hist(_like(self.axis, _BINS), hist.axis.Regular(
            _BINS, self.axis.edges[0], self.axis.edges[-1], transform=self.axis.transform, name="reco"))
        finite = np.abs(residual[np.isfinite(residual)])
        reach = max(3.0 * float(np.quantile(finite, 0.99)), 1e-6) if len(finite) else 1e-6
        kind = "(reco - orig) / orig" if log else "reco - orig"
        self.residual = hist.Hist(hist.axis.Regular(_RESIDUAL_BINS, -reach, reach, name="residual",
                                                    label=f"{column.name}: {kind}"))
        self.profile = hist.Hist(pt_axis, storage=hist.storage.Mean()) if pt_axis is not None else None

    def fill(self, original: np.ndarray, reconstructed: np.ndarray, residual: np.ndarray,
             pt: np.ndarray | None) -> None:
        self.original.fill(original)
        self.reconstructed.fill(reconstructed)
        self.fine_original.fill(original)
        self.fine_reconstructed.fill(reconstructed)
        self.migration.fill(original, reconstructed)
        finite = np.isfinite(residual)
        self.residual.fill(residual[finite])
        if self.profile is not None and pt is not None:
            self.profile.fill(pt[finite], sample=residual[finite])

    def tests(self, std_original: float) -> dict[str, float]:
        """Migration fraction, χ², ndf, KS distance and Wasserstein distance (flow bins included)."""
        chi2, ndf = chi2_ndf(self.original.values(flow=True), self.reconstructed.values(flow=True))
        fa, fb = self.fine_original.values(flow=True), self.fine_reconstructed.values(flow=True)
        cdf_a, cdf_b = np.cumsum(fa) / max(fa.sum(), 1), np.cumsum(fb) / max(fb.sum(), 1)
        widths = np.diff(self.fine_original.axes[0].edges)
        wasserstein = float(np.sum(np.abs(cdf_a - cdf_b)[1:-1] * widths))
        matrix = self.migration.values(flow=True)
        total = matrix.sum()
        return {
            "migration_fraction": float(1.0 - np.trace(matrix) / total) if total else 0.0,
            "chi2": chi2, "ndf": ndf, "chi2_ndf": chi2 / ndf,
            "ks": float(np.abs(cdf_a - cdf_b).max()) if len(cdf_a) else 0.0,
            "wasserstein": wasserstein,
            "wasserstein_norm": wasserstein / std_original if std_original > 0 else 0.0,
        }


class _Moments:
    """Streaming means and covariance of the columns of a matrix (for correlation matrices)."""

    def __init__(self, d: int):
        self.n, self.sum, self.outer = 0, np.zeros(d), np.zeros((d, d))

    def update(self, x: np.ndarray) -> None:
        x = x[np.isfinite(x).all(axis=1)].astype(np.float64)
        self.n += len(x)
        with np.errstate(over="ignore", invalid="ignore"):  # values near 1e300: inf moments, NaN correlations
            self.sum += x.sum(axis=0)
            self.outer += x.T @ x

    def correlation(self) -> np.ndarray:
        if self.n < 2:
            return np.full(self.outer.shape, np.nan)
        mean = self.sum / self.n
        cov = self.outer / self.n - np.outer(mean, mean)
        variance = np.diag(cov)
        constant = variance <= 1e-10 * np.maximum(mean**2, 1e-300)  # zero up to rounding: no correlation
        scale = np.sqrt(np.clip(variance, 0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            out = cov / np.outer(scale, scale)
        out[constant, :] = np.nan
        out[:, constant] = np.nan
        return out

    def std(self) -> np.ndarray:
        mean = self.sum / max(self.n, 1)
        return np.sqrt(np.clip(np.diag(self.outer) / max(self.n, 1) - mean**2, 0, None))


_PHYSICS = {
    "leading_pt": "leading-object $p_{T}$",
    "mass_12": "invariant mass of the two leading objects",
    "ht": "$H_{T}$ = scalar sum of $p_{T}$",
    "multiplicity": "objects per event",
}


class _Physics:
    """Event-level quantities computed with vector, original vs reconstructed."""

    def __init__(self, featureset: FeatureSet):
        names = featureset.column_names
        self.columns = {k: names.index(k) for k in ("pt", "eta", "phi", "m", "E") if k in names}
        self.enabled = {"pt", "eta", "phi"} <= set(self.columns) and ("m" in self.columns or "E" in self.columns)
        unit = featureset.columns[names.index("pt")].unit if "pt" in names else ""
        self.unit = f" [{unit}]" if unit else ""
        self.hists: dict[str, tuple[hist.Hist, hist.Hist]] = {}

    def _quantities(self, values: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
        fields = {"pt": "pt", "eta": "eta", "phi": "phi", "m": "mass", "E": "energy"}
        objects = ak.unflatten(ak.zip({fields[k]: values[:, j].astype(np.float64) for k, j in self.columns.items()},
                                      with_name="Momentum4D"), counts)
        objects = objects[ak.argsort(objects.pt, axis=1, ascending=False)]
        two = objects[ak.num(objects) >= 2]
        return {
            "leading_pt": ak.to_numpy(objects[ak.num(objects) >= 1][:, 0].pt),
            "mass_12": ak.to_numpy((two[:, 0] + two[:, 1]).mass),
            "ht": ak.to_numpy(ak.sum(objects.pt, axis=1)),
            "multiplicity": np.asarray(counts, dtype=np.int64),
        }

    def fill(self, original: np.ndarray, reconstructed: np.ndarray, counts: np.ndarray) -> None:
        if not self.enabled:
            return
        a, b = self._quantities(original, counts), self._quantities(reconstructed, counts)
        for name, values in a.items():
            if name not in self.hists:
                label = _PHYSICS[name] + ("" if name == "multiplicity" else self.unit)
                if name == "multiplicity":
                    axis = hist.axis.Integer(0, max(int(values.max(initial=0)) * 2, 10), name=name, label=label)
                else:
                    axis = _axis(name, label, values, log=True)
                self.hists[name] = (hist.Hist(axis), hist.Hist(axis))
            self.hists[name][0].fill(values)
            self.hists[name][1].fill(b[name])


@dataclass
class ValidationReport:
    """The result of :func:`validate`: the metrics (as written to ``metrics.json``) and the files."""

    outdir: Path
    metrics: dict[str, Any]
    files: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.metrics["passed"])

    @property
    def failures(self) -> list[str]:
        """``variable: test`` for every failed distribution test."""
        return [f"{name}: {test}" for name, v in self.metrics["variables"].items()
                for test, ok in v["tests_passed"].items() if not ok]

    def to_dict(self) -> dict[str, Any]:
        return self.metrics


def _guess_featureset(original: Path, compressed: Path | None, required: bool = True) -> FeatureSet | None:
    """The compressed file's feature set, else the first built-in one that matches ``original``; None if none
    does and it is not ``required`` (a report of the lossy branches alone)."""
    if not original.is_file():
        raise InputFileError(f"input file {original} does not exist")
    if compressed is not None:
        with ContainerReader(compressed) as reader:
            if reader.has_collection:
                return reader.featureset
    for featureset in list_featuresets():
        try:
            with open_source(original, featureset.tree) as source:
                check_collection(source.layout, featureset, original)
            return featureset
        except HepaeError:  # not this one
            continue
    if not required:
        return None
    raise FeatureSetError(f"no built-in feature set matches {original}; pass one (--features NAME|JSON)")


def _branch_section(original: Path, reconstructed: Path, compressed: Path | None, featureset: FeatureSet | None,
                    branches: Sequence[str] | None, step_size: int | str) -> tuple[str, dict[str, BranchErrors]]:
    """The table and the lossy branches to compare value by value (:mod:`hepae.validation.branches`)."""
    known: dict[str, str] = {}
    table = featureset.tree if featureset is not None else None
    if compressed is not None:
        with ContainerReader(compressed) as reader:
            table = reader.metadata["tree"]
            known = {name: rule for name, rule in reader.lossy_branches.items() if rule.startswith(("rel:", "abs:"))}
            network = [name for name, rule in reader.lossy_branches.items() if name not in known]
    table = default_table(original) if table is None else table
    with open_source(original, table) as source:
        layout = source.layout
    chosen = select_branches(layout, known, branches, original)
    if compressed is not None and not branches:
        chosen.update({name: None for name in network if name in float_branches(layout)})
    return table, compare_branches(original, reconstructed, table, chosen, step_size)



def validate(
    original: PathArg,
    reconstructed: PathArg,
    outdir: PathArg,
    *,
    featureset: str | FeatureSet | None = None,
    compressed: PathArg | None = None,
    branches: Sequence[str] | None = None,
    style: str = "ATLAS",
    formats: Sequence[str] = ("png", "pdf"),
    thresholds: dict[str, float] | None = None,
    step_size: int | str = DEFAULT_STEP_SIZE,
    overwrite: bool = False,
    progress: bool | None = None,
) -> ValidationReport:
    """Compare ``reconstructed`` with ``original`` (ROOT or DarkMachines CSV); write a report to ``outdir``.

    The report holds a file per plot and format (``formats``; an empty tuple: numbers only),
    ``metrics.json``, ``histograms.root`` (every histogram as a TH1/TH2) and ``index.html``.
    Two parts:

    * the collection of ``featureset`` (default: the one recorded in ``compressed``, if it codes one, or
      the first built-in one that matches ``original``; none if nothing matches) as physics: paired
      residuals, distribution tests, event-level quantities; ``compressed`` also adds the correlation
      matrix of the latent space;
    * every lossy branch, value by value (:mod:`hepae.validation.branches`): the branches ``compressed``
      codes lossily, with their rules (the largest error in units of the bound must be at most 1), or
      the float branches matching ``branches`` (glob patterns), or without either every float branch.

    ``thresholds`` overrides :data:`DEFAULT_THRESHOLDS`. The directory appears only when the report
    is complete.
    """
    original, reconstructed, outdir = Path(original), Path(reconstructed), Path(outdir)
    compressed = Path(compressed) if compressed is not None else None
    whole_file = compressed is not None or branches is not None
    featureset = load_featureset(featureset) if featureset is not None else \
        _guess_featureset(original, compressed, required=not whole_file)
    limits = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    unknown = set(limits) - set(DEFAULT_THRESHOLDS)
    if unknown:
        raise ValueError(f"unknown threshold(s) {sorted(unknown)}; known: {sorted(DEFAULT_THRESHOLDS)}")
    if style not in STYLES:
        raise ValueError(f"unknown plot style {style!r}; choose one of {', '.join(STYLES)}")
    formats = tuple(formats)
    inputs = [p for p in (original, reconstructed, compressed) if p is not None]
    check_report_directory(outdir, overwrite=overwrite, inputs=inputs)
    table, branch_errors = (None, {}) if not whole_file else \
        _branch_section(original, reconstructed, compressed, featureset, branches, step_size)
    if featureset is None:
        with open_source(original, table) as source:
            n_events = source.num_entries
        latent_moments = _latent_moments(compressed) if compressed is not None else None
        return _finish_report(outdir, overwrite, inputs, lambda work: _write_report(
            work, None, style, formats, limits, None, [], None, latent_moments, None, original, reconstructed,
            n_events, branch_errors, table))
    accumulator = ResidualAccumulator(featureset)
    variables: list[_Variable] = []
    residual_moments = _Moments(featureset.n_features)
    physics = _Physics(featureset)
    pt_index = featureset.column_names.index("pt") if "pt" in featureset.column_names else None
    n_events = 0
    with open_pair(original, reconstructed, featureset) as (a, b):
        bar = progress_bar(progress, total=a.num_entries, unit="event", desc=f"validate {reconstructed.name}")
        with bar:
            for values_a, values_b, counts in paired_chunks(a, b, featureset, step_size):
                residuals = accumulator.residuals(values_a, values_b)
                accumulator.update(values_a, values_b, residuals)
                if not variables and len(values_a):  # binning from the first chunk that has objects
                    pt_axis = None
                    if pt_index is not None:
                        pt_axis = _axis("pt", _xlabel(featureset.columns[pt_index]), values_a[:, pt_index], True,
                                        _PROFILE_BINS)
                    variables = [_Variable(c, values_a[:, j], residuals[j], pt_axis)
                                 for j, c in enumerate(featureset.columns)]
                pt = values_a[:, pt_index].astype(np.float64) if pt_index is not None else None
                for j, variable in enumerate(variables):
                    variable.fill(values_a[:, j], values_b[:, j], residuals[j], pt)
                residual_moments.update(np.stack(residuals, axis=1) if residuals else np.empty((0, 0)))
                physics.fill(values_a, values_b, counts)
                n_events += len(counts)
                bar.update(len(counts))
    latent_moments = _latent_moments(compressed) if compressed is not None else None
    return _finish_report(outdir, overwrite, inputs, lambda work: _write_report(
        work, featureset, style, formats, limits, accumulator, variables, residual_moments, latent_moments, physics,
        original, reconstructed, n_events, branch_errors, table or featureset.tree))


def _finish_report(outdir: Path, overwrite: bool, inputs: Sequence[Path], write: Any) -> ValidationReport:
    """Write the report into a temporary directory next to ``outdir`` (``write(work)``), then put it in place."""
    parent = outdir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    with output_errors(outdir):  # a full disk names the report directory
        work = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", dir=parent))
    try:
        with output_errors(outdir):
            metrics, files = write(work)
            manifest = {"written_by": "hepae validate", "files": files}
            (work / REPORT_MANIFEST).write_text(json.dumps(manifest, indent=1))
            _replace_report(work, outdir, overwrite=overwrite, inputs=inputs)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)  # our own temporary directory, nothing else
        raise
    return ValidationReport(outdir, metrics, files)


REPORT_MANIFEST = ".hepae-report.json"
"""The file, in every report directory, that lists what ``validate`` wrote there (and nothing else)."""


_REPORT_SUFFIXES = (".png", ".pdf", ".svg", ".json", ".root", ".html")


def _report_files(outdir: Path) -> set[str] | None:
    """The files a hepae report directory holds by its manifest; ``None`` if it has no readable manifest.

    A report of hepae 0.1.0 (no manifest) counts as one if it holds ``metrics.json`` and ``index.html``
    and nothing but report files (plots, JSON, ROOT, HTML).
    """
    try:
        manifest = json.loads((outdir / REPORT_MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
    except FileNotFoundError:
        names = {p.name for p in outdir.iterdir()}
        if {"metrics.json", "index.html"} <= names and all(n.endswith(_REPORT_SUFFIXES) for n in names):
            return names
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(files, list) or not all(isinstance(f, str) and "/" not in f and f not in ("", ".", "..")
                                              for f in files):
        return None
    return {*files, REPORT_MANIFEST}


def check_report_directory(outdir: Path, *, overwrite: bool, inputs: Sequence[Path] = ()) -> None:
    """Raise :class:`OutputFileError` unless ``outdir`` may receive a report; changes nothing.

    An existing ``outdir`` is replaced only with ``overwrite``, and only if it is a report that hepae
    wrote (its manifest lists every file in it) and holds none of the ``inputs``: ``--overwrite``
    replaces what hepae wrote, never anything else.
    """
    if outdir.name in ("", ".", "..") or outdir.resolve().parent == outdir.resolve():
        raise OutputFileError(f"report directory {outdir}: give it a name (e.g. -o report), not '.', '..' or '/'")
    if not outdir.exists():
        if outdir.is_symlink():
            raise OutputFileError(f"report directory {outdir} is a dangling symbolic link")
        return
    if not outdir.is_dir() or outdir.is_symlink():
        raise OutputFileError(f"report directory {outdir} exists and is not a directory; choose a directory path")
    for path in inputs:
        if path.exists() and outdir.resolve() in path.resolve().parents:
            raise OutputFileError(f"report directory {outdir} holds the input {path}; choose another report directory")
    if not overwrite:
        raise OutputFileError(f"report directory {outdir} exists; pass overwrite=True (CLI: --overwrite)")
    if not any(outdir.iterdir()):
        return  # an empty directory: nothing to lose
    listed = _report_files(outdir)
    if listed is None:
        raise OutputFileError(
            f"report directory {outdir} was not written by 'hepae validate' (no {REPORT_MANIFEST}); "
            "--overwrite replaces only a hepae report: choose another directory or empty it yourself")
    foreign = sorted(p.name for p in outdir.iterdir() if p.name not in listed or not p.is_file() or p.is_symlink())
    if foreign:
        raise OutputFileError(
            f"report directory {outdir} holds files that 'hepae validate' did not write: {foreign[:5]}; "
            "--overwrite replaces only a hepae report: choose another directory or remove them yourself")


def _replace_report(work: Path, outdir: Path, *, overwrite: bool, inputs: Sequence[Path]) -> None:
    """Move the finished report ``work`` to ``outdir``; an old report there is removed file by file."""
    check_report_directory(outdir, overwrite=overwrite, inputs=inputs)  # again: it may have changed meanwhile
    if not outdir.exists():
        work.rename(outdir)
        return
    listed = _report_files(outdir) or set()
    old = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.old.", dir=work.parent))
    old.rmdir()
    outdir.rename(old)
    try:
        work.rename(outdir)
    except OSError:
        old.rename(outdir)  # put the previous report back
        raise
    for name in listed:
        try:
            (old / name).unlink(missing_ok=True)
        except OSError:
            pass
    try:
        old.rmdir()  # only if empty: anything that appeared meanwhile stays (and is said)
    except OSError:
        warnings.warn(f"the previous report was moved to {old}, which holds files hepae did not write", stacklevel=3)


def _latent_moments(compressed: Path) -> tuple[list[str], _Moments]:
    """Moments of the latent values of a compressed file whose codec stores them, chunk by chunk (none
    for other codecs, for files that kept no latent value, nor for files without a feature-set collection)."""
    moments: _Moments | None = None
    with ContainerReader(compressed) as reader:
        if not reader.has_collection:
            return [], _Moments(0)
        codec = reader.codec
        if not codec.has_latent_values or not reader.has_decoder:  # no decoder: no chunk kept a latent value
            return [], _Moments(0)
        for chunk in reader.chunks():  # each chunk checked
            try:
                latent = codec.latent_values(chunk.streams, chunk.counts)
            except (ValueError, KeyError, CodecError) as err:
                raise ContainerFormatError(f"{compressed}: latent streams are inconsistent ({err})") from None
            moments = moments or _Moments(latent.shape[1])
            moments.update(latent)
    size = len(moments.sum) if moments is not None else 0
    return [f"latent_{i}" for i in range(size)], moments or _Moments(size)


class _Figures:
    """Draws and saves figures in the requested formats; draws nothing when there are none."""

    def __init__(self, work: Path, style: str, formats: tuple[str, ...]):
        self.work, self.formats, self.files = work, formats, []
        if formats:
            self.look = plotting.Style(style)

    def add(self, stem: str, draw: Any) -> None:
        if self.formats:
            self.files += plotting.save(draw(plotting, self.look), self.work, stem, self.formats, self.look)


def _profile(variable: _Variable) -> dict[str, Any] | None:
    """Mean and σ of the residual in pT bins, with the error of the mean."""
    if variable.profile is None:
        return None
    view = variable.profile.view()
    count = view.count
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.sqrt(view._sum_of_deltas_squared / np.maximum(count - 1, 1))
        mean = np.where(count > 0, view.value, np.nan)
        error = np.where(count > 1, sigma / np.sqrt(count), np.nan)
    return {"pt_edges": variable.profile.axes[0].edges.tolist(), "mean": _json_list(mean),
            "sigma": _json_list(sigma), "mean_error": _json_list(error), "count": count.tolist()}


def _variable_metrics(variable: _Variable, residuals: dict[str, Any], std_original: float,
                      limits: dict[str, float]) -> dict[str, Any]:
    stats = dict(residuals)
    n = max(stats["n"], 1)
    stats["mean_error"] = stats["std"] / math.sqrt(n)
    stats["std_error"] = stats["std"] / math.sqrt(2.0 * max(n - 1, 1))
    stats.update(variable.tests(std_original))
    stats["tests_passed"] = {"chi2_ndf": stats["chi2_ndf"] <= limits["chi2_ndf"], "ks": stats["ks"] <= limits["ks"],
                             "wasserstein": stats["wasserstein_norm"] <= limits["wasserstein"]}
    profile = _profile(variable)
    if profile is not None:
        stats["profile"] = profile
    return stats


def _draw_variable(figures: _Figures, variable: _Variable, stats: dict[str, Any]) -> None:
    name, axis, residual = variable.column.name, variable.axis, variable.residual.axes[0]
    figures.add(f"distribution_{name}", lambda p, look: p.comparison(
        look, axis.edges, variable.original.values(), variable.reconstructed.values(), _xlabel(variable.column),
        log_x=axis.transform is not None))
    figures.add(f"residual_{name}", lambda p, look: p.residual(
        look, residual.edges, variable.residual.values(), residual.label, stats))
    migration = variable.migration.values()
    rows = migration.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(rows > 0, migration / rows, np.nan)
    figures.add(f"migration_{name}", lambda p, look: p.migration(
        look, variable.migration.axes[0].edges, fraction, _xlabel(variable.column), axis.transform is not None))
    if "profile" in stats:
        profile = stats["profile"]
        figures.add(f"profile_{name}", lambda p, look: p.profile(
            look, np.asarray(profile["pt_edges"]), *(np.array(profile[k], dtype=float) for k in
                                                     ("mean", "sigma", "mean_error", "count")),
            variable.profile.axes[0].label, residual.label))


def _write_report(work: Path, featureset: FeatureSet | None, style: str, formats: tuple[str, ...],
                  limits: dict[str, float], accumulator: ResidualAccumulator | None, variables: list[_Variable],
                  residual_moments: _Moments | None, latent_moments: tuple[list[str], _Moments] | None,
                  physics: _Physics | None, original: Path, reconstructed: Path, n_events: int,
                  branch_errors: dict[str, BranchErrors], table: str) -> tuple[dict[str, Any], list[str]]:
    figures = _Figures(work, style, formats)
    summary = accumulator.summary() if accumulator is not None else {}
    per_variable: dict[str, Any] = {}
    labels: list[str] = []
    correlation = np.zeros((0, 0))
    latent_correlation = None
    physics_metrics = {}
    with uproot.recreate(work / "histograms.root") as root:
        for variable, std_original in zip(variables, _original_std(variables)):
            name = variable.column.name
            per_variable[name] = stats = _variable_metrics(variable, summary[name], std_original, limits)
            _draw_variable(figures, variable, stats)
            root[f"original_{name}"] = variable.original
            root[f"reconstructed_{name}"] = variable.reconstructed
            root[f"residual_{name}"] = variable.residual
            root[f"migration_{name}"] = variable.migration
        if featureset is not None:
            labels = featureset.column_names
            correlation = residual_moments.correlation()
            figures.add("correlation_residuals", lambda p, look: p.matrix(look, correlation, labels,
                                                                          "correlation of residuals"))
        if latent_moments is not None and latent_moments[0]:
            latent_names, moments = latent_moments
            latent_correlation = moments.correlation()
            latent_labels = [n.rsplit("_", 1)[1] for n in latent_names]
            figures.add("correlation_latent", lambda p, look: p.matrix(look, latent_correlation, latent_labels,
                                                                       "correlation of latent values"))
        for name, (h_original, h_reco) in (physics.hists.items() if physics is not None else ()):
            axis = h_original.axes[0]
            log_x = getattr(axis, "transform", None) is not None
            figures.add(f"physics_{name}", lambda p, look, axis=axis, a=h_original, b=h_reco, log_x=log_x: p.comparison(
                look, axis.edges, a.values(), b.values(), axis.label, log_x=log_x))
            root[f"original_{name}"], root[f"reconstructed_{name}"] = h_original, h_reco
            chi2, ndf = chi2_ndf(h_original.values(flow=True), h_reco.values(flow=True))
            physics_metrics[name] = {"entries": int(h_original.values(flow=True).sum()), "chi2": chi2, "ndf": ndf}
        per_branch = _draw_branches(figures, root, branch_errors)
    files = [*figures.files, "histograms.root"]
    metrics = {
        "original": str(original),
        "reconstructed": str(reconstructed),
        "featureset": featureset.name if featureset is not None else None,
        "table": table,
        "n_events": n_events,
        "n_objects": int(max((v["n"] + v["undefined"] for v in summary.values()), default=0)),
        "thresholds": limits,
        "variables": per_variable,
        "residual_correlation": {"labels": labels, "matrix": [_json_list(r) for r in correlation]},
        "latent_correlation": None if latent_correlation is None else [_json_list(r) for r in latent_correlation],
        "physics": physics_metrics,
        "branches": per_branch,
        "passed": all(all(v["tests_passed"].values()) for v in per_variable.values())
        and all(b["within_bound"] is not False for b in per_branch.values()),
    }
    (work / "metrics.json").write_text(json.dumps(metrics, indent=1, allow_nan=False, default=_finite) + "\n")
    files.append("metrics.json")
    (work / "index.html").write_text(_html(metrics, files), encoding="utf-8")
    files.append("index.html")
    return metrics, files


_BRANCH_PLOTS = 12
"""Branches whose ``(reco - orig) / bound`` histogram is drawn: those with the largest errors."""


def _draw_branches(figures: _Figures, root: Any, branch_errors: dict[str, BranchErrors]) -> dict[str, Any]:
    """Metrics of every compared branch; an overview plot of the largest error per branch in units of its
    bound, and the error histograms of the branches that come closest to their bounds."""
    per_branch = {name: errors.to_dict() for name, errors in branch_errors.items()}
    bounded = sorted((e for e in branch_errors.values() if e.rule is not None), key=lambda e: -e.max_ratio)
    if bounded:
        names = [e.name for e in bounded]
        ratios = np.array([min(e.max_ratio, 2.0) for e in bounded])
        figures.add("branches_max_error", lambda p, look: p.bound_overview(look, names, ratios))
    for errors in bounded[:_BRANCH_PLOTS]:
        counts = errors.ratios.values()
        stem = "branch_" + "".join(c if c.isalnum() or c in "_-." else "_" for c in errors.name)
        figures.add(stem, lambda p, look, e=errors, c=counts: p.bound_residual(
            look, RATIO_EDGES, c, f"(reco − orig) / bound of {e.name}", e.rule, e.max_ratio))
    for errors in bounded:
        root["bound_ratio_" + "".join(c if c.isalnum() else "_" for c in errors.name)] = errors.ratios
    return per_branch


def _original_std(variables: list[_Variable]) -> list[float]:
    """Standard deviation of each original variable, from its fine histogram."""
    out = []
    for variable in variables:
        h = variable.fine_original
        counts, centers = h.values(), h.axes[0].centers
        total = counts.sum()
        with np.errstate(over="ignore", invalid="ignore"):  # bins near 1e300: an infinite spread
            mean = (counts * centers).sum() / total if total else 0.0
            out.append(float(math.sqrt((counts * (centers - mean) ** 2).sum() / total)) if total else 0.0)
    return out


def _json_list(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


def _finite(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _html(metrics: dict[str, Any], files: list[str]) -> str:
    """A page with the metrics table and every PNG (PDFs linked)."""
    rows = []
    for name, v in metrics["variables"].items():
        verdict = "pass" if all(v["tests_passed"].values()) else "FAIL"
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{v['kind']}</td><td>{v['n']}</td><td>{v['mean']:.3g} ± "
            f"{v['mean_error']:.2g}</td><td>{v['std']:.3g} ± {v['std_error']:.2g}</td><td>{v['width68']:.3g}</td>"
            f"<td>{v['width99']:.3g}</td><td>{v['max_abs']:.3g}</td><td>{v['migration_fraction']:.3f}</td>"
            f"<td>{v['chi2_ndf']:.3g}</td><td>{v['ks']:.3g}</td><td>{v['wasserstein_norm']:.3g}</td>"
            f"<td class='{verdict}'>{verdict}</td></tr>")
    images = []
    for png in (f for f in files if f.endswith(".png")):
        pdf = png[:-4] + ".pdf"
        images.append(f"<figure><a href='{html.escape(pdf)}'><img src='{html.escape(png)}' alt='{html.escape(png)}'>"
                      f"</a><figcaption>{html.escape(png[:-4])}</figcaption></figure>")
    limits = metrics["thresholds"]
    branch_rows = []
    for name, b in sorted(metrics["branches"].items(), key=lambda item: -(item[1]["max_error_over_bound"] or 0)):
        verdict = {True: "pass", False: "FAIL", None: "-"}[b["within_bound"]]
        ratio = "-" if b["max_error_over_bound"] is None else f"{b['max_error_over_bound']:.3f}"
        branch_rows.append(f"<tr><td>{html.escape(name)}</td><td>{html.escape(b['rule'] or '-')}</td><td>{b['n']}</td>"
                           f"<td>{b['identical']}</td><td>{b['max_abs_error']:.3g}</td><td>{b['rms_error']:.3g}</td>"
                           f"<td>{ratio}</td><td class='{verdict}'>{verdict}</td></tr>")
    branch_table = "" if not branch_rows else f"""<h2>Every lossy branch of '{html.escape(metrics['table'])}', value by
value</h2><p>The largest error in units of each branch's bound must be at most 1.</p>
<table><tr><th>branch</th><th>rule</th><th>values</th><th>identical</th><th>max |error|</th><th>rms error</th>
<th>max |error| / bound</th><th>bound kept</th></tr>{''.join(branch_rows)}</table>"""
    title = html.escape(metrics["featureset"] or metrics["table"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>hepae validation: {title}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;
padding:3px 8px;text-align:right}} .FAIL{{color:#b00;font-weight:bold}} .pass{{color:#070}}
figure{{display:inline-block;margin:6px}} img{{width:420px}}</style></head><body>
<h1>hepae validation — {title}</h1>
<p>original <code>{html.escape(metrics['original'])}</code>,
reconstructed <code>{html.escape(metrics['reconstructed'])}</code>:
{metrics['n_events']} events. Objects are paired one to one: residual quantiles and bin migration are the primary
fidelity numbers; the distribution tests (limits: χ²/ndf ≤ {limits['chi2_ndf']}, KS ≤ {limits['ks']}, Wasserstein/σ ≤
{limits['wasserstein']}) are lenient on paired data. Overall: <b>{'pass' if metrics['passed'] else 'FAIL'}</b>.
Histograms as TH1/TH2: <a href="histograms.root">histograms.root</a>;
all numbers: <a href="metrics.json">metrics.json</a>.</p>
<table><tr><th>variable</th><th>residual</th><th>objects</th><th>mean ± SEM</th><th>σ ± error</th><th>68% |r|</th>
<th>99% |r|</th><th>max |r|</th><th>bin migration</th><th>χ²/ndf</th><th>KS</th><th>W/σ</th><th>tests</th></tr>
{''.join(rows)}</table>
{branch_table}
{''.join(images)}
</body></html>
"""
