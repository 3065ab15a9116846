"""Shared fixtures: small generated samples in every built-in layout, and small trained models.

Tests that use the data in the project's ``../shared`` folder skip cleanly when it is absent
(set ``HEPAE_SHARED`` to point elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

import hepae

# CI runs the property tests on a fixed set of examples (reproducible); local runs explore new ones
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HEPAE_SHARED", REPO.parent / "shared"))
LAYOUTS = ("atlas-jets-4d", "physlite-jets-4d", "nanoaod-jets-4d")


def shared_file(relative: str) -> Path:
    """A file under ``../shared``, or skip the test if it is not there."""
    path = SHARED / relative
    if not path.is_file():
        pytest.skip(f"{path} not available (the project's shared data folder is absent)")
    return path


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("samples")


@pytest.fixture(scope="session")
def samples(sample_dir: Path) -> dict[str, Path]:
    """One small sample per built-in layout (1500 events)."""
    return {fs: hepae.make_sample(sample_dir / f"{fs}.root", fs, n_events=1500, seed=7) for fs in LAYOUTS}


@pytest.fixture(scope="session")
def models(samples: dict[str, Path]) -> dict[str, hepae.HepaeModel]:
    """A small model per layout, trained briefly (a tanh 4-64-32-3 network, a few seconds each)."""
    return {
        fs: hepae.train(path, fs, latent=3, hidden=[64, 32], epochs=10, batch_size=128, max_lr=1e-2, seed=1,
                        progress=False)
        for fs, path in samples.items()
    }


@pytest.fixture(scope="session")
def model_files(models: dict[str, hepae.HepaeModel], sample_dir: Path) -> dict[str, Path]:
    return {fs: model.save(sample_dir / f"{fs}.hepae", overwrite=True) for fs, model in models.items()}
