"""Streaming chunk by chunk, distributed data-parallel training under torchrun, and devices."""

import os
import subprocess
import sys

import pytest
import torch
import uproot

import hepae
from hepae.ml.devices import DeviceError, resolve_device


def test_a_file_larger_than_the_chunk_size_is_processed_chunk_by_chunk(samples, model_files, tmp_path):
    summary = hepae.compress(samples["atlas-jets-4d"], tmp_path / "c.root", model_files["atlas-jets-4d"],
                             step_size=400, progress=False)
    assert summary["chunks"] == 4  # 1500 events in chunks of 400
    back = hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    assert back["chunks"] == 4 and back["n_events"] == 1500  # decompression follows compression's chunks
    whole = hepae.compress(samples["atlas-jets-4d"], tmp_path / "c2.root", model_files["atlas-jets-4d"],
                           step_size=10**9, progress=False)
    assert whole["chunks"] == 1
    assert len(hepae.inspect(tmp_path / "c.root")["metadata"]["checksums"]["chunks"]) == 4  # a checksum per chunk
    hepae.decompress(tmp_path / "c2.root", tmp_path / "r2.root", progress=False)
    with uproot.open(tmp_path / "r.root") as a, uproot.open(tmp_path / "r2.root") as b:
        for name in a["CollectionTree"].keys():  # the same reconstruction, however the file was chunked
            assert a["CollectionTree"][name].array().tolist() == b["CollectionTree"][name].array().tolist(), name


def _torchrun(args, cwd, timeout=240):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "hepae",
               *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_two_process_ddp_training_on_cpu_gives_a_loadable_model(samples, tmp_path):
    args = ["train", str(samples["atlas-jets-4d"]), "--features", "atlas-jets-4d", "--epochs", "2",
            "--hidden", "32,16", "--device", "cpu", "-o", "ddp.hepae", "-q", "--json"]
    for attempt in range(2):  # gloo start-up occasionally aborts: one retry, never a hang
        try:
            result = _torchrun(args, tmp_path)
        except subprocess.TimeoutExpired:
            result = None
        if result is not None and result.returncode == 0:
            break
        (tmp_path / "ddp.hepae").unlink(missing_ok=True)
    assert result is not None and result.returncode == 0, result and result.stderr[-3000:]
    model = hepae.load_model(tmp_path / "ddp.hepae")
    assert model.training["world_size"] == 2
    single = hepae.train(samples["atlas-jets-4d"], "atlas-jets-4d", epochs=2, hidden=[32, 16], device="cpu",
                         progress=False)
    # same result format; each rank took about half of the steps of a single process
    assert set(model.training) == set(single.training)
    assert model.training["n_train_objects"] == single.training["n_train_objects"]
    assert model.training["steps_per_epoch"] < single.training["steps_per_epoch"]


def test_devices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError):
        resolve_device("tpu-9000")
