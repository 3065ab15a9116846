"""The end-to-end demo: generate a sample, compress the whole file under a precision profile, train an
autoencoder and compress its collection, decompress both, validate, and put every way of storing the
sample side by side (as written, lossless, NanoAOD-style truncation, hepae under the profile, the
autoencoder)."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

from hepae.baselines import rewrite
from hepae.codecs import ErrorBound
from hepae.codecs.bounds import parse_rule
from hepae.compression import compress
from hepae.decompression import decompress
from hepae.ml.training import train
from hepae.quality.residuals import residual_summary
from hepae.samples import make_sample
from hepae.validation.report import validate


def run_demo(
    workdir: str | PathLike[str] = "hepae-demo",
    *,
    featureset: str = "atlas-jets-4d",
    layout: str = "atlas-jets-27d",
    profile: str = "xaod",
    n_events: int = 20_000,
    epochs: int = 30,
    latent: int = 3,
    seed: int = 0,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Run the whole chain in ``workdir`` (created; its files are replaced) and return every summary.

    The sample has the layout of ``layout`` (27 jet variables, electrons, event weights); the autoencoder
    is trained on its ``featureset`` collection; the whole file is compressed under ``profile``.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sample = make_sample(workdir / "jets.root", layout, n_events=n_events, seed=seed + 1, overwrite=True)
    whole = compress(sample, workdir / "jets.profile.root", profile=profile, overwrite=True, progress=progress)
    decompress(workdir / "jets.profile.root", workdir / "jets.profile.reco.root", overwrite=True, progress=progress)
    rules = _applied(workdir / "jets.profile.root")
    applied = {name: ErrorBound(name, *parse_rule(rule)) for name, rule in rules.items()}
    lossless = rewrite(sample, workdir / "jets.lossless.root", overwrite=True)
    truncated = rewrite(sample, workdir / "jets.truncated.root", truncate=applied, overwrite=True)
    model = train(sample, featureset, latent=latent, epochs=epochs, seed=seed, progress=progress)
    model_path = model.save(workdir / "jets.hepae", overwrite=True)
    compressed = compress(sample, workdir / "jets.compressed.root", model_path, overwrite=True, progress=progress)
    reconstructed = decompress(workdir / "jets.compressed.root", workdir / "jets.reco.root", overwrite=True,
                               progress=progress)
    residuals = residual_summary(sample, workdir / "jets.reco.root", featureset)
    worst = max(whole["max_error_over_bound"].values(), default=0.0)
    within = f"every float within its rule (largest error: {worst:.2f} of its bound), the rest identical"
    pt = residuals.get("pt", {})
    comparison = [
        {"mode": "input as written (make-sample, zstd:5)", "file": sample.name, "bytes": sample.stat().st_size,
         "keeps": "-"},
        {"mode": "lossless rewrite (zstd:5)", "file": "jets.lossless.root", "bytes": lossless["output_bytes"],
         "keeps": "every value"},
        {"mode": f"NanoAOD-style truncation at the '{profile}' precision (zstd:5)", "file": "jets.truncated.root",
         "bytes": truncated["output_bytes"], "keeps": "every float within its rule, the rest identical"},
        {"mode": f"hepae whole file, profile '{profile}' (the default)", "file": "jets.profile.root",
         "bytes": whole["output_bytes"], "keeps": within},
        {"mode": f"hepae autoencoder ({featureset}, no bound) + the rest exact", "file": "jets.compressed.root",
         "bytes": compressed["output_bytes"],
         "keeps": f"jet pT within {100 * pt.get('width68', float('nan')):.1f} % for 68 % of jets, "
                  f"{100 * pt.get('width99', float('nan')):.0f} % for 99 % (no bound); the rest identical"},
    ]
    report = validate(sample, workdir / "jets.reco.root", workdir / "report", featureset=featureset,
                      compressed=workdir / "jets.compressed.root", formats=("png",), overwrite=True, progress=progress)
    return {
        "workdir": str(workdir),
        "model": {"path": str(model_path), "id": model.model_id, "layout": model.arch.layout,
                  "best_epoch": model.training["best_epoch"], "best_val_loss": model.training["best_val_loss"],
                  "train_seconds": model.training["seconds"]},
        "compress": compressed,
        "whole_file": whole,
        "comparison": comparison,
        "decompress": reconstructed,
        "residuals": residuals,
        "report": str(report.outdir / "index.html"),
    }


def _applied(path: Path) -> dict[str, str]:
    """The rule each lossy branch of a compressed file got (``kind:value``)."""
    from hepae.container import ContainerReader

    with ContainerReader(path) as reader:
        return reader.metadata["profile"]["applied"]

