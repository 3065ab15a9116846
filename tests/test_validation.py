"""The validation report: metrics with known answers on constructed inputs, and every output usable."""

import json
import re

import awkward as ak
import numpy as np
import pytest
import uproot

import hepae
import hepae.io.darkmachines
import hepae.io.tensors
from hepae.cli import main
from hepae.errors import ModelMismatchError, OutputFileError
from hepae.io.branches import describe_tree
from hepae.io.writing import TreeWriter

FS = "atlas-jets-4d"
PT, ETA = "AntiKt4EMTopoJetsAux.pt", "AntiKt4EMTopoJetsAux.eta"


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    return hepae.make_sample(tmp_path_factory.mktemp("val") / "orig.root", FS, n_events=4000, seed=11)


def _edited(original, path, edits):
    """A copy of ``original`` with some jet branches replaced by ``edit(flat_values)``."""
    with uproot.open(original) as f:
        tree = f["CollectionTree"]
        layout, arrays = describe_tree(tree), tree.arrays(library="ak", how=dict)
    for branch, edit in edits.items():
        flat = ak.to_numpy(ak.flatten(arrays[branch])).astype(np.float64)
        arrays[branch] = ak.unflatten(edit(flat).astype(np.float32), ak.num(arrays[branch]))
    with uproot.recreate(path) as out:
        TreeWriter(out, "CollectionTree", layout.branches).extend(arrays)
    return path


def test_identical_files_give_zero_residuals_and_pass(original, tmp_path):
    report = hepae.validate(original, original, tmp_path / "r", featureset=FS, formats=(), progress=False)
    assert report.passed and report.failures == []
    for name, v in report.metrics["variables"].items():
        assert v["mean"] == v["std"] == v["max_abs"] == 0.0, name
        assert v["migration_fraction"] == 0.0 and v["chi2"] == 0.0 and v["ks"] == 0.0 and v["wasserstein"] == 0.0


def test_a_known_shift_gives_the_expected_mean_residual(original, tmp_path):
    shifted = _edited(original, tmp_path / "shift.root", {ETA: lambda eta: eta + 0.01})
    report = hepae.validate(original, shifted, tmp_path / "r", featureset=FS, formats=(), progress=False)
    eta, pt = report.metrics["variables"]["eta"], report.metrics["variables"]["pt"]
    assert eta["mean"] == pytest.approx(0.01, abs=2e-6) and eta["std"] < 1e-5
    assert pt["mean"] == 0.0 and pt["migration_fraction"] == 0.0
    profile = [m for m, n in zip(eta["profile"]["mean"], eta["profile"]["count"]) if n > 0]
    assert profile and all(m == pytest.approx(0.01, abs=2e-6) for m in profile)  # the same in every pT bin
    assert 0.0 < eta["migration_fraction"] < 0.5  # some jets cross a bin edge


def test_a_known_smearing_gives_the_expected_sigma_and_the_paired_numbers_see_it(original, tmp_path):
    rng = np.random.default_rng(0)
    smeared = _edited(original, tmp_path / "smear.root", {PT: lambda pt: pt * (1 + rng.normal(0, 0.02, len(pt)))})
    report = hepae.validate(original, smeared, tmp_path / "r", featureset=FS, formats=(), progress=False)
    pt = report.metrics["variables"]["pt"]
    assert pt["std"] == pytest.approx(0.02, rel=0.05)
    assert abs(pt["mean"]) < 4 * pt["mean_error"]
    assert pt["width68"] == pytest.approx(0.02, rel=0.1)  # ~1 sigma of a Gaussian
    assert pt["migration_fraction"] > 0.05  # paired: visibly many jets change bin...
    assert pt["ks"] < pt["migration_fraction"] / 5  # ...while the distribution test barely notices


def test_every_output_exists_and_the_th1_file_matches_the_histograms(original, tmp_path):
    rng = np.random.default_rng(1)
    smeared = _edited(original, tmp_path / "smear.root", {PT: lambda pt: pt * (1 + rng.normal(0, 0.01, len(pt)))})
    outdir = tmp_path / "report"
    report = hepae.validate(original, smeared, outdir, featureset=FS, compressed=None, style="CMS", progress=False)
    assert sorted(p.name for p in outdir.iterdir()) == sorted([*report.files, ".hepae-report.json"])  # + its manifest
    assert all((outdir / name).stat().st_size > 0 for name in report.files)
    for kind in ("distribution", "residual", "profile", "migration"):
        assert {f"{kind}_pt.png", f"{kind}_pt.pdf"} <= set(report.files)
    for physics in ("leading_pt", "mass_12", "ht", "multiplicity"):
        assert f"physics_{physics}.png" in report.files
    assert json.loads((outdir / "metrics.json").read_text()) == report.metrics
    with uproot.open(outdir / "histograms.root") as f:
        th1 = f["original_pt"]
        assert th1.classname == "TH1D"
        counts = th1.values(flow=True)
        assert counts.sum() == report.metrics["variables"]["pt"]["n"]
        assert f["residual_pt"].values().sum() > 0 and f["migration_pt"].classname == "TH2D"
        assert f["original_ht"].values(flow=True).sum() == report.metrics["n_events"]
    page = (outdir / "index.html").read_text()
    referenced = set(re.findall(r'(?:src|href)=["\']([^"\']+)["\']', page))
    assert referenced and all((outdir / name).is_file() for name in referenced)
    assert "distribution_pt.png" in referenced and "<table>" in page


