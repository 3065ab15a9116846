"""Many files on a dask.distributed LocalCluster: one task per file, failures reported, resume."""

import json
import logging

import awkward as ak
import pytest
import uproot

import hepae
from hepae.cli import main
from hepae.cluster import output_name
from hepae.codecs import get_codec, within_bound
from hepae.errors import InputFileError, OutputFileError
from hepae.io.tensors import expand_inputs

distributed = pytest.importorskip("distributed")

# distributed's own sockets may be closed by the garbage collector rather than explicitly
pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def many_inputs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("many")
    files = [hepae.make_sample(directory / f"run{i}.root", n_events=300 + 100 * i, seed=i) for i in range(3)]
    (directory / "run9.root").write_text("not a ROOT file")  # one broken input
    return directory, files


def test_output_names_are_predictable(tmp_path):
    assert output_name(tmp_path / "jets.root", "compress") == "jets.compressed.root"
    assert output_name(tmp_path / "jets.compressed.root", "decompress") == "jets.reco.root"
    with pytest.raises(InputFileError, match="no file matches"):
        expand_inputs(str(tmp_path / "*.root"))


def test_compress_many_reports_the_broken_file_and_finishes_the_others(client, many_inputs, model_files, tmp_path):
    directory, files = many_inputs
    out = tmp_path / "out"
    summary = hepae.compress_many(str(directory / "run*.root"), model_files["atlas-jets-4d"], out, client=client,
                                  progress=False)
    assert (summary["n_files"], summary["ok"], summary["failed"], summary["skipped"]) == (4, 3, 1, 0)
    by_name = {r["input"].rsplit("/", 1)[-1]: r for r in summary["files"]}
    assert by_name["run9.root"]["status"] == "failed"
    assert "InputFileError" in by_name["run9.root"]["error"] and "run9.root" in by_name["run9.root"]["error"]
    for i, f in enumerate(files):
        record = by_name[f.name]
        assert record["status"] == "ok" and record["output"] == str(out / f"run{i}.compressed.root")
        assert record["input_bytes"] == f.stat().st_size and record["output_bytes"] > 0 and record["seconds"] > 0
        if i == 0:  # the worker reports what compressing the file alone reports
            alone = hepae.compress(f, tmp_path / "alone.root", model_files["atlas-jets-4d"], progress=False)
            assert record["unphysical_objects"] == alone["unphysical_objects"]
            assert record["objects"] == alone["n_objects"]
        with uproot.open(out / f"run{i}.compressed.root") as packed:
            assert packed["CollectionTree"].num_entries == 300 + 100 * i
    assert json.loads((out / "hepae-compress-many.json").read_text())["files"] == summary["files"]
    assert sorted(p.name for p in out.iterdir()) == [
        "hepae-compress-many.json", "run0.compressed.root", "run1.compressed.root", "run2.compressed.root"]

    # a re-run skips what is done and valid, and tries the broken file again
    again = hepae.compress_many(str(directory / "run*.root"), model_files["atlas-jets-4d"], out, client=client,
                                resume=True, progress=False)
    assert (again["ok"], again["skipped"], again["failed"]) == (0, 3, 1)
    # without resume, existing outputs are refused (not overwritten) and reported per file
    refused = hepae.compress_many(files[0], model_files["atlas-jets-4d"], out, client=client, progress=False)
    assert refused["failed"] == 1 and "already exists" in refused["files"][0]["error"]

    back = hepae.decompress_many(str(out / "*.compressed.root"), tmp_path / "reco", client=client, progress=False)
    assert (back["ok"], back["failed"]) == (3, 0), back["files"]
    assert sorted(p.name for p in (tmp_path / "reco").glob("*.root")) == ["run0.reco.root", "run1.reco.root",
                                                                         "run2.reco.root"]
    resumed = hepae.decompress_many(str(out / "*.compressed.root"), tmp_path / "reco", client=client, resume=True,
                                    progress=False)
    assert resumed["skipped"] == 3


def test_inputs_that_would_write_the_same_output_are_refused(many_inputs, model_files, tmp_path):
    directory, files = many_inputs
    other = tmp_path / "other"
    other.mkdir()
    twin = other / files[0].name
    twin.write_bytes(files[0].read_bytes())
    with pytest.raises(OutputFileError, match="same output"):
        hepae.compress_many([files[0], twin], model_files["atlas-jets-4d"], tmp_path / "out", progress=False)


