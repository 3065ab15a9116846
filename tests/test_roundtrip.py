"""ROOT in -> compressed ROOT -> ROOT out, for every built-in layout, through real files in tmp_path."""

import json

import awkward as ak
import numpy as np
import pytest
import uproot

import hepae
from conftest import LAYOUTS
from hepae.container.format import METADATA_KEY
from hepae.errors import ContainerFormatError, ModelMismatchError, OutputFileError
from roundtrip_checks import assert_passthrough_identical, rewrite_container


@pytest.fixture(scope="module")
def roundtrips(samples, model_files, tmp_path_factory):
    out = {}
    directory = tmp_path_factory.mktemp("roundtrip")
    for fs, sample in samples.items():
        compressed, reco = directory / f"{fs}.compressed.root", directory / f"{fs}.reco.root"
        summary = hepae.compress(sample, compressed, model_files[fs], step_size=500, progress=False)
        back = hepae.decompress(compressed, reco, progress=False)
        out[fs] = (sample, compressed, reco, summary, back)
    return out


@pytest.mark.parametrize("fs", LAYOUTS)
def test_compressed_file_is_plain_root_with_latents_and_metadata(roundtrips, fs):
    sample, compressed, _, summary, _ = roundtrips[fs]
    featureset = hepae.load_featureset(fs)
    with uproot.open(sample) as fa, uproot.open(compressed) as fb:
        original, packed = fa[featureset.tree], fb[featureset.tree]
        assert not set(featureset.branches) & set(packed.keys())
        counter = original[featureset.branches[0]].count_branch.name
        np.testing.assert_array_equal(packed["hepae_count"].array(), original[counter].array())  # jets per event
        streams = fb["hepae_streams"]
        assert streams.keys() == ["entries", "n_objects", "latent_0", "latent_1", "latent_2"]
        assert streams.num_entries == summary["chunks"] == 3  # one entry per chunk of 500 events
        assert streams["entries"].array().tolist() == [500, 500, 500]
        assert ak.sum(ak.num(streams["latent_0"].array())) == summary["n_objects"]  # one float32 per jet
        assert streams["latent_0"].array().type.content.content.primitive == "float32"
        metadata = json.loads(str(fb[METADATA_KEY]))
        assert metadata["featureset"]["name"] == fs and metadata["source"]["num_entries"] == 1500
        assert "hepae_decoder" in fb
    assert summary["n_events"] == 1500 and summary["collection_ratio_without_decoder"] > 1


@pytest.mark.parametrize("fs", LAYOUTS)
def test_decompressed_file_restores_structure_and_carries_everything_else(roundtrips, fs):
    sample, _, reco, _, back = roundtrips[fs]
    featureset = hepae.load_featureset(fs)
    compared = assert_passthrough_identical(sample, reco, featureset.tree, set(featureset.branches))
    assert len(compared) == 9  # event, run, weight, jet counter, electron counter + 4 electron branches
    with uproot.open(sample) as fa, uproot.open(reco) as fb:
        ta, tb = fa[featureset.tree], fb[featureset.tree]
        assert tb.keys() == ta.keys()  # same names, same order
        for branch in featureset.branches:
            a, b = ta[branch].array(), tb[branch].array()
            np.testing.assert_array_equal(ak.num(a), ak.num(b))
            assert tb[branch].interpretation == ta[branch].interpretation
            assert tb[branch].count_branch.name == ta[branch].count_branch.name
    assert back["n_objects"] == int(ak.sum(ak.num(a)))


@pytest.mark.parametrize("fs", LAYOUTS)
def test_reconstruction_within_tolerance_after_short_training(roundtrips, fs):
    sample, _, reco, _, _ = roundtrips[fs]
    residuals = hepae.residual_summary(sample, reco, fs)
    # 10 epochs of a small 4-64-32-3 network on 3.5k jets: loose, but far from an untrained model
    assert residuals["pt"]["std"] < 0.15, residuals["pt"]
    assert residuals["eta"]["std"] < 0.15 and residuals["phi"]["std"] < 0.15
    assert residuals["m"]["width68"] < 0.3
    assert abs(residuals["pt"]["mean"]) < 0.05


def test_compressed_file_decompresses_without_the_model_file(samples, models, tmp_path):
    model_path = models["atlas-jets-4d"].save(tmp_path / "m.hepae")
    hepae.compress(samples["atlas-jets-4d"], tmp_path / "c.root", model_path, progress=False)
    model_path.unlink()
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    assert (tmp_path / "r.root").stat().st_size > 0


