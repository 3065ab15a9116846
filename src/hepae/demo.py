"""The end-to-end demo: generate a sample, train, compress, decompress, validate, and summarize."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

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
    n_events: int = 20_000,
    epochs: int = 30,
    latent: int = 3,
    seed: int = 0,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Run the whole chain in ``workdir`` (created; its files are replaced) and return every summary."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sample = make_sample(workdir / "jets.root", featureset, n_events=n_events, seed=seed + 1, overwrite=True)
    model = train(sample, featureset, latent=latent, epochs=epochs, seed=seed, progress=progress)
    model_path = model.save(workdir / "jets.hepae", overwrite=True)
    compressed = compress(sample, workdir / "jets.compressed.root", model_path, overwrite=True, progress=progress)
    reconstructed = decompress(workdir / "jets.compressed.root", workdir / "jets.reco.root", overwrite=True,
                               progress=progress)
    residuals = residual_summary(sample, workdir / "jets.reco.root", featureset)
    report = validate(sample, workdir / "jets.reco.root", workdir / "report", featureset=featureset,
                      compressed=workdir / "jets.compressed.root", formats=("png",), overwrite=True, progress=progress)
    return {
        "workdir": str(workdir),
        "model": {"path": str(model_path), "id": model.model_id, "layout": model.arch.layout,
                  "best_epoch": model.training["best_epoch"], "best_val_loss": model.training["best_val_loss"],
                  "train_seconds": model.training["seconds"]},
        "compress": compressed,
        "decompress": reconstructed,
        "residuals": residuals,
        "report": str(report.outdir / "index.html"),
    }
