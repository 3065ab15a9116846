"""The CLI as a user and a pipeline call it: the documented commands, exit codes and --json output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hepae.cli import main

ENV = {**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning"}


def hepae(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the installed console script, as a pipeline would."""
    exe = Path(sys.executable).with_name("hepae")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "hepae.cli"]
    return subprocess.run(command + list(args), cwd=cwd, capture_output=True, text=True, env=ENV, timeout=600)


def test_documented_commands_end_to_end(tmp_path):
    r = hepae("make-sample", "jets.root", "--events", "1200", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = hepae("train", "jets.root", "--features", "atlas-jets-4d", "--latent", "3", "--epochs", "2",
              "--hidden", "32,16", "-o", "jets4d.hepae", "--quiet", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    trained = json.loads(r.stdout)
    assert trained["epochs"] == 2 and len(trained["model_id"]) == 16
    r = hepae("compress", "jets.root", "-m", "jets4d.hepae", "-o", "jets.compressed.root", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "collection ratio" in r.stdout
    r = hepae("decompress", "jets.compressed.root", "-o", "jets.reco.root", "--json", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_events"] == 1200
    r = hepae("inspect", "jets.compressed.root", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["kind"] == "hepae-container"
    assert info["metadata"]["model"]["model_id"] == trained["model_id"]
    assert info["metadata"]["source"]["file"] == "jets.root"
    r = hepae("inspect", "jets.compressed.root", cwd=tmp_path)
    assert r.returncode == 0 and "hepae compressed file" in r.stdout
    r = hepae("featuresets", cwd=tmp_path)
    assert r.returncode == 0 and "nanoaod-jets-4d" in r.stdout
    r = hepae("residuals", "jets.root", "jets.reco.root", "--features", "atlas-jets-4d", "--json", cwd=tmp_path)
    assert r.returncode == 0 and set(json.loads(r.stdout)) == {"pt", "eta", "phi", "m"}


def test_errors_give_one_clear_line_and_exit_code_1(tmp_path, capsys):
    assert main(["compress", str(tmp_path / "missing.root"), "-m", "x.hepae", "-o", str(tmp_path / "o.root")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model file" in err[0] and "does not exist" in err[0]
    (tmp_path / "m.root").write_text("not root")
    assert main(["inspect", str(tmp_path / "m.root")]) == 1
    assert "not a readable ROOT file" in capsys.readouterr().err
    assert main(["make-sample", str(tmp_path / "s.root"), "--events", "10"]) == 0
    assert main(["make-sample", str(tmp_path / "s.root"), "--events", "10"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "s.root"), "--features", "nope", "-o", str(tmp_path / "m.hepae"), "-q"]) == 1
    assert "unknown feature set 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "m.hepae").exists()


def test_debug_shows_the_traceback(tmp_path, capsys):
    assert main(["--debug", "inspect", str(tmp_path / "nothing.root")]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as info:
        main(["compress"])
    assert info.value.code == 2


def test_featuresets_json_lists_full_definitions(capsys):
    assert main(["featuresets", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {fs["name"] for fs in listing} >= {"atlas-jets-4d", "physlite-jets-4d", "nanoaod-jets-4d"}


@pytest.mark.parametrize("option", [["--step-size", "lots"], ["--compression", "gzip:9"], ["--compression", "zstd:x"]])
def test_bad_option_values_are_usage_errors(option, capsys):
    with pytest.raises(SystemExit) as info:
        main(["compress", "in.root", "-m", "m.hepae", "-o", "out.root", *option])
    assert info.value.code == 2
    assert f"error: argument {option[0]}" in capsys.readouterr().err
