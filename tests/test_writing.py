"""One TTree writer for every output; atomic outputs that never leave partial files."""

import errno
import fcntl
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hepae.errors import BranchTypeError, ContainerFormatError, InputFileError, OutputFileError
from hepae.io.branches import BranchSpec, describe_tree
from hepae.io.writing import TMP_SUFFIX, TreeWriter, _host, atomic_output, remove_stale_temporaries


def test_groups_share_their_counter_and_order_is_kept(tmp_path):
    specs = [
        BranchSpec("event", "uint64"),
        BranchSpec("Jet_pt", "float32", "nJet"),
        BranchSpec("flag", "bool"),
        BranchSpec("Jet_id", "int32", "nJet"),
        BranchSpec("Mu_pt", "float64", "nMu"),
        BranchSpec("fixed", "(3,)float32"),
    ]
    data = {
        "event": np.array([1, 2, 3], np.uint64),
        "Jet_pt": ak.Array([[1.0, 2.0], [], [3.0]]),
        "flag": np.array([True, False, True]),
        "Jet_id": ak.Array([[1, 2], [], [3]]),
        "Mu_pt": ak.Array([[], [5.0], []]),
        "fixed": np.arange(9, dtype=np.float32).reshape(3, 3),
    }
    path = tmp_path / "t.root"
    with uproot.recreate(path) as f:
        writer = TreeWriter(f, "Events", specs)
        writer.extend(data)
        writer.extend(data)
    with uproot.open(path) as f:
        tree = f["Events"]
        # order kept; a generated counter stands before the first branch it counts
        assert tree.keys() == ["event", "nJet", "Jet_pt", "flag", "Jet_id", "nMu", "Mu_pt", "fixed"]
        layout = describe_tree(tree)
        assert layout.branches == specs
        assert layout.counters == {"nJet": "int32", "nMu": "int32"}
        assert tree["nJet"].array().tolist() == [2, 0, 1, 2, 0, 1]
        assert tree["Jet_id"].array().tolist() == [[1, 2], [], [3]] * 2


def test_members_of_a_group_must_have_equal_counts(tmp_path):
    specs = [BranchSpec("a", "float32", "n"), BranchSpec("b", "float32", "n")]
    with uproot.recreate(tmp_path / "t.root") as f:
        writer = TreeWriter(f, "T", specs)
        with pytest.raises(BranchTypeError, match="'a' and 'b' share the counter 'n'"):
            writer.extend({"a": ak.Array([[1.0]]), "b": ak.Array([[1.0, 2.0]])})


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.root"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"done")
    assert target.read_bytes() == b"done" and [p.name for p in tmp_path.iterdir()] == ["out.root"]


def test_atomic_output_refusals(tmp_path):
    existing = tmp_path / "exists.root"
    existing.write_bytes(b"x")
    with pytest.raises(OutputFileError, match="already exists"):
        with atomic_output(existing):
            pass
    with pytest.raises(OutputFileError, match="is the input"):
        with atomic_output(existing, overwrite=True, inputs=[existing]):
            pass
    with pytest.raises(OutputFileError, match="does not exist"):
        with atomic_output(tmp_path / "no-dir" / "out.root"):
            pass
    assert existing.read_bytes() == b"x"


# -- a failing output disk, and temporary files of killed runs ---------------------------------------
def _limit_file_size(limit: int):
    def limit_file_size() -> None:  # in the child: writes past ``limit`` bytes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_file_size


def test_a_write_past_the_file_size_limit_names_the_output(tmp_path):
    """A real OS-level failure (EFBIG past RLIMIT_FSIZE), in a child process: the error names the output."""
    code = textwrap.dedent("""
        import sys
        from pathlib import Path
        from hepae.errors import OutputFileError
        from hepae.io.writing import atomic_output
        try:
            with atomic_output(Path(sys.argv[1])) as tmp, open(tmp, "wb") as handle:
                for _ in range(64):
                    handle.write(bytes(65536))
        except OutputFileError as err:
            print(err)
    """)
    target = tmp_path / "out.root"
    result = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, timeout=300,
                            preexec_fn=_limit_file_size(100_000))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (f"cannot write output {target}: file too large (the file system's or the "
                                     "process's file-size limit); no partial output was left")
    assert list(tmp_path.iterdir()) == []


