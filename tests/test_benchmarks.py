"""The benchmark scripts run (on a tiny file; their numbers are measured by running them, not here)."""

import json
import math
import subprocess
import sys

from conftest import REPO


def _run(script, tmp_path, *args):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], capture_output=True,
                            text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_pareto_benchmark_runs(tmp_path):
    out = _run("pareto.py", tmp_path, "--events", "600", "--epochs", "1", "--latents", "3", "--latent-bits", "6",
               "--bounds", "1e-2", "--bounded-latent-bits", "2", "--entropy-iterations", "20")
    rows = json.loads((tmp_path / "pareto.json").read_text())["rows"]
    names = [r["name"] for r in rows]
    expected = {"lossless", "truncate 10 bits", "ae latent 3, 6 bits", "ae bounded 0.01, auto bits",
                "ae bounded 0.01, 2 bits", "entropy limit 0.01", "bounded 0.01, hand-built", "bounded 0.01, learned"}
    assert expected <= set(names)
    for bits in ("auto", "2"):
        bounded = rows[names.index(f"ae bounded 0.01, {bits} bits")]
        assert all(e["max"] <= 1e-2 for e in bounded["errors"].values())
    assert rows[names.index("ae bounded 0.01, 2 bits")]["latent_bits"] == [2, 2, 2]
    assert (tmp_path / "pareto.png").stat().st_size > 0 and "B/object" in out


def test_throughput_benchmark_runs(tmp_path):
    out = _run("throughput.py", tmp_path, "--events", "500", "--epochs", "1", "--repeat", "2", "--steps",
               "ae float32,bounded learned")  # a network's steps and the learned entropy model's (all: ~3 min)
    rows = json.loads((tmp_path / "throughput.json").read_text())["rows"]
    assert [r["step"] for r in rows] == ["plain uproot copy", "compress ae float32", "decompress ae float32",
                                         "compress bounded learned", "decompress bounded learned"]
    assert rows[0]["speed_vs_copy"] == 1.0
    assert all(len(r["all_seconds"]) == 2 and r["seconds"] == min(r["all_seconds"]) for r in rows)  # the fastest round
    assert "decompress ae float32" in out and "decompress bounded learned" in out


def test_known_answer_benchmark_runs(tmp_path):
    out = _run("known_answer.py", tmp_path, "--events", "1500", "--bounds", "1e-2", "--iterations", "50")
    (row,) = json.loads((tmp_path / "known_answer.json").read_text())["rows"]
    assert row["limit"] < row["order0"] and row["learned"] <= row["hand_built"]  # the codec keeps the smaller
    assert set(row["limit_per_column"]) == {"pt", "eta", "phi", "spread", "frac1", "frac2", "mix", "copy"}
    assert "over limit" in out


def test_generated_limit_benchmark_runs(tmp_path):
    """Every coder stores more than the limit; phi, uniform, costs exactly log2(2 pi / step) bits at the limit."""
    out = _run("generated_limit.py", tmp_path, "--events", "1500", "--bounds", "1e-2", "--iterations", "30")
    rows = json.loads((tmp_path / "generated_limit.json").read_text())["rows"]
    assert [(r["features"], r["bound"]) for r in rows] == [("4d", 1e-2), ("27d", 1e-2)]
    for row in rows:
        assert row["limit"] < min(row["hand_built"], row["learned"], row["order0"])
        assert row["learned"] <= row["hand_built"]  # the codec keeps the smaller
        assert abs(8 * row["limit_per_column"]["phi"] - math.log2(2 * math.pi / row["steps"]["phi"])) < 0.02
    assert len(rows[1]["limit_per_column"]) == 26 and "over limit" in out


def test_memory_benchmark_runs_with_error_bounds(tmp_path):
    out = _run("memory.py", tmp_path, "--events", "400", "--factor", "2", "--error-bound", "1e-3")
    result = json.loads((tmp_path / "memory.json").read_text())
    assert result["codec"]["error_bounds"][0] == "pt=rel:0.001" and len(result["rows"]) == 2
    assert "ratio 2x/1x" in out


def test_entropy_coder_benchmark_runs(tmp_path):
    out = _run("entropy_coder.py", tmp_path, "--symbols", "20000", "--repeat", "1")
    rows = json.loads((tmp_path / "entropy_coder.json").read_text())["rows"]
    assert len(rows) == 4 and "Msym/s" in out
    for row in rows:  # tables and the coder's state cost a little on 20k symbols; never below the entropy
        assert 1.0 <= row["hepae_vs_limit"] < 1.1, row


def test_read_in_place_benchmark_runs(tmp_path):
    out = _run("read_in_place.py", tmp_path, "--events", "600", "--epochs", "1", "--repeat", "1")
    rows = json.loads((tmp_path / "read_in_place.json").read_text())["rows"]
    assert {r["reader"] for r in rows} == {"uproot, original", "hepae.open, lossless", "hepae.open, truncate 10 bits",
                                           "hepae.open, ae bounded 1e-3"}
    assert all(r["entries"] == 600 for r in rows) and "vs uproot" in out
