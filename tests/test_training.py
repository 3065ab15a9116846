"""Training: reproducible, split by event, normalization fitted on the training split, best epoch kept."""

import numpy as np
import pytest
import uproot

import hepae
from hepae.errors import TrainingError
from hepae.io.branches import BranchSpec
from hepae.io.tensors import iterate_collection
from hepae.io.writing import TreeWriter
from hepae.ml.training import event_in_validation

SMALL = {"latent": 3, "hidden": [16], "epochs": 3, "batch_size": 128, "progress": False}


def test_same_seed_same_model_other_seed_other_model(samples):
    path = samples["atlas-jets-4d"]
    a = hepae.train(path, "atlas-jets-4d", seed=3, **SMALL)
    b = hepae.train(path, "atlas-jets-4d", seed=3, **SMALL)
    c = hepae.train(path, "atlas-jets-4d", seed=4, **SMALL)
    assert a.model_id == b.model_id
    assert a.training["history"] == b.training["history"]
    assert c.model_id != a.model_id


def test_split_is_by_event_and_independent_of_chunking_and_caching(samples):
    path = samples["atlas-jets-4d"]
    whole = hepae.train(path, "atlas-jets-4d", seed=5, step_size=10**9, **SMALL)
    chunked = hepae.train(path, "atlas-jets-4d", seed=5, step_size=250, **SMALL)
    streamed = hepae.train(path, "atlas-jets-4d", seed=5, step_size=10**9, max_cached_objects=0, **SMALL)
    assert whole.training["cached_in_memory"] and not streamed.training["cached_in_memory"]
    for model in (chunked, streamed):
        assert model.training["n_train_objects"] == whole.training["n_train_objects"]
        assert model.training["n_val_objects"] == whole.training["n_val_objects"]
    assert chunked.model_id == whole.model_id  # same objects in the same order, whatever the chunking
    assert streamed.model_id == whole.model_id  # one chunk: re-streaming gives the same batches
    (chunk,) = iterate_collection(path, "atlas-jets-4d")
    in_val = event_in_validation(5, 0, np.arange(len(chunk.counts)), 0.1)
    assert whole.training["n_val_objects"] == int(chunk.counts[in_val].sum())
    assert 0.05 < in_val.mean() < 0.15


def test_standard_normalization_is_fitted_on_the_training_split_only(samples):
    path = samples["atlas-jets-4d"]
    model = hepae.train(path, "atlas-jets-4d", normalization="standard", seed=2, **SMALL)
    (chunk,) = iterate_collection(path, "atlas-jets-4d")
    in_val = np.repeat(event_in_validation(2, 0, np.arange(len(chunk.counts)), 0.1), chunk.counts)
    eta_train = chunk.values[~in_val, 1].astype(np.float64)
    fitted = model.normalization.transforms[1]
    assert fitted.mean_ == pytest.approx(eta_train.mean(), rel=1e-9)
    assert fitted.scale_ == pytest.approx(eta_train.std(), rel=1e-9)
    assert fitted.n_samples_seen_ == len(eta_train)


def test_best_epoch_on_validation_is_kept_and_summary_is_complete(samples):
    model = hepae.train(samples["atlas-jets-4d"], "atlas-jets-4d", seed=1, **{**SMALL, "epochs": 4})
    history = model.training["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    best = min(history, key=lambda h: h["val_loss"])
    assert model.training["best_epoch"] == best["epoch"]
    assert model.training["best_val_loss"] == best["val_loss"]
    for key in ("n_events", "n_train_objects", "seconds", "seed", "max_lr", "layout", "torch_version"):
        assert key in model.training


def test_several_files_and_the_seed_architectures(samples, sample_dir):
    second = hepae.make_sample(sample_dir / "train-second.root", n_events=300, seed=11, overwrite=True)
    model = hepae.train([samples["atlas-jets-4d"], second], "atlas-jets-4d", arch="AE_3D_200", seed=0,
                        **{**SMALL, "hidden": None, "epochs": 1})
    assert model.training["n_events"] == 1800
    assert model.arch.layout == "4-200-100-50-3-50-100-200-4"


def test_nothing_to_train_on(tmp_path):
    path = tmp_path / "empty.root"
    with uproot.recreate(path) as f:
        branches = hepae.load_featureset("atlas-jets-4d").branches
        TreeWriter(f, "CollectionTree", [BranchSpec(b, "float32", "n") for b in branches])
    with pytest.raises(TrainingError, match="only 0 training object"):
        hepae.train(path, "atlas-jets-4d", **SMALL)
    with pytest.raises(TrainingError, match="epochs"):
        hepae.train(path, "atlas-jets-4d", **{**SMALL, "epochs": 0})


def test_quantile_normalization_is_fitted_on_the_training_split_and_round_trips(samples, tmp_path):
    path = samples["atlas-jets-4d"]
    model = hepae.train(path, "atlas-jets-4d", normalization="quantile", seed=2, **SMALL)
    (chunk,) = iterate_collection(path, "atlas-jets-4d")
    in_val = np.repeat(event_in_validation(2, 0, np.arange(len(chunk.counts)), 0.1), chunk.counts)
    pt_train = chunk.values[~in_val, 0].astype(np.float64)
    knots = model.normalization.transforms[0].quantiles_
    assert knots[0] == pt_train.min() and knots[-1] == pt_train.max()
    loaded = hepae.load_model(model.save(tmp_path / "q.hepae"))
    assert loaded.normalization == model.normalization
    hepae.compress(path, tmp_path / "c.root", loaded, progress=False)
    assert hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)["n_events"] == 1500