def test_cli_compress_many_on_a_local_cluster_exits_1_when_a_file_failed(many_inputs, model_files, tmp_path, capsys):
    directory, _ = many_inputs
    code = main(["compress-many", str(directory / "run*.root"), "-m", str(model_files["atlas-jets-4d"]),
                 "-o", str(tmp_path / "cli"), "--workers", "2", "--json", "-q"])
    assert code == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert (summary["ok"], summary["failed"]) == (3, 1)
    assert "1 of 4 file(s) failed" in captured.err


def test_compress_many_codes_the_collection_with_the_bounded_codec_and_a_learned_entropy_model(client, many_inputs,
                                                                                                tmp_path, capsys):
    """No model: the feature set's jets coded by the bounded codec with a learned entropy model, on every worker (the
    codec's config, the model inside it, and the feature set travel as JSON: a worker reads no file of them);
    every value comes back within its bound. The CLI takes the same options as compress."""
    from hepae.entropy_models import train_entropy_model

    directory, files = many_inputs
    bounds = ["pt=rel:1e-3", "eta=abs:1e-3", "phi=abs:1e-3", "m=rel:1e-2"]
    model_path = train_entropy_model(files[0], "atlas-jets-4d", error_bounds=bounds, iterations=40,
                                     progress=False).save(tmp_path / "entropy.json")
    codec = {"id": "bounded", "error_bounds": bounds, "entropy_model": str(model_path)}
    out = tmp_path / "out"
    summary = hepae.compress_many(files, None, out, codec=codec, featureset="atlas-jets-4d", client=client,
                                  progress=False)
    assert summary["ok"] == 3 and summary["failed"] == 0
    back = hepae.decompress_many(str(out / "*.compressed.root"), tmp_path / "reco", client=client, progress=False)
    assert back["ok"] == 3
    columns = {c.name: c.branch for c in hepae.load_featureset("atlas-jets-4d").columns}
    for source in files:
        compressed = out / output_name(source, "compress")
        codec_used = hepae.inspect(compressed)["metadata"]["codec"]
        assert codec_used["id"] == "bounded" and codec_used["entropy_model"]["format"]  # the model, carried
        reco = tmp_path / "reco" / output_name(compressed, "decompress")
        with uproot.open(source) as a, uproot.open(reco) as b:
            for rule in bounds:
                name, kind_value = rule.split("=")
                kind, value = kind_value.split(":")
                x = ak.to_numpy(ak.flatten(a["CollectionTree"][columns[name]].array()))
                r = ak.to_numpy(ak.flatten(b["CollectionTree"][columns[name]].array()))
                assert within_bound(x, r, kind, float(value)).all(), name

    # --resume keeps a file only if it was made as asked now: another bound compresses them again
    looser = {**codec, "error_bounds": ["pt=rel:1e-2", *bounds[1:]]}
    kept = hepae.compress_many(files, None, out, codec=codec, featureset="atlas-jets-4d", client=client,
                               resume=True, progress=False)
    redone = hepae.compress_many(files, None, out, codec=looser, featureset="atlas-jets-4d", client=client,
                                 resume=True, overwrite=True, progress=False)
    assert kept["skipped"] == 3 and redone["ok"] == 3 and redone["skipped"] == 0

    # what compress refuses before reading a file, compress-many refuses before any task runs
    for wrong, error in (({"codec": "ae"}, "needs a trained model"),
                         ({"codec": {"id": "bounded", "error_bounds": bounds[:1]}}, "error bound for every column")):
        with pytest.raises(hepae.errors.CodecError, match=error):
            hepae.compress_many(files, None, tmp_path / "refused", featureset="atlas-jets-4d", client=client,
                                progress=False, **wrong)
    assert not (tmp_path / "refused").exists()

    assert main(["compress-many", str(files[1]), "--codec", "bounded", "--features", "atlas-jets-4d",
                 *[f"--error-bound={b}" for b in bounds], "--entropy-model", str(model_path), "--workers", "1",
                 "-o", str(tmp_path / "cli"), "-q"]) == 0
    written = hepae.inspect(tmp_path / "cli" / output_name(files[1], "compress"))["metadata"]["codec"]
    assert written == get_codec(codec).get_config()  # the CLI's bounds and entropy model went to the codec