def _no_space() -> OSError:
    """A real ENOSPC from the kernel: /dev/full refuses every write."""
    try:
        with open("/dev/full", "wb", buffering=0) as full:
            full.write(b"x")
    except OSError as err:
        return err
    raise AssertionError("/dev/full accepted a write")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_an_output_error_even_when_a_reader_wrapped_it(tmp_path):
    target = tmp_path / "out.root"
    assert _no_space().errno == errno.ENOSPC
    with pytest.raises(OutputFileError, match=f"^cannot write output {target}: no space left on device; no partial"):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"partial")
            raise _no_space()
    with pytest.raises(OutputFileError, match="no space left on device") as info:
        with atomic_output(target) as tmp:
            try:
                raise _no_space()
            except OSError:  # what decompress did: report it as damaged input
                raise ContainerFormatError("in.root: damaged data after entry 0") from None
    assert isinstance(info.value.__cause__, ContainerFormatError)
    assert list(tmp_path.iterdir()) == []


def test_eio_counts_as_the_outputs_only_when_no_reader_claimed_it(tmp_path):
    target = tmp_path / "out.root"
    with pytest.raises(OutputFileError, match="input/output error"):
        with atomic_output(target):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
    with pytest.raises(InputFileError, match="cannot read in.root"):
        with atomic_output(target):
            try:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            except OSError:
                raise InputFileError("cannot read in.root (damaged file?)") from None
    assert list(tmp_path.iterdir()) == []


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporary_files_of_killed_runs_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "out.root"
    code = textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from hepae.io.writing import atomic_output
        with atomic_output(Path(sys.argv[1])) as tmp:
            tmp.write_bytes(b"partial")
            print(tmp.name, flush=True)
            time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        name = child.stdout.readline().strip()
    finally:
        child.kill()  # SIGKILL: no cleanup runs
        child.wait(timeout=60)
        child.stdout.close()
    assert name == f".out.root.{_host()}.{child.pid}.{name.split('.')[-2]}{TMP_SUFFIX}"
    assert (tmp_path / name).exists()
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"done")
    assert [p.name for p in tmp_path.iterdir()] == ["out.root"]


def test_only_stale_temporaries_of_the_same_target_on_this_host_are_removed(tmp_path):
    target, dead, host = tmp_path / "out.root", _dead_pid(), _host()
    names = {
        "stale": f".out.root.{host}.{dead}.abcd1234{TMP_SUFFIX}",
        "alive": f".out.root.{host}.{os.getpid()}.abcd1234{TMP_SUFFIX}",
        "other host": f".out.root.elsewhere-{host}.{dead}.abcd1234{TMP_SUFFIX}",
        "other target": f".other.root.{host}.{dead}.abcd1234{TMP_SUFFIX}",
        "locked": f".out.root.{host}.{dead}.efgh5678{TMP_SUFFIX}",  # a live writer in another PID namespace
        "old naming": f".out.root.abcd1234{TMP_SUFFIX}",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"partial")
    with open(tmp_path / names["locked"], "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        removed = remove_stale_temporaries(target)
    assert [p.name for p in removed] == [names["stale"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for k, n in names.items() if k != "stale")


FIXED_SIZE = Path(__file__).parent / "data" / "root-written" / "jagged-fixed-size.root"


def test_a_jagged_branch_of_fixed_size_arrays_is_refused_or_left_out_never_written_broken(tmp_path):
    """uproot reads ``Jet_v[nJet][3]`` (written by ROOT: tests/data/root-written) but writes it back as baskets
    it cannot read. compress refuses the file, naming the branch and the way out, and writes nothing; with
    drop_unsupported the branch is left out (and listed) and every other branch comes back."""
    import hepae
    from hepae.errors import UnsupportedBranchError

    with pytest.raises(UnsupportedBranchError, match=r"'Jet_v'.*fixed-size arrays.*drop_unsupported=True"):
        hepae.compress(FIXED_SIZE, tmp_path / "c.root", profile="nanoaod", progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.warns(UserWarning, match="Jet_v"):
        summary = hepae.compress(FIXED_SIZE, tmp_path / "c.root", profile="nanoaod", drop_unsupported=True,
                                 progress=False)
    assert list(summary["dropped_branches"]) == ["Jet_v"]
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    with uproot.open(FIXED_SIZE) as original, uproot.open(tmp_path / "r.root") as back:
        assert back["Events"].keys() == ["nJet", "Jet_pt"]
        assert ak.array_equal(back["Events"]["nJet"].array(), original["Events"]["nJet"].array())
        pt, pt_back = original["Events"]["Jet_pt"].array(), back["Events"]["Jet_pt"].array()
        assert ak.all(abs(ak.flatten(pt_back - pt)) <= abs(ak.flatten(pt)) * 2.0**-9)  # nanoaod: Jet_pt bits:8
