"""The example scripts run as documented (small sizes), so they cannot rot."""

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_python_api_example(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "compress_xaod.py"), "--workdir", str(tmp_path / "w"),
         "--events", "800", "--epochs", "2"],
        capture_output=True, text=True, env=ENV, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "bytes/jet" in result.stdout and "pt   relative" in result.stdout
    assert (tmp_path / "w" / "jets.reco.root").is_file()


def test_cli_pipeline_example(tmp_path):
    result = subprocess.run(
        ["bash", str(REPO / "examples" / "pipeline_step.sh")],
        capture_output=True, text=True, timeout=600,
        env={**ENV, "EVENTS": "800", "EPOCHS": "2", "WORKDIR": str(tmp_path / "p")},
    )
    assert result.returncode == 0, result.stderr
    assert "B/jet" in result.stdout
    assert json.loads((tmp_path / "p" / "inspect.json").read_text())["kind"] == "hepae-container"


def test_many_files_dask_example(tmp_path):
    command = [sys.executable, str(REPO / "examples" / "many_files_dask.py"), "--workdir", str(tmp_path / "m"),
               "--files", "3", "--events", "300", "--epochs", "1", "--workers", "2"]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "compress-many: 3 ok, 0 skipped, 0 failed" in result.stdout
    assert "decompress-many: 3 ok, 0 skipped, 0 failed" in result.stdout
    assert sorted(p.name for p in (tmp_path / "m" / "reco").glob("*.root")) == [
        "run000.reco.root", "run001.reco.root", "run002.reco.root"]


def test_27d_example(tmp_path):
    command = [sys.executable, str(REPO / "examples" / "compress_27d.py"), "--workdir", str(tmp_path / "w"),
               "--events", "400", "--epochs", "1", "--latent", "8"]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "27-200-200-200-8-200-200-200-27" in result.stdout
    assert "N90Constituents" in result.stdout and "max 0.00e+00" in result.stdout.split("N90Constituents")[1]


def test_darkmachines_csv_example(tmp_path):
    command = [sys.executable, str(REPO / "examples" / "compress_darkmachines.py"), "--workdir", str(tmp_path / "d"),
               "--events", "600", "--epochs", "2"]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "through the network (darkmachines-jets-4d), the others exact" in result.stdout
    before, after = (line for line in result.stdout.splitlines() if line.startswith(("before:", "after:")))
    assert before.split(":", 1)[1].strip().split(";")[:5] == after.split(":", 1)[1].strip().split(";")[:5]
    assert (tmp_path / "d" / "events.reco.csv").is_file()


def test_validation_example(tmp_path):
    command = [sys.executable, str(REPO / "examples" / "validate_reconstruction.py"), "--workdir",
               str(tmp_path / "v"), "--events", "600", "--epochs", "2", "--style", "LHCb2"]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "migration" in result.stdout and "report:" in result.stdout
    report = tmp_path / "v" / "report"
    assert (report / "index.html").is_file() and (report / "distribution_pt.pdf").is_file()


def test_analysis_on_compressed_files_example(tmp_path):
    command = [sys.executable, str(REPO / "examples" / "analysis_on_compressed_files.py"), "--workdir",
               str(tmp_path / "a"), "--files", "2", "--events", "1500", "--epochs", "1", "--workers", "2"]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "jets in 2 files" in result.stdout and "differs in" in result.stdout