def test_inspect_reports_metadata_and_sizes(roundtrips):
    _, compressed, _, summary, _ = roundtrips["nanoaod-jets-4d"]
    info = hepae.inspect(compressed)
    assert info["kind"] == "hepae-container"
    assert info["metadata"]["collection"]["counter"] == "nJet"
    assert info["sizes"]["collection_latent_bytes"] == summary["collection_latent_bytes"]
    assert info["metadata"]["model"]["architecture"]["latent"] == 3
    digests = info["metadata"]["checksums"]["chunks"]  # one per chunk, each checked before the chunk is decoded
    assert len(digests) == summary["chunks"] and all(len(d) == 64 for d in digests)


def test_model_of_another_featureset_is_refused(samples, model_files, tmp_path):
    with pytest.raises(hepae.errors.TreeNotFoundError):
        hepae.compress(samples["atlas-jets-4d"], tmp_path / "c.root", model_files["nanoaod-jets-4d"], progress=False)
    with pytest.raises(hepae.errors.BranchNotFoundError):
        hepae.compress(samples["atlas-jets-4d"], tmp_path / "c.root", model_files["physlite-jets-4d"], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_outputs_are_never_overwritten_silently_nor_equal_to_the_input(samples, model_files, tmp_path):
    sample = samples["atlas-jets-4d"]
    with pytest.raises(OutputFileError, match="is the input"):
        hepae.compress(sample, sample, model_files["atlas-jets-4d"], overwrite=True, progress=False)
    out = tmp_path / "c.root"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputFileError, match="already exists"):
        hepae.compress(sample, out, model_files["atlas-jets-4d"], progress=False)
    assert out.read_bytes() == b"keep me"


def test_tampered_latents_and_metadata_are_detected_and_leave_no_output(roundtrips, tmp_path):
    _, compressed, _, _, _ = roundtrips["atlas-jets-4d"]
    edited = tmp_path / "edited.root"

    def scale_latent(arrays, streams):
        streams["latent_0"] = streams["latent_0"] * 1.0001

    rewrite_container(compressed, edited, edit_arrays=scale_latent)
    with pytest.raises(ContainerFormatError, match="data checksum mismatch"):
        hepae.decompress(edited, tmp_path / "out.root", progress=False)
    assert not (tmp_path / "out.root").exists()
    rewrite_container(compressed, edited, edit_metadata=lambda m: m["checksums"].update(decoder="0" * 64))
    with pytest.raises(ContainerFormatError, match="decoder checksum mismatch"):
        hepae.decompress(edited, tmp_path / "out.root", progress=False)
    rewrite_container(compressed, edited, edit_metadata=lambda m: m.update(format_version="one"))
    with pytest.raises(ContainerFormatError, match="format_version"):
        hepae.decompress(edited, tmp_path / "out.root", progress=False)
    assert not (tmp_path / "out.root").exists()


def test_metadata_that_decoding_depends_on_is_verified_before_it_is_used(samples, model_files, models, tmp_path):
    compressed = tmp_path / "bounded.root"
    hepae.compress(samples["atlas-jets-4d"], compressed, model_files["atlas-jets-4d"], progress=False,
                   codec={"id": "ae", "latent_bits": 4, "error_bounds": ["pt=rel:1e-3", "m=rel:1e-3"]})
    edited = tmp_path / "edited.root"

    def looser_bound(m):  # a bit flip that still parses: rel:1e-3 -> rel:2e-3
        m["codec"]["error_bounds"][0] = "pt=rel:0.002"

    rewrite_container(compressed, edited, edit_metadata=looser_bound, metadata_checksum=False)
    with pytest.raises(ContainerFormatError, match="metadata checksum mismatch"):
        hepae.decompress(edited, tmp_path / "out.root", progress=False)
    with pytest.raises(ContainerFormatError, match="metadata checksum mismatch"):
        hepae.inspect(edited)

    other = models["physlite-jets-4d"].to_bytes(("decoder",))  # another decoder, its checksum updated to match

    def new_checksum(m):
        import hashlib

        m["checksums"]["decoder"] = hashlib.sha256(other).hexdigest()
        m["model"]["decoder_bytes"] = len(other)

    rewrite_container(compressed, edited, edit_metadata=new_checksum)
    with uproot.update(edited) as f:
        del f["hepae_decoder"]
        from hepae.container.format import DECODER_BRANCH, DECODER_TREE
        from hepae.io.branches import BranchSpec
        from hepae.io.writing import TreeWriter

        TreeWriter(f, DECODER_TREE, [BranchSpec(DECODER_BRANCH, "uint8", f"{DECODER_BRANCH}_size")]).extend(
            {DECODER_BRANCH: ak.unflatten(np.frombuffer(other, np.uint8), [len(other)])})
    with pytest.raises(ContainerFormatError, match="not the one the metadata records"):
        hepae.decompress(edited, tmp_path / "out.root", progress=False)
    assert not (tmp_path / "out.root").exists()