def test_latent_correlation_from_the_compressed_file(original, tmp_path, models):
    compressed, reco = tmp_path / "c.root", tmp_path / "r.root"
    hepae.compress(original, compressed, models[FS], check=False, progress=False)
    hepae.decompress(compressed, reco, progress=False)
    report = hepae.validate(original, reco, tmp_path / "rep", compressed=compressed, formats=(), progress=False)
    assert report.metrics["featureset"] == FS  # taken from the compressed file
    latent = np.array(report.metrics["latent_correlation"], dtype=float)
    assert latent.shape == (3, 3) and np.allclose(np.diag(latent), 1.0)


def test_mismatched_files_leave_no_report(original, samples, tmp_path):
    with pytest.raises(ModelMismatchError, match="events"):
        hepae.validate(original, samples[FS], tmp_path / "r", featureset=FS, progress=False)
    assert not (tmp_path / "r").exists() and list(tmp_path.iterdir()) == []
    (tmp_path / "r").mkdir()
    with pytest.raises(OutputFileError, match="exists"):
        hepae.validate(original, original, tmp_path / "r", featureset=FS, progress=False)


def test_cli_fails_on_mismatch_only_when_asked(original, tmp_path, capsys):
    shifted = _edited(original, tmp_path / "shift.root", {ETA: lambda eta: eta + 0.2})
    base = ["validate", str(original), str(shifted), "--features", FS, "-q", "--formats", ""]
    assert main([*base, "-o", str(tmp_path / "a")]) == 0
    assert "distribution tests: failed: eta:" in capsys.readouterr().out
    assert main([*base, "-o", str(tmp_path / "b"), "--fail-on-mismatch", "--json"]) == 3
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["passed"] is False and metrics["variables"]["eta"]["tests_passed"]["ks"] is False
    assert main([*base, "-o", str(tmp_path / "c"), "--fail-on-mismatch", "--max-ks", "1", "--max-chi2-ndf", "1e9",
                 "--max-wasserstein", "1"]) == 0


def test_csv_files_are_validated_on_the_selected_objects(tmp_path):
    csv = hepae.make_darkmachines_sample(tmp_path / "e.csv", n_events=800, seed=3)
    report = hepae.validate(csv, csv, tmp_path / "r", featureset="darkmachines-jets-4d", formats=(), progress=False)
    events = hepae.io.darkmachines.read_events(csv)
    jets = int(ak.sum(events["objects"]["obj"] <= 1))
    assert report.metrics["variables"]["pt"]["n"] == jets and report.passed


def test_a_constant_column_has_no_correlation_rather_than_an_infinite_one():
    from hepae.validation.report import _Moments

    moments = _Moments(3)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1000, 3))
    x[:, 1] = 0.123456789  # e.g. a latent dimension the codec dropped
    moments.update(x)
    corr = moments.correlation()
    assert np.isnan(corr[1]).all() and np.isnan(corr[:, 1]).all()
    assert corr[0, 0] == pytest.approx(1.0) and abs(corr[0, 2]) < 0.1


def test_overwrite_replaces_a_hepae_report_and_nothing_else(original, tmp_path):
    outdir = tmp_path / "report"
    hepae.validate(original, original, outdir, featureset=FS, formats=(), progress=False)
    first = sorted(p.name for p in outdir.iterdir())
    hepae.validate(original, original, outdir, featureset=FS, formats=(), overwrite=True, progress=False)
    assert sorted(p.name for p in outdir.iterdir()) == first  # replaced: the same report, no leftovers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temporary directory left behind
    (outdir / "my-notes.txt").write_text("mine")
    with pytest.raises(hepae.errors.OutputFileError, match=r"did not write: \['my-notes.txt'\]"):
        hepae.validate(original, original, outdir, featureset=FS, formats=(), overwrite=True, progress=False)
    assert (outdir / "my-notes.txt").read_text() == "mine"
    with pytest.raises(hepae.errors.OutputFileError, match="exists and is not a directory"):
        hepae.validate(original, original, outdir / "my-notes.txt", featureset=FS, formats=(), progress=False)


def test_an_empty_directory_or_an_older_report_may_be_overwritten_but_not_dot(original, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    hepae.validate(original, original, empty, featureset=FS, formats=(), overwrite=True, progress=False)
    older = tmp_path / "older"  # a report of hepae 0.1.0: no manifest, only report files
    older.mkdir()
    for name in ("index.html", "metrics.json", "histograms.root", "residual_pt.png"):
        (older / name).write_text("x")
    hepae.validate(original, original, older, featureset=FS, formats=(), overwrite=True, progress=False)
    assert (older / ".hepae-report.json").is_file() and not (older / "residual_pt.png").exists()
    monkeypatch.chdir(older)
    with pytest.raises(hepae.errors.OutputFileError, match="give it a name"):
        hepae.validate(original, original, ".", featureset=FS, formats=(), overwrite=True, progress=False)
