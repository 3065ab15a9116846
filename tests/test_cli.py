"""The CLI as a user and a pipeline call it: the documented commands, exit codes and --json output."""

import errno
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import hepae as hepae_api
from hepae.cli import build_parser, main

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


# -- the environment: closed pipes, full disks, devices, special paths --------------------------------
def _run(*args: str, cwd: Path, stdout: int | None = subprocess.PIPE, preexec_fn=None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("hepae")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "hepae.cli"]
    return subprocess.run(command + list(args), cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, text=True, env=ENV,
                          timeout=600, preexec_fn=preexec_fn)


def _closed_pipe() -> int:
    """The write end of a pipe whose reader has gone (what ``| head -2`` leaves once head has exited)."""
    read, write = os.pipe()
    os.close(read)
    return write


@pytest.mark.parametrize("args", [["featuresets", "--json"], ["inspect", "sample.root"], ["--help"]])
def test_a_closed_stdout_ends_the_command_quietly(tmp_path, args):
    if "sample.root" in args:
        hepae_api.make_sample(tmp_path / "sample.root", n_events=200)
    write = _closed_pipe()
    try:
        r = _run(*args, cwd=tmp_path, stdout=write)
    finally:
        os.close(write)
    assert r.returncode in (0, 141), r.stderr  # 141 = 128 + SIGPIPE, as `yes | head -1` gives
    assert r.stderr == ""


def _limit_file_size(limit: int):
    def limit_file_size() -> None:  # in the child: writes past ``limit`` bytes fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_file_size


def test_a_full_disk_gives_one_line_naming_the_output_and_leaves_nothing(tmp_path):
    sample = hepae_api.make_sample(tmp_path / "jets.root", n_events=2000)
    hepae_api.compress(sample, tmp_path / "jets.c.root", codec="lossless", featureset="atlas-jets-4d", progress=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, output in [
        (["make-sample", "big.root", "--events", "5000"], "big.root"),
        (["compress", "jets.root", "--codec", "lossless", "--features", "atlas-jets-4d", "-o", "out.root", "-q"],
         "out.root"),
        (["decompress", "jets.c.root", "-o", "reco.root", "-q"], "reco.root"),  # not "damaged input"
    ]:
        r = _run(*args, cwd=tmp_path, preexec_fn=_limit_file_size(30_000))
        assert r.returncode == 1, r.stderr
        assert r.stderr.splitlines() == [f"hepae {args[0]}: error: cannot write output {output}: file too large (the "
                                         "file system's or the process's file-size limit); no partial output was left"]
        assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--step-size", "1"], "1 entries per chunk is too small"),
        (["--step-size", "999"], "give at least 1000"),
        (["--step-size", "10 kB"], "'10 kB' per chunk is too small; give at least '1 MB'"),
        (["--workers", "0"], "'0': give a positive number of worker processes"),
        (["--workers", "-1"], "'-1': give a positive number of worker processes"),
    ],
)
def test_chunks_and_workers_too_small_are_usage_errors(option, message, capsys):
    command = ["compress-many", "in.root", "-m", "m.hepae", "-o", "out"]
    with pytest.raises(SystemExit) as info:
        main(command + option)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"hepae compress-many: error: argument {option[0]}: ") and message in err[-1]


def test_step_sizes_at_the_minimum_are_accepted():
    args = build_parser().parse_args(["compress", "in.root", "-o", "o.root", "--step-size", "1000"])
    assert args.step_size == 1000
    args = build_parser().parse_args(["train", "x.root", "--features", "f", "-o", "m", "--step-size", "1 MB"])
    assert args.step_size == "1 MB"


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"hepae {command}: error: "), err
    return err[0]


def test_outputs_that_are_files_where_a_directory_is_expected(tmp_path, capsys):
    sample = hepae_api.make_sample(tmp_path / "jets.root", n_events=200)
    (tmp_path / "taken").write_text("a file")
    assert main(["compress-many", str(sample), "-m", str(tmp_path / "m.hepae"), "-o", str(tmp_path / "taken")]) == 1
    assert "output directory" in _one_error_line(capsys, "compress-many")
    assert main(["validate", str(sample), str(sample), "-o", str(tmp_path / "taken"), "--features", "atlas-jets-4d",
                 "-q"]) == 1
    assert "is not a directory" in _one_error_line(capsys, "validate")
    assert (tmp_path / "taken").read_text() == "a file"


@pytest.mark.parametrize("device", ["cuda:99", "tpu", "meta"])
def test_a_device_this_machine_does_not_have(tmp_path, device, capsys):
    assert main(["train", str(tmp_path / "in.root"), "--features", "atlas-jets-4d", "-o", str(tmp_path / "m.hepae"),
                 "--device", device]) == 1
    line = _one_error_line(capsys, "train")
    assert f"'{device}'" in line and "devices on this machine: cpu" in line
    assert list(tmp_path.iterdir()) == []


def test_special_input_paths_say_what_they_are(tmp_path, capsys):
    os.mkfifo(tmp_path / "fifo.root")
    (tmp_path / "loop.root").symlink_to("loop.root")
    for name, what in [("fifo.root", "is not a regular file (a FIFO)"), ("loop.root", "is a symbolic link loop")]:
        assert main(["decompress", str(tmp_path / name), "-o", str(tmp_path / "o.root"), "-q"]) == 1
        assert what in _one_error_line(capsys, "decompress")


def test_an_unforeseen_os_error_is_still_one_line(monkeypatch, capsys):
    def denied():
        raise PermissionError(errno.EACCES, "Permission denied", "/etc/hepae")

    monkeypatch.setattr("hepae.features.list_featuresets", denied)
    assert main(["featuresets"]) == 1
    assert _one_error_line(capsys, "featuresets") == "hepae featuresets: error: /etc/hepae: Permission denied"


def test_the_demo_runs_the_whole_chain(tmp_path, capsys):
    """The README's first command: sample -> train -> compress -> decompress -> report (small sizes here)."""
    assert main(["demo", "--workdir", str(tmp_path / "demo"), "--events", "800", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "hepae demo in" in out and "residuals of the reconstructed jets" in out
    assert "stored five ways" in out and "hepae whole file, profile 'xaod'" in out
    assert (tmp_path / "demo" / "jets.reco.root").is_file() and (tmp_path / "demo" / "report" / "index.html").is_file()