def test_a_plain_root_file_is_not_a_container(samples, tmp_path):
    with pytest.raises(ContainerFormatError, match="not a hepae compressed file"):
        hepae.decompress(samples["atlas-jets-4d"], tmp_path / "out.root", progress=False)
    info = hepae.inspect(samples["atlas-jets-4d"])
    assert info["kind"] == "root" and info["matching_featuresets"] == ["atlas-jets-4d"]


def test_residuals_of_a_file_against_itself_are_zero_and_mismatches_refused(samples, sample_dir):
    residuals = hepae.residual_summary(samples["atlas-jets-4d"], samples["atlas-jets-4d"], "atlas-jets-4d")
    for r in residuals.values():
        assert r["mean"] == 0 and r["std"] == 0 and r["max_abs"] == 0 and r["width99"] == 0
    other = hepae.make_sample(sample_dir / "other-seed.root", n_events=1500, seed=8, overwrite=True)
    with pytest.raises(ModelMismatchError, match="number of objects per event"):
        hepae.residual_summary(samples["atlas-jets-4d"], other, "atlas-jets-4d")
    with pytest.raises(hepae.errors.BranchNotFoundError):
        hepae.residual_summary(samples["atlas-jets-4d"], samples["physlite-jets-4d"], "atlas-jets-4d")


def test_zero_event_file_round_trips(models, tmp_path):
    from hepae.io.branches import BranchSpec
    from hepae.io.writing import TreeWriter

    empty = tmp_path / "empty.root"
    featureset = hepae.load_featureset("atlas-jets-4d")
    specs = [BranchSpec("EventInfoAux.eventNumber", "uint64")] + [
        BranchSpec(b, "float32", "nAntiKt4EMTopoJetsAux") for b in featureset.branches]
    with uproot.recreate(empty) as f:
        TreeWriter(f, "CollectionTree", specs)
    summary = hepae.compress(empty, tmp_path / "c.root", models["atlas-jets-4d"], progress=False)
    assert summary["n_events"] == 0 and summary["n_objects"] == 0
    back = hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    assert back["n_events"] == 0
    with uproot.open(tmp_path / "r.root") as f:
        assert f["CollectionTree"].num_entries == 0
        assert f["CollectionTree"].keys() == ["EventInfoAux.eventNumber", "nAntiKt4EMTopoJetsAux", *featureset.branches]


def test_input_files_are_never_modified(samples, model_files, tmp_path):
    import hashlib

    def digest(path):
        return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns

    sample, model = samples["nanoaod-jets-4d"], model_files["nanoaod-jets-4d"]
    before = digest(sample), digest(model)
    hepae.compress(sample, tmp_path / "c.root", model, progress=False)
    compressed_before = digest(tmp_path / "c.root")
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    assert (digest(sample), digest(model)) == before
    assert digest(tmp_path / "c.root") == compressed_before


def test_inspect_matches_feature_sets_tree_by_tree(samples, tmp_path):
    from hepae.io.branches import BranchSpec
    from hepae.io.writing import TreeWriter

    path = tmp_path / "two-trees.root"
    with uproot.open(samples["atlas-jets-4d"]) as f:
        arrays = f["CollectionTree"].arrays(library="ak", how=dict)
        from hepae.io.branches import describe_tree

        layout = describe_tree(f["CollectionTree"])
    with uproot.recreate(path) as out:
        TreeWriter(out, "CollectionTree", layout.branches).extend(arrays)
        TreeWriter(out, "Other", [BranchSpec("x", "float32")]).extend({"x": np.ones(3, np.float32)})
    info = hepae.inspect(path)
    assert set(info["trees"]) == {"CollectionTree", "Other"}
    assert info["matching_featuresets"] == ["atlas-jets-4d"]
